-- 0011_tape.sql — the terminal's output on the record's tape (PATH-term,
-- beside this file, runtime/tape.c): written once, at the end of a file,
-- where SQLite's WAL would write it twice. An output row names the tape
-- (tape_id: the id its first line holds) and where its bytes are (at,
-- len); data is NULL. Read it as coalesce(data, tape(tape_id, at, len)).
-- Rows from before, and what agents without procy's relay record, keep
-- their bytes in data (tape_id and at NULL).
ALTER TABLE term_events ADD COLUMN tape_id INTEGER;
ALTER TABLE term_events ADD COLUMN at INTEGER;
ALTER TABLE term_events ADD COLUMN len INTEGER;
