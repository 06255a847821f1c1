-- memory.lua [TURNS] — see tests/bench/memory. procy's resident memory
-- through a long conversation whose request bodies grow to ~800 KB (each
-- request carries the whole conversation, as agents send it), sampled
-- after every call: the peak, and what is left once it is idle. Twice:
-- `procy serve` alone, and an interactive session whose agent is the
-- conversation's client (this file again, as `procy run` of its client
-- half: the agent reaches procy's proxy through ANTHROPIC_BASE_URL).
local core = require "procy.core"
local proc = require "procy.proc"
local http = require "procy.http"
local json = require "procy.json"

-- The client: TURNS requests to URL, each with the conversation so far;
-- returns the size of the largest body it sent, and the conversation.
local system = ("You are a careful coding agent. Follow the rules. "):rep(100)
local function converse(url, turns, after)
  local msgs, largest = {}, 0
  for i = 1, turns do
    -- a tool result of 4 KB a turn, as a file read would bring
    msgs[#msgs + 1] = { role = "user", content = ("Turn %d: here is the file you asked for. "):format(i):rep(100) }
    local body = json.encode { model = "claude-sonnet-4-5", max_tokens = 1000, stream = true, system = system,
                               messages = msgs }
    largest = math.max(largest, #body)
    local r = assert(http.request { method = "POST", url = url .. "/v1/messages", body = body })
    assert(r.status == 200, "status " .. tostring(r.status))
    local text = {}
    for d in r.body:gmatch('"text_delta","text":"(.-)"}') do text[#text + 1] = d end
    msgs[#msgs + 1] = { role = "assistant", content = { { type = "text", text = table.concat(text) } } }
    if after then after() end
  end
  return largest, msgs
end

local function rss_kb(pid, field)
  local f = io.open("/proc/" .. pid .. "/status")
  local text = f and f:read("a")
  if f then f:close() end
  return text and tonumber(text:match(field .. ":%s*(%d+)")) or 0
end

return function(args)
  if args[1] == "--client" then -- the session's agent
    print(("LARGEST %d"):format(converse(os.getenv("ANTHROPIC_BASE_URL"), tonumber(args[2]))))
    core.sleep(3) -- procy idle, for the measure
    return 0
  end
  local turns = tonumber(args[1]) or 200
  local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
  local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake" }, { stderr = false }))
  local _f <close> = fake
  local fake_url = "http://127.0.0.1:" .. assert((fake:lines()() or ""):match("^PORT (%d+)"))
  print(("procy %s: a %d-turn conversation, each request the whole conversation so far"):format(core.version, turns))

  -- procy serve, the client here
  local px = assert(proc.spawn({ core.exe, "--db", dir .. "/serve.db", "serve", "--port", "0", "--upstream", fake_url },
    { stderr = "pipe", stdout = false }))
  local url = assert((px:lines("stderr")() or ""):match("listening on (http://[%d.:]+)"), "procy serve did not start")
  local start = rss_kb(px:pid(), "VmRSS")
  local anon = 0
  local largest, msgs = converse(url, turns, function() anon = math.max(anon, rss_kb(px:pid(), "RssAnon")) end)
  local peak = rss_kb(px:pid(), "VmHWM")
  core.sleep(3)
  local idle, idle_anon = rss_kb(px:pid(), "VmRSS"), rss_kb(px:pid(), "RssAnon")
  px:kill("TERM")
  px:wait(10)
  local mb = largest / 1048576
  print(("procy serve: largest body %.2f MB; RSS at start %.1f MB, peak %.1f MB (target <= %.1f MB: 10 + 3x the body),"
    .. " idle 3 s after %.1f MB (target <= 15 MB)"):format(mb, start / 1024, peak / 1024, 10 + 3 * mb, idle / 1024))
  print(("  of it procy's own (RssAnon: heap, stacks; the rest is shared library pages): largest seen after a call"
    .. " %.1f MB, idle %.1f MB"):format(anon / 1024, idle_anon / 1024))
  print(("  the peak over the idle: %.1f MB, %.1fx the largest body (target <= 3x); the libraries' pages: %.1f MB")
    :format((peak - idle) / 1024, (peak - idle) / largest * 1024, (idle - idle_anon) / 1024))

  -- The floor libcurl sets, measured now: curl(1) sending the conversation
  -- once more (the same libcurl and its ~30 libraries, OpenSSL's and
  -- libssh2's set-up; the body in memory, as procy holds it). Its VmHWM is
  -- sampled (a child's ru_maxrss would include ours: spawned with vfork,
  -- it counts the parent's peak); TIMED makes the answer last 0.5 s.
  msgs[#msgs + 1] = { role = "user", content = "TIMED" }
  local bodyfile = dir .. "/largest.json"
  local bf = assert(io.open(bodyfile, "wb"))
  bf:write(json.encode { model = "claude-sonnet-4-5", max_tokens = 1000, stream = true, system = system,
                         messages = msgs })
  bf:close()
  local c = assert(proc.spawn({ "curl", "-sS", "-o", "/dev/null", "-H", "content-type: application/json",
    "--data-binary", "@" .. bodyfile, fake_url .. "/v1/messages" }, { stdout = false }))
  local floor = 0
  while not c:wait(0.005) do floor = math.max(floor, rss_kb(c:pid(), "VmHWM")) end
  print(("curl(1) sending that conversation once more: peak RSS %.1f MB, the floor libcurl sets;"
    .. " procy serve's peak / curl's: %.2fx"):format(floor / 1024, peak / floor))

  -- an interactive session, its agent the client
  local cfg = io.open(dir .. "/procy.lua", "w")
  cfg:write(("return { upstream = %q }\n"):format(fake_url))
  cfg:close()
  local session = assert(proc.spawn({ core.exe, "--db", dir .. "/session.db", "--config", dir .. "/procy.lua",
    "--agent", ("%s run tests/bench/memory.lua --client %d"):format(core.exe, turns) },
    { pty = { cols = 120, rows = 40 } }))
  local out, speak, sidle, sanon, sidle_anon = "", 0, 0, 0, 0
  while true do
    local c, err = session:read("stdout", 0.2)
    if c then out = out .. c elseif not err then break end
    speak = math.max(speak, rss_kb(session:pid(), "VmHWM"))
    sanon = math.max(sanon, rss_kb(session:pid(), "RssAnon"))
    if sidle == 0 and out:find("LARGEST %d+") then
      core.sleep(2.5) -- the agent sleeps 3 s: procy is idle
      sidle, sidle_anon = rss_kb(session:pid(), "VmRSS"), rss_kb(session:pid(), "RssAnon")
    end
  end
  session:wait(20)
  if not out:find("LARGEST") then print(out:sub(-1500)) end -- what went wrong
  local slargest = tonumber(out:match("LARGEST (%d+)") or "0") / 1048576
  print(("interactive session: largest body %.2f MB; RSS peak %.1f MB (target <= %.1f MB), idle %.1f MB (target <= 15 MB)")
    :format(slargest, speak / 1024, 10 + 3 * slargest, sidle / 1024))
  print(("  of it procy's own (RssAnon): largest seen %.1f MB, idle %.1f MB"):format(sanon / 1024, sidle_anon / 1024))
  print(("  the peak over the idle: %.1f MB, %.1fx the largest body (target <= 3x); the libraries' pages: %.1f MB")
    :format((speak - sidle) / 1024, (speak - sidle) / (slargest * 1048576) * 1024, (sidle - sidle_anon) / 1024))
  print(("  peak / curl(1)'s: %.2fx"):format(speak / floor))
  proc.run { "rm", "-rf", dir }
  return 0
end
