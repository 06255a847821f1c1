-- 0013_serving.sql — what procy asks a proxy model's server for: the
-- adapter `procy train deploy` (or `!deploy trained`) made current, or the
-- base model (adapter NULL: `!deploy base`). A server with no row here is
-- asked as the `model` setting says (its `adapter`, if any).
CREATE TABLE serving (
  url      TEXT PRIMARY KEY,                -- the server, as model.url names it (no /v1)
  adapter  TEXT,                            -- NULL: the base model
  set_at   INTEGER NOT NULL,
  set_by   TEXT                             -- the command that set it
);
