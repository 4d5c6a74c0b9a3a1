"""Caches that survive what happens to real files (issue 17 items 10, 11, 14e).

A cache file cut short or emptied (a full disk, a killed run) is recomputed with one line naming it;
two processes filling the same key at once both succeed and leave one whole file; the UMAP cache takes
any seeded scikit-learn estimator.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers.cache import REPO_ROOT, read_cached, write_atomically
from helpers.clustering import cached_fit_transform
from helpers.embeddings import embed_texts


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    return tmp_path


def _damage(path, how):
    whole = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else whole[: len(whole) // 2])


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_a_damaged_embedding_cache_is_recomputed(embedder, fresh_cache, capsys, how):
    texts = ["citation analysis of journals", "peer review at funding agencies"]
    first = embed_texts(texts, embedder)
    (stored,) = (fresh_cache / "embeddings").glob("*.npy")
    _damage(stored, how)
    capsys.readouterr()
    again = embed_texts(texts, embedder)
    np.testing.assert_allclose(again, first, atol=1e-6)
    said = capsys.readouterr().out
    assert said.count("cannot be read") == 1 and str(stored) in said
    np.testing.assert_array_equal(np.load(stored), again)  # the file was replaced by a whole one
    embed_texts(texts, embedder)
    assert "cannot be read" not in capsys.readouterr().out


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_a_damaged_umap_cache_is_recomputed(fresh_cache, capsys, how):
    import umap

    def reducer():  # a fitted UMAP changes some of its parameters: a fresh one each time, as a re-run has
        return umap.UMAP(n_components=2, n_neighbors=5, n_epochs=50, random_state=0)

    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    first = cached_fit_transform(reducer(), x)
    (stored,) = (fresh_cache / "fit_transform").glob("UMAP-*.npy")
    _damage(stored, how)
    capsys.readouterr()
    again = cached_fit_transform(reducer(), x)
    np.testing.assert_array_equal(again, first)  # seeded: the same result again
    said = capsys.readouterr().out
    assert said.count("cannot be read") == 1 and str(stored) in said
    np.testing.assert_array_equal(np.load(stored), first)


def test_scikit_learn_estimators_are_cached_too(fresh_cache):
    """Issue 17 item 14e: the version key maps the module ``sklearn`` to its distribution, scikit-learn."""
    from sklearn.decomposition import PCA
    from sklearn.random_projection import GaussianRandomProjection

    x = np.random.default_rng(1).normal(size=(40, 6))
    for estimator in (PCA(n_components=2, random_state=0), GaussianRandomProjection(n_components=2, random_state=0)):
        first = cached_fit_transform(estimator, x)
        assert first.shape == (40, 2) and first.dtype == np.float32
        (stored,) = (fresh_cache / "fit_transform").glob(f"{type(estimator).__name__}-*.npy")
        np.testing.assert_array_equal(cached_fit_transform(estimator, x), np.load(stored))


def test_an_estimator_of_no_installed_package_is_computed_every_time(fresh_cache):
    class Doubler:  # a notebook's own class: no package version to key a cache on
        def get_params(self):
            return {"random_state": 0}

        def fit_transform(self, x):
            return x * 2

    x = np.ones((3, 2))
    np.testing.assert_array_equal(cached_fit_transform(Doubler(), x), x * 2)
    assert not (fresh_cache / "fit_transform").exists() or not any((fresh_cache / "fit_transform").iterdir())


def test_read_cached_gives_none_for_missing_and_unreadable_files(tmp_path, capsys):
    assert read_cached(tmp_path / "none.npy", np.load) is None
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY")
    assert read_cached(tmp_path / "bad.npy", np.load) is None
    assert "bad.npy cannot be read" in capsys.readouterr().out


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from helpers.cache import write_atomically
    path, value, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    block = np.full((512, 512), value, dtype=np.float64)  # 2 MiB: long enough writes to overlap
    while time.time() < start:
        time.sleep(0.005)
    for _ in range(20):
        write_atomically(path, lambda tmp: np.save(tmp, block))
    print("done")
""")


def test_two_processes_filling_the_same_key_both_succeed(tmp_path):
    """Issue 17 item 11: with one fixed temporary name the second writer's rename failed (or both wrote one file)."""
    import time

    path = tmp_path / "same-key.npy"
    start = time.time() + 3  # both processes have imported numpy by then
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(value), str(start)], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for value in (1, 2)]
    results = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, results):
        assert writer.returncode == 0 and out.strip() == "done", err[-2000:]
    stored = np.load(path)
    assert stored.shape == (512, 512) and np.unique(stored).size == 1 and stored[0, 0] in (1, 2)  # one writer's whole
    assert [p.name for p in tmp_path.iterdir()] == ["same-key.npy"]  # no temporary file left behind


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "x.npy", fails)
    assert list(tmp_path.iterdir()) == []
