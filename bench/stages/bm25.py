"""Stage ``bm25`` (run when named): the project's BM25 against the bm25s library, same tokens, same k1 and b.

Corpus: the passages of the course PDFs as step 1 of the extraction cuts them
(``split_passages(drop_references(pages))``); queries: the course's search
queries and the two extraction definitions. bm25s (not a dependency: ``pip
install bm25s`` first) gets our tokens and our formula: ``method="atire"``
(tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean length))) with
``idf_method="lucene"`` (log(1 + (N - df + 0.5) / (df + 0.5))), as
``bm25_weights`` documents. Only hits with a score above 0 count.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.common import Stage, peak_mib, timed
from bench.tables import measured_when, num, ratio, variant_table

TOP = 10
REPEATS = 3


def variants(device: str) -> list[str]:
    """Ours, then bm25s with its default (numpy) and its numba backend."""
    return ["ours", "bm25s", "bm25s:numba"]


def _corpus_and_queries(n: int | None) -> tuple[list[str], list[str]]:
    from helpers.data import fetch_articles
    from helpers.extraction import drop_references
    from helpers.pdfs import read_articles, split_passages
    from helpers.prompts import QUESTIONS
    from helpers.retrieval import load_queries

    pages, _ = read_articles(fetch_articles())
    texts = split_passages(drop_references(pages))["text"].tolist()[: n or None]
    definitions = [q.definition for q in QUESTIONS.values()]
    return texts, load_queries()["query"].tolist() + definitions


def _ours(texts: list[str]):
    """(index wall and CPU seconds, a function query -> (ids, scores) of the top hits, settings) for ours."""
    from helpers.retrieval import _top
    from helpers.text import bm25_scores, bm25_weights

    bm25_weights(texts[:2])  # imports scikit-learn outside the timing
    (weights, vocabulary), *index_times = timed(bm25_weights, texts)

    def query(text):
        scores = bm25_scores(weights, vocabulary, text)  # what retrieval.lexical_scores runs on an index
        ids = _top(scores, TOP)
        return ids, scores[ids]

    settings = "bm25_weights(texts) (CountVectorizer + sparse weights), bm25_scores + top 10 per query"
    return index_times, query, settings


def _bm25s(texts: list[str], backend: str):
    """The same for bm25s: our tokens indexed by ``bm25s.BM25(...).index``, queried with ``retrieve``."""
    import bm25s

    from helpers.text import BM25_B, BM25_K1, tokenize

    def build(some_texts):
        model = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="atire", idf_method="lucene", backend=backend)
        model.index([tokenize(t) for t in some_texts], show_progress=False)
        return model

    build(texts[:2])  # one-off costs outside the timing, as for ours (numba compiles again for each new model)
    model, *index_times = timed(build, texts)

    def query(text):
        tokens = list(dict.fromkeys(tokenize(text)))  # once each, as lexical_scores counts them
        ids, scores = model.retrieve([tokens], k=TOP, show_progress=False)
        return ids[0], scores[0]

    settings = (f"bm25s {bm25s.__version__} BM25(method='atire', idf_method='lucene', backend={backend!r}) "
                "on our tokens, retrieve(k=10) per query")
    return index_times, query, settings


def _hits_path(folder: Path, variant: str) -> Path:
    return folder / f"bm25-{variant.replace(':', '-')}.json"


def job(variant: str, n: int | None, out: str) -> dict:
    """Index the passages and answer every query ``REPEATS`` times: seconds and ms per query.

    Each query's top hits (positions and scores) go to a file beside ``out``, for ``summarise``.
    """
    import numpy as np

    from helpers.text import tokenize

    texts, queries = _corpus_and_queries(n)
    _, tokenize_s, _ = timed(lambda: [tokenize(t) for t in texts])
    kind, _, backend = variant.partition(":")
    (index_s, index_cpu_s), query, settings = _ours(texts) if kind == "ours" else _bm25s(texts, backend or "numpy")
    _, first_s, _ = timed(query, queries[0])  # one-off costs (numba compiling, lazy imports)
    times = [timed(query, q)[1] for _ in range(REPEATS) for q in queries]
    hits = [query(q) for q in queries]
    _hits_path(Path(out).parent, variant).write_text(json.dumps(
        [[[int(i), float(s)] for i, s in zip(ids, scores) if s > 0] for ids, scores in hits]))
    return {"n": len(texts), "n_queries": len(queries), "index_seconds": index_s, "index_cpu_seconds": index_cpu_s,
            "tokenize_seconds": tokenize_s,
            "first_query_ms": 1000 * first_s, "median_ms": 1000 * statistics.median(times),
            "p90_ms": 1000 * float(np.percentile(times, 90)), "settings": settings, "peak_mib": peak_mib()}


def _same_ranking(ours: list, theirs: list, tolerance: float = 1e-4) -> str:
    """``same`` top hits, ``tie`` (the differing hits all score the lowest score of the top 10, within
    ``tolerance``) or ``other``; ``ours``/``theirs``: one query's [position, score] pairs."""
    ids, their_ids = {i for i, _ in ours}, {i for i, _ in theirs}
    if ids == their_ids:
        return "same"
    low, their_low = min((s for _, s in ours), default=0), min((s for _, s in theirs), default=0)
    differing = [s for i, s in ours if i not in their_ids] + [s for i, s in theirs if i not in ids]
    return "tie" if abs(low - their_low) <= tolerance and all(abs(s - low) <= tolerance for s in differing) else "other"


