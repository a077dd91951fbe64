-- wrk script for the soak: one connection per thread (run with -t N -c N), each thread one client
-- with a role and a think time. Readers list and read VMs; writers go through create → start →
-- stop → rename → delete on the test driver. Every response is checked against the status the
-- API promises and timed here (wrk's own histogram is per run, not per route); each thread writes
-- one line per response to <dir>/soak.<thread>.log:  route TAB status TAB ok(1/0) TAB ms
-- (files, because wrk cannot hand tables from its threads to done()). done() prints
--   SOCKET connect=… read=… write=… timeout=…   and   TOTAL <requests>
-- Arguments (after --): admin_token user_token writer_token image_id vm_id roles dir
--   roles: comma-separated role per thread, e.g. list_admin,list_deep,list_user,get_vm,metrics,writer
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long sec; long nsec; } limen_bench_timespec;
int clock_gettime(int clock, limen_bench_timespec *ts);
]]
local ts = ffi.new("limen_bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.sec) * 1000 + tonumber(ts.nsec) / 1e6
end

-- Think time per role (ms between a response and the next request).
local think = { list_admin = 20, list_deep = 20, list_user = 20, get_vm = 20, metrics = 1000, writer = 100 }

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end

local role, admin, user, writer, image, vm, out
local step, vm_id, cycle, started, route = "create", nil, 0, 0, nil

function init(args)
  admin, user, writer, image, vm = "Bearer " .. args[1], "Bearer " .. args[2], "Bearer " .. args[3], args[4], args[5]
  local list = {}
  for r in string.gmatch(args[6], "[^,]+") do table.insert(list, r) end
  role = list[(index - 1) % #list + 1]
  out = io.open(args[7] .. "/soak." .. index .. ".log", "w")
  out:setvbuf("line")
  math.randomseed(index * 7919)
end

local function get(path, token)
  return wrk.format("GET", path, { Authorization = token })
end

local function send(method, path, body)
  return wrk.format(method, path, { Authorization = writer, ["Content-Type"] = "application/json" }, body)
end

function request()
  started = now_ms()
  if role == "list_admin" then
    route = "GET /api/vms (admin, page 1)"
    return get("/api/vms?page=1&page_size=50", admin)
  elseif role == "list_deep" then
    route = "GET /api/vms (admin, page 2-200)"
    return get("/api/vms?page=" .. math.random(2, 200) .. "&page_size=50", admin)
  elseif role == "list_user" then
    route = "GET /api/vms (user, 100 VMs)"
    return get("/api/vms?page_size=100", user)
  elseif role == "get_vm" then
    route = "GET /api/vms/{id}"
    return get("/api/vms/" .. vm, user)
  elseif role == "metrics" then
    route = "GET /api/metrics"
    return wrk.format("GET", "/api/metrics")
  end
  if step == "create" then
    cycle = cycle + 1
    route = "POST /api/vms"
    return send("POST", "/api/vms", string.format(
      '{"name":"soak-%d-%d","vcpus":1,"memory_mb":128,"disk_gb":1,"image_id":"%s"}', index, cycle, image))
  elseif step == "start" or step == "stop" then
    route = "POST /api/vms/{id}/actions/" .. step
    return send("POST", "/api/vms/" .. vm_id .. "/actions/" .. step, nil)
  elseif step == "rename" then
    route = "PATCH /api/vms/{id}"
    return send("PATCH", "/api/vms/" .. vm_id, string.format('{"name":"soak-%d-%d-renamed"}', index, cycle))
  else
    route = "DELETE /api/vms/{id}"
    return send("DELETE", "/api/vms/" .. vm_id, nil)
  end
end

local expected = { create = 201, start = 200, stop = 200, rename = 200, delete = 204 }
local following = { create = "start", start = "stop", stop = "rename", rename = "delete", delete = "create" }

function response(status, headers, body)
  local ms = now_ms() - started
  local want = role == "writer" and expected[step] or 200
  local ok = status == want
  if role == "writer" and step == "create" then
    -- A failed create leaves no VM to carry on with (not the previous cycle's, already deleted).
    vm_id = ok and body:match('"id":"([^"]+)"') or nil
    ok = vm_id ~= nil
  end
  out:write(route, "\t", status, "\t", ok and 1 or 0, "\t", string.format("%.3f", ms),
    ok and "" or ("\t" .. (body or ""):sub(1, 300):gsub("[\t\n]", " ")), "\n")
  if role == "writer" then
    if ok then
      step = following[step]
    else
      -- Start the cycle over; a VM left behind would only cost quota, and the database goes at the end.
      step = vm_id and step ~= "delete" and "delete" or "create"
    end
  end
end

function delay()
  return think[role]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SOCKET connect=%d read=%d write=%d timeout=%d\n", e.connect, e.read, e.write, e.timeout))
  io.write(string.format("TOTAL %d %d\n", summary.requests, e.connect + e.read + e.write + e.timeout))
end
