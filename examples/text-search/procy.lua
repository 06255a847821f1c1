-- procy.lua for the text-search example: the proxy model, the evaluator and
-- what evolve optimizes. Point model.url at your OpenAI-compatible server
-- (vLLM, Ollama, llama.cpp's server) or pass --model-url.
return {
  model = { url = "http://127.0.0.1:8000", name = "proxy", api = "openai" },
  evaluator = "eval.py",
  objective = { maximize = "qps", subject_to = { recall_at_10 = ">= 0.95" } },
  evolve = { iterations = 5, patience = 3, tolerance = 0.05 },
}
