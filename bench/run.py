"""Benchmark harness: each stage of the course, our path against a plain baseline, in one run.

    python bench/run.py                         # all stages on the course corpus -> bench/RESULTS.md
    python bench/run.py --quick                 # small sizes, to check that everything runs
    python bench/run.py --stages embed,search   # selected stages
    python bench/run.py --scaling               # 1k / 10k / 100k records -> bench/scaling.csv, bench/scaling.png
    python bench/run.py --stages ray_embed,endpoint --budget 300   # the scaling path (scale/): Ray Data, a server

Every measurement runs in its own Python process, so peak memory is that
process's own (``resource.getrusage(...).ru_maxrss``: the peak resident set of
the process, model and data included; for the notebook run, of its kernel) and
nothing is shared by accident: no warm model, no numba cache in memory. Every
run starts from an empty course cache (``$SCISCI_CACHE`` in a temporary
folder) in which only the converted models are linked, so no result of an
earlier run is reused unless a stage measures exactly that (warm re-runs).
Times are wall-clock seconds; CPU seconds are recorded too (on a machine shared
with other work they are the steadier measure). See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tools")]  # helpers, and tools/run_notebooks.py for the notebook2 stage
RESULTS_JSON = BENCH / "results.json"
SCALING_CSV = BENCH / "scaling.csv"
STAGES = ("embed", "cluster", "label", "extract", "search", "load", "notebook2", "ray_embed", "endpoint")
# The scaling path's stages (scale/) run when named: --stages ray_embed,endpoint.
DEFAULT_STAGES = STAGES[:7]
SCALING_STAGES = ("embed", "reduce", "reduce_pca50", "cluster", "keywords", "search")
MARK = "BENCH_JSON "
SEED = 42
RESAMPLED = 10_000  # the ray_embed stage's second size (resampled records)


# --------------------------------------------------------------------------- measuring (inside a job process)


def umap5(x, cache: bool = False):
    """Notebook 2's 5-D UMAP of ``x``; with ``cache``, through ``cached_fit_transform`` as the notebook runs it."""
    import umap

    from helpers.clustering import COURSE_SEED, COURSE_UMAP, _fit_transform, cached_fit_transform

    reducer = umap.UMAP(n_components=5, random_state=COURSE_SEED, **COURSE_UMAP)
    return cached_fit_transform(reducer, x) if cache else _fit_transform(reducer, x)


def peak_mib(children: bool = False) -> float:
    """Peak resident memory (MiB) of this process, or of its largest finished child."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process) of ``fn(*args, **kwargs)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def device_and_threads() -> dict:
    import torch

    from helpers.models import get_device

    device = get_device()
    info = {"device": device, "torch_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def course_texts(n: int | None = None) -> list[str]:
    from helpers.data import load_corpus

    corpus = load_corpus("course")
    texts = corpus.loc[corpus["has_abstract"], "text"].tolist()
    return texts[:n] if n else texts


def perturb(text: str, rng) -> str:
    """The text with ~5% of its words dropped and two neighbouring words swapped: a near-duplicate."""
    words = text.split()
    keep = [w for w in words if rng.random() > 0.05] or words
    if len(keep) > 3:
        i = int(rng.integers(0, len(keep) - 1))
        keep[i], keep[i + 1] = keep[i + 1], keep[i]
    return " ".join(keep)


def resample_corpus(n: int, seed: int = SEED):
    """``n`` records drawn with replacement from the course corpus (with abstracts), texts perturbed."""
    import numpy as np

    from helpers.data import load_corpus

    corpus = load_corpus("course")
    corpus = corpus[corpus["has_abstract"]].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = corpus.iloc[rng.integers(0, len(corpus), n)].reset_index(drop=True)
    rows["text"] = [perturb(t, rng) for t in rows["text"]]
    return rows


def resample_embeddings(vectors, n: int, noise: float = 0.02, seed: int = SEED):
    """``n`` unit vectors: rows of ``vectors`` drawn with replacement plus Gaussian noise, renormalised."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = vectors[rng.integers(0, len(vectors), n)] + rng.normal(0, noise, (n, vectors.shape[1])).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- jobs: one measurement each


