"""Formatting shared by the stages' RESULTS.md sections: numbers, ratios, a stage's 'measured when' line, variant tables."""
from __future__ import annotations

import math


def num(x, digits=1, unit=""):
    """``x`` with thousands separators and ``digits`` decimals, or "-" for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def ratio(ours, base):
    """``ours / base`` in bold, as ``**1.23x**``, or "-" when either is missing."""
    return f"**{ours / base:.2f}x**" if ours and base else "-"


def status(met: bool | None) -> str:
    """A target's status: met, **not met**, or "-" (not judged)."""
    return "-" if met is None else ("met" if met else "**not met**")


def measured_when(stage: dict) -> str:
    """When and where a stored stage was measured: time, device, torch threads, load at its start and end."""
    load = stage.get("loadavg_start", [float("nan")])[0]
    end = stage.get("loadavg_end", [float("nan")])[0]
    quick = " **Quick run (small sizes), not the real figures.**" if stage.get("quick") else ""
    threads = sorted({str(v.get("torch_threads")) for v in stage["variants"].values() if v.get("torch_threads")})
    device = sorted({str(v.get("device")) for v in stage["variants"].values() if v.get("device")})
    where = f" on {'/'.join(device)} with {'/'.join(threads)} torch thread(s)" if device and threads else ""
    return (f"Measured {stage['at']}{where}; "
            f"1-min load {num(load, 2)} at the stage's start, {num(end, 2)} at its end.{quick}")


def _variant_rows(stage: dict, cols):
    for name, r in stage["variants"].items():
        if "error" in r:
            yield f"| {name} | failed: {r['error'][:120]} |" + " |" * (len(cols) - 1)
        else:
            yield "| " + " | ".join([name] + [fmt(r) for _, fmt in cols]) + " |"


def variant_table(stage: dict, cols) -> list[str]:
    """A Markdown table, one row per variant of ``stage``; ``cols``: (heading, function of a variant's result)."""
    head = "| variant | " + " | ".join(c for c, _ in cols) + " |"
    return [head, "|" + "---|" * (len(cols) + 1), *_variant_rows(stage, cols)]


def same_answers(r: dict, base: dict) -> str:
    """How many of a variant's answers equal the baseline's, as ``"k/n"``."""
    return f"{sum(a == b for a, b in zip(r.get('answers', []), base.get('answers', [])))}/{len(base.get('answers', []))}"
