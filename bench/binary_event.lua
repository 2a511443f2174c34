-- wrk script: POSTs binary-mode CloudEvents with a 300-byte body and a unique id per request,
-- so that every request is a new event (a repeated id would be a cheap duplicate).
local counter = 0
local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   wrk.method = "POST"
   wrk.body = '{"d":"' .. string.rep("x", 292) .. '"}' -- 300 bytes
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["ce-specversion"] = "1.0"
   wrk.headers["ce-source"] = "/bench/wrk"
   wrk.headers["ce-type"] = "com.example.bench"
end

function request()
   counter = counter + 1
   wrk.headers["ce-id"] = string.format("%d-%d-%d", tid, counter, os.time())
   return wrk.format(nil, wrk.path)
end