def job_embed(variant: str, n: int | None, out: str) -> dict:
    """Embed the course abstracts: ``baseline`` (SentenceTransformer defaults) or ours (``embed_texts``)."""
    import numpy as np

    texts = course_texts(n)
    info = device_and_threads()
    if variant == "baseline":
        from sentence_transformers import SentenceTransformer

        from helpers.models import DEFAULT_EMBEDDER, packaged_path

        # What a learner writes: SentenceTransformer("all-MiniLM-L6-v2").encode(texts); the hub is
        # unreachable here, so the same model comes from its packaged copy.
        model, load_s, _ = timed(SentenceTransformer, str(packaged_path(DEFAULT_EMBEDDER) or DEFAULT_EMBEDDER))
        vectors, wall, cpu = timed(model.encode, texts)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        settings = "SentenceTransformer defaults (batch 32, fp32)"
    else:
        from helpers.embeddings import CPU_BATCH_SIZE, GPU_BATCH_SIZE, embed_texts
        from helpers.models import load_embedder

        backend, _, batch = variant.partition(":")
        batch_size = int(batch) if batch else None  # None: embed_texts' default for the device
        model, load_s, _ = timed(load_embedder, backend=backend)
        vectors, wall, cpu = timed(embed_texts, texts, batch_size=batch_size, cache=False, backend=backend)
        # An ONNX backend's module has no torch parameters to read the dtype from.
        dtype = ({"onnx-int8": "int8", "onnx": "float32 (ONNX Runtime)"}.get(backend)
                 or str(next(model.parameters()).dtype).replace("torch.", ""))
        shown = batch_size or (CPU_BATCH_SIZE if info["device"] == "cpu" else GPU_BATCH_SIZE)
        given = "" if batch_size is None else f", batch_size={batch_size}"
        settings = f"embed_texts(backend={backend!r}{given}): batches of {shown}, {dtype}"
    np.save(out, vectors.astype(np.float32))
    warm_s = None
    if variant != "baseline":
        embed_texts(texts, batch_size=batch_size, backend=backend)  # fills the cache
        _, warm_s, _ = timed(embed_texts, texts, batch_size=batch_size, backend=backend)
    return {"n": len(texts), "seconds": wall, "cpu_seconds": cpu, "docs_per_s": len(texts) / wall,
            "load_seconds": load_s, "warm_seconds": warm_s, "settings": settings, "peak_mib": peak_mib(), **info}


def _course_embeddings():
    from helpers.embeddings import embed_texts

    return embed_texts(course_texts())


def job_cluster(variant: str, n: int | None) -> dict:
    """Reduce + cluster the course embeddings: UMAP + HDBSCAN defaults, or notebook 2's settings and cache."""
    import numpy as np

    embeddings = _course_embeddings()
    if n:
        embeddings = embeddings[:n]
    rss_before = peak_mib()
    extra = {}
    if variant == "baseline":
        def run():
            import hdbscan
            import umap

            coords = umap.UMAP().fit_transform(embeddings)
            return hdbscan.HDBSCAN().fit_predict(coords)

        settings = "umap.UMAP() + hdbscan.HDBSCAN(), all defaults (2-D, euclidean, parallel UMAP)"
    else:
        import hdbscan

        from helpers.clustering import COURSE_HDBSCAN  # notebook 2's settings, so "ours" is what the course runs

        pca = variant == "pca50"

        def run():
            x = embeddings
            if pca:
                from sklearn.decomposition import PCA

                x = PCA(50, random_state=SEED).fit_transform(x)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            reduced = umap5(x, cache=variant == "ours")
            return hdbscan.HDBSCAN(**COURSE_HDBSCAN).fit_predict(reduced)

        settings = ("PCA to 50-D, then " if pca else "") + "cached_fit_transform(umap.UMAP(5-D, cosine, seed 42)) + hdbscan.HDBSCAN(notebook 2's parameters)"
    labels, wall, cpu = timed(run)
    if variant == "ours":
        _, warm, _ = timed(run)  # the UMAP cache hit (the warm re-run of notebook 2)
        extra["warm_seconds"] = warm
        from helpers.labels import keyword_labels
        from helpers.data import load_corpus

        corpus = load_corpus("course")
        df = corpus[corpus["has_abstract"]].reset_index(drop=True).iloc[: len(labels)]
        _, extra["keyword_labels_seconds"], _ = timed(keyword_labels, df, labels, top_n=5)
    n_clusters = len(set(labels.tolist()) - {-1})
    return {"n": len(embeddings), "seconds": wall, "cpu_seconds": cpu, "settings": settings,
            "n_clusters": n_clusters, "noise_share": float(np.mean(labels == -1)),
            "peak_mib": peak_mib(), "rss_before_mib": rss_before, **extra}


def _titles_by_cluster(k: int) -> dict:
    from sklearn.cluster import KMeans

    from helpers.data import load_corpus

    corpus = load_corpus("course")
    df = corpus[corpus["has_abstract"]].reset_index(drop=True)
    labels = KMeans(k, n_init=4, random_state=SEED).fit_predict(_course_embeddings())
    return df.groupby(labels)["title"].apply(list).to_dict()


