"""Ray Data embedding (scale/embed_corpus.py) on a local Ray cluster equals ``embed_texts``; its loader feeds search.

One small local cluster for the module (3 logical CPUs: two actors and a
spare for reading and writing; no dashboard), shut down afterwards. Adds about
50 s on the shared 2-core CPU: starting Ray (~4 s), each run's actors loading
the model, and one run of the command line against the same cluster. What is
refused (an output folder in use, mixed input) is refused before Ray starts.
"""
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray Data is in requirements-dev.txt")

from helpers.cache import REPO_ROOT  # noqa: E402
from helpers.embeddings import embed_texts  # noqa: E402
from helpers.retrieval import build_index, search  # noqa: E402
from scale.embed_corpus import embed_corpus, load_vectors, source_format  # noqa: E402


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


def test_ray_embeddings_equal_embed_texts(ray_cluster, records, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def count_again(dataset):
        raise AssertionError("the records were read a second time, to count them")

    monkeypatch.setattr(ray.data.Dataset, "count", count_again)  # the count comes from the files written
    records.to_parquet(tmp_path / "records.parquet")
    summary = embed_corpus(tmp_path / "records.parquet", tmp_path / "vectors", actors=2, batch_size=32)
    assert summary["records"] == len(records) and summary["gpus_per_actor"] == 0
    assert all(p.suffix == ".parquet" for p in (tmp_path / "vectors").iterdir())  # what --overwrite may replace
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


def _command_line(*args):
    """``python -m scale.embed_corpus ...`` from the repository root, as the README says."""
    return subprocess.run([sys.executable, "-m", "scale.embed_corpus", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


def test_command_line_on_csv_joins_an_existing_cluster(ray_cluster, records, tmp_path):
    """The README's command, on CSV input, joining the running cluster by address (as on a real cluster);
    into a folder an earlier run wrote, only with --overwrite, and then without the earlier vectors."""
    sample = records.iloc[::10]
    sample.to_csv(tmp_path / "records.csv", index=False)
    earlier = records.iloc[1::10]["id"]  # an earlier run's output (Ray writes only .parquet files: test above)
    (tmp_path / "vectors").mkdir()
    old = np.random.default_rng(0).normal(size=(len(earlier), 384))
    _write_vectors(tmp_path / "vectors" / "earlier_000000.parquet", earlier, old / np.linalg.norm(old, axis=1)[:, None])
    refused = _command_line(tmp_path / "records.csv", tmp_path / "vectors", "--address", ray_cluster)
    assert refused.returncode == 2 and "already holds" in refused.stderr and "--overwrite" in refused.stderr
    run = _command_line(tmp_path / "records.csv", tmp_path / "vectors", "--actors", "1", "--batch-size", "8",
                        "--address", ray_cluster, "--overwrite")
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"{len(sample)} records embedded" in run.stdout
    vectors = load_vectors(tmp_path / "vectors", sample["id"])  # no id twice: the earlier files are gone
    assert (vectors * embed_texts(sample["text"])).sum(axis=1).min() >= 0.9999
    with pytest.raises(ValueError, match="have no vector"):
        load_vectors(tmp_path / "vectors", earlier)


def test_an_output_folder_in_use_is_refused_and_only_parquet_is_overwritten(records, tmp_path):
    """Issue 17 item 14d: Ray adds files to a folder, so a second run into it doubled every id."""
    records.to_parquet(tmp_path / "records.parquet")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-0.parquet").write_bytes(b"an earlier run")
    with pytest.raises(ValueError, match="already holds 1 file.*overwrite=True"):
        embed_corpus(tmp_path / "records.parquet", tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="more than an earlier run's Parquet files"):
        embed_corpus(tmp_path / "records.parquet", tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt", "part-0.parquet"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        embed_corpus(tmp_path / "records.parquet", tmp_path / "file")


def test_the_format_is_told_path_by_path_and_mixed_input_refused(records, tmp_path):
    """Issue 17 item 14d: CSV or Parquet was picked from the first path alone."""
    (tmp_path / "csvs").mkdir()
    records.to_csv(tmp_path / "csvs" / "part.csv", index=False)
    (tmp_path / "csvs" / "README.txt").write_text("other files are not read")
    records.to_parquet(tmp_path / "records.parquet")
    assert source_format(tmp_path / "csvs") == "csv"  # a folder of CSV files (read as Parquet on main)
    assert source_format([tmp_path / "records.parquet", "s3://bucket/more/"]) == "parquet"
    assert source_format(str(tmp_path / "csvs" / "*.csv")) == "csv"
    with pytest.raises(ValueError, match="mix CSV .* and Parquet"):
        source_format([tmp_path / "records.parquet", tmp_path / "csvs" / "part.csv"])
    with pytest.raises(ValueError, match="cannot tell"):
        source_format(tmp_path / "records.txt")
    run = _command_line(tmp_path / "records.parquet", tmp_path / "csvs", tmp_path / "vectors")
    assert run.returncode == 2 and "mix CSV" in run.stderr and not (tmp_path / "vectors").exists()


def _write_vectors(path, ids, rows):
    """A Parquet file as embed_corpus writes them: id, and the vector as a fixed-size list of float32."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = np.asarray(rows, dtype=np.float32)
    flat = pa.array(rows.reshape(-1))
    pq.write_table(pa.table({"id": list(ids), "vector": pa.FixedSizeListArray.from_arrays(flat, rows.shape[1])}), path)


def test_load_vectors_names_what_is_wrong(tmp_path):
    def write(ids, rows):
        _write_vectors(tmp_path / "v.parquet", ids, rows)

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
