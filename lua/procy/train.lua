-- procy.train: training jobs of the proxy model, on this machine or on a
-- GPU host over ssh (the `trainer` setting), that outlive procy. A job is
-- a directory on the host holding the dataset and the training script; the
-- trainer runs there in a session of its own, writing train.log and, when
-- it ends, exit.code. A detached watcher (`procy train watch JOB`) streams
-- the log into the record (train_log), keeps the last progress line and
-- sets the state; `status` starts a new watcher when the last one is gone.
--
-- Nothing here builds a shell command from data: what runs on the host is
-- a fixed script with the data as its positional arguments, each quoted
-- for the remote shell ssh hands its words to.

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local store = require "procy.store"

local M = {}

local function db() return assert(store.open()) end

-- quote(s) -> s as one word for a POSIX shell
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- host_ok(host) -> true | nil, err: a name ssh takes as a host, never an option
function M.host_ok(host)
  if type(host) ~= "string" or host == "" or host:sub(1, 1) == "-" or host:find("[%s%c]") then
    return core.fail("EINVAL", ("trainer.host %q is not a host name"):format(tostring(host)))
  end
  return true
end

-- argv(host, script, args) -> the argv that runs `sh -c script sh args...`
-- on host (nil: here)
function M.argv(host, script, args)
  local words = { "sh", "-c", script, "procy" }
  for _, a in ipairs(args or {}) do words[#words + 1] = tostring(a) end
  if not host then return words end
  local quoted = {}
  for i, w in ipairs(words) do quoted[i] = M.quote(w) end
  return { "ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=30", "--", host, table.concat(quoted, " ") }
end

-- run(host, script, args, [opts]) -> proc.run's result | nil, err, code; a
-- failure (ssh refused, the script failed) is an error naming the host
function M.run(host, script, args, opts)
  local r, err, code = proc.run(M.argv(host, script, args), opts)
  if not r then return core.wrap(host and ("ssh to " .. host) or "sh", err, code) end
  if r.code ~= 0 then
    local why = ((r.stderr or "") ~= "" and r.stderr or r.stdout or ""):gsub("%s+$", "")
    return core.fail(host and r.code == 255 and "EHOST" or "EFAIL",
      ("%s: exited with %d%s"):format(host and ("ssh to " .. host) or "sh", r.code, why ~= "" and (": " .. why) or ""))
  end
  return r
end

-- ---- the scripts that run on the host (constants; data in "$@") -----------------

-- put DIR NAME < bytes: a file into the job's directory
M.PUT = [[mkdir -p -- "$1" && cat > "$1/$2"]]
-- launch DIR ARGV...: the trainer in a session of its own; prints its pid
M.LAUNCH = [[cd -- "$1" || exit 1; shift
setsid sh -c '"$@" > train.log 2>&1; echo $? > exit.code' trainer "$@" < /dev/null > /dev/null 2>&1 &
echo $!]]
-- check DIR ARGV...: the trainer's check in the job's directory, in the
-- foreground (its output is the answer)
M.CHECK = [[cd -- "$1" || exit 1; shift
exec "$@" < /dev/null]]
-- follow DIR PID OFFSET: the log from byte OFFSET on while PID runs, then
-- how it ended
M.FOLLOW = [[cd -- "$1" || exit 1
touch train.log
tail -c +"$3" --pid="$2" -F train.log 2>/dev/null
echo
echo "@@procy-end $(cat exit.code 2>/dev/null || echo gone)"]]
-- state DIR PID: "exit N", "running" or "gone"
M.STATE = [[cd -- "$1" 2>/dev/null && [ -f exit.code ] && { echo "exit $(cat exit.code)"; exit 0; }
kill -0 "$2" 2>/dev/null && echo running || echo gone]]
-- stop PID: the trainer's whole process group
M.STOP = [[kill -TERM "-$1" 2>/dev/null || kill -TERM "$1"]] -- (dash's kill takes no --)

-- ---- jobs in the record -------------------------------------------------------------------

local function decode(row)
  if not row then return nil end
  row.argv = row.argv and json.decode(row.argv) or nil
  row.progress = row.progress and json.decode(row.progress) or nil
  return row
end

-- job(id or unique prefix, [db]) -> the row | nil, err, code
function M.job(id, h)
  local rows = (h or db()):query("SELECT * FROM train_jobs WHERE id LIKE ? || '%' ORDER BY created_at LIMIT 2", tostring(id))
  if #rows == 0 then return core.fail("ENOENT", "no training job " .. tostring(id)) end
  if #rows > 1 then return core.fail("EAMBIGUOUS", "more than one training job starts with " .. tostring(id)) end
  return decode(rows[1])
end

-- jobs([limit], [db]) -> the newest jobs first
function M.jobs(limit, h)
  local rows = (h or db()):query("SELECT * FROM train_jobs ORDER BY created_at DESC LIMIT ?", limit or 50)
  for _, r in ipairs(rows) do decode(r) end
  return rows
end

-- new{id, host, dir, argv, method, export_dir} -> job id (id: a new one)
function M.new(o)
  local id = o.id or store.random_hex(5)
  db():exec([[INSERT INTO train_jobs(id, host, dir, argv, method, export_dir, state, created_at)
    VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)]], id, o.host, o.dir, json.encode(o.argv), o.method, o.export_dir,
    store.now_us())
  return id
end

-- update(id, fields)
function M.update(id, f)
  local sets, vals = {}, {}
  for k, v in pairs(f) do
    sets[#sets + 1] = k .. " = ?"
    vals[#vals + 1] = type(v) == "table" and json.encode(v) or v
  end
  vals[#vals + 1] = id
  db():exec("UPDATE train_jobs SET " .. table.concat(sets, ", ") .. " WHERE id = ?", table.unpack(vals))
end

-- log(id, [after], [db]) -> the log lines kept, {id, t, line}, after a line id
function M.log(id, after, h)
  return (h or db()):query("SELECT id, t, line FROM train_log WHERE job_id = ? AND id > ? ORDER BY id", id, after or 0)
end

-- ---- the watcher ------------------------------------------------------------------------------

-- The cause a failed trainer gave: its log's last line that is not one
-- of its JSON progress lines (a Python error's last line, "CUDA error:
-- out of memory", ...), or nil.
local function cause_of(id)
  for _, r in ipairs(db():query("SELECT line FROM train_log WHERE job_id = ? ORDER BY id DESC LIMIT 50", id)) do
    local line = r.line:gsub("%s+$", "")
    if line:match("%S") and not line:match("^%s*{") then return line end
  end
end

local function ended(job, code)
  local stopped = job.state == "stopped" or M.job(job.id).state == "stopped"
  local state = stopped and "stopped" or code == 0 and "done" or "failed"
  local err
  if state == "failed" then
    err = code and ("the trainer exited with " .. code) or "the trainer is gone, with no exit code"
    local cause = cause_of(job.id)
    if cause then err = err .. ": " .. cause end
  end
  M.update(job.id, { state = state, exit_code = code, ended_at = store.now_us(), error = err })
end

-- watch(id): what `procy train watch JOB` runs, detached: the log into
-- the record as it grows, until the trainer ends
function M.watch(id)
  local job = assert(M.job(id))
  local me, pid = store.process_id("self")
  M.update(job.id, { watcher = me .. "/" .. tostring(pid) })
  while true do
    local p = assert(proc.spawn(M.argv(job.host, M.FOLLOW, { job.dir, job.pid, (job.log_bytes or 0) + 1 })))
    local h, code = db(), nil
    for line in p:lines() do
      local done = line:match("^@@procy%-end (.*)$")
      if done then
        code = math.tointeger(tonumber(done)) or false
      elseif line ~= "" or code == nil then
        h:exec("INSERT INTO train_log(job_id, t, line) VALUES (?, ?, ?)", job.id, store.now_us(),
          require("procy.redact").text(line))
        job.log_bytes = (job.log_bytes or 0) + #line + 1
        local ev = line:sub(1, 1) == "{" and json.decode(line)
        local f = { log_bytes = job.log_bytes }
        if type(ev) == "table" and ev.event then f.progress = ev end
        M.update(job.id, f)
      end
    end
    p:wait()
    if code ~= nil then return ended(job, code or nil) end
    -- ssh dropped (the host rebooted, the network went): try again soon
    core.sleep(5)
    job = assert(M.job(id))
    if job.state ~= "running" then return end
  end
end

-- start_watcher(job) -> pid | nil, err
function M.start_watcher(job)
  local argv = { core.exe, "--db", store.path(), "train", "watch", job.id }
  return proc.daemon(argv, { log = store.path() .. "-train-" .. job.id .. ".log" })
end

-- refresh(job) -> job: the state as the host says, a watcher restarted
-- when a running job has none
function M.refresh(job)
  if job.state ~= "running" then return job end
  local id, pid = tostring(job.watcher or ""):match("^(.*)/(%d+)$")
  local alive = pid and store.process_id(tonumber(pid)) == id
  if not alive then
    local r = M.run(job.host, M.STATE, { job.dir, job.pid })
    local what = r and r.stdout:match("^(%S+)")
    if what == "exit" then ended(job, math.tointeger(tonumber(r.stdout:match("exit (%-?%d+)"))))
    elseif what == "gone" then ended(job, nil)
    else M.start_watcher(job) end
  end
  return assert(M.job(job.id))
end

-- stop(job) -> true | nil, err, code: the trainer's process group ended
function M.stop(job)
  if job.state ~= "running" then return core.fail("EINVAL", ("job %s is %s, not running"):format(job.id, job.state)) end
  M.update(job.id, { state = "stopped" })
  local ok, err, code = M.run(job.host, M.STOP, { job.pid })
  if not ok then
    M.update(job.id, { state = "running" })
    return nil, err, code
  end
  return true
end

-- ---- procy train status|log|stop|watch ---------------------------------------------

local function say(...) io.stderr:write("procy: ", ...) io.stderr:write("\n") end

local function progress_text(p)
  if type(p) ~= "table" then return "" end
  if p.event == "progress" and tonumber(p.step) and tonumber(p.total) and p.total > 0 then
    local width = 20
    local done = math.max(0, math.min(width, math.floor(width * p.step / p.total + 0.5)))
    return ("[%s%s] %d/%d%s"):format(("#"):rep(done), ("."):rep(width - done), p.step, p.total,
      tonumber(p.loss) and (" loss %.4g"):format(p.loss) or "")
  end
  return tostring(p.event or "")
end

-- losses(id, [db]) -> the loss of every progress line kept, in order
function M.losses(id, h)
  local out = {}
  for _, l in ipairs(M.log(id, 0, h)) do
    local ev = l.line:sub(1, 1) == "{" and json.decode(l.line)
    if type(ev) == "table" and ev.event == "progress" and tonumber(ev.loss) then out[#out + 1] = ev.loss end
  end
  return out
end

-- chart(values, width, height) -> lines: a small text chart, first value left
function M.chart(values, width, height)
  if #values == 0 then return {} end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
  local cols = math.min(width, #values)
  local rows = {}
  for r = 1, height do rows[r] = {} for c = 1, cols do rows[r][c] = " " end end
  for c = 1, cols do
    local v = values[math.max(1, math.floor(c * #values / cols))]
    local r = hi > lo and math.floor((hi - v) / (hi - lo) * (height - 1) + 0.5) + 1 or height
    rows[r][c] = "*"
  end
  local out = {}
  for r = 1, height do
    local label = r == 1 and ("%8.4g |"):format(hi) or r == height and ("%8.4g |"):format(lo) or "         |"
    out[r] = label .. table.concat(rows[r])
  end
  return out
end

local cli = {}

function cli.status(args)
  if args[1] then
    local job, err = M.job(args[1])
    if not job then say(err) return 1 end
    job = M.refresh(job)
    print(("job %s: %s%s, %s, in %s"):format(job.id, job.state, job.exit_code and (" (exit " .. job.exit_code .. ")") or "",
      job.host and ("on " .. job.host) or "here", job.dir))
    print("runs:    " .. table.concat(job.argv or {}, " "))
    print("data:    " .. tostring(job.export_dir))
    if job.progress then print("last:    " .. progress_text(job.progress)) end
    if job.error then print("error:   " .. job.error) end
    local losses = M.losses(job.id)
    if #losses > 1 then
      print("loss:")
      for _, l in ipairs(M.chart(losses, 60, 6)) do print(l) end
    end
    return 0
  end
  local jobs = M.jobs()
  if #jobs == 0 then print("no training job yet (procy train start)") return 0 end
  print(("%-10s  %-8s  %-10s  %-4s  %s"):format("job", "state", "host", "how", "progress"))
  for _, j in ipairs(jobs) do
    j = M.refresh(j)
    print(("%-10s  %-8s  %-10s  %-4s  %s"):format(j.id, j.state, j.host or "here", j.method or "?",
      j.state == "failed" and j.error or progress_text(j.progress)))
  end
  return 0
end

function cli.log(args)
  local follow = false
  local rest = {}
  for _, a in ipairs(args) do if a == "--follow" or a == "-f" then follow = true else rest[#rest + 1] = a end end
  if #rest ~= 1 then say("usage: procy train log JOB [--follow]") return 2 end
  local job, err = M.job(rest[1])
  if not job then say(err) return 1 end
  local last = 0
  while true do
    for _, l in ipairs(M.log(job.id, last)) do
      io.stdout:write(l.line, "\n")
      last = l.id
    end
    io.stdout:flush()
    job = M.refresh(assert(M.job(job.id)))
    if not follow or job.state ~= "running" then
      if follow then
        for _, l in ipairs(M.log(job.id, last)) do io.stdout:write(l.line, "\n") end
        print(("-- job %s %s%s"):format(job.id, job.state, job.exit_code and (" (exit " .. job.exit_code .. ")") or ""))
      end
      return 0
    end
    core.sleep(0.5)
  end
end

function cli.stop(args)
  if #args ~= 1 then say("usage: procy train stop JOB") return 2 end
  local job, err = M.job(args[1])
  if not job then say(err) return 1 end
  local ok, serr = M.stop(job)
  if not ok then say(serr) return 1 end
  print("stopped job " .. job.id)
  return 0
end

function cli.watch(args)
  M.watch(args[1])
  return 0
end

-- main(sub, args) -> exit status
function M.main(sub, args)
  local f = cli[sub]
  if not f then return nil end
  return f(args)
end

return M
