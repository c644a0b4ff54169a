-- POST /execute {"code": "print('hello')"} in one session
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")
wrk.method = "POST"
wrk.path = "/execute"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"code":"print('hello')","session_id":"s1"}]]
done = pyexec_done
