-- 0007_search.sql — search across the record (procy.search): one FTS5
-- index over prompts, answers, tool calls, API answers and the terminal's
-- output as text (escape sequences stripped).
--
-- kind: prompt, answer, tool, call, term; ref: what the hit opens (a
-- turn's seq, a tool call's id, an API call's id, a terminal event's id);
-- t: when, µs. Filled by procy as things are recorded, from the
-- watermarks in search_state, never by the recorder on the relay's path.
CREATE VIRTUAL TABLE search USING fts5(
  text, kind UNINDEXED, session_id UNINDEXED, ref UNINDEXED, t UNINDEXED,
  tokenize = 'unicode61 remove_diacritics 2'
);

-- how far each source is indexed: the last id, or time (answers and tool
-- calls are indexed once they end)
CREATE TABLE search_state (
  source TEXT PRIMARY KEY,
  last   INTEGER NOT NULL
);
