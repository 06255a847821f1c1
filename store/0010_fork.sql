-- 0010_fork.sql — a session forked from another at one of its turns
-- (procy fork): the parent and the turn it went on from. Each turn's
-- workspace is a snapshot under refs/procy/sessions/SESSION/turn-N.
ALTER TABLE sessions ADD COLUMN parent_id TEXT REFERENCES sessions(id) ON DELETE SET NULL;
ALTER TABLE sessions ADD COLUMN fork_turn INTEGER;
