"""Embed a corpus with Ray Data: records in (CSV or Parquet), Parquet of ``id`` + ``vector`` out.

    python -m scale.embed_corpus outputs/records.parquet outputs/vectors --actors 2      # from the repository root
    RAY_ADDRESS=ray://head:10001 python -m scale.embed_corpus s3://bucket/records/ s3://bucket/vectors --actors 16

The records need a unique id column (``--id-column``, default ``id``) and a
text column (``--text-column``, default ``text``: title and abstract, as
``helpers.data.load_corpus`` builds it), in CSV or in Parquet files (not both
in one run; a remote folder is read as Parquet). An output folder that already
holds files is refused (Ray would add to them, and ``load_vectors`` would find
every id twice); ``--overwrite`` replaces an earlier run's Parquet files there,
and nothing else. Each Ray actor loads the model once
with ``helpers.models.load_embedder`` and embeds its batches with
``helpers.embeddings.embed_texts``, so the vectors are the course's (same model,
L2-normalised float32). One GPU per actor when the cluster has GPUs, else
``--cpus-per-actor`` CPU threads. ``ray.init()`` starts a local cluster, or
joins the one in ``RAY_ADDRESS`` / ``--address``: the code is the same.
``load_vectors`` reads the result back in the order of your records, ready for
``helpers.retrieval.build_index(records, embeddings=...)`` or notebook 2.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from helpers.models import DEFAULT_EMBEDDER

FORMATS = {".csv": "csv", ".parquet": "parquet"}  # the endings Ray Data reads (read_csv is told to read only these)


class EmbedBatch:
    """A Ray Data actor: loads the embedder once, then turns each batch into (id, vector) rows."""

    def __init__(self, model: str, id_column: str, text_column: str, threads: int | None, batch_size: int | None):
        import torch

        from helpers.models import load_embedder

        if threads:
            torch.set_num_threads(threads)
        self.model = load_embedder(model)
        self.id_column, self.text_column, self.batch_size = id_column, text_column, batch_size

    def __call__(self, batch):
        """A batch of records (pyarrow table) as a table of ids and their vectors."""
        import pyarrow as pa

        from helpers.embeddings import embed_texts

        texts = batch[self.text_column]
        bad = [i for i, t in zip(batch[self.id_column], texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"{len(bad)} record(s) have an empty or missing {self.text_column!r}: ids {bad[:10]}; "
                             "drop or fill them before embedding")
        vectors = embed_texts(list(texts), self.model, batch_size=self.batch_size, cache=False)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table({"id": pa.array(batch[self.id_column]),
                         "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


def source_format(source) -> str:
    """"csv" or "parquet" for ``source`` (a path, folder or glob, or a list of them), judged path by path.

    By the file name's ending; a local folder by the files in it; a remote folder (``s3://bucket/records/``)
    is read as Parquet. Raises ValueError for CSV and Parquet mixed, or a path whose format cannot be told.
    """
    paths = [str(p) for p in source] if isinstance(source, (list, tuple)) else [str(source)]
    if not paths:
        raise ValueError("no records given: name CSV or Parquet files, a folder or a glob")
    found = {}
    for path in paths:
        for kind in _formats_of(path):
            found.setdefault(kind, []).append(path)
    if len(found) > 1:
        raise ValueError(f"the records mix CSV ({', '.join(found['csv'][:3])}) and Parquet "
                         f"({', '.join(found['parquet'][:3])}); convert them to one format or embed them in two runs")
    return next(iter(found))


def _formats_of(path: str) -> set[str]:
    if "://" not in path and Path(path).is_dir():  # by its CSV and Parquet files; _read reads only those
        kinds = {FORMATS[f.suffix.lower()] for f in Path(path).rglob("*")
                 if f.suffix.lower() in FORMATS and f.is_file() and not f.name.startswith((".", "_"))}
        if not kinds:
            raise ValueError(f"{path} holds no .csv or .parquet files")
        return kinds
    name = path.rstrip("/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in FORMATS:
        return {FORMATS[suffix]}
    if not suffix and "://" in path:
        return {"parquet"}  # a remote folder, as Ray Data writes datasets
    raise ValueError(f"cannot tell whether {path} is CSV or Parquet: name it .csv or .parquet")


def _read(source, kind: str, id_column: str, text_column: str):
    """A Ray dataset of the id and text columns of ``kind`` ("csv" or "parquet") files: a file, folder, glob or list."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    paths = [str(p) for p in source] if isinstance(source, (list, tuple)) else str(source)
    columns = [id_column, text_column]
    if kind == "csv":
        # Abstracts may hold line breaks; only the two columns are read, both as text.
        ds = ray.data.read_csv(paths, file_extensions=["csv"],
                               parse_options=pacsv.ParseOptions(newlines_in_values=True),
                               convert_options=pacsv.ConvertOptions(
                                   include_columns=columns, column_types={c: pa.string() for c in columns}))
    else:
        ds = ray.data.read_parquet(paths)
    try:
        names = ds.schema().names
    except Exception as exc:  # a CSV without one of the columns fails as it is read
        raise ValueError(f"cannot read the columns {columns} from {source}: {str(exc).strip().splitlines()[-1]}; "
                         "pass --id-column / --text-column") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"the records have no column(s) {missing} (columns: {names}); pass --id-column / --text-column")
    return ds.select_columns(columns)


