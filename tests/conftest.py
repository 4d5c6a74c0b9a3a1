"""Shared fixtures: one real small model and one corpus per test session.

Tests run offline by design (``HF_HUB_OFFLINE=1``): they exercise the packaged
models, exactly as CI and a machine without internet do. The course data comes
from ``SCISCI_DATA_DIR``, defaulting to the mirror at ``../shared/data``.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
_MIRROR = REPO_ROOT.parent / "shared" / "data"
if "SCISCI_DATA_DIR" not in os.environ and (_MIRROR / "science_of_science.csv").is_file():
    os.environ["SCISCI_DATA_DIR"] = str(_MIRROR)


def course_data_dir() -> Path | None:
    """The folder holding the real course data, or None (tests that need it then skip)."""
    folder = Path(os.environ.get("SCISCI_DATA_DIR", "")) if os.environ.get("SCISCI_DATA_DIR") else None
    return folder if folder and (folder / "science_of_science.csv").is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = course_data_dir()
    if folder is None:
        pytest.skip("course data not found: set SCISCI_DATA_DIR to a folder holding science_of_science.csv")
    return folder


@pytest.fixture(scope="session")
def demo_corpus():
    from helpers.data import load_corpus

    return load_corpus("demo")


@pytest.fixture(scope="session")
def course_corpus(data_dir):
    from helpers.data import load_corpus

    return load_corpus("course")


@pytest.fixture(scope="session")
def embedder():
    from helpers.models import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def generator():
    from helpers.models import load_generator

    return load_generator()


@pytest.fixture
def keyword_frame():
    """Cluster 0: 'bibliometrics' everywhere, 'peer review' only there. Cluster 1: 'citations'. Cluster 2: no keywords."""
    import numpy as np
    import pandas as pd

    kws = [["bibliometrics", "peer review"]] * 10 + [["bibliometrics", "citations"]] * 10 + [np.nan] * 2
    labels = np.array([0] * 10 + [1] * 10 + [2] * 2)
    text = ["reviewers judge manuscripts"] * 10 + ["papers cite papers"] * 10 + ["gender gaps in grants"] * 2
    return pd.DataFrame({"keywords": kws, "text": text, "title": [f"t{i}" for i in range(22)]}), labels


@pytest.fixture
def clustered_titles():
    """``{cluster id: [titles]}`` -> (a frame with a ``title`` column, its cluster ids): label_clusters' input."""
    import numpy as np
    import pandas as pd

    def frame(titles_by_cluster: dict):
        pairs = [(c, t) for c, titles in titles_by_cluster.items() for t in titles]
        return pd.DataFrame({"title": [t for _, t in pairs]}), np.array([c for c, _ in pairs])

    return frame
