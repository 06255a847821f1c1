-- 0015_terminal_turns.sql — how procy knew a turn. NULL: from the agent's
-- API calls, hooks or events (the exact prompt, its calls, tools, tokens);
-- 'terminal': from the terminal alone — the agent's API is not visible to
-- procy (a login it cannot route, a protocol it does not speak), so the
-- prompt is the line the person submitted as the agent echoed it, and the
-- turn ended when the agent was idle again; no tokens, no tool calls.
-- (source stays who wrote the prompt: human, proxy or recipe.)
ALTER TABLE turns ADD COLUMN known_from TEXT;
