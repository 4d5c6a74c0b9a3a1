"""Benchmark harness: each stage of the course, our path against a plain baseline, in one run.

    python -m bench.run                         # all stages on the course corpus -> bench/RESULTS.md
    python -m bench.run --quick                 # small sizes, to check that everything runs
    python -m bench.run --stages embed,search   # selected stages
    python -m bench.run --scaling               # 1k / 10k / 100k records -> bench/scaling.csv, bench/scaling.png
    python -m bench.run --stages ray_embed,endpoint --budget 300   # the scaling path (scale/): Ray Data, a server
    python -m bench.run --stages bm25           # the project's BM25 against the bm25s library (pip install bm25s)

Each stage is a module of bench/stages (its variants, its job, its section of
RESULTS.md); this runner starts every measurement in its own Python process,
so peak memory is that process's own (``resource.getrusage(...).ru_maxrss``:
the peak resident set of the process, model and data included; for the
notebook run, of its kernel) and nothing is shared by accident: no warm model,
no numba cache in memory. Every run starts from an empty course cache
(``$SCISCI_CACHE`` in a temporary folder) in which only the converted models
are linked, so no result of an earlier run is reused unless a stage measures
exactly that (warm re-runs). Times are wall-clock seconds; CPU seconds are
recorded too (on a machine shared with other work they are the steadier
measure). See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import scaling
from bench.common import MARK, REPO, RESULTS_JSON, SCALING_CSV, fresh_cache, run_job
from bench.report import write_results, write_scaling
from bench.stages import DEFAULT_STAGES, STAGES


def run_stages(names: list[str], quick: bool, env: dict, tmp: Path, budget_s: float | None = None) -> dict:
    """Run each variant of each named stage in a process of its own; the stored stages, as results.json keeps them."""
    from helpers.models import get_device

    device = get_device()
    results = {}
    for name in names:
        stage = STAGES[name]
        print(f"[{time.strftime('%H:%M:%S')}] stage {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        n = stage.quick_size if quick else None
        stage_results, load = {}, os.getloadavg()
        for variant in stage.variants(device):
            args = [name, variant, str(n or 0)]
            if stage.writes_file:
                args.append(str(tmp / f"{name}-{variant.replace(':', '-')}.npy"))
            estimate = stage.estimate(variant, stage_results, budget_s, n) if stage.estimate else None
            if estimate:
                stage_results[variant] = estimate
                print(f"  {variant}: {estimate['note']}", flush=True)
                continue
            stage_results[variant] = run_job(args, env, timeout=3600)
        results[name] = {"variants": stage_results, "loadavg_start": load, "loadavg_end": os.getloadavg(),
                         "quick": quick, "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        if stage.summarise:
            results[name].update(stage.summarise(tmp, stage_results))
        _store_stage(name, results[name])  # kept even if a later stage is interrupted
    return results


def _store_stage(name: str, result: dict) -> None:
    stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    stored.setdefault("stages", {})[name] = result
    RESULTS_JSON.write_text(json.dumps(stored, indent=1, default=float))


def machine() -> dict:
    """CPU model, cores, Python, torch, GPU and memory of this machine, for RESULTS.md."""
    import torch

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated, from {', '.join(STAGES)} (default: all but ray_embed, endpoint, bm25)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--scaling", action="store_true", help="run the scaling study instead of the stages")
    parser.add_argument("--sizes", default="1000,10000,100000", help="record counts for --scaling")
    parser.add_argument("--scaling-stages", default=",".join(scaling.STAGES))
    parser.add_argument("--budget", type=float, default=900,
                        help="seconds; a scaling stage (or a ray_embed variant at 10,000 records) estimated to take "
                             "longer at a size is extrapolated, and marked so")
    parser.add_argument("--resume", action="store_true", help="--scaling: keep the measured rows of bench/scaling.csv")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per job (OMP_NUM_THREADS); default all cores. On a machine shared with "
                             "other work, 1 avoids threads waiting on each other at every small operation")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite RESULTS.md (and scaling.md/png) from the stored figures")
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    return parser


def _run_job_here(job: list[str]) -> None:
    """Inside a job process: measure one variant and print its result on the ``MARK`` line."""
    kind, *rest = job
    if kind == "scale":
        result = scaling.job(rest[0], int(rest[1]))
    else:
        variant, n = rest[0], int(rest[1]) or None
        result = STAGES[kind].job(variant, n, *rest[2:])
    print(MARK + json.dumps(result, default=float), flush=True)


def _scaling_rows() -> list[dict]:
    """The rows of bench/scaling.csv, without their empty cells."""
    import pandas as pd

    return [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
            for r in pd.read_csv(SCALING_CSV).to_dict("records")]


def _report_only() -> None:
    stored = json.loads(RESULTS_JSON.read_text())
    sc = stored.get("scaling")
    if not sc and SCALING_CSV.is_file():  # a scaling run that was stopped: the sizes it finished
        sc = {"rows": _scaling_rows(), "seconds": float("nan"), "partial": True}
    if sc:
        write_scaling(sc["rows"], sc.get("machine", machine()), sc["seconds"], sc.get("loadavg_end", os.getloadavg()))
    write_results(stored)


def _job_env(tmp: Path, threads: int | None) -> dict:
    """The environment of every job: a course cache of the run's own, offline, quiet."""
    env = {**os.environ, "SCISCI_CACHE": str(fresh_cache(tmp)), "SCISCI_OUTPUTS": str(tmp / "outputs"),
           "SCISCI_BENCH_TMP": str(tmp), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    if threads:
        env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})
    data = os.environ.get("SCISCI_DATA_DIR") or (REPO.parent / "shared" / "data")
    if Path(data, "science_of_science.csv").is_file():
        env["SCISCI_DATA_DIR"] = str(data)
    return env


