"""Ray Data embedding (scale/embed_corpus.py) on a local Ray cluster equals ``embed_texts``; its loader feeds search.

One small local cluster for the module (3 logical CPUs: two actors and a
spare for reading and writing; no dashboard), shut down afterwards. Adds about
50 s on the shared 2-core CPU: starting Ray (~4 s), each run's actors loading
the model, and one run of the command line against the same cluster.
"""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray Data is in requirements-dev.txt")

from helpers.embeddings import embed_texts  # noqa: E402
from helpers.retrieval import build_index, search  # noqa: E402
from scale.embed_corpus import REPO, embed_corpus, load_vectors  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=3, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def records(demo_corpus):
    return demo_corpus.assign(id=[f"demo-{i:03d}" for i in range(len(demo_corpus))])[["id", "text", "title"]]


def test_ray_embeddings_equal_embed_texts(ray_cluster, records, tmp_path):
    import pyarrow.parquet as pq

    records.to_parquet(tmp_path / "records.parquet")
    summary = embed_corpus(tmp_path / "records.parquet", tmp_path / "vectors", actors=2, batch_size=32)
    assert summary["records"] == len(records) and summary["gpus_per_actor"] == 0
    written = pq.read_table(tmp_path / "vectors")
    assert written["id"].to_pylist() == records["id"].tolist()  # same ids, same order
    vectors = load_vectors(tmp_path / "vectors", records["id"])
    expected = embed_texts(records["text"])
    assert vectors.shape == expected.shape and vectors.dtype == np.float32
    assert (vectors * expected).sum(axis=1).min() >= 0.9999  # per record
    # In place of embed_texts: the search index takes them and finds the same records (rows of the index).
    loaded, direct = build_index(records, embeddings=vectors), build_index(records, embeddings=expected)
    for query in ["gender gap in citations", "replication of psychology findings"]:
        assert search(loaded, query, k=5)["record"].tolist() == search(direct, query, k=5)["record"].tolist()


def test_command_line_on_csv_joins_an_existing_cluster(ray_cluster, records, tmp_path):
    """The README's command, on CSV input, joining the running cluster by address (as on a real cluster)."""
    sample = records.iloc[::10]
    sample.to_csv(tmp_path / "records.csv", index=False)
    run = subprocess.run([sys.executable, str(REPO / "scale" / "embed_corpus.py"), str(tmp_path / "records.csv"),
                          str(tmp_path / "vectors"), "--actors", "1", "--batch-size", "8", "--address", ray_cluster],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"{len(sample)} records embedded" in run.stdout
    vectors = load_vectors(tmp_path / "vectors", sample["id"])
    assert (vectors * embed_texts(sample["text"])).sum(axis=1).min() >= 0.9999


def test_load_vectors_names_what_is_wrong(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(ids, rows):
        flat = pa.array(np.asarray(rows, dtype=np.float32).reshape(-1))
        pq.write_table(pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(flat, 2)}),
                       tmp_path / "v.parquet")

    write(["a", "b"], [[1, 0], [0, 1]])
    assert load_vectors(tmp_path / "v.parquet", ["b", "a"]).tolist() == [[0, 1], [1, 0]]  # in the order asked
    with pytest.raises(ValueError, match="1 of the 2 ids have no vector"):
        load_vectors(tmp_path / "v.parquet", ["a", "c"])
    write(["a", "a"], [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="not unique"):
        load_vectors(tmp_path / "v.parquet", ["a"])
    write(["a", "b"], [[2, 0], [0, 1]])
    with pytest.raises(ValueError, match="L2-normalised"):
        load_vectors(tmp_path / "v.parquet", ["a", "b"])


def test_embed_corpus_refuses_what_it_cannot_run(ray_cluster, records, tmp_path):
    records.to_parquet(tmp_path / "records.parquet")
    with pytest.raises(ValueError, match="need 3 CPU"):
        embed_corpus(tmp_path / "records.parquet", tmp_path / "out", actors=3)
    with pytest.raises(ValueError, match="no column"):
        embed_corpus(tmp_path / "records.parquet", tmp_path / "out", id_column="doi")
