-- POST /execute: a state update in one session
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")
wrk.method = "POST"
wrk.path = "/execute"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"code":"x = x + 1 if 'x' in globals() else 0","session_id":"s1"}]]
done = pyexec_done