def _earlier_output(destination, overwrite: bool) -> tuple:
    """(filesystem, Parquet files to remove) for ``destination``; raises ValueError where it holds files that
    are not to be replaced: any, without ``overwrite``; anything but Parquet files, with it."""
    import pyarrow.fs as pafs

    uri = str(destination) if "://" in str(destination) else str(Path(destination).resolve())
    fs, root = pafs.FileSystem.from_uri(uri)
    kind = fs.get_file_info(root).type
    if kind == pafs.FileType.NotFound:
        return fs, []
    if kind != pafs.FileType.Directory:
        raise ValueError(f"{destination} is a file; give a folder for the Parquet output")
    entries = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    if entries and not overwrite:
        raise ValueError(f"{destination} already holds {len(entries)} file(s); Ray would add the new vectors to them, "
                         "and load_vectors would then find ids twice. Give a new folder, or pass --overwrite "
                         "(overwrite=True) to replace the Parquet files of an earlier run there")
    others = [e.path for e in entries if e.type != pafs.FileType.File or not e.path.endswith(".parquet")]
    if others:
        raise ValueError(f"{destination} holds more than an earlier run's Parquet files (e.g. {others[:3]}); "
                         "it is left as it is: give a new folder")
    return fs, [e.path for e in entries]


def embed_corpus(source, destination: str | Path, id_column: str = "id", text_column: str = "text",
                 model: str = DEFAULT_EMBEDDER, actors: int = 1, cpus_per_actor: int = 1,
                 batch_size: int = 256, encode_batch_size: int | None = None, overwrite: bool = False) -> dict:
    """Embed ``source`` (CSV or Parquet paths) into Parquet files under ``destination``; returns a summary.

    Needs ``ray.init()`` first (a local or an existing cluster). ``actors`` model
    copies run at once, each on one GPU when the cluster has GPUs, else on
    ``cpus_per_actor`` CPU threads; ``batch_size`` records go to an actor per
    call, ``encode_batch_size`` texts per forward pass (None: ``embed_texts``'
    default for the device). Output order is input order. ``destination`` must
    be new or empty; ``overwrite`` first removes an earlier run's Parquet files
    there (and refuses anything else). The source is read once. Returns
    ``{"records", "seconds", "records_per_s", "actors", "gpus_per_actor"}``.
    """
    import pyarrow.dataset as pads
    import ray
    import ray.data

    kind = source_format(source)
    fs, earlier = _earlier_output(destination, overwrite)
    if not ray.is_initialized():
        raise RuntimeError("start Ray first: ray.init() for a local cluster, or ray.init(address=...) / RAY_ADDRESS")
    if actors < 1 or cpus_per_actor < 1 or batch_size < 1:
        raise ValueError(f"actors, cpus_per_actor and batch_size must be >= 1; got {actors}, {cpus_per_actor}, {batch_size}")
    resources = ray.cluster_resources()
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    need = actors * (1 if gpus else cpus_per_actor) + 1
    if resources.get("CPU", 0) < need:
        raise ValueError(f"{actors} actor(s) need {need - 1} CPU(s) and reading/writing one more, but the Ray cluster "
                         f"has {resources.get('CPU', 0):g}: use fewer actors, or start a local cluster with "
                         f"ray.init(num_cpus={need}) (logical CPUs; each actor still uses its own threads only)")
    for path in earlier:  # only now that the run can start
        fs.delete_file(path)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    start = time.perf_counter()
    ds = _read(source, kind, id_column, text_column)
    # Blocks of one actor call each, streamed: a single large file is spread over all actors.
    vectors = ds.repartition(target_num_rows_per_block=batch_size).map_batches(
        EmbedBatch, batch_format="pandas", batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"model": model, "id_column": id_column, "text_column": text_column,
                               "threads": None if gpus else cpus_per_actor, "batch_size": encode_batch_size},
        num_gpus=gpus, num_cpus=1 if gpus else cpus_per_actor, udf_modifying_row_count=False)
    vectors.write_parquet(str(destination))
    seconds = time.perf_counter() - start
    n = pads.dataset(str(destination), format="parquet").count_rows()  # from the files' footers, not the source again
    return {"records": n, "seconds": seconds, "records_per_s": n / seconds, "actors": actors, "gpus_per_actor": gpus}


