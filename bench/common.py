"""What every stage shares: paths, the ``Stage`` record, measuring inside a job, and running a job in its own process."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS_JSON = BENCH / "results.json"
SCALING_CSV = BENCH / "scaling.csv"
SEED = 42
MARK = "BENCH_JSON "  # a job prints its result on one line that starts with this
# Files a run shares between its jobs (vectors, 5-D coordinates): the run's temporary folder.
BENCH_TMP = Path(os.environ.get("SCISCI_BENCH_TMP", tempfile.gettempdir()))


@dataclass(frozen=True)
class Stage:
    """One stage of the bench: its variants (the baseline first), the job measuring one, and its RESULTS.md section.

    job(variant, n, *extra) -> dict runs in a process of its own (n: records, None for the full size);
    report(stored stage) -> (lines, targets), a target being (what, measured, met or None);
    quick_size: n under --quick; writes_file: the job gets a ``.npy`` path in the run's folder for
    what summarise compares (vectors; bm25: its hits, beside it as ``.json``);
    summarise(tmp folder, variants' results) -> dict merged into the stored stage (e.g. agreement);
    estimate(variant, results so far, budget seconds, n) -> an extrapolated result instead of a run, or None.
    """

    name: str
    job: Callable[..., dict]
    variants: Callable[[str], list[str]]
    report: Callable[[dict], tuple[list[str], list[tuple]]]
    quick_size: int | None = None
    writes_file: bool = False
    summarise: Callable[[Path, dict], dict] | None = None
    estimate: Callable[..., dict | None] | None = None


# --------------------------------------------------------------------------- measuring (inside a job process)


def peak_mib(children: bool = False) -> float:
    """Peak resident memory (MiB) of this process, or of its largest finished child."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process) of ``fn(*args, **kwargs)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def device_and_threads() -> dict:
    """The device ``get_device`` picks and torch's thread count (and the GPU's name on CUDA)."""
    import torch

    from helpers.models import get_device

    device = get_device()
    info = {"device": device, "torch_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def course_texts(n: int | None = None) -> list[str]:
    """The texts of the course records that have an abstract (the first ``n``)."""
    from helpers.data import load_corpus

    corpus = load_corpus("course")
    texts = corpus.loc[corpus["has_abstract"], "text"].tolist()
    return texts[:n] if n else texts


def course_embeddings():
    """``embed_texts`` of ``course_texts()`` (cached: the later stages' input, not what they measure)."""
    from helpers.embeddings import embed_texts

    return embed_texts(course_texts())


def umap5(x, cache: bool = False):
    """Notebook 2's 5-D UMAP of ``x``; with ``cache``, through ``cached_fit_transform`` as the notebook runs it."""
    import umap

    from helpers.clustering import COURSE_SEED, COURSE_UMAP, _fit_transform, cached_fit_transform

    reducer = umap.UMAP(n_components=5, random_state=COURSE_SEED, **COURSE_UMAP)
    return cached_fit_transform(reducer, x) if cache else _fit_transform(reducer, x)


def vector_agreement(tmp: Path, stage: str, variants: dict, baseline_of: Callable[[str], str]) -> dict:
    """Per-record cosine between each variant's saved vectors and its baseline's (``baseline_of(variant)``)."""
    import numpy as np

    out = {}
    for variant in variants:
        baseline = baseline_of(variant)
        path, base_path = (tmp / f"{stage}-{v.replace(':', '-')}.npy" for v in (variant, baseline))
        if variant != baseline and path.is_file() and base_path.is_file():
            cos = (np.load(path) * np.load(base_path)).sum(axis=1)
            out[variant] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                            "below_0.99": int((cos < 0.99).sum())}
    return out


# --------------------------------------------------------------------------- running jobs (parent process)


def fresh_cache(root: Path, shared=("models", "embeddings")) -> Path:
    """An empty course cache under ``root`` that links the ``shared`` parts of the real one.

    Converted models are never re-made. Stored embeddings are inputs of the
    later stages, not what they measure (the embed stage times with
    ``cache=False``); UMAP results and generations start empty.
    """
    from helpers.cache import cache_dir

    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for kind in shared:
        link = cache / kind
        if not link.exists():
            link.symlink_to(cache_dir(kind), target_is_directory=True)
    return cache


def run_job(args: list[str], env: dict, timeout: int = 3600) -> dict:
    """Run ``python -m bench.run --job ...`` in a fresh process; its result dict (or an ``error``)."""
    cmd = [sys.executable, "-m", "bench.run", "--job", *args]
    print("  $", " ".join(cmd[3:]), flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        print("    failed:", *tail, sep="\n      ", flush=True)
        return {"error": " | ".join(tail)[-500:]}
    result = json.loads(lines[-1][len(MARK):])
    result["process_seconds"] = time.perf_counter() - start
    print("    ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "answers"},
          flush=True)
    return result
