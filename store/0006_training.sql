-- 0006_training.sql — corrections as first-class records, and what the
-- training loop needs of a try.

-- The exact messages the proxy model was given for a try's prompt (JSON),
-- so an export's prompt side is what inference saw, byte for byte; and the
-- adapter that answered (its name, and a digest of its files).
ALTER TABLE tries ADD COLUMN messages TEXT;
ALTER TABLE tries ADD COLUMN adapter TEXT;
ALTER TABLE tries ADD COLUMN adapter_sha256 TEXT;
-- 1: the try beat the best and became it; 0: it did not (set by keep).
ALTER TABLE tries ADD COLUMN improved INTEGER;

-- What a person did with a prompt: 'corrected' (rewrote it, at any time:
-- !correct), 'edited' (!edit before it was sent), 'accepted' (!approve),
-- 'rejected' (!reject). source: the prompt's (human, proxy, recipe);
-- author: who. context keeps the messages the proxy model was given.
ALTER TABLE corrections ADD COLUMN kind TEXT NOT NULL DEFAULT 'corrected'
  CHECK (kind IN ('corrected', 'edited', 'accepted', 'rejected'));
ALTER TABLE corrections ADD COLUMN source TEXT;
ALTER TABLE corrections ADD COLUMN author TEXT;
UPDATE corrections SET kind = 'edited', source = 'proxy' WHERE note = 'edited before it was sent';
CREATE INDEX corrections_run ON corrections(run_id, try_seq);

-- A training run of the proxy model (recipes/train.lua): where it runs
-- (host NULL: this machine), its directory there, the argv, and what
-- procy knows of it. The job outlives procy: a detached watcher streams
-- its log into train_log and sets the state; `procy train status`
-- restarts a watcher that is gone.
CREATE TABLE train_jobs (
  id          TEXT PRIMARY KEY,
  host        TEXT,
  dir         TEXT NOT NULL,                 -- the job's directory on the host
  argv        TEXT NOT NULL,                 -- JSON: what runs there
  method      TEXT,                          -- sft, dpo, kto
  export_dir  TEXT,                          -- the dataset it was given (here)
  state       TEXT NOT NULL DEFAULT 'queued'
              CHECK (state IN ('queued', 'running', 'done', 'failed', 'stopped')),
  pid         INTEGER,                       -- its process group on the host
  watcher     TEXT,                          -- the watcher: store.process_id/pid
  log_bytes   INTEGER NOT NULL DEFAULT 0,    -- how much of its log is in train_log
  progress    TEXT,                          -- JSON: the last progress line
  exit_code   INTEGER,
  error       TEXT,
  created_at  INTEGER NOT NULL,
  started_at  INTEGER,
  ended_at    INTEGER
);
CREATE TABLE train_log (
  id      INTEGER PRIMARY KEY,
  job_id  TEXT NOT NULL REFERENCES train_jobs(id) ON DELETE CASCADE,
  t       INTEGER NOT NULL,
  line    TEXT NOT NULL
);
CREATE INDEX train_log_job ON train_log(job_id, id);

-- Adapters deployed to a model server: name, where its files are, and a
-- digest of them (what every proxy-model call and try records).
CREATE TABLE adapters (
  name        TEXT NOT NULL,
  url         TEXT NOT NULL,                 -- the server it was loaded into
  path        TEXT NOT NULL,                 -- its files, as the server sees them
  sha256      TEXT,
  job_id      TEXT,
  deployed_at INTEGER NOT NULL,
  PRIMARY KEY (name, url)
);
