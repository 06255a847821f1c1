-- 0001_init.sql — the record: sessions, terminal events, turns, API calls,
-- content-addressed blobs and tool calls.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), so rows from
-- the terminal and the API proxy line up on one clock. JSON columns hold
-- UTF-8 JSON text. Secrets never reach these tables: headers and bodies are
-- redacted before they are written.

-- One wrapped agent run (interactive, headless, or a proxy-only `serve`).
CREATE TABLE sessions (
  id               TEXT PRIMARY KEY,          -- 16 hex digits; a unique prefix addresses it
  started_at       INTEGER NOT NULL,
  ended_at         INTEGER,
  cwd              TEXT NOT NULL,
  argv             TEXT NOT NULL,             -- JSON array: the agent command
  profile          TEXT,                      -- agent profile name (claude, codex, generic, ...)
  mode             TEXT NOT NULL DEFAULT 'pty' CHECK (mode IN ('pty', 'headless', 'serve')),
  agent_session_id TEXT,                      -- the agent's own id, for --resume
  status           TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'exited', 'killed', 'error')),
  exit_code        INTEGER,
  exit_signal      INTEGER,
  cols             INTEGER,                   -- terminal size at the start
  rows             INTEGER,
  bytes_in         INTEGER NOT NULL DEFAULT 0, -- typed to the agent
  bytes_out        INTEGER NOT NULL DEFAULT 0, -- written by the agent
  meta             TEXT                       -- JSON object
);
CREATE INDEX sessions_started ON sessions(started_at);

-- The terminal, byte for byte: output, input (never what is typed at a
-- password prompt), resizes, markers, lines typed, and the exit. Written in
-- batches by the recorder.
CREATE TABLE term_events (
  id         INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  t          INTEGER NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'r', 'm', 'l', 'x')),
  data       BLOB   -- o, i: bytes; r: "COLSxROWS"; m: label; l: a line as typed
                    -- (a hint: the prompt the agent got comes from its API call);
                    -- x: the exit status
);
CREATE INDEX term_events_session ON term_events(session_id, id);

-- Content-addressed storage: a request body, a response stream or one
-- message is stored once however many API calls repeat it.
CREATE TABLE blobs (
  hash TEXT PRIMARY KEY,                      -- sha256 of data, hex
  size INTEGER NOT NULL,
  data BLOB NOT NULL
) WITHOUT ROWID;

-- One prompt and everything the agent did for it.
CREATE TABLE turns (
  id                    INTEGER PRIMARY KEY,
  session_id            TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq                   INTEGER NOT NULL,     -- 1, 2, ... within the session
  source                TEXT NOT NULL CHECK (source IN ('human', 'proxy', 'recipe')),
  prompt                TEXT,                 -- exactly what the agent received
  response              TEXT,                 -- the final assistant text
  started_at            INTEGER NOT NULL,
  ended_at              INTEGER,
  status                TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'done', 'interrupted', 'error')),
  input_tokens          INTEGER,
  output_tokens         INTEGER,
  cache_creation_tokens INTEGER,
  cache_read_tokens     INTEGER,
  cost                  REAL,                 -- USD; NULL when a model's price is unknown
  meta                  TEXT,
  UNIQUE (session_id, seq)
);

-- Every request that went through the proxy, and every proxy-model call.
CREATE TABLE api_calls (
  id                    INTEGER PRIMARY KEY,
  session_id            TEXT REFERENCES sessions(id) ON DELETE CASCADE,
  turn_id               INTEGER REFERENCES turns(id) ON DELETE SET NULL,
  role                  TEXT,                 -- main, side, subagent, proxy-model
  method                TEXT NOT NULL,
  path                  TEXT NOT NULL,        -- with the query string
  upstream              TEXT,
  status                INTEGER,
  model                 TEXT,
  routed_model          TEXT,
  started_at            INTEGER NOT NULL,
  ttfb_us               INTEGER,              -- time to the first response byte
  duration_us           INTEGER,
  req_headers           TEXT,                 -- JSON, redacted
  resp_headers          TEXT,                 -- JSON, redacted
  req_body              TEXT REFERENCES blobs(hash),
  resp_body             TEXT REFERENCES blobs(hash),
  content               TEXT,                 -- JSON: the parsed response content blocks
  stop_reason           TEXT,
  input_tokens          INTEGER,
  output_tokens         INTEGER,
  cache_creation_tokens INTEGER,
  cache_read_tokens     INTEGER,
  cost                  REAL,
  ratelimit             TEXT,                 -- JSON of anthropic-ratelimit-* headers
  error                 TEXT
);
CREATE INDEX api_calls_session ON api_calls(session_id, started_at);
CREATE INDEX api_calls_started ON api_calls(started_at);
CREATE INDEX api_calls_turn ON api_calls(turn_id);

-- A tool_use and the tool_result that answered it.
CREATE TABLE tool_calls (
  id             INTEGER PRIMARY KEY,
  session_id     TEXT REFERENCES sessions(id) ON DELETE CASCADE,
  turn_id        INTEGER REFERENCES turns(id) ON DELETE SET NULL,
  api_call_id    INTEGER REFERENCES api_calls(id) ON DELETE SET NULL,  -- the call that asked for it
  result_call_id INTEGER REFERENCES api_calls(id) ON DELETE SET NULL,  -- the call that carried the result
  tool_use_id    TEXT NOT NULL,
  name           TEXT NOT NULL,
  input          TEXT,                        -- JSON
  result         TEXT,
  is_error       INTEGER NOT NULL DEFAULT 0,
  started_at     INTEGER,
  ended_at       INTEGER,
  UNIQUE (session_id, tool_use_id)
);
CREATE INDEX tool_calls_turn ON tool_calls(turn_id);
