-- 0014_usage.sql — one meaning per number. Every call keeps the provider's
-- usage object as it came (usage, JSON) beside the normalised fields every
-- view shows: input_tokens (input not read from a cache), cache_read_tokens,
-- cache_creation_tokens, output_tokens (all output, reasoning included) and
-- now reasoning_tokens (the part of the output spent thinking).
ALTER TABLE api_calls ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE api_calls ADD COLUMN usage TEXT;
ALTER TABLE turns ADD COLUMN reasoning_tokens INTEGER;
