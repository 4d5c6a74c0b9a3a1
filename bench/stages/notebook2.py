"""Stage ``notebook2``: notebook 2 run headless twice on one cache, cold and then warm."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import BENCH_TMP, REPO, Stage, device_and_threads, fresh_cache, peak_mib, timed
from bench.tables import num


def variants(device: str) -> list[str]:
    """One variant: cold, then warm."""
    return ["cold-warm"]


def job(variant: str, n: int | None) -> dict:
    """Notebook 2 run headless twice on the same cache: cold (nothing cached), then warm."""
    from tools.run_notebooks import execute_notebook

    # Cold means cold: a cache of its own, with only the converted models linked.
    os.environ["SCISCI_CACHE"] = str(fresh_cache(Path(tempfile.mkdtemp(dir=BENCH_TMP)), shared=("models",)))
    runs = {}
    for label in ("cold", "warm"):
        _, wall, _ = timed(execute_notebook, REPO / "2_clustering.ipynb")
        runs[f"{label}_seconds"] = wall
    return {**runs, "ratio": runs["cold_seconds"] / runs["warm_seconds"], "peak_mib": peak_mib(children=True),
            **device_and_threads()}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """Cold and warm seconds, their ratio, and the 5x target."""
    r = st["variants"].get("cold-warm", {})
    title = "## Notebook 2 as a whole (headless, fresh kernel, same cache)"
    if "error" in r:
        return [title, "", f"failed: {r['error']}", ""], []
    lines = [title, "",
             f"- cold (empty cache: embeddings, UMAP, everything computed): {num(r['cold_seconds'])} s",
             f"- warm (embeddings and UMAP results cached): {num(r['warm_seconds'])} s",
             f"- ratio **{r['ratio']:.1f}x**; peak {num(r['peak_mib'], 0)} MiB (kernel)", ""]
    return lines, [("Notebook 2 warm re-run >= 5x faster than cold", f"{r['ratio']:.1f}x", r["ratio"] >= 5)]


STAGE = Stage("notebook2", job=job, variants=variants, report=report)
