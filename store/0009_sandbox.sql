-- 0009_sandbox.sql — a background agent started with --sandbox: the
-- sandbox profile it runs in (procy.sandbox), NULL for none.
ALTER TABLE agents ADD COLUMN sandbox TEXT;
