-- procy.lua for the text-search example: the evaluator and what evolve
-- optimizes. With no proxy model, evolve's `agent` policy writes each
-- try's prompt itself (no GPU, no second model). With one, the `model`
-- policy asks it: a served model (vLLM, Ollama, llama.cpp's server)
--   model = { url = "http://127.0.0.1:8000", name = "proxy", api = "openai" },
-- or a hosted one through your own key
--   model = "anthropic:claude-haiku-4-5",
return {
  evaluator = "eval.py",
  objective = { maximize = "qps", subject_to = { recall_at_10 = ">= 0.95" } },
  evolve = { iterations = 5, patience = 3, tolerance = 0.05 },
}
