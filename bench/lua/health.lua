-- GET /health
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")
wrk.method = "GET"
wrk.path = "/health"
done = pyexec_done
