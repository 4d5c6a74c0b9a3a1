"""The scaling study (``--scaling``): each stage at 1k / 10k / 100k resampled records, each in its own process."""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import BENCH_TMP, REPO, SCALING_CSV, SEED, peak_mib, run_job, timed, umap5
from bench.resample import resample_corpus, resample_embeddings

STAGES = ("embed", "reduce", "reduce_pca50", "cluster", "keywords", "search")


def job(stage: str, n: int) -> dict:
    """One stage at ``n`` resampled records; inputs (vectors, 5-D coordinates, labels) are files the run prepared."""
    import numpy as np

    from helpers.embeddings import embed_texts

    rows = resample_corpus(n)
    result = {"stage": stage, "n": n, "measured": True}
    rss_before = peak_mib()
    if stage == "embed":
        from helpers.models import load_embedder

        load_embedder()
        rss_before = peak_mib()
        vectors, wall, cpu = timed(embed_texts, rows["text"], cache=False)
        np.save(BENCH_TMP / f"vectors-{n}.npy", vectors)  # the later stages at this size use these
    elif stage in ("reduce", "reduce_pca50"):
        vectors = np.load(BENCH_TMP / f"vectors-{n}.npy")
        rss_before = peak_mib()
        if stage == "reduce":
            reduced, wall, cpu = timed(umap5, vectors)
            np.save(BENCH_TMP / f"reduced-{n}.npy", reduced)  # the cluster stage at this size uses these
        else:  # the fix proposed for UMAP at scale: PCA to 50-D first
            from sklearn.decomposition import PCA

            def run():
                x = PCA(50, random_state=SEED).fit_transform(vectors)
                return umap5(x / np.linalg.norm(x, axis=1, keepdims=True))

            _, wall, cpu = timed(run)
    elif stage == "cluster":
        import hdbscan

        from helpers.clustering import COURSE_HDBSCAN

        reduced = np.load(BENCH_TMP / f"reduced-{n}.npy")
        labels, wall, cpu = timed(hdbscan.HDBSCAN(**COURSE_HDBSCAN).fit_predict, reduced)
        np.save(BENCH_TMP / f"labels-{n}.npy", labels)
        result["n_clusters"] = len(set(labels.tolist()) - {-1})
    elif stage == "keywords":
        from helpers.labels import keyword_labels

        labels = np.load(BENCH_TMP / f"labels-{n}.npy")
        _, wall, cpu = timed(keyword_labels, rows, labels, top_n=5)
    elif stage == "search":
        from helpers.models import load_embedder
        from helpers.retrieval import _query_vector, _search, build_index, load_queries, search

        vectors = np.load(BENCH_TMP / f"vectors-{n}.npy")
        load_embedder()
        index, build_s, _ = timed(build_index, rows, embeddings=vectors)
        queries = load_queries()["query"].tolist()
        search(index, queries[0])
        _query_vector.cache_clear()  # every timed query is a new one
        wall, cpu = statistics.median(timed(search, index, q, k=10)[1] for q in queries), None
        query_vectors = embed_texts(queries, index.model, cache=False, show_progress=False)
        result["index_seconds"] = statistics.median(timed(_search, index, q, v, 10, "hybrid")[1]
                                                    for q, v in zip(queries, query_vectors))
        result["build_seconds"] = build_s
    else:
        raise ValueError(f"unknown scaling stage {stage!r}")
    result.update(seconds=wall, cpu_seconds=cpu, rss_before_mib=rss_before, peak_mib=peak_mib())
    return result


def _estimate(done: list[dict], n: int) -> tuple[float, str] | None:
    """Seconds for ``n`` records from a stage's measured sizes: a power law through the two largest, else linear."""
    import math

    points = sorted((r["n"], r["seconds"]) for r in done if r.get("measured") and r.get("seconds"))
    # One point says little where a fixed cost (numba compiling UMAP, imports) dominates small sizes:
    # only embedding, which is linear from the start, is extrapolated from a single size.
    if not points or (len(points) == 1 and done[0]["stage"] != "embed"):
        return None
    if len(points) == 1:
        (n1, t1), exponent = points[0], 1.0
    else:
        (n0, t0), (n1, t1) = points[-2:]
        exponent = max(1.0, math.log(t1 / t0) / math.log(n1 / n0))
    return t1 * (n / n1) ** exponent, f"extrapolated from {n1:,} records as n^{exponent:.2f}"