def _store_run(stored: dict, stages: list[str], quick: bool, seconds: float, load_start, command: str) -> None:
    """Record this run in ``stored`` ("last_run", and "runs": every full run whose figures RESULTS.md still holds)."""
    runs = stored.setdefault("runs", [])
    previous = stored.get("last_run")
    if previous and not previous.get("quick") and previous not in runs:
        runs.append(previous)
    if not quick:
        stored["runs"] = [r for r in runs if set(r["stages"]) - set(stages)]
    stored["last_run"] = {"stages": stages, "quick": quick, "seconds": seconds,
                          "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "command": command,
                          "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine()}
    if not quick:
        stored["runs"].append(stored["last_run"])


def main(argv=None) -> None:
    """The command line (see the module's docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.job:
        _run_job_here(args.job)
        return
    if args.report:
        _report_only()
        return

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scisci-bench-") as folder:
        tmp = Path(folder)
        env = _job_env(tmp, args.threads)
        if args.scaling:
            sizes = [int(s) for s in args.sizes.split(",")]
            if args.quick:
                sizes = [min(s, 2000) // 10 for s in sizes]
            previous = _scaling_rows() if args.resume and SCALING_CSV.is_file() else None
            rows = scaling.run_scaling(sizes, args.scaling_stages.split(","), env, tmp, args.budget, previous)
            write_scaling(rows, machine(), time.perf_counter() - start, os.getloadavg())
        else:
            stages = [s for s in args.stages.split(",") if s]
            unknown = set(stages) - set(STAGES)
            if unknown:
                parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
            load_start = os.getloadavg()
            results = run_stages(stages, args.quick, env, tmp, args.budget)
            stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
            stored.setdefault("stages", {}).update(results)
            command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
            _store_run(stored, stages, args.quick, time.perf_counter() - start, load_start, command)
            RESULTS_JSON.write_text(json.dumps(stored, indent=1, default=float))
            write_results(stored)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
