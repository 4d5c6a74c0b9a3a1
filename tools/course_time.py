"""How long each notebook's core path takes a learner: reading, TASKs and computing, against the 30 minutes.

    python -m tools.course_time                          # the committed notebooks: reading and TASKs
    python -m tools.course_time outputs/*.ipynb          # executed copies: their printed compute time too

Reading: the words of the markdown a learner reads on the core path (every cell before the first
"## Optional" heading, without what is folded into ``<details>``), at ``WORDS_PER_MINUTE``. TASKs: the
minutes in the core path's TASK headings ("**TASK 2 (8 minutes).**"). Compute: what the notebook's last
core cell prints ("Core path computed in 212 s"), so the figure is the run's own, cold or warm.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

WORDS_PER_MINUTE = 200
BUDGET_MINUTES = 30
_DETAILS = re.compile(r"<details>.*?</details>", re.DOTALL)
_CODE = re.compile(r"```.*?```", re.DOTALL)
_LINK = re.compile(r"\]\([^)]*\)")  # a link's address is not read
_WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")
_TASK = re.compile(r"\*\*TASK[^*(]*\((\d+) minutes?\)")
COMPUTED = re.compile(r"Core path computed in (\d+) s")


@dataclass(frozen=True)
class CourseTime:
    """One notebook's core path: ``words`` read, ``task_minutes``, ``compute_s`` (None when not executed)."""

    notebook: str
    words: int
    task_minutes: int
    compute_s: float | None

    @property
    def total_minutes(self) -> float:
        """Reading, TASK and compute minutes together."""
        return self.words / WORDS_PER_MINUTE + self.task_minutes + (self.compute_s or 0) / 60


def core_cells(cells: list[dict]) -> list[dict]:
    """The cells before the first markdown cell that starts with "## Optional"."""
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and _source(cell).lstrip().startswith("## Optional"):
            return cells[:i]
    return cells


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def read_words(markdown: str) -> int:
    """Words a learner reads in ``markdown``: folded ``<details>``, code blocks and link addresses left out."""
    text = _LINK.sub("]", _CODE.sub(" ", _DETAILS.sub(" ", markdown)))
    return len(_WORD.findall(text))


def course_time(path: str | Path) -> CourseTime:
    """The core path's reading words, TASK minutes and (for an executed notebook) printed compute seconds."""
    cells = core_cells(json.loads(Path(path).read_text(encoding="utf-8"))["cells"])
    markdown = [_source(c) for c in cells if c["cell_type"] == "markdown"]
    printed = "\n".join(str(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    computed = COMPUTED.findall(printed)
    return CourseTime(Path(path).name, sum(read_words(m) for m in markdown),
                      sum(int(m) for text in markdown for m in _TASK.findall(text)),
                      float(computed[-1]) if computed else None)


def table(times: list[CourseTime]) -> str:
    """A markdown table: words, reading minutes, TASK minutes, compute, total against the budget."""
    lines = ["| notebook | words | reading (min) | TASKs (min) | compute | total (min) |", "|---|---|---|---|---|---|"]
    for t in times:
        compute = f"{t.compute_s:.0f} s" if t.compute_s is not None else "not run"
        lines.append(f"| {t.notebook} | {t.words:,} | {t.words / WORDS_PER_MINUTE:.1f} | {t.task_minutes} | {compute} "
                     f"| {t.total_minutes:.1f}{'' if t.total_minutes <= BUDGET_MINUTES else ' (over 30)'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Print each notebook's core-path minutes against the budget (the command line; see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks (default: the course's three, as committed)")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    paths = args.notebooks or sorted(root.glob("[0-9]_*.ipynb"))
    times = [course_time(p) for p in paths]
    print(table(times))
    return 0 if all(t.total_minutes <= BUDGET_MINUTES for t in times) else 1


if __name__ == "__main__":
    sys.exit(main())
