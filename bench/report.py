"""Write bench/RESULTS.md (each stage's section comes from its module in bench/stages) and the scaling table and plot."""
from __future__ import annotations

import json

from bench.common import BENCH, RESULTS_JSON
from bench.stages import STAGES
from bench.tables import num, status

RESULTS_MD = BENCH / "RESULTS.md"
SCALING_MD = BENCH / "scaling.md"
SCALING_PNG = BENCH / "scaling.png"
# The order of RESULTS.md's sections (not the order the stages run in).
REPORT_ORDER = ("embed", "cluster", "label", "extract", "search", "bm25", "ray_embed", "endpoint", "load", "notebook2")


def write_results(stored: dict) -> None:
    """RESULTS.md: one section per stage, then targets, then scaling (when measured)."""
    run = stored.get("last_run", {})
    m = run.get("machine", {})
    stages = stored.get("stages", {})
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench.run` (see bench/README.md); do not edit by hand.",
        "",
        f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB; "
        f"GPU: {m.get('gpu') or 'none (no GPU was lent to this task: every figure is CPU; the harness picks up CUDA unchanged)'}; "
        f"Python {m.get('python', '?')}, torch {m.get('torch', '?')}.",
        "- Runs whose figures are below (1/5/15-min load average at start and end; the machine is shared: a load "
        "above the core count slows every figure, but a stage's baseline and ours run back to back in the same "
        "run, so their ratio stays fair; CPU seconds are shown where they help):",
        *[f"  - `{r.get('command', '?')}` at {r.get('at', '?')}: {num(r.get('seconds'), 0)} s wall; load "
          f"{', '.join(num(x, 2) for x in r.get('loadavg_start', []))} -> {', '.join(num(x, 2) for x in r.get('loadavg_end', []))}"
          + (" (quick: small sizes)" if r.get("quick") else "")
          for r in (stored.get("runs") or [run])],
        "- Each variant runs in a fresh process with a course cache of its own (only converted models and stored "
        "embeddings, the later stages' input, are linked in: see bench/README.md); **peak MiB** is that process's peak resident set "
        "(`getrusage(RUSAGE_SELF).ru_maxrss`: model, data and interpreter included; for the notebook, its kernel's).",
        "",
    ]
    targets = []
    for name in REPORT_ORDER:
        if name in stages:
            section, stage_targets = STAGES[name].report(stages[name])
            lines += section
            targets += stage_targets

    lines += ["## Targets", "", "| target | measured | status |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {status(ok)} |" for t, m, ok in targets] + [""]
    notes = BENCH / "NOTES.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    if SCALING_MD.is_file():
        lines += [SCALING_MD.read_text().strip(), ""]
    RESULTS_MD.write_text("\n".join(lines))
    print("wrote", RESULTS_MD)



def write_scaling(rows: list[dict], machine: dict, seconds: float, load) -> None:
    """scaling.md (table) and scaling.png (log-log time and peak memory per stage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame([r for r in rows if "error" not in r])
    lines = ["## Scaling (resampled course corpus, perturbed texts)", "",
             f"`python -m bench.run --scaling` on {machine.get('cpu')} ({machine.get('cores')} cores, "
             f"GPU: {machine.get('gpu') or 'none'}), "
             f"{f'{seconds:.0f} s wall' if seconds == seconds else 'stopped before the end: the sizes it finished'}, load average at end "
             f"{', '.join(f'{x:.2f}' for x in load)}. Seconds per stage (search: median per query); "
             "peak MiB of the stage's process; *italic* = extrapolated, not measured.", ""]
    errors = [r for r in rows if "error" in r]
    if not table.empty:
        stages = list(dict.fromkeys(table["stage"]))
        sizes = sorted(table["n"].unique())
        lines += ["| stage | " + " | ".join(f"{n:,} records" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        for stage in stages:
            cells = []
            for n in sizes:
                r = table[(table["stage"] == stage) & (table["n"] == n)]
                if r.empty:
                    cells.append("-")
                    continue
                r = r.iloc[0]
                unit = " ms" if stage == "search" else " s"
                value = r["seconds"] * (1000 if stage == "search" else 1)
                mem = f", {r['peak_mib']:,.0f} MiB" if pd.notna(r.get("peak_mib")) else ""
                cell = f"{value:,.{1 if value >= 1 else 3}f}{unit}{mem}"
                if stage == "search" and pd.notna(r.get("index_seconds")):
                    cell = (f"{1000 * r['index_seconds']:,.1f} ms index part, {value:,.0f} ms with query embedding; "
                            f"build {r['build_seconds']:,.1f} s{mem}")
                cells.append(cell if bool(r.get("measured", True)) else f"*{cell} (extrapolated)*")
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        notes = sorted({str(r["note"]) for _, r in table.iterrows() if isinstance(r.get("note"), str) and r["note"]})
        lines += [""] + [f"- {n}" for n in notes]
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
        for stage in stages:
            part = table[table["stage"] == stage].sort_values("n")
            y = part["seconds"]
            label = stage + " (s)"
            if stage == "search" and "index_seconds" in part and part["index_seconds"].notna().all():
                y, label = part["index_seconds"] * 1000, "search, index part (ms per query)"
            ax_t.plot(part["n"], y, "o-", label=label)
            extrap = part[part.get("measured", True) == False]  # noqa: E712 (a column of bools)
            if len(extrap):
                ax_t.plot(extrap["n"], extrap["seconds"], "x", color="black", markersize=10)
            mem = part.dropna(subset=["peak_mib"])
            ax_m.plot(mem["n"], mem["peak_mib"], "o-", label=stage)
        for ax, title in ((ax_t, "time (x = extrapolated)"), (ax_m, "peak memory of the stage's process (MiB)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("records")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
        ax_t.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(SCALING_PNG, dpi=110)
        lines += ["", "![scaling](scaling.png)", ""]
    if errors:
        lines += ["Failed measurements: " + "; ".join(f"{r.get('stage', '?')}: {r['error'][:150]}" for r in errors), ""]
    SCALING_MD.write_text("\n".join(lines))
    print("wrote", SCALING_MD, SCALING_PNG)
    stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    stored["scaling"] = {"rows": rows, "seconds": seconds, "machine": machine, "loadavg_end": list(load)}
    RESULTS_JSON.write_text(json.dumps(stored, indent=1, default=float))
    if stored.get("stages"):
        write_results(stored)
