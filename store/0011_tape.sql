-- 0011_tape.sql — the terminal's output on the record's tape (PATH-term,
-- beside this file, runtime/tape.c): written once, at the end of a file,
-- where SQLite's WAL would write it twice. An output row names where its
-- bytes are (at, len; data is NULL); read it as coalesce(data, tape(at, len)).
-- Rows from before, and what agents without procy's relay record, keep
-- their bytes in data (at NULL).
ALTER TABLE term_events ADD COLUMN at INTEGER;
ALTER TABLE term_events ADD COLUMN len INTEGER;
