-- agents.lua: the real agent CLIs for tests — where they are, a home where
-- their first-run screens are done, and the environment that keeps them
-- offline against the fake upstream (tests/fake/upstream.mjs).
local json = require "procy.json"
local proc = require "procy.proc"
local fs = require "procy.fs"
local T = require "lib.tap"

local M = {}

-- find(name) -> the CLI's path (PROCY_TEST_CLAUDE / PROCY_TEST_CODEX
-- override), or nil
function M.find(name)
  local given = os.getenv("PROCY_TEST_" .. name:upper())
  if given then return given end
  local r = proc.run { "sh", "-c", "command -v " .. name }
  return r and r.code == 0 and (r.stdout:gsub("%s+$", "")) or nil
end

-- home(dir, work) -> a HOME where Claude Code starts straight at its prompt
-- in work (and a CODEX_HOME next to it)
function M.home(dir, work)
  local home = dir .. "/home"
  fs.mkdir(home)
  fs.mkdir(dir .. "/codex-home")
  T.write(home .. "/.claude.json", json.encode {
    hasCompletedOnboarding = true,
    customApiKeyResponses = { approved = json.array { "sk-test-fake" }, rejected = json.array() },
    projects = { [work] = { hasTrustDialogAccepted = true } },
  })
  return home
end

-- env(dir, home, upstream) -> the variables for an offline run
function M.env(dir, home, upstream)
  return {
    HOME = home, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config",
    ANTHROPIC_BASE_URL = upstream, ANTHROPIC_API_KEY = "sk-test-fake",
    OPENAI_API_KEY = "sk-test-fake", CODEX_HOME = dir .. "/codex-home",
    DISABLE_TELEMETRY = "1", DISABLE_ERROR_REPORTING = "1", DISABLE_AUTOUPDATER = "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", CLAUDE_CODE_MAX_RETRIES = "1",
    IS_SANDBOX = "1", -- root may skip permissions
    -- a person's terminal, not CI's: Gemini CLI (isHeadlessMode) takes
    -- CI=true or GITHUB_ACTIONS=true for "no TTY" and will not start its TUI
    CI = false, GITHUB_ACTIONS = false, CONTINUOUS_INTEGRATION = false,
  }
end

-- world(cli) -> {dir, work, home, fake, env, cli}: a directory, a work
-- directory and a home for the CLI, the fake upstream running (close
-- w.fake.proc), the offline environment; nil when the CLI is not installed
function M.world(name)
  local cli = M.find(name)
  if not cli then return nil end
  local dir = T.tmpdir()
  local work = dir .. "/work"
  fs.mkdir(work)
  local home = M.home(dir, work)
  local fake = require("lib.fake").start(dir .. "/fake")
  return { dir = dir, work = work, home = home, fake = fake, env = M.env(dir, home, fake.url), cli = cli }
end

-- project(w, [fields]) -> record, procy: w's work directory as a project
-- whose procy.lua records into w.dir/rec.db and sends calls to the fake
-- upstream (fields: more of the table, as Lua text), the agent's base URL
-- left to procy; procy(...) runs the binary there with w's environment
function M.project(w, fields)
  w.env.ANTHROPIC_BASE_URL = false
  local record = w.dir .. "/rec.db"
  T.write(w.work .. "/procy.lua", ("return {\n  db = %q, upstream = %q,\n%s}\n"):format(record, w.fake.url, fields or ""))
  return record, function(...) return T.procy({ ... }, { cwd = w.work, env = w.env, timeout = 120 }) end
end

-- reviewer(work): a project subagent, .claude/agents/reviewer.md, with the
-- Bash tool (what the routing tests hand work to)
function M.reviewer(work)
  fs.mkdir(work .. "/.claude/agents")
  return T.write(work .. "/.claude/agents/reviewer.md", [[---
name: reviewer
description: Reviews a change. Use it for every review.
tools: Bash
---
You are a careful code reviewer. Look at the change you are given,
run the checks you need, and say what is wrong with it.

Be brief.
]])
end

-- value_project(work, procy_lua): work as a git project evolve can try:
-- value.txt holding value=1, eval.sh printing it as the metric `value`
-- (declared, to maximize), procy.lua as given; all committed
function M.value_project(work, procy_lua)
  local function git(...)
    local _, code, err = T.git(work, ...)
    assert(code == 0, err)
  end
  git("init", "-q", "-b", "main")
  T.write(work .. "/value.txt", "value=1\n")
  T.write(work .. "/eval.sh", [[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]
echo "{\"value\": $(sed -n 's/^value=//p' value.txt)}"
]])
  T.write(work .. "/procy.lua", procy_lua)
  git("add", "-A")
  git("commit", "-q", "-m", "start")
end

-- skip(name): the TAP plan of a test that cannot run here
function M.skip(name)
  print("1..0 # SKIP the " .. name .. " CLI is not installed (.ci/setup installs it)")
  return 0
end

return M
