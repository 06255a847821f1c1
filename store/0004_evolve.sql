-- 0004_evolve.sql — evaluators and what they said, evolve runs and their
-- tries, and people's corrections of proxy prompts.

-- An evaluator registered for a project directory: a command (argv) whose
-- last JSON line on stdout is an object of numeric metrics, or a Lua
-- recipe returning one. The newest active one of a directory is used.
CREATE TABLE evaluators (
  id          INTEGER PRIMARY KEY,
  cwd         TEXT NOT NULL,                 -- the project directory it runs in
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('command', 'lua')),
  path        TEXT,                          -- the script, relative to cwd when inside it
  argv        TEXT,                          -- JSON array, for commands
  sha256      TEXT,                          -- the script's content when registered
  schema      TEXT,                          -- JSON: [{name, goal = "maximize"|"minimize"}, ...]
  created_by  TEXT NOT NULL DEFAULT 'human', -- human, agent, config
  created_at  INTEGER NOT NULL,
  active      INTEGER NOT NULL DEFAULT 1,
  UNIQUE (cwd, name)
);

-- One run of an evaluator.
CREATE TABLE eval_results (
  id           INTEGER PRIMARY KEY,
  evaluator_id INTEGER REFERENCES evaluators(id) ON DELETE SET NULL,
  session_id   TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  run_id       TEXT,
  try_seq      INTEGER,
  started_at   INTEGER NOT NULL,
  ended_at     INTEGER,
  status       TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'timeout', 'no-metrics', 'error')),
  exit_code    INTEGER,
  metrics      TEXT,                         -- JSON object of numbers
  stdout_tail  TEXT,
  stderr_tail  TEXT,
  error        TEXT
);
CREATE INDEX eval_results_evaluator ON eval_results(evaluator_id, id);

-- An evolve run: a pinned task, tries until a budget or patience runs out.
CREATE TABLE evolve_runs (
  id           TEXT PRIMARY KEY,             -- 12 hex digits
  session_id   TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  cwd          TEXT NOT NULL,
  task         TEXT NOT NULL,                -- the person's prompt, pinned for the whole run
  recipe       TEXT,                         -- the recipe file that ran it
  recipe_sha256 TEXT,
  evaluator_id INTEGER REFERENCES evaluators(id) ON DELETE SET NULL,
  objective    TEXT,                         -- JSON
  options      TEXT,                         -- JSON: iterations, budgets, patience, policy, ...
  base_commit  TEXT,                         -- the workspace when the run started
  best_seq     INTEGER,
  status       TEXT NOT NULL DEFAULT 'running'
               CHECK (status IN ('running', 'done', 'stopped', 'error')),
  error        TEXT,
  started_at   INTEGER NOT NULL,
  ended_at     INTEGER
);

-- One try: the prompt the proxy model wrote, what the agent did with it,
-- and how the evaluator scored the result.
CREATE TABLE tries (
  id          INTEGER PRIMARY KEY,
  run_id      TEXT NOT NULL REFERENCES evolve_runs(id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,              -- 1, 2, ... within the run
  parent_seq  INTEGER,                       -- the try its workspace started from (NULL: the base)
  prompt      TEXT,
  model       TEXT,                          -- the proxy model (and adapter) that wrote it
  session_id  TEXT,
  turn_seq    INTEGER,                       -- the agent's turn
  response    TEXT,
  commit_id   TEXT,                          -- refs/procy/RUN/SEQ
  metrics     TEXT,                          -- JSON object
  score       REAL,
  feasible    INTEGER,
  status      TEXT NOT NULL DEFAULT 'running'
              CHECK (status IN ('running', 'ok', 'infeasible', 'eval-failed', 'agent-failed', 'stopped')),
  feedback    TEXT,                          -- evaluator output tail, failed constraint
  eval_result_id INTEGER REFERENCES eval_results(id) ON DELETE SET NULL,
  tokens      INTEGER,                       -- the agent's and the proxy model's
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  UNIQUE (run_id, seq)
);

-- A person's correction of a prompt (a proxy prompt edited before it was
-- sent, or corrected later): training data for the proxy model.
CREATE TABLE corrections (
  id          INTEGER PRIMARY KEY,
  session_id  TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  run_id      TEXT,
  try_seq     INTEGER,
  turn_seq    INTEGER,
  target      TEXT NOT NULL DEFAULT 'prompt' CHECK (target IN ('prompt', 'response')),
  original    TEXT NOT NULL,
  corrected   TEXT NOT NULL,
  note        TEXT,
  context     TEXT,                          -- JSON: what the proxy model was shown
  created_at  INTEGER NOT NULL
);
CREATE INDEX corrections_session ON corrections(session_id);
