"""Execute the course notebooks headless, as ``make run`` and the notebook tests do.

    python -m helpers.run_notebooks [NOTEBOOK ...]

Each notebook runs top to bottom with the repository as its working folder;
the executed copy goes to ``outputs/`` (the committed notebook stays clean).
"""
from __future__ import annotations

import os
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


def execute_notebook(path: str | Path, timeout: int = 1200) -> nbformat.NotebookNode:
    """Run notebook ``path`` in a fresh kernel; write the executed copy to ``outputs/``.

    Raises ``CellExecutionError`` (after saving the partial copy) when a cell fails.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(REPO_ROOT)}},
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


def main(names: list[str]) -> int:
    paths = [Path(n) for n in names] or course_notebooks()
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            execute_notebook(path)
            status = "ok"
        except CellExecutionError as error:
            failed.append(path.name)
            status = f"FAILED\n{str(error)[-2000:]}"
        print(f"{path.name}: {status} in {time.perf_counter() - start:.0f} s "
              f"(executed copy: {outputs_dir() / path.name})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
