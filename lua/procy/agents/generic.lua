-- The generic profile: any program on a terminal. procy knows its turns
-- from the API calls it makes through procy (when it speaks Anthropic's,
-- OpenAI's or Gemini's API and honours their base-URL variables) and from its terminal: a
-- turn has ended when the output has been quiet for `quiet` seconds (and,
-- with `idle_title`, the window title says it is idle). Other profiles
-- start from this one; a project's profiles (the `agents` setting) too.
--
-- A profile's fields and functions, all optional but `name`:
--   command        argv to start it interactively ({"aider"})
--   match          Lua pattern for the program's base name, to pick the
--                  profile for `procy -- PROGRAM ...`
--   quiet          seconds of quiet output that end a turn (terminal signal)
--   idle_title     pattern the window title matches while it waits for input
--   idle_output    pattern the end of its output matches while it waits
--                  (its prompt: "%$ $"); with quiet, ends a turn
--   env(ctx)       environment pointing its API at procy; ctx.base_url is
--                  http://127.0.0.1:PORT/s/SESSION (no /v1)
--   args(ctx)      extra arguments, interactive (ctx.exe: procy's binary)
--   hooks          true: its turns begin and end with hook events that
--                  `procy hook` posts (UserPromptSubmit, Stop)
--   interrupt      the bytes that interrupt it on a terminal (Esc)
--   edit_args      arguments that let it edit the project unasked, headless
--                  (what recipes such as evolve give the agents they start)
--   headless       "stream-json" (Claude Code), "exec" (a process per turn)
--   headless_args(ctx) -> argv for stream-json (ctx.resume: the session to
--                  continue)
--   exec(ctx, prompt) -> argv, [stdin] for one headless turn (with
--                  ctx.resume, the agent's session id to go on from, when
--                  there is one); stdin, a string, is written to it and closed
--                  (how a prompt of any size goes, off the process list)
--   parse(line, state) -> events for one output line of a headless turn
--   resume_args(id) -> arguments that continue the agent's session id

local P = {
  name = "generic",
  quiet = 1.5,
}

function P.env(ctx)
  return { ANTHROPIC_BASE_URL = ctx.base_url, OPENAI_BASE_URL = ctx.base_url .. "/v1",
           GOOGLE_GEMINI_BASE_URL = ctx.base_url }
end

function P.args() return {} end

return P
