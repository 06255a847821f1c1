-- 0012_tries_changed.sql — how many files a try's agent changed (from the
-- workspace it started in to its snapshot). 0 marks a try that ran the
-- code it started from: its score is the evaluator's scatter, and it never
-- becomes the best without being measured again (recipes/evolve.lua keep).
ALTER TABLE tries ADD COLUMN files_changed INTEGER;
