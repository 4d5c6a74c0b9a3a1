"""Runs 2_clustering.ipynb headless on the real course corpus and checks the clusters it saves."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cache import REPO_ROOT

NOTEBOOK = REPO_ROOT / "2_clustering.ipynb"


def _kernel_prefix() -> str:
    """sys.prefix of the Python that the ``python3`` kernel launches (its spec runs plain ``python``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec("python3").argv
    out = subprocess.run([argv[0], "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                         env=os.environ, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def saved_clusters(data_dir, tmp_path_factory, monkeypatch_module):
    from tools.run_notebooks import execute_notebook

    outputs = tmp_path_factory.mktemp("outputs")
    monkeypatch_module.setenv("SCISCI_OUTPUTS", str(outputs))
    # execute_notebook puts this interpreter first on PATH; check the kernel then really is this venv
    monkeypatch_module.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    assert _kernel_prefix() == sys.prefix
    notebook = execute_notebook(NOTEBOOK, timeout=600)
    return outputs, notebook


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_notebook_saves_clusters(saved_clusters):
    from helpers.data import load_corpus

    saved_clusters, _ = saved_clusters
    expected_rows = int(load_corpus("course")["has_abstract"].sum())
    frame = pd.read_csv(saved_clusters / "science_of_science_clusters.csv")
    assert len(frame) == expected_rows
    assert {"cluster", "x", "y", "title", "keywords"} <= set(frame.columns)
    assert frame["cluster"].nunique() - (frame["cluster"] == -1).any() >= 5
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert (saved_clusters / "science_of_science_clusters.png").stat().st_size > 0
    assert (saved_clusters / "2_clustering.ipynb").is_file()  # executed copy went to the tmp folder too


def test_notebook3_recomputes_the_same_clusters_from_the_settings_notebook2_shows(saved_clusters, tmp_path):
    """Notebook 2 shows and uses the settings of helpers.clustering; load_clusters recomputes with them."""
    from helpers.clustering import COURSE_HDBSCAN, COURSE_SEED, COURSE_UMAP, load_clusters

    outputs, notebook = saved_clusters
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    for line in [f"SEED = {COURSE_SEED}", f"UMAP_PARAMS = {COURSE_UMAP}", f"HDBSCAN_PARAMS = {COURSE_HDBSCAN}"]:
        assert line in printed
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    for call in ["umap.UMAP(", "hdbscan.HDBSCAN(**HDBSCAN_PARAMS).fit_predict(", "KMeans(n_clusters="]:
        assert call in code
    saved = pd.read_csv(outputs / "science_of_science_clusters.csv")
    recomputed = load_clusters(tmp_path / "absent.csv")  # as notebook 3 does where notebook 2 has not run
    assert recomputed["cluster"].tolist() == saved["cluster"].tolist()
    np.testing.assert_allclose(recomputed[["x", "y"]].to_numpy(), saved[["x", "y"]].to_numpy(), atol=1e-5)


def test_no_library_warnings(saved_clusters):
    from tools.run_notebooks import library_warnings

    assert library_warnings(saved_clusters[1]) == []
