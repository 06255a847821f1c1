-- 0005_record.sql — a record that survives bad answers, full disks and
-- crashes, and says what it lost.

-- Blobs in a rowid table. As a WITHOUT ROWID table keyed by a random
-- digest, every row of more than ~1 KB spilled into overflow pages (over
-- half of them unused) and every insert landed on a random page of the
-- whole table: the record grew at 2.8x what it held, and slowed as it
-- grew. Rows now go at the end; only the small hash index is random.
CREATE TABLE blobs_new (
  id      INTEGER PRIMARY KEY,
  hash    TEXT NOT NULL UNIQUE,              -- sha256 of the content, hex
  size    INTEGER NOT NULL,                  -- the content's length
  chunked INTEGER NOT NULL DEFAULT 0,        -- 1: data is a list of parts (0002)
  data    BLOB NOT NULL
);
INSERT INTO blobs_new(hash, size, chunked, data) SELECT hash, size, chunked, data FROM blobs;
DROP TABLE blobs;
ALTER TABLE blobs_new RENAME TO blobs;

-- A call whose answer (or request) could not be parsed is still recorded,
-- its bodies whole, with what went wrong.
ALTER TABLE api_calls ADD COLUMN parse_error TEXT;

-- 'g': a gap, output the recorder had to drop (the disk refused writes
-- for too long); data says how many bytes, from when to when.
CREATE TABLE term_events_new (
  id         INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  t          INTEGER NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'r', 'm', 'l', 'x', 'g')),
  data       BLOB
);
INSERT INTO term_events_new(id, session_id, t, kind, data)
  SELECT id, session_id, t, kind, data FROM term_events;
DROP TABLE term_events;
ALTER TABLE term_events_new RENAME TO term_events;
CREATE INDEX term_events_session ON term_events(session_id, id);

-- Sessions know the procy process holding them (pid, and its start time so
-- a reused pid is not taken for it), so one left 'running' by a procy that
-- was killed is found and ended as 'crashed' by the next procy.
CREATE TABLE sessions_new (
  id               TEXT PRIMARY KEY,
  started_at       INTEGER NOT NULL,
  ended_at         INTEGER,
  cwd              TEXT NOT NULL,
  argv             TEXT NOT NULL,
  profile          TEXT,
  mode             TEXT NOT NULL DEFAULT 'pty' CHECK (mode IN ('pty', 'headless', 'serve')),
  agent_session_id TEXT,
  status           TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'exited', 'killed', 'error', 'crashed')),
  exit_code        INTEGER,
  exit_signal      INTEGER,
  cols             INTEGER,
  rows             INTEGER,
  bytes_in         INTEGER NOT NULL DEFAULT 0,
  bytes_out        INTEGER NOT NULL DEFAULT 0,
  meta             TEXT,
  pid              INTEGER,                  -- the procy process recording it
  pid_start        TEXT,                     -- that process's start (boot id and start ticks)
  end_reason       TEXT                      -- why it ended badly (crashed: what procy found)
);
INSERT INTO sessions_new(id, started_at, ended_at, cwd, argv, profile, mode, agent_session_id, status,
    exit_code, exit_signal, cols, rows, bytes_in, bytes_out, meta)
  SELECT id, started_at, ended_at, cwd, argv, profile, mode, agent_session_id, status,
    exit_code, exit_signal, cols, rows, bytes_in, bytes_out, meta FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_running ON sessions(status) WHERE status = 'running';

-- What the record lost, counted: API calls not recorded (the database
-- refused them), terminal output dropped past the memory bound. Written
-- as soon as the database takes writes again.
CREATE TABLE losses (
  id         INTEGER PRIMARY KEY,
  session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
  t          INTEGER NOT NULL,                -- when it was counted
  what       TEXT NOT NULL CHECK (what IN ('api_call', 'output')),
  count      INTEGER NOT NULL,                -- calls, or events
  bytes      INTEGER,
  error      TEXT
);
CREATE INDEX losses_session ON losses(session_id);

-- A background agent's supervisor, known the same way (procy agent stop
-- signals only the process the row names, not whatever reused its pid).
ALTER TABLE agents ADD COLUMN pid_start TEXT;