def summarise(tmp: Path, results: dict) -> dict:
    """Each variant's top 10 against ours: queries with the same hits, mean overlap, largest score difference."""
    if not _hits_path(tmp, "ours").is_file():
        return {"agreement": {}}
    ours = json.loads(_hits_path(tmp, "ours").read_text())
    out = {}
    for name in results:
        if name == "ours" or not _hits_path(tmp, name).is_file():
            continue
        pairs = list(zip(ours, json.loads(_hits_path(tmp, name).read_text())))
        kinds = [_same_ranking(a, b) for a, b in pairs]
        # A query that no passage matches (no hit on either side) agrees fully.
        overlap = [len({i for i, _ in a} & {i for i, _ in b}) / max(len(a), len(b)) if a or b else 1.0
                   for a, b in pairs]
        diffs = [abs(x - y) for a, b in pairs if len(a) == len(b)
                 for x, y in zip(sorted(s for _, s in a), sorted(s for _, s in b))]
        out[name] = {"same": kinds.count("same"), "ties": kinds.count("tie"), "other": kinds.count("other"),
                     "mean_overlap": statistics.mean(overlap) if overlap else None,
                     "max_score_difference": max(diffs, default=0.0)}
    return {"agreement": out}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The table of index and query times against ours, with how many queries get the same top 10."""
    v = st["variants"]
    base = v.get("ours", {})
    agree = st.get("agreement", {})

    def same_hits(name: str) -> str:
        a = agree.get(name)
        if not a:
            return "-"
        return (f"{a['same']}/{base.get('n_queries', '?')} same ({a['ties']} differ only at tied scores), "
                f"mean overlap {a['mean_overlap']:.3f}, scores within {a['max_score_difference']:.1e}")

    lines = [f"## BM25: ours against bm25s ({base.get('n', '?')} PDF passages, {base.get('n_queries', '?')} queries "
             f"x 3, top 10)", "",
             measured_when(st) + " Both get our tokens (`tokenize`) and our formula (k1 1.5, b 0.75); index "
             "seconds include tokenising every passage (`tokenize` alone: "
             f"{num(base.get('tokenize_seconds'), 2)} s); a query's time includes tokenising it; a ratio above 1 "
             "is faster than ours. bm25s's numba backend compiles in every new process (no on-disk cache): in its "
             "index time and its first query. bm25s is not a dependency of the course (see bench/NOTES.md).", ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("index s", lambda r: num(r.get("index_seconds"), 3)),
            ("index CPU s", lambda r: num(r.get("index_cpu_seconds"), 3)),
            ("index ratio (wall)", lambda r: ratio(base.get("index_seconds"), r.get("index_seconds"))),
            ("index ratio (CPU)", lambda r: ratio(base.get("index_cpu_seconds"), r.get("index_cpu_seconds"))),
            ("median ms per query", lambda r: num(r.get("median_ms"), 3)),
            ("p90 ms", lambda r: num(r.get("p90_ms"), 3)),
            ("query ratio", lambda r: ratio(base.get("median_ms"), r.get("median_ms"))),
            ("first query ms", lambda r: num(r.get("first_query_ms"), 1)),
            ("peak MiB", lambda r: num(r.get("peak_mib"), 0))]
    lines += variant_table(st, cols) + [""]
    lines += [f"- `{name}` against ours: {same_hits(name)}." for name in v if name != "ours"] + [""]
    return lines, []


STAGE = Stage("bm25", job=job, variants=variants, report=report, quick_size=400, writes_file=True,
              summarise=summarise)
