-- procy.prices: what a call cost, from its model and token counts.
--
-- Prices are US dollars per million tokens: input (uncached), output,
-- cache_write (5-minute cache writes), cache_write_1h, cache_read, and an
-- optional `long` tier for prompts above a size. They are list prices as
-- published by the providers (December 2026); a project changes or adds
-- models with the `prices` setting in procy.lua, e.g.
--
--   prices = { ["my-finetune"] = { input = 0.5, output = 1.5 } }
--
-- A model is found by its exact name, else by the longest known name it
-- starts with ("claude-sonnet-4-5-20250929" is "claude-sonnet-4-5"). A
-- model not found has an unknown cost (nil), never zero.


local M = {}

-- An Anthropic price: cache writes at 1.25x (5 minutes) and 2x (1 hour)
-- the input, cache reads at 0.1x unless said (the 5.5 models read at 0.05x).
local function anthropic(input, output, long, cache_read)
  return { input = input, output = output, cache_write = input * 1.25, cache_write_1h = input * 2,
           cache_read = cache_read or input * 0.1, long = long }
end

local function openai(input, output, cached)
  return { input = input, output = output, cache_read = cached or input }
end

-- A Gemini price: cache reads as given (context caching), a long tier
-- above 200k prompt tokens where Google has one. Thoughts are output.
local function google(input, output, cached, long)
  return { input = input, output = output, cache_read = cached, long = long }
end

-- Anthropic's, as Claude Code 2.1.330 (the client procy pins) prices them
-- in its own model catalog; OpenAI's as published. Codex 0.169.0's models
-- (gpt-5.5, gpt-5.6-*, gpt-6*) have no published price procy knows: `procy
-- usage` names them, and `prices` in procy.lua adds them. Google's as
-- published for the Gemini API's paid tier; Gemini CLI 0.61.0's newest
-- (gemini-3.1-*, 3.5-*, 3.8-*) have none procy knows, the same way.
M.defaults = {
  ["claude-opus-5-5"] = anthropic(4, 20, nil, 0.2),
  ["claude-opus-5"] = anthropic(5, 25),
  ["claude-opus-4-8"] = anthropic(5, 25),
  ["claude-opus-4-7"] = anthropic(5, 25),
  ["claude-opus-4-6"] = anthropic(5, 25),
  ["claude-opus-4-5"] = anthropic(5, 25),
  ["claude-opus-4-1"] = anthropic(15, 75),
  ["claude-opus-4"] = anthropic(15, 75),
  ["claude-opus-4-0"] = anthropic(15, 75),
  ["claude-sonnet-5-5"] = anthropic(2, 10, nil, 0.1),
  ["claude-sonnet-5"] = anthropic(2, 10),
  ["claude-sonnet-4-6"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-sonnet-4-5"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-sonnet-4"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-sonnet-4-0"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-3-7-sonnet"] = anthropic(3, 15),
  ["claude-3-5-sonnet"] = anthropic(3, 15),
  ["claude-haiku-5-5"] = anthropic(0.1, 0.5, { above = 100000, input = 0.5, output = 2.5 }, 0.01),
  ["claude-haiku-4-5"] = anthropic(1, 5),
  ["claude-3-5-haiku"] = anthropic(0.8, 4),
  ["claude-3-haiku"] = anthropic(0.25, 1.25),
  ["claude-3-opus"] = anthropic(15, 75),
  ["claude-fable-5-2"] = anthropic(8, 40, nil, 0.2),
  ["claude-fable-5-1"] = anthropic(10, 50, nil, 0.25),
  ["claude-fable-5"] = anthropic(10, 50),
  ["claude-mythos-5-2"] = anthropic(8, 40, nil, 0.2),
  ["claude-mythos-5-1"] = anthropic(10, 50, nil, 0.25),
  ["claude-mythos-5"] = anthropic(10, 50),
  ["gpt-5"] = openai(1.25, 10, 0.125),
  ["gpt-5-codex"] = openai(1.25, 10, 0.125),
  ["gpt-5-mini"] = openai(0.25, 2, 0.025),
  ["gpt-5-nano"] = openai(0.05, 0.4, 0.005),
  ["gpt-4.1"] = openai(2, 8, 0.5),
  ["gpt-4.1-mini"] = openai(0.4, 1.6, 0.1),
  ["gpt-4.1-nano"] = openai(0.1, 0.4, 0.025),
  ["gpt-4o"] = openai(2.5, 10, 1.25),
  ["gpt-4o-mini"] = openai(0.15, 0.6, 0.075),
  ["o3"] = openai(2, 8, 0.5),
  ["o4-mini"] = openai(1.1, 4.4, 0.275),
  ["gemini-3-pro-preview"] = google(2, 12, 0.2, { above = 200000, input = 4, output = 18 }),
  ["gemini-3-flash-preview"] = google(0.5, 3, 0.05),
  ["gemini-2.5-pro"] = google(1.25, 10, 0.125, { above = 200000, input = 2.5, output = 15 }),
  ["gemini-2.5-flash"] = google(0.3, 2.5, 0.03),
  ["gemini-2.5-flash-lite"] = google(0.1, 0.4, 0.01),
  ["gemini-2.0-flash"] = google(0.1, 0.4, 0.025),
  ["gemini-2.0-flash-lite"] = google(0.075, 0.3),
}

