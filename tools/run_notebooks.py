"""Execute the course notebooks headless, as ``make run`` and the notebook tests do.

    python -m tools.run_notebooks [NOTEBOOK ...]

Each notebook runs top to bottom with the repository as its working folder;
the executed copy goes to ``outputs/`` (the committed notebook stays clean).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.cache import REPO_ROOT, outputs_dir


def course_notebooks() -> list[Path]:
    """The numbered notebooks at the repository root, in teaching order."""
    return sorted(REPO_ROOT.glob("[0-9]_*.ipynb"))


def execute_notebook(path: str | Path, timeout: int = 1200, progress: bool = False) -> nbformat.NotebookNode:
    """Run notebook ``path`` in a fresh kernel; write the executed copy to ``outputs/``.

    With ``progress``, print a line per code cell as it finishes (seconds, first line).
    Raises ``CellExecutionError`` (after saving the partial copy) when a cell fails.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    hooks = {"on_cell_executed": _print_cell(path.name, notebook)} if progress else {}
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(REPO_ROOT)}}, **hooks,
    )
    # The kernel is started as "python": put this interpreter first so it runs in the same environment.
    path_before = os.environ.get("PATH", "")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + path_before
    try:
        client.execute()
    finally:
        os.environ["PATH"] = path_before
        nbformat.write(notebook, outputs_dir() / path.name)
    return notebook


def _print_cell(name: str, notebook: nbformat.NotebookNode):
    """An nbclient hook printing ``name [i/n] seconds  first line`` after each code cell."""
    total = sum(cell.cell_type == "code" for cell in notebook.cells)
    count, last = 0, time.perf_counter()

    def hook(cell, cell_index, execute_reply, **_):
        nonlocal count, last
        if cell.cell_type != "code":
            return
        count += 1
        now = time.perf_counter()
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
        print(f"  {name} [{count}/{total}] {now - last:5.1f} s  {first}", flush=True)
        last = now

    return hook


def library_warnings(notebook: nbformat.NotebookNode) -> list[str]:
    """The warnings that libraries wrote to stderr in an executed notebook, as ``"cell i: text"``.

    A warning is a line that says so, or one from a library logger such as ``[transformers] ...``.
    """
    found = []
    for i, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                found += [f"cell {i}: {line.strip()[:300]}" for line in output.text.splitlines()
                          if re.search(r"warn|deprecat|^\s*\[[\w.-]+\] ", line, flags=re.IGNORECASE)]
    return found


def main(names: list[str]) -> int:
    """Execute ``names`` (default: the course's three notebooks) and report each; 1 when one failed."""
    paths = [Path(n) for n in names] or course_notebooks()
    failed = []
    for path in paths:
        start, warnings = time.perf_counter(), []
        try:
            warnings = library_warnings(execute_notebook(path, progress=True))
            status = "ok" + (f", {len(warnings)} library warning(s) below" if warnings else "")
        except CellExecutionError as error:
            failed.append(path.name)
            status = f"FAILED\n{str(error)[-2000:]}"
        print(f"{path.name}: {status} in {time.perf_counter() - start:.0f} s "
              f"(executed copy: {outputs_dir() / path.name})", flush=True)
        for warning in warnings:
            print(f"  warning in {warning}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: the course's three, in order)")
    sys.exit(main(parser.parse_args().notebooks))
