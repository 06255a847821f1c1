"""Evaluator for the text-search example, to procy's contract.

Runs from the project directory as `python3 eval.py`. Builds the index of
baseline.py over 10,000 synthetic documents, answers 100 queries, and
prints one JSON line of metrics last:

    recall_at_10  overlap of its top 10 with the exact TF-IDF top 10 (brute force)
    qps           queries per second of its CPU time (not the wall clock)
    build_s       CPU seconds to build the index

Documents and queries come from a fixed seed; the exact answers are
computed once and cached under cache/ (ignored by git). Progress goes to
stderr. EVAL_DOCS / EVAL_QUERIES make it smaller for a quick check.
"""
import hashlib
import importlib
import json
import math
import os
import random
import sys
import time
from collections import Counter

METRICS_SCHEMA = [
    {"name": "qps", "goal": "maximize"},
    {"name": "recall_at_10", "goal": "maximize"},
    {"name": "build_s", "goal": "minimize"},
]

N_DOCS = int(os.environ.get("EVAL_DOCS", "10000"))
N_QUERIES = int(os.environ.get("EVAL_QUERIES", "100"))
K = 10


def corpus(seed=7):
    """Zipf-distributed words from a made-up vocabulary: documents and queries."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "pa", "do"]
    vocab = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(6000)})
    weights = [1.0 / (r + 1) ** 1.1 for r in range(len(vocab))]
    rng.shuffle(vocab)
    docs = [" ".join(rng.choices(vocab, weights, k=rng.randint(20, 80))) for _ in range(N_DOCS)]
    queries = []
    for _ in range(N_QUERIES):
        words = docs[rng.randrange(N_DOCS)].split()
        queries.append(" ".join(rng.sample(words, min(len(words), rng.randint(2, 4)))))
    return docs, queries


def exact(docs, queries):
    """The exact top K by TF-IDF cosine, scoring every document (ties by id)."""
    tok = [Counter(d.split()) for d in docs]
    df = Counter()
    for c in tok:
        df.update(c.keys())
    n = len(docs)
    idf = {t: math.log((1 + n) / (1 + f)) + 1.0 for t, f in df.items()}
    vecs = []
    for c in tok:
        v = {t: tf * idf[t] for t, tf in c.items()}
        norm = math.sqrt(sum(w * w for w in v.values())) or 1.0
        vecs.append({t: w / norm for t, w in v.items()})
    out = []
    for q in queries:
        qc = Counter(t for t in q.split() if t in idf)
        qv = {t: tf * idf[t] for t, tf in qc.items()}
        scored = sorted((-sum(w * v.get(t, 0.0) for t, w in qv.items()), i) for i, v in enumerate(vecs))
        out.append([i for s, i in scored[:K] if s < 0])
    return out


def truth(docs, queries):
    key = hashlib.sha256(("\n".join(docs) + "\0" + "\n".join(queries)).encode()).hexdigest()[:16]
    path = os.path.join("cache", "truth-%s.json" % key)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    print("computing the exact answers (once)...", file=sys.stderr)
    t = exact(docs, queries)
    os.makedirs("cache", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(t, f)
    os.replace(path + ".tmp", path)
    return t


def main():
    docs, queries = corpus()
    expected = truth(docs, queries)
    sys.path.insert(0, os.getcwd())
    engine = importlib.import_module("baseline")
    # CPU time of this process, not the wall clock: what a busy machine
    # (other jobs, other tries measured at once) does not change much
    t0 = time.process_time()
    index = engine.build_index(docs)
    build_s = time.process_time() - t0
    t0 = time.process_time()
    got = [list(engine.search(index, q, K)) for q in queries]
    search_s = time.process_time() - t0
    hits = total = 0
    for want, have in zip(expected, got):
        hits += len(set(want) & set(have[:K]))
        total += len(want)
    recall = hits / total if total else 1.0
    print("built in %.2fs, %d queries in %.2fs" % (build_s, len(queries), search_s), file=sys.stderr)
    print(json.dumps({"qps": round(len(queries) / max(search_s, 1e-9), 2), "recall_at_10": round(recall, 4),
                      "build_s": round(build_s, 4)}))


if __name__ == "__main__":
    main()
