"""Stage ``ray_embed`` (the scaling path, run when named): ``embed_texts`` in one process against Ray Data actors."""
from __future__ import annotations

import os
from pathlib import Path

from bench.common import Stage, course_texts, device_and_threads, peak_mib, timed, vector_agreement
from bench.resample import resample_corpus
from bench.tables import measured_when, num, ratio, variant_table

RESAMPLED = 10_000  # the second size (resampled records)


def variants(device: str) -> list[str]:
    """``embed_texts``, Ray with 1 and 2 actors; at the course's size, then at ``RESAMPLED`` records."""
    return [f"{kind}{size}" for size in ("", f"@{RESAMPLED}") for kind in ("embed_texts", "ray:1", "ray:2")]


def job(variant: str, n: int | None, out: str) -> dict:
    """Embed records with ``embed_texts`` in this process, or with Ray Data over ``ray:K`` actors (scale/embed_corpus.py).

    ``variant`` is ``embed_texts``, ``ray:1`` or ``ray:2``, with ``@N`` for N
    resampled records (else the course abstracts). Ray gets a local cluster of
    K actors x (cores / K) threads; its time runs from reading the Parquet
    records to the written vectors (actors starting and loading the model
    included), not ``ray.init`` (a real cluster is up before the job).
    """
    import numpy as np
    import pandas as pd

    kind, _, size = variant.partition("@")
    texts = resample_corpus(n or int(size))["text"].tolist() if size else course_texts(n)
    info = device_and_threads()
    cores = os.cpu_count() or 1
    if kind == "embed_texts":
        from helpers.embeddings import embed_texts
        from helpers.models import load_embedder

        _, load_s, _ = timed(load_embedder)
        vectors, wall, cpu = timed(embed_texts, texts, cache=False)
        settings, extra = f"embed_texts(texts) in one process, {info['torch_threads']} torch threads", {"load_seconds": load_s}
    else:
        import ray

        from scale.embed_corpus import embed_corpus, load_vectors

        actors = int(kind.partition(":")[2])
        threads = max(1, cores // actors)
        records = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
        source, destination = Path(out).with_suffix(".records.parquet"), Path(out).with_suffix(".vectors")
        records.to_parquet(source)
        (_, init_s, _) = timed(ray.init, num_cpus=actors * threads + 1, include_dashboard=False, log_to_driver=False,
                               configure_logging=False, object_store_memory=256 * 2**20)
        try:
            summary, wall, cpu = timed(embed_corpus, source, destination, actors=actors, cpus_per_actor=threads,
                                       batch_size=128)
        finally:
            ray.shutdown()
        vectors = load_vectors(destination, records["id"])
        settings = (f"scale/embed_corpus.py: Ray Data map_batches over {actors} actor(s) x {threads} thread(s), "
                    "batches of 128 records, Parquet in and out")
        extra = {"ray_init_seconds": init_s, "actors": actors, "threads_per_actor": threads}
        cpu = None  # the work runs in Ray's worker processes, not this one
    np.save(out, vectors.astype(np.float32))
    return {"n": len(texts), "seconds": wall, "cpu_seconds": cpu, "docs_per_s": len(texts) / wall,
            "settings": settings, "peak_mib": peak_mib(), **info, **extra}


def _baseline_of(variant: str) -> str:
    size = variant.partition("@")[2]
    return "embed_texts" + (f"@{size}" if size else "")


def summarise(tmp: Path, results: dict) -> dict:
    """Per-record cosine of each variant's vectors to ``embed_texts``' at the same size."""
    return {"agreement": vector_agreement(tmp, "ray_embed", results, _baseline_of)}


def estimate(variant: str, done: dict, budget_s: float | None, n: int | None = None) -> dict | None:
    """A ray_embed variant at the resampled size whose time, linear from its course-size run, exceeds ``budget_s``.

    Returns the extrapolated result (marked ``measured: False``), or None: measure it.
    """
    kind, _, size = variant.partition("@")
    small = done.get(kind, {})
    if not size or budget_s is None or not small.get("docs_per_s"):
        return None
    n = n or int(size)  # --quick: the small size
    seconds = n / small["docs_per_s"]
    if seconds <= budget_s:
        return None
    return {"n": n, "seconds": seconds, "docs_per_s": small["docs_per_s"], "measured": False,
            "settings": small.get("settings", ""),
            "note": f"extrapolated linearly from {small['n']:,} records: would take ~{seconds / 60:.0f} min, "
                    f"over the --budget of {budget_s / 60:.0f} min"}


def _italic(row: str) -> str:
    return "| " + " | ".join(f"*{c.strip()}*" if c.strip() not in ("", "-") else c.strip()
                             for c in row.strip("|").split("|")) + " |"


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The table of records/s against ``embed_texts`` at each size, with the agreement of the vectors."""
    v = st["variants"]
    agree = st.get("agreement", {})
    lines = ["## Embedding with Ray Data (scale/embed_corpus.py) beside `embed_texts`, same run", "",
             measured_when(st) + " Ray's time runs from reading the Parquet records to the written vectors, its "
             "actors starting and loading the model included (`ray.init` itself, a few seconds, is not: a real "
             "cluster is up before the job); CPU seconds are not comparable (Ray works in other processes). "
             "*Italic*: extrapolated, not measured.", ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("records", lambda r: num(r.get("n"), 0)),
            ("records/s", lambda r: num(r.get("docs_per_s"))), ("wall s", lambda r: num(r.get("seconds"))),
            ("ratio to embed_texts", lambda r: "-"), ("min / mean cosine to embed_texts", lambda r: "-"),
            ("peak MiB (driver)", lambda r: num(r.get("peak_mib"), 0))]
    rows = variant_table(st, cols)
    for i, (name, r) in enumerate(v.items()):
        base = v.get(_baseline_of(name), {})
        speedup = ratio(r.get("docs_per_s"), base.get("docs_per_s")) if "error" not in r else "-"
        a = agree.get(name)
        cos = f"{a['min_cosine']:.5f} / {a['mean_cosine']:.5f}" if a else "-"
        row = rows[2 + i].replace(" | - | - | ", f" | {speedup} | {cos} | ", 1)
        rows[2 + i] = _italic(row) if r.get("measured") is False else row
    lines += rows + [""]
    lines += [f"- {name}: {r['note']}" for name, r in v.items() if r.get("note")] + [""]
    return lines, []


STAGE = Stage("ray_embed", job=job, variants=variants, report=report, quick_size=64, writes_file=True,
              summarise=summarise, estimate=estimate)