def load_vectors(path: str | Path, ids) -> np.ndarray:
    """The vectors written by ``embed_corpus``, float32 ``(len(ids), dim)``, in the order of ``ids``.

    ``path`` is the output folder (or one Parquet file); ``ids`` are your
    records' ids, e.g. ``records["id"]``. Raises ValueError when an id is
    missing, repeated, or a vector is not L2-normalised.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(str(path), columns=["id", "vector"])
    if table.num_rows == 0:
        raise ValueError(f"{path}: no vectors")
    column = table["vector"].combine_chunks()
    dim = column.type.list_size
    stored = column.flatten().to_numpy().reshape(-1, dim).astype(np.float32, copy=False)
    position = pd.Series(np.arange(table.num_rows), index=pd.Index(table["id"].to_pandas()))
    if position.index.has_duplicates:
        repeated = position.index[position.index.duplicated()].unique()[:10].tolist()
        raise ValueError(f"{path}: ids are not unique (e.g. {repeated}); embed records with a unique id column")
    ids = pd.Index(list(ids))
    absent = ids.difference(position.index)
    if len(absent):
        raise ValueError(f"{path}: {len(absent)} of the {len(ids)} ids have no vector (e.g. {absent[:10].tolist()}); "
                         "were they embedded under another id column?")
    vectors = stored[position.loc[ids].to_numpy()]
    if not np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3):
        raise ValueError(f"{path}: vectors are not L2-normalised; were they written by embed_corpus?")
    return vectors


def main(argv=None) -> None:
    """The command line (``python -m scale.embed_corpus --help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="+", help="CSV or Parquet file(s), a folder or a glob (local, s3://, gs://)")
    parser.add_argument("destination", help="folder for the Parquet output (id, vector)")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--actors", type=int, default=1, help="model copies at once (one GPU each when there are GPUs)")
    parser.add_argument("--cpus-per-actor", type=int, default=1, help="CPU threads per actor without GPUs")
    parser.add_argument("--batch-size", type=int, default=256, help="records per actor call")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: RAY_ADDRESS, else a local one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the Parquet files of an earlier run in DESTINATION (nothing else is removed)")
    args = parser.parse_args(argv)
    try:  # what can be refused is refused before a cluster starts
        source_format(args.source)
        _earlier_output(args.destination, args.overwrite)
    except ValueError as error:
        parser.error(str(error))

    import ray

    address = args.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:  # a local cluster: a CPU per actor thread, and one for reading and writing
        ray.init(num_cpus=max(os.cpu_count() or 1, args.actors * args.cpus_per_actor + 1), include_dashboard=False)
    try:
        summary = embed_corpus(args.source, args.destination, args.id_column, args.text_column, args.model,
                               args.actors, args.cpus_per_actor, args.batch_size, overwrite=args.overwrite)
    finally:
        ray.shutdown()
    print(f"{summary['records']:,} records embedded in {summary['seconds']:.1f} s "
          f"({summary['records_per_s']:.1f} records/s, {summary['actors']} actor(s), "
          f"{summary['gpus_per_actor']} GPU each) -> {args.destination}")


if __name__ == "__main__":
    main()
