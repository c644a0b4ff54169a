-- the "state" cell over 1000 sessions, round-robin
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")
local n = 0
request = function()
  n = (n + 1) % 1000
  return wrk.format("POST", "/execute", {["Content-Type"] = "application/json"},
    '{"code":"x = x + 1 if \'x\' in globals() else 0","session_id":"m' .. n .. '"}')
end
done = pyexec_done
