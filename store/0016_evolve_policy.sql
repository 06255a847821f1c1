-- 0016_evolve_policy.sql — how each try's prompt was made and where it
-- started: the policy that wrote it (agent, population, model), the
-- population's island, and why that parent (JSON: the draw, the cell, the
-- inspirations shown, the migrations before it). A person's text added to
-- a try's turn while the agent worked is an intervention on that try.
ALTER TABLE evolve_runs ADD COLUMN policy TEXT;
ALTER TABLE tries ADD COLUMN policy TEXT;
ALTER TABLE tries ADD COLUMN island INTEGER;
ALTER TABLE tries ADD COLUMN selection TEXT;
ALTER TABLE tries ADD COLUMN intervened INTEGER;
-- what keep said of a try that did not win ("rolled back to try 2"): a
-- resumed run tells the proxy model what the first told it
ALTER TABLE tries ADD COLUMN verdict TEXT;
-- text the person added to a running turn (Claude Code takes a line typed
-- while it works into the same turn): JSON [{at, text}], the turn goes on
ALTER TABLE turns ADD COLUMN added TEXT;
