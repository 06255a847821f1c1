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
