"""Stage ``load``: ``load_generator()`` in a fresh process, then again after forgetting the loaded pipeline."""
from __future__ import annotations

import time

from bench.common import Stage, device_and_threads, peak_mib, timed
from bench.tables import num


def variants(device: str) -> list[str]:
    """One variant: a fresh process."""
    return ["fresh"]


def job(variant: str, n: int | None) -> dict:
    """``load_generator()`` in a fresh process: the first load (dequantises if no copy is cached) and a second one."""
    t0 = time.perf_counter()
    from helpers.models import load_generator

    import_s = time.perf_counter() - t0
    from helpers import models

    pipe, first_s, _ = timed(load_generator)
    # Forget the loaded pipeline (models keeps it in an lru_cache on load_generator or a helper of it).
    for fn in (load_generator, getattr(models, "_load_pipeline", None)):
        getattr(fn, "cache_clear", lambda: None)()
    _, second_s, _ = timed(load_generator)
    return {"import_seconds": import_s, "first_seconds": first_s, "second_seconds": second_s,
            "source": models.model_info(pipe).source, "peak_mib": peak_mib(), **device_and_threads()}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """Import, first and second load times, and the 5 s target of the second load."""
    r = st["variants"].get("fresh", {})
    title = "## Model loading (`load_generator()`, packaged SmolLM2-135M-Instruct, fresh process)"
    if "error" in r:
        return [title, "", f"failed: {r['error']}", ""], []
    lines = [title, "",
             f"- importing helpers.models (torch, transformers): {num(r['import_seconds'], 2)} s",
             f"- first `load_generator()` in the process: {num(r['first_seconds'], 2)} s ({r['source']})",
             f"- second load, after `load_generator.cache_clear()`: {num(r['second_seconds'], 2)} s",
             f"- peak {num(r['peak_mib'], 0)} MiB", ""]
    target = ("Generator second load < 5 s",
              f"{r['second_seconds']:.2f} s (first in a fresh process {r['first_seconds']:.2f} s)",
              r["second_seconds"] < 5)
    return lines, [target]


STAGE = Stage("load", job=job, variants=variants, report=report)