-- The project's prices: the `prices` setting, or (on the recorder
-- thread, which reads no config) what it was given.
M.extra = nil

-- What may follow a model's name and still be that model: a date
-- (-20250929, @20251101, -2025-04-14), a version (-v1, :0), -latest, -fast, or a
-- context suffix ([1m]). Anything else is another model: claude-opus-5-5
-- is not claude-opus-5, claude-haiku-4-50 not claude-haiku-4-5.
local function same_model(rest)
  return rest == "" or rest:match("^[-@]%d%d%d%d") or rest:match("^%-v%d") or
    rest:match("^:%d") or rest:match("^%-latest") or rest:match("^%-fast") or rest:match("^%[")
end

-- find(model) -> the price entry and its name, or nil. A provider's
-- prefix (Bedrock's us.anthropic., Vertex's and gateways' anthropic/) is
-- left out; then the exact name, else the longest known name the model
-- is followed by a suffix of (same_model).
function M.find(model)
  if type(model) ~= "string" then return nil end
  local extra = M.extra or require("procy.config").get().prices or {}
  if extra[model] or M.defaults[model] then return extra[model] or M.defaults[model], model end
  local bare = model:gsub("^[%w%-]*%.?anthropic[%./]", ""):gsub("^anthropic[%./]", "")
  local best
  local function consider(name)
    if bare:sub(1, #name) == name and same_model(bare:sub(#name + 1)) and (not best or #name > #best) then
      best = name
    end
  end
  for name in pairs(M.defaults) do consider(name) end
  for name in pairs(extra) do consider(name) end
  if best then return extra[best] or M.defaults[best], best end
end

-- cost(model, usage) -> dollars | nil. usage: input_tokens (uncached),
-- output_tokens, cache_creation_tokens, cache_creation_1h_tokens (part of
-- cache_creation_tokens), cache_read_tokens.
function M.cost(model, u)
  local p = M.find(model)
  if not p or not u then return nil end
  local input = (u.input_tokens or 0) + (u.cache_creation_tokens or 0) + (u.cache_read_tokens or 0)
  local base = p
  if p.long and input > p.long.above then
    base = setmetatable({ input = p.long.input, output = p.long.output }, { __index = p })
    local scale = p.long.input / p.input
    base.cache_write = (p.cache_write or p.input) * scale
    base.cache_write_1h = (p.cache_write_1h or p.cache_write or p.input) * scale
    base.cache_read = (p.cache_read or p.input) * scale
  end
  local w1h = u.cache_creation_1h_tokens or 0
  local w5m = (u.cache_creation_tokens or 0) - w1h
  local dollars = (u.input_tokens or 0) * base.input + (u.output_tokens or 0) * base.output
    + w5m * (base.cache_write or base.input)
    + w1h * (base.cache_write_1h or base.cache_write or base.input)
    + (u.cache_read_tokens or 0) * (base.cache_read or base.input)
  return dollars / 1e6
end

return M
