-- 0003_agents.sql — turns that know what they are made of, and named
-- background agents.

ALTER TABLE turns ADD COLUMN calls INTEGER NOT NULL DEFAULT 0;      -- the main agent's API calls
ALTER TABLE turns ADD COLUMN side_calls INTEGER NOT NULL DEFAULT 0; -- titles, subagents: linked, not turns
ALTER TABLE turns ADD COLUMN error TEXT;
CREATE INDEX tool_calls_api_call ON tool_calls(api_call_id);

-- `procy agent start NAME`: a headless agent under a detached supervisor.
-- Everything about it is here; the supervisor answers on 127.0.0.1:port
-- to requests carrying token.
CREATE TABLE agents (
  name       TEXT PRIMARY KEY,
  session_id TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  profile    TEXT NOT NULL,
  cwd        TEXT NOT NULL,
  args       TEXT NOT NULL,            -- JSON array: the agent's extra arguments
  pid        INTEGER,                  -- the supervisor
  port       INTEGER,
  token      TEXT,
  status     TEXT NOT NULL DEFAULT 'starting'
             CHECK (status IN ('starting', 'running', 'stopped', 'exited', 'failed')),
  started_at INTEGER NOT NULL,
  ended_at   INTEGER,
  last_io    INTEGER,                  -- the agent's last input or output
  error      TEXT
);
