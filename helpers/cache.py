"""Where the course keeps what it computes: results in ``outputs/``, caches in one folder.

Every cache (dequantised models, embeddings, UMAP results, generations) lives under
``cache_dir``, keyed by a hash of what went in: a re-run is instant, a changed input is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def outputs_dir() -> Path:
    """Folder for everything the notebooks write (``$SCISCI_OUTPUTS`` or ``<repo>/outputs``)."""
    path = Path(os.environ.get("SCISCI_OUTPUTS", REPO_ROOT / "outputs"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """Sub-folder ``kind`` of the course cache (``$SCISCI_CACHE`` or ``~/.cache/llm4scisci``)."""
    path = Path(os.environ.get("SCISCI_CACHE", Path.home() / ".cache" / "llm4scisci")) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_hash(*parts) -> str:
    """Stable SHA-256 (hex, 24 chars) of JSON-serialisable parts, e.g. a model name and a list of texts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:24]


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, write) -> None:
    """``write(tmp)`` to a file beside ``path``, then rename it to ``path``: an interrupted run leaves no half file.

    The temporary name is the writer's own (process and thread), so writers of the same key at once each
    rename a whole file of their own; the last rename wins, and every reader sees one whole file.
    """
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # only after a failed write: a renamed file is no longer there


def read_cached(path: Path, load):
    """``load(path)`` of a cache file, or None when there is none or it cannot be read.

    A file that ``load`` cannot read (cut short by a full disk, emptied, corrupted) prints one line naming
    it; the caller computes the value again and its write replaces the file.
    """
    if not path.is_file():
        return None
    try:
        return load(path)
    except (OSError, EOFError, ValueError) as error:
        print(f"Cache file {path} cannot be read ({type(error).__name__}: {error}); computing it again to replace it.")
        return None
