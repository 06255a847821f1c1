"""A small text search engine: TF-IDF, cosine similarity, top-k.

The artifact the evolve loop improves. eval.py measures it; keep the two
functions' signatures:

    build_index(documents: list[str]) -> dict
    search(index: dict, query: str, k: int = 10) -> list[int]

This baseline scores every document for every query (brute force).
"""
import math
import re
from collections import Counter

TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text):
    return TOKEN.findall(text.lower())


def build_index(documents):
    counts = [Counter(tokenize(d)) for d in documents]
    df = Counter()
    for c in counts:
        df.update(c.keys())
    n = len(documents)
    idf = {t: math.log((1 + n) / (1 + f)) + 1.0 for t, f in df.items()}
    vectors = []
    for c in counts:
        v = {t: tf * idf[t] for t, tf in c.items()}
        norm = math.sqrt(sum(w * w for w in v.values())) or 1.0
        vectors.append({t: w / norm for t, w in v.items()})
    return {"idf": idf, "vectors": vectors}


def search(index, query, k=10):
    idf = index["idf"]
    q = Counter(t for t in tokenize(query) if t in idf)
    qv = {t: tf * idf[t] for t, tf in q.items()}
    norm = math.sqrt(sum(w * w for w in qv.values())) or 1.0
    qv = {t: w / norm for t, w in qv.items()}
    scores = []
    for i, v in enumerate(index["vectors"]):
        s = sum(w * v.get(t, 0.0) for t, w in qv.items())
        if s > 0.0:
            scores.append((-s, i))
    scores.sort()
    return [i for _, i in scores[:k]]
