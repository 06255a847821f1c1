-- 0002_capture.sql — what the API proxy records beyond 0001's columns.

-- A blob is kept whole (chunked = 0: data is its bytes) or, for a large
-- JSON body, as a list of parts (chunked = 1: data is "=HASH" references
-- and "+LEN:BYTES" literals, in order). Either way hash is the SHA-256 of
-- the whole content and size its length, so a request's history, sent
-- again with every request, is stored once (lua/procy/blobs.lua).
ALTER TABLE blobs ADD COLUMN chunked INTEGER NOT NULL DEFAULT 0;

ALTER TABLE api_calls ADD COLUMN api TEXT;          -- anthropic, openai-chat, openai-responses, other
ALTER TABLE api_calls ADD COLUMN stream INTEGER;    -- 1: the answer was a stream of events
ALTER TABLE api_calls ADD COLUMN aborted INTEGER NOT NULL DEFAULT 0; -- the client hung up mid-answer
ALTER TABLE api_calls ADD COLUMN tag TEXT;          -- a /s/TAG/ prefix that names no session
ALTER TABLE api_calls ADD COLUMN req_size INTEGER;
ALTER TABLE api_calls ADD COLUMN resp_size INTEGER;
CREATE INDEX api_calls_model ON api_calls(model);