def job_label(variant: str, n: int | None, max_new_tokens: int = 32) -> dict:
    """Label ``n`` clusters with the packaged generator: one ``pipeline`` call per cluster, or batched ``label_clusters``.

    Both send the same chats (``cluster_label_messages``: system prompt, worked
    examples, 10 sampled titles) and decode greedily for ``max_new_tokens`` with
    the course's repetition penalty, so their answers can be compared.
    """
    from helpers.labels import LABEL_REPETITION_PENALTY, cluster_label_messages, label_clusters, sample_titles
    from helpers.models import load_generator, model_info

    k = n or 8
    titles = _titles_by_cluster(k)
    pipe = load_generator()
    info = {**device_and_threads(), "model": model_info(pipe).name, "max_new_tokens": max_new_tokens}
    clusters = sorted(titles)
    if variant == "baseline":
        def run():
            answers = []
            for c in clusters:
                chat = cluster_label_messages(sample_titles(titles[c], 10, 0))
                out = pipe(chat, max_new_tokens=max_new_tokens, do_sample=False,
                           repetition_penalty=LABEL_REPETITION_PENALTY)
                answers.append(out[0]["generated_text"][-1]["content"].strip())
            return answers

        settings = (f"pipe(chat, max_new_tokens={max_new_tokens}, do_sample=False, "
                    f"repetition_penalty={LABEL_REPETITION_PENALTY}), one call per cluster")
    else:
        batch_size = int(variant.partition(":")[2] or 8)

        def run():
            table = label_clusters(titles, pipe, n_titles=10, seed=0, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, cache=False)
            return table["answer"].tolist()

        settings = f"label_clusters(batch_size={batch_size}, greedy, same penalty), left-padded batches"
    answers, wall, cpu = timed(run)
    tokens = sum(len(pipe.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    return {"n": len(clusters), "seconds": wall, "cpu_seconds": cpu, "new_tokens": tokens,
            "tokens_per_s": tokens / wall, "answers": answers, "settings": settings, "peak_mib": peak_mib(), **info}


def job_extract(variant: str, n: int | None) -> dict:
    """Ask "bibliometric?" of every course PDF: whole first page per call, or ``ask_articles``, embeddings cold.

    "all-passages" is the path before the lexical prefilter (every passage embedded);
    "ours" embeds only the 12 passages per article that share most words with the definition.
    """
    from helpers import prompts
    from helpers.data import fetch_articles
    from helpers.extraction import ask_articles, course_judge, load_labels, resolve_question
    from helpers.generation import make_messages
    from helpers.models import load_generator
    from helpers.pdfs import read_articles

    # Cold embeddings too: a cache of this job's own, with only the converted models linked in.
    os.environ["SCISCI_CACHE"] = str(fresh_cache(Path(tempfile.mkdtemp(prefix="bench-extract-")), shared=("models",)))
    paths = fetch_articles()[: n or None]
    pages, status = read_articles(paths)
    pipe = load_generator()
    question_id, question, definition = resolve_question("bibliometric")
    if variant == "baseline":
        def run():
            answers = []
            for file in status["file"]:  # the same order as ask_articles' rows
                group = pages[pages["file"] == file]
                if group.empty:
                    answers.append(None)
                    continue
                first = group.sort_values("page")["text"].iloc[0]
                user = f"{question}\nDefinition: {definition}\n\nArticle (first page):\n{first}\n\nAnswer TRUE or FALSE."
                out = pipe(make_messages(user, prompts.EXTRACTION_SYSTEM), max_new_tokens=8, do_sample=False)
                answers.append(out[0]["generated_text"][-1]["content"].strip())
            return answers

        settings = "whole first page + question, pipe(..., max_new_tokens=8), one call per article"
    else:
        judge = course_judge("bibliometric", generator=False)  # fitted once, outside the timing
        candidates = None if variant == "all-passages" else 12

        def run():
            return ask_articles((pages, status), "bibliometric", generator=pipe, judge=judge, candidates=candidates,
                                cache=False)["combined"].tolist()

        settings = (f"ask_articles, embedding {'every passage' if candidates is None else '12 BM25 candidates per article'}"
                    ", top-3, constrained choice, batched")
    answers, wall, cpu = timed(run)
    n_ok = int((status["status"] == "ok").sum())
    # Accuracy on the hand labels of the PDFs (test-only: nothing was fitted on them); free text counts by its first word.
    labels = load_labels().query("source == 'pdf' and question_id == 'bibliometric'").set_index("file")["label"]
    said = {f: "TRUE" if str(a).strip().upper().startswith("TRUE") else "FALSE"
            for f, a in zip(status["file"], answers)} if len(answers) == len(status) else {}
    right = [said[f] == label for f, label in labels.items() if f in said]
    return {"n": n_ok, "seconds": wall, "cpu_seconds": cpu, "articles_per_s": n_ok / wall, "answers": answers,
            "accuracy": sum(right) / len(right) if right else None, "n_labelled": len(right),
            "settings": settings, "peak_mib": peak_mib(), **device_and_threads()}


def _search_records():
    """All abstracts plus all PDF passages, as the records of one search index."""
    import pandas as pd

    from helpers.data import fetch_articles, load_corpus
    from helpers.pdfs import read_articles, split_passages
    from helpers.retrieval import label_passages

    corpus = load_corpus("course")
    abstracts = corpus[corpus["has_abstract"]].assign(source="abstract")
    pages, _ = read_articles(fetch_articles())
    passages = label_passages(split_passages(pages), corpus).assign(source="passage")
    return pd.concat([abstracts, passages], ignore_index=True)


def job_search(variant: str, n: int | None, repeats: int = 3) -> dict:
    """Median ms per query over the course query set: a Python loop over records, or ``search``.

    Timed three ways: a new query (embedding it included: ours forgets its
    remembered query vectors before each), the same query asked again (ours
    remembers its vector), and the index part alone with the query vectors
    embedded beforehand.
    """
    import numpy as np

    from helpers.embeddings import embed_texts
    from helpers.models import load_embedder
    from helpers.retrieval import _query_vector, _search, build_index, load_queries, search

    records = _search_records()
    if n:
        records = records.iloc[:n]
    embeddings = embed_texts(records["text"])  # not timed: computed once per corpus (and cached)
    embedder = load_embedder()
    queries = load_queries()["query"].tolist()
    if variant == "baseline":
        rows = [row for row in embeddings]

        def scan(q):
            scores = [(float(np.dot(q, row)), i) for i, row in enumerate(rows)]
            return sorted(scores, reverse=True)[:10]

        def one(query):
            return scan(embedder.encode(query, normalize_embeddings=True))

        def index_only(query, vector):
            return scan(vector)

        build_s = 0.0
        settings = "model.encode(query), then a Python loop of dot products over the records, sorted"
    else:
        method = variant.partition(":")[2] or "hybrid"
        index, build_s, _ = timed(build_index, records, embeddings=embeddings)

        def one(query):
            return search(index, query, k=10, method=method)

        def index_only(query, vector):
            return _search(index, query, vector, 10, method)

        settings = f"search(index, query, k=10, method={method!r}): matrix-vector product + BM25 + fusion"
    vectors = embed_texts(queries, embedder, cache=False, show_progress=False)
    for query, vector in zip(queries[:3], vectors):
        one(query), index_only(query, vector)  # first calls pay one-off costs (thread pools, lazy imports)
    whole, again, part = [], [], []
    for _ in range(repeats):
        for query, vector in zip(queries, vectors):
            _query_vector.cache_clear()
            whole.append(timed(one, query)[1])
            again.append(timed(one, query)[1])
            part.append(timed(index_only, query, vector)[1])
    if variant == "baseline":
        embed_one = embedder.encode
    else:
        def embed_one(query):
            _query_vector.cache_clear()
            return _query_vector(index.model, query)
    embed_only = [timed(embed_one, q)[1] for q in queries]
    return {"n": len(records), "n_queries": len(queries), "median_ms": 1000 * statistics.median(whole),
            "p90_ms": 1000 * float(np.percentile(whole, 90)), "repeat_median_ms": 1000 * statistics.median(again),
            "index_median_ms": 1000 * statistics.median(part),
            "query_embedding_median_ms": 1000 * statistics.median(embed_only),
            "build_seconds": build_s, "settings": settings, "peak_mib": peak_mib(), **device_and_threads()}


def job_load(variant: str, n: int | None) -> dict:
    """``load_generator()`` in a fresh process: the first load (dequantises if no copy is cached) and a second one."""
    t0 = time.perf_counter()
    from helpers.models import load_generator

    import_s = time.perf_counter() - t0
    from helpers import models

    pipe, first_s, _ = timed(load_generator)
    # Forget the loaded pipeline (models keeps it in an lru_cache on load_generator or a helper of it).
    for fn in (load_generator, getattr(models, "_load_pipeline", None)):
        getattr(fn, "cache_clear", lambda: None)()
    _, second_s, _ = timed(load_generator)
    return {"import_seconds": import_s, "first_seconds": first_s, "second_seconds": second_s,
            "source": models.model_info(pipe).source, "peak_mib": peak_mib(), **device_and_threads()}


def job_notebook2(variant: str, n: int | None) -> dict:
    """Notebook 2 run headless twice on the same cache: cold (nothing cached), then warm."""
    from run_notebooks import execute_notebook

    # Cold means cold: a cache of its own, with only the converted models linked.
    os.environ["SCISCI_CACHE"] = str(fresh_cache(Path(tempfile.mkdtemp(dir=BENCH_TMP)), shared=("models",)))
    runs = {}
    for label in ("cold", "warm"):
        _, wall, _ = timed(execute_notebook, REPO / "2_clustering.ipynb")
        runs[f"{label}_seconds"] = wall
    return {**runs, "ratio": runs["cold_seconds"] / runs["warm_seconds"], "peak_mib": peak_mib(children=True),
            **device_and_threads()}


# --------------------------------------------------------------------------- scaling jobs


def job_scale(stage: str, n: int) -> dict:
    """One stage at ``n`` resampled records; inputs (vectors, 5-D coordinates, labels) are files the run prepared."""
    import numpy as np

    from helpers.embeddings import embed_texts

    rows = resample_corpus(n)
    result = {"stage": stage, "n": n, "measured": True}
    rss_before = peak_mib()
    if stage == "embed":
        from helpers.models import load_embedder

        load_embedder()
        rss_before = peak_mib()
        vectors, wall, cpu = timed(embed_texts, rows["text"], cache=False)
        np.save(BENCH_TMP / f"vectors-{n}.npy", vectors)  # the later stages at this size use these
    elif stage in ("reduce", "reduce_pca50"):
        vectors = np.load(BENCH_TMP / f"vectors-{n}.npy")
        rss_before = peak_mib()
        if stage == "reduce":
            reduced, wall, cpu = timed(umap5, vectors)
            np.save(BENCH_TMP / f"reduced-{n}.npy", reduced)  # the cluster stage at this size uses these
        else:  # the fix proposed for UMAP at scale: PCA to 50-D first
            from sklearn.decomposition import PCA

            def run():
                x = PCA(50, random_state=SEED).fit_transform(vectors)
                return umap5(x / np.linalg.norm(x, axis=1, keepdims=True))

            _, wall, cpu = timed(run)
    elif stage == "cluster":
        import hdbscan

        from helpers.clustering import COURSE_HDBSCAN

        reduced = np.load(BENCH_TMP / f"reduced-{n}.npy")
        labels, wall, cpu = timed(hdbscan.HDBSCAN(**COURSE_HDBSCAN).fit_predict, reduced)
        np.save(BENCH_TMP / f"labels-{n}.npy", labels)
        result["n_clusters"] = len(set(labels.tolist()) - {-1})
    elif stage == "keywords":
        from helpers.labels import keyword_labels

        labels = np.load(BENCH_TMP / f"labels-{n}.npy")
        _, wall, cpu = timed(keyword_labels, rows, labels, top_n=5)
    elif stage == "search":
        from helpers.models import load_embedder
        from helpers.retrieval import _query_vector, _search, build_index, load_queries, search

        vectors = np.load(BENCH_TMP / f"vectors-{n}.npy")
        load_embedder()
        index, build_s, _ = timed(build_index, rows, embeddings=vectors)
        queries = load_queries()["query"].tolist()
        search(index, queries[0])
        _query_vector.cache_clear()  # every timed query is a new one
        wall, cpu = statistics.median(timed(search, index, q, k=10)[1] for q in queries), None
        query_vectors = embed_texts(queries, index.model, cache=False, show_progress=False)
        result["index_seconds"] = statistics.median(timed(_search, index, q, v, 10, "hybrid")[1]
                                                    for q, v in zip(queries, query_vectors))
        result["build_seconds"] = build_s
    else:
        raise ValueError(f"unknown scaling stage {stage!r}")
    result.update(seconds=wall, cpu_seconds=cpu, rss_before_mib=rss_before, peak_mib=peak_mib())
    return result


def job_ray_embed(variant: str, n: int | None, out: str) -> dict:
    """Embed records with ``embed_texts`` in this process, or with Ray Data over ``ray:K`` actors (scale/embed_corpus.py).

    ``variant`` is ``embed_texts``, ``ray:1`` or ``ray:2``, with ``@N`` for N
    resampled records (else the course abstracts). Ray gets a local cluster of
    K actors x (cores / K) threads; its time runs from reading the Parquet
    records to the written vectors (actors starting and loading the model
    included), not ``ray.init`` (a real cluster is up before the job).
    """
    import numpy as np
    import pandas as pd

    kind, _, size = variant.partition("@")
    texts = resample_corpus(n or int(size))["text"].tolist() if size else course_texts(n)
    info = device_and_threads()
    cores = os.cpu_count() or 1
    if kind == "embed_texts":
        from helpers.embeddings import embed_texts
        from helpers.models import load_embedder

        _, load_s, _ = timed(load_embedder)
        vectors, wall, cpu = timed(embed_texts, texts, cache=False)
        settings, extra = f"embed_texts(texts) in one process, {info['torch_threads']} torch threads", {"load_seconds": load_s}
    else:
        import ray

        from scale.embed_corpus import embed_corpus, load_vectors

        actors = int(kind.partition(":")[2])
        threads = max(1, cores // actors)
        records = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
        source, destination = Path(out).with_suffix(".records.parquet"), Path(out).with_suffix(".vectors")
        records.to_parquet(source)
        (_, init_s, _) = timed(ray.init, num_cpus=actors * threads + 1, include_dashboard=False, log_to_driver=False,
                               configure_logging=False, object_store_memory=256 * 2**20)
        try:
            summary, wall, cpu = timed(embed_corpus, source, destination, actors=actors, cpus_per_actor=threads,
                                       batch_size=128)
        finally:
            ray.shutdown()
        vectors = load_vectors(destination, records["id"])
        settings = (f"scale/embed_corpus.py: Ray Data map_batches over {actors} actor(s) x {threads} thread(s), "
                    "batches of 128 records, Parquet in and out")
        extra = {"ray_init_seconds": init_s, "actors": actors, "threads_per_actor": threads}
        cpu = None  # the work runs in Ray's worker processes, not this one
    np.save(out, vectors.astype(np.float32))
    return {"n": len(texts), "seconds": wall, "cpu_seconds": cpu, "docs_per_s": len(texts) / wall,
            "settings": settings, "peak_mib": peak_mib(), **info, **extra}


def job_endpoint(variant: str, n: int | None) -> dict:
    """Cluster-label prompts through a live ``transformers serve`` at concurrency K (``conc:K``), or ``local`` batches.

    The chats are ``label_clusters``' (system prompt, worked examples, 10 sampled
    titles of a random group of course records; greedy, 32 new tokens, the
    course's repetition penalty). The server runs the packaged SmolLM2 on the
    CPU, started by this job and warmed with one request first; the time is
    of the requests only.
    """
    import numpy as np

    from helpers.data import load_corpus
    from helpers.endpoint import Endpoint
    from helpers.labels import label_clusters
    from helpers.models import load_generator
    from scale.serve import packaged_model_folder, transformers_server

    k = n or 8
    corpus = load_corpus("course")
    groups = np.random.default_rng(SEED).integers(0, k, len(corpus))
    titles = corpus.groupby(groups)["title"].apply(list).to_dict()
    info = device_and_threads()

    def run(generator):
        table = label_clusters(titles, generator, n_titles=10, seed=0, max_new_tokens=32, cache=False)
        return table["answer"].tolist(), table["error"].notna().sum()

    if variant == "local":
        pipe = load_generator()
        (answers, failed), wall, cpu = timed(run, pipe)
        settings = "label_clusters(generator=local pipeline), left-padded batches of 8, in this process"
    else:
        concurrency = int(variant.partition(":")[2])
        folder = packaged_model_folder()
        with transformers_server(folder, device="cpu", log_path=BENCH_TMP / f"serve-{concurrency}.log") as url:
            endpoint = Endpoint(url, str(folder), server="transformers", concurrency=concurrency, timeout=600, retries=1)
            label_clusters({0: titles[0]}, endpoint, n_titles=10, seed=1, cache=False)  # warm-up
            (answers, failed), wall, cpu = timed(run, endpoint)
        settings = f"label_clusters(generator=Endpoint(transformers serve, concurrency={concurrency}))"
        cpu = None  # generation runs in the server's process
    return {"n": len(titles), "seconds": wall, "cpu_seconds": cpu, "prompts_per_s": len(titles) / wall,
            "failed": int(failed), "answers": answers, "settings": settings, "peak_mib": peak_mib(), **info}


JOBS = {"embed": job_embed, "cluster": job_cluster, "label": job_label, "extract": job_extract,
        "search": job_search, "load": job_load, "notebook2": job_notebook2, "ray_embed": job_ray_embed,
        "endpoint": job_endpoint}
BENCH_TMP = Path(os.environ.get("SCISCI_BENCH_TMP", tempfile.gettempdir()))


# --------------------------------------------------------------------------- running jobs (parent process)


def fresh_cache(root: Path, shared=("models", "embeddings")) -> Path:
    """An empty course cache under ``root`` that links the ``shared`` parts of the real one.

    Converted models are never re-made. Stored embeddings are inputs of the
    later stages, not what they measure (the embed stage times with
    ``cache=False``); UMAP results and generations start empty.
    """
    from helpers.cache import cache_dir

    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for kind in shared:
        link = cache / kind
        if not link.exists():
            link.symlink_to(cache_dir(kind), target_is_directory=True)
    return cache


def run_job(args: list[str], env: dict, timeout: int = 3600) -> dict:
    """Run ``bench/run.py --job ...`` in a fresh process; its result dict (or an ``error``)."""
    cmd = [sys.executable, str(Path(__file__)), "--job", *args]
    print("  $", " ".join(cmd[2:]), flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        print("    failed:", *tail, sep="\n      ", flush=True)
        return {"error": " | ".join(tail)[-500:]}
    result = json.loads(lines[-1][len(MARK):])
    result["process_seconds"] = time.perf_counter() - start
    print("    ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "answers"}, flush=True)
    return result


def machine() -> dict:
    import torch

    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def stage_variants(stage: str, device: str) -> list[str]:
    """The variants of a stage, the baseline first; GPU runs add larger batches."""
    gpu = device == "cuda"
    return {
        "embed": ["baseline", "torch"] + (["torch:256"] if gpu else ["onnx", "onnx-int8:8"]),
        "cluster": ["baseline", "ours", "pca50"],
        "label": ["baseline", "batched:8"] + (["batched:32"] if gpu else []),
        "extract": ["baseline", "all-passages", "ours"],
        "search": ["baseline", "ours:hybrid", "ours:dense"],
        "load": ["fresh"],
        "notebook2": ["cold-warm"],
        "ray_embed": [f"{kind}{size}" for size in ("", f"@{RESAMPLED}") for kind in ("embed_texts", "ray:1", "ray:2")],
        "endpoint": ["local", "conc:1", "conc:4", "conc:8"],
    }[stage]


def run_stages(stages: list[str], quick: bool, env: dict, tmp: Path, budget_s: float | None = None) -> dict:
    from helpers.models import get_device

    device = get_device()
    size = {"embed": 64, "cluster": 300, "label": 3, "extract": 3, "search": 400, "ray_embed": 64, "endpoint": 3}
    results = {}
    for stage in stages:
        print(f"[{time.strftime('%H:%M:%S')}] stage {stage} (load {os.getloadavg()[0]:.2f})", flush=True)
        n = size.get(stage) if quick else None
        stage_results, load = {}, os.getloadavg()
        for variant in stage_variants(stage, device):
            args = [stage, variant, str(n or 0)]
            if stage in ("embed", "ray_embed"):
                args.append(str(tmp / f"{stage}-{variant.replace(':', '-')}.npy"))
            estimate = _variant_estimate(stage, variant, stage_results, budget_s, n)
            if estimate:
                stage_results[variant] = estimate
                print(f"  {variant}: {estimate['note']}", flush=True)
                continue
            stage_results[variant] = run_job(args, env, timeout=3600)
        results[stage] = {"variants": stage_results, "loadavg_start": load, "loadavg_end": os.getloadavg(), "quick": quick,
                          "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        if stage == "embed":
            results[stage]["agreement"] = embed_agreement(tmp, stage_results)
        if stage == "ray_embed":
            results[stage]["agreement"] = embed_agreement(tmp, stage_results, stage)
        _store_stage(stage, results[stage])  # kept even if a later stage is interrupted
    return results


def _store_stage(stage: str, result: dict) -> None:
    stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    stored.setdefault("stages", {})[stage] = result
    RESULTS_JSON.write_text(json.dumps(stored, indent=1, default=float))


def embed_agreement(tmp: Path, variants: dict, stage: str = "embed") -> dict:
    """Per-record cosine between each variant's vectors and the baseline's (of the same size): min and mean."""
    import numpy as np

    out = {}
    for variant in variants:
        size = variant.partition("@")[2]
        baseline = ("embed_texts" + (f"@{size}" if size else "")) if stage == "ray_embed" else "baseline"
        path, base_path = (tmp / f"{stage}-{v.replace(':', '-')}.npy" for v in (variant, baseline))
        if variant != baseline and path.is_file() and base_path.is_file():
            cos = (np.load(path) * np.load(base_path)).sum(axis=1)
            out[variant] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                            "below_0.99": int((cos < 0.99).sum())}
    return out


def _variant_estimate(stage: str, variant: str, done: dict, budget_s: float | None, n: int | None = None) -> dict | None:
    """A ray_embed variant at the resampled size whose time, linear from its course-size run, exceeds ``budget_s``.

    Returns the extrapolated result (marked ``measured: False``), or None: measure it.
    """
    kind, _, size = variant.partition("@")
    small = done.get(kind, {})
    if stage != "ray_embed" or not size or budget_s is None or not small.get("docs_per_s"):
        return None
    n = n or int(size)  # --quick: the small size
    seconds = n / small["docs_per_s"]
    if seconds <= budget_s:
        return None
    return {"n": n, "seconds": seconds, "docs_per_s": small["docs_per_s"], "measured": False,
            "settings": small.get("settings", ""),
            "note": f"extrapolated linearly from {small['n']:,} records: would take ~{seconds / 60:.0f} min, "
                    f"over the --budget of {budget_s / 60:.0f} min"}


def _estimate(done: list[dict], n: int) -> tuple[float, str] | None:
    """Seconds for ``n`` records from a stage's measured sizes: a power law through the two largest, else linear."""
    import math

    points = sorted((r["n"], r["seconds"]) for r in done if r.get("measured") and r.get("seconds"))
    # One point says little where a fixed cost (numba compiling UMAP, imports) dominates small sizes:
    # only embedding, which is linear from the start, is extrapolated from a single size.
    if not points or (len(points) == 1 and done[0]["stage"] != "embed"):
        return None
    if len(points) == 1:
        (n1, t1), exponent = points[0], 1.0
    else:
        (n0, t0), (n1, t1) = points[-2:]
        exponent = max(1.0, math.log(t1 / t0) / math.log(n1 / n0))
    return t1 * (n / n1) ** exponent, f"extrapolated from {n1:,} records as n^{exponent:.2f}"


def _stand_in(tmp: Path, kind: str, n: int, sizes: list[int], env: dict) -> str:
    """Make ``{kind}-{n}.npy`` (vectors or reduced) from the largest size that has one; returns a note."""
    import numpy as np

    have = [m for m in sizes if (tmp / f"{kind}-{m}.npy").is_file()]
    if have:
        source, origin = np.load(tmp / f"{kind}-{max(have)}.npy"), f"the {max(have):,} records"
    else:
        source, origin = _course_vectors(env), "the course's real embeddings"
    if kind == "vectors":
        np.save(tmp / f"{kind}-{n}.npy", resample_embeddings(source, n))
    else:  # 5-D coordinates: rows drawn with replacement, jittered by 1% of their spread
        rng = np.random.default_rng(SEED)
        picked = source[rng.integers(0, len(source), n)]
        np.save(tmp / f"{kind}-{n}.npy", (picked + rng.normal(0, 0.01 * source.std(axis=0), picked.shape)).astype(np.float32))
    return f"{kind} resampled with noise from {origin} (the stage producing them was not measured at this size)"


def run_scaling(sizes: list[int], stages: list[str], env: dict, tmp: Path, budget_s: float,
                previous: list[dict] | None = None) -> list[dict]:
    """Each stage at each size in its own process.

    A stage whose estimated time at a size exceeds ``budget_s`` is extrapolated
    (power law through its two largest measured sizes) and marked so; a later
    stage then gets stand-in inputs resampled from the largest size that has real
    ones. ``previous`` rows (from ``--resume``) are kept and not re-measured.
    """
    rows = [r for r in (previous or []) if r.get("measured") and "error" not in r]
    for n in sizes:
        for stage in stages:
            if any(r["stage"] == stage and r["n"] == n for r in rows):
                print(f"  {stage} at {n}: kept from the previous run", flush=True)
                continue
            needs = {"reduce": "vectors", "reduce_pca50": "vectors", "search": "vectors", "cluster": "reduced"}.get(stage)
            note = ""
            if needs and not (tmp / f"{needs}-{n}.npy").is_file():
                note = _stand_in(tmp, needs, n, sizes, env)
            estimate = _estimate([r for r in rows if r["stage"] == stage], n)
            if estimate and estimate[0] > budget_s:
                rows.append({"stage": stage, "n": n, "seconds": estimate[0], "measured": False,
                             "note": f"{stage}: {estimate[1]} (would take ~{estimate[0] / 60:.0f} min)"})
                print(f"  {stage} at {n}: {estimate[1]}, {estimate[0]:.0f} s", flush=True)
                continue
            result = {"stage": stage, "n": n, **run_job(["scale", stage, str(n)], env, timeout=int(budget_s * 3) + 600)}
            if note:
                result["note"] = f"{stage}: {note}"
            rows.append(result)
            _save_scaling(rows)
    return rows


def _course_vectors(env: dict):
    import numpy as np

    path = BENCH_TMP / "course-vectors.npy"
    code = ("import sys, numpy as np; sys.path.insert(0, %r); from bench.run import _course_embeddings;"
            "np.save(%r, _course_embeddings())") % (str(REPO), str(path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)
    return np.load(path)


def _save_scaling(rows: list[dict]) -> None:
    import pandas as pd

    columns = ["stage", "n", "seconds", "cpu_seconds", "peak_mib", "rss_before_mib", "measured", "note",
               "build_seconds", "index_seconds", "n_clusters"]
    pd.DataFrame(rows).reindex(columns=columns).to_csv(SCALING_CSV, index=False)


# --------------------------------------------------------------------------- reporting


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated, from {', '.join(STAGES)} (default: all but the last two)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--scaling", action="store_true", help="run the scaling study instead of the stages")
    parser.add_argument("--sizes", default="1000,10000,100000", help="record counts for --scaling")
    parser.add_argument("--scaling-stages", default=",".join(SCALING_STAGES))
    parser.add_argument("--budget", type=float, default=900,
                        help="seconds; a scaling stage (or a ray_embed variant at 10,000 records) estimated to take "
                             "longer at a size is extrapolated, and marked so")
    parser.add_argument("--resume", action="store_true", help="--scaling: keep the measured rows of bench/scaling.csv")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per job (OMP_NUM_THREADS); default all cores. On a machine shared with "
                             "other work, 1 avoids threads waiting on each other at every small operation")
    parser.add_argument("--report", action="store_true", help="only rewrite RESULTS.md (and scaling.md/png) from the stored figures")
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.job:  # inside a job process
        kind, *rest = args.job
        if kind == "scale":
            result = job_scale(rest[0], int(rest[1]))
        else:
            variant, n = rest[0], int(rest[1]) or None
            result = JOBS[kind](variant, n, *rest[2:])
        print(MARK + json.dumps(result, default=float), flush=True)
        return

    from bench.report import write_results, write_scaling

    if args.report:
        stored = json.loads(RESULTS_JSON.read_text())
        sc = stored.get("scaling")
        if not sc and SCALING_CSV.is_file():  # a scaling run that was stopped: the sizes it finished
            import pandas as pd

            rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
                    for r in pd.read_csv(SCALING_CSV).to_dict("records")]
            sc = {"rows": rows, "seconds": float("nan"), "partial": True}
        if sc:
            write_scaling(sc["rows"], sc.get("machine", machine()), sc["seconds"], sc.get("loadavg_end", os.getloadavg()))
        write_results(stored)
        return

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scisci-bench-") as folder:
        tmp = Path(folder)
        env = {**os.environ, "SCISCI_CACHE": str(fresh_cache(tmp)), "SCISCI_OUTPUTS": str(tmp / "outputs"),
               "SCISCI_BENCH_TMP": str(tmp), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
               "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
        if args.threads:
            env.update({k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})
        data = os.environ.get("SCISCI_DATA_DIR") or (REPO.parent / "shared" / "data")
        if Path(data, "science_of_science.csv").is_file():
            env["SCISCI_DATA_DIR"] = str(data)
        if args.scaling:
            sizes = [int(s) for s in args.sizes.split(",")]
            if args.quick:
                sizes = [min(s, 2000) // 10 for s in sizes]
            previous = None
            if args.resume and SCALING_CSV.is_file():
                import pandas as pd

                previous = [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
                            for r in pd.read_csv(SCALING_CSV).to_dict("records")]
            rows = run_scaling(sizes, args.scaling_stages.split(","), env, tmp, args.budget, previous)
            write_scaling(rows, machine(), time.perf_counter() - start, os.getloadavg())
        else:
            stages = [s for s in args.stages.split(",") if s]
            unknown = set(stages) - set(STAGES)
            if unknown:
                parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
            load_start = os.getloadavg()
            results = run_stages(stages, args.quick, env, tmp, args.budget)
            stored = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
            stored.setdefault("stages", {}).update(results)
            runs = stored.setdefault("runs", [])
            previous = stored.get("last_run")
            if previous and not previous.get("quick") and previous not in runs:
                runs.append(previous)
            if not args.quick:  # RESULTS.md lists every full run whose figures it still holds
                stored["runs"] = [r for r in runs if set(r["stages"]) - set(stages)]
            stored["last_run"] = {"stages": stages, "quick": args.quick, "seconds": time.perf_counter() - start,
                                  "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                                  "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                                  "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine()}
            if not args.quick:
                stored["runs"].append(stored["last_run"])
            RESULTS_JSON.write_text(json.dumps(stored, indent=1, default=float))
            write_results(stored)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
