-- 0008_routes.sql — calls a route sent to another provider (procy.route):
-- which route, to which provider, and what that provider got and
-- answered (for an OpenAI-compatible one, the translation of the agent's
-- call and the answer before it was translated back). req_body and
-- resp_body stay what the agent sent and got. NULL for a call the proxy
-- relayed to its own upstream.
ALTER TABLE api_calls ADD COLUMN route TEXT;
ALTER TABLE api_calls ADD COLUMN provider TEXT;
ALTER TABLE api_calls ADD COLUMN up_status INTEGER;
ALTER TABLE api_calls ADD COLUMN up_request TEXT REFERENCES blobs(hash);
ALTER TABLE api_calls ADD COLUMN up_response TEXT REFERENCES blobs(hash);
