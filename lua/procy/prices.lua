-- procy.prices: what a call cost, from its model and token counts.
--
-- Prices are US dollars per million tokens: input (uncached), output,
-- cache_write (5-minute cache writes), cache_write_1h, cache_read, and an
-- optional `long` tier for prompts above a size. They are list prices as
-- published by the providers (November 2026); a project changes or adds
-- models with the `prices` setting in procy.lua, e.g.
--
--   prices = { ["my-finetune"] = { input = 0.5, output = 1.5 } }
--
-- A model is found by its exact name, else by the longest known name it
-- starts with ("claude-sonnet-4-5-20250929" is "claude-sonnet-4-5"). A
-- model not found has an unknown cost (nil), never zero.


local M = {}

local function anthropic(input, output, long)
  return { input = input, output = output, cache_write = input * 1.25, cache_write_1h = input * 2,
           cache_read = input * 0.1, long = long }
end

local function openai(input, output, cached)
  return { input = input, output = output, cache_read = cached or input }
end

M.defaults = {
  ["claude-opus-4-5"] = anthropic(5, 25),
  ["claude-opus-4-1"] = anthropic(15, 75),
  ["claude-opus-4"] = anthropic(15, 75),
  ["claude-sonnet-4-5"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-sonnet-4"] = anthropic(3, 15, { above = 200000, input = 6, output = 22.5 }),
  ["claude-3-7-sonnet"] = anthropic(3, 15),
  ["claude-3-5-sonnet"] = anthropic(3, 15),
  ["claude-haiku-4-5"] = anthropic(1, 5),
  ["claude-3-5-haiku"] = anthropic(0.8, 4),
  ["claude-3-haiku"] = anthropic(0.25, 1.25),
  ["claude-3-opus"] = anthropic(15, 75),
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
}

-- The project's prices: the `prices` setting, or (on the recorder
-- thread, which reads no config) what it was given.
M.extra = nil

-- find(model) -> the price entry and its name, or nil
function M.find(model)
  if type(model) ~= "string" then return nil end
  local extra = M.extra or require("procy.config").get().prices or {}
  if extra[model] or M.defaults[model] then return extra[model] or M.defaults[model], model end
  local best
  local function consider(name)
    if model:sub(1, #name) == name and model:sub(#name + 1, #name + 1):match("^[-@:]") and
       (not best or #name > #best) then
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