def _stand_in(tmp: Path, kind: str, n: int, sizes: list[int], env: dict) -> str:
    """Make ``{kind}-{n}.npy`` (vectors or reduced) from the largest size that has one; returns a note."""
    import numpy as np

    have = [m for m in sizes if (tmp / f"{kind}-{m}.npy").is_file()]
    if have:
        source, origin = np.load(tmp / f"{kind}-{max(have)}.npy"), f"the {max(have):,} records"
    else:
        source, origin = _course_vectors(env, tmp), "the course's real embeddings"
    if kind == "vectors":
        np.save(tmp / f"{kind}-{n}.npy", resample_embeddings(source, n))
    else:  # 5-D coordinates: rows drawn with replacement, jittered by 1% of their spread
        rng = np.random.default_rng(SEED)
        picked = source[rng.integers(0, len(source), n)]
        np.save(tmp / f"{kind}-{n}.npy", (picked + rng.normal(0, 0.01 * source.std(axis=0), picked.shape)).astype(np.float32))
    return f"{kind} resampled with noise from {origin} (the stage producing them was not measured at this size)"


def run_scaling(sizes: list[int], stages: list[str], env: dict, tmp: Path, budget_s: float,
                previous: list[dict] | None = None) -> list[dict]:
    """Each stage at each size in its own process.

    A stage whose estimated time at a size exceeds ``budget_s`` is extrapolated
    (power law through its two largest measured sizes) and marked so; a later
    stage then gets stand-in inputs resampled from the largest size that has real
    ones. ``previous`` rows (from ``--resume``) are kept and not re-measured.
    """
    rows = [r for r in (previous or []) if r.get("measured") and "error" not in r]
    for n in sizes:
        for stage in stages:
            if any(r["stage"] == stage and r["n"] == n for r in rows):
                print(f"  {stage} at {n}: kept from the previous run", flush=True)
                continue
            needs = {"reduce": "vectors", "reduce_pca50": "vectors", "search": "vectors", "cluster": "reduced"}.get(stage)
            note = ""
            if needs and not (tmp / f"{needs}-{n}.npy").is_file():
                note = _stand_in(tmp, needs, n, sizes, env)
            estimate = _estimate([r for r in rows if r["stage"] == stage], n)
            if estimate and estimate[0] > budget_s:
                rows.append({"stage": stage, "n": n, "seconds": estimate[0], "measured": False,
                             "note": f"{stage}: {estimate[1]} (would take ~{estimate[0] / 60:.0f} min)"})
                print(f"  {stage} at {n}: {estimate[1]}, {estimate[0]:.0f} s", flush=True)
                continue
            result = {"stage": stage, "n": n, **run_job(["scale", stage, str(n)], env, timeout=int(budget_s * 3) + 600)}
            if note:
                result["note"] = f"{stage}: {note}"
            rows.append(result)
            _save_scaling(rows)
    return rows


def _course_vectors(env: dict, tmp: Path):
    """The course's real embeddings, computed in a process of their own (this one stays free of torch)."""
    import numpy as np

    path = tmp / "course-vectors.npy"
    code = f"import numpy as np; from bench.common import course_embeddings; np.save({str(path)!r}, course_embeddings())"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)  # -c: bench imports from cwd, REPO
    return np.load(path)


def _save_scaling(rows: list[dict]) -> None:
    import pandas as pd

    columns = ["stage", "n", "seconds", "cpu_seconds", "peak_mib", "rss_before_mib", "measured", "note",
               "build_seconds", "index_seconds", "n_clusters"]
    pd.DataFrame(rows).reindex(columns=columns).to_csv(SCALING_CSV, index=False)
