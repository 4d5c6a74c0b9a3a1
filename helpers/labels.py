"""Cluster labels from the records themselves: author keywords (PMI) and c-TF-IDF terms; no model here.

Every labeller takes the records ``df`` and their cluster ids ``clusters`` (one per row, -1 for noise)
and returns one row per cluster with ``cluster``, ``method``, ``label`` (the terms joined by "; ") and
``terms`` (a list, best first), then columns of its own; ``compare_labels`` sets them side by side, with
an instruct model's labels (``helpers.llm_labels.label_clusters``, the same input and shape) too::

    compare_labels(keyword_labels(df, clusters), ctfidf_labels(df, clusters), label_clusters(df, clusters))
    check_labels(df, clusters, llm_labels, reference=keyword_labels(df, clusters))   # measured, not read

``check_labels`` is the only function here that runs a model: the sentence embedder, to compare labels with titles.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from helpers.checks import check_clusters, require_columns
from helpers.data import parse_keywords

LABEL_COLUMNS = ["cluster", "method", "label", "terms"]


def _per_cluster(scores: pd.DataFrame, term: str, method: str) -> pd.DataFrame:
    """A long frame of ranked terms (cluster, rank, ``term``) as one row per cluster in the labels' shape."""
    terms = scores.sort_values(["cluster", "rank"]).groupby("cluster", sort=True)[term].agg(list)
    return pd.DataFrame({"cluster": terms.index.astype(int), "method": method,
                         "label": terms.map("; ".join).to_numpy(), "terms": terms.to_numpy()})


def ctfidf_scores(texts, clusters, top_n: int = 5) -> pd.DataFrame:
    """Top ``top_n`` terms per cluster by class-based TF-IDF: a long frame of cluster, rank (1 = best), term, score.

    A cluster's texts are one document: ``tf(term, cluster) * log(1 + mean words per cluster / count of term)``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    texts = ["" if t is None or (not isinstance(t, str) and pd.isna(t)) else str(t) for t in texts]
    clusters = check_clusters(clusters, len(texts), what="texts")
    # one pass over the texts (a loop per cluster would grow with records x clusters)
    by_class = pd.Series(texts).groupby(clusters).agg(" ".join)
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(by_class.tolist()).toarray().astype(float)
    except ValueError as err:  # only stop words or empty strings
        raise ValueError(f"no usable words in texts for c-TF-IDF ({err})") from None
    terms = vectorizer.get_feature_names_out()
    words_per_class = counts.sum(axis=1, keepdims=True)
    scores = counts / np.maximum(words_per_class, 1) * np.log(1 + words_per_class.mean() / counts.sum(axis=0))
    rows = []
    for c, row in zip(by_class.index, scores):
        for rank, j in enumerate(np.argsort(-row, kind="stable")[:top_n], start=1):
            if row[j] > 0:
                rows.append({"cluster": int(c), "rank": rank, "term": terms[j], "score": float(row[j])})
    return pd.DataFrame(rows, columns=["cluster", "rank", "term", "score"])


def ctfidf_labels(df: pd.DataFrame, clusters, top_n: int = 5) -> pd.DataFrame:
    """Each cluster's ``top_n`` c-TF-IDF terms (``ctfidf_scores`` of ``df``'s ``text``, else its titles), one row
    per cluster."""
    return _per_cluster(ctfidf_scores(df["text"] if "text" in df else df["title"], clusters, top_n), "term", "c-TF-IDF")


def _folded(keyword: str) -> str:
    """A keyword reduced to its letters and digits, so "Meta-science" and "metascience" are one."""
    return re.sub(r"[^0-9a-z]", "", keyword.lower())


def keyword_scores(df: pd.DataFrame, clusters, top_n: int = 5, min_count: int = 3, exclude=()) -> pd.DataFrame:
    """Most characteristic author keywords per cluster: cluster, rank, keyword, n_records, pmi, score.

    Score = P(kw | cluster) * log(P(kw | cluster) / P(kw)): PMI weighted by how common the keyword is in
    the cluster, as plain PMI would crown keywords of three papers. Probabilities are over records with
    keywords; a keyword needs ``min_count`` records of the cluster. A cluster may have no row.
    ``exclude``: keywords never used as labels (compared without case, spaces or hyphens), such as the
    corpus's search terms: a keyword a third of the records carry still scores high where most do.
    """
    clusters = check_clusters(clusters, len(df))
    dropped = {_folded(k) for k in ([exclude] if isinstance(exclude, str) else exclude)}
    parsed = [parse_keywords(v) for v in df["keywords"]] if "keywords" in df else [[] for _ in clusters]
    has_kw = np.array([len(k) > 0 for k in parsed])  # before exclusion: the other keywords' scores stay as they were
    keyword_lists = [[k for k in kws if _folded(k) not in dropped] for kws in parsed]
    n_total = int(has_kw.sum())
    overall = Counter(kw for kws in keyword_lists for kw in set(kws))
    rows = []
    for c in np.unique(clusters):
        members = [set(keyword_lists[i]) for i in np.flatnonzero((clusters == c) & has_kw)]
        scored = []
        for kw, count in Counter(kw for kws in members for kw in kws).items():
            p_in = count / len(members)
            pmi = math.log(p_in / (overall[kw] / n_total))
            if count >= min_count and pmi > 0:
                scored.append((p_in * pmi, count, kw, pmi))
        scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
        for rank, (score, count, kw, pmi) in enumerate(scored[:top_n], start=1):
            rows.append(dict(cluster=int(c), rank=rank, keyword=kw, n_records=count, pmi=pmi, score=score))
    return pd.DataFrame(rows, columns=["cluster", "rank", "keyword", "n_records", "pmi", "score"])


def keyword_labels(df: pd.DataFrame, clusters, top_n: int = 5, min_count: int = 3, exclude=()) -> pd.DataFrame:
    """Each cluster's ``top_n`` author keywords (``keyword_scores``, without those in ``exclude``), one row per
    cluster; a cluster without a keyword in ``min_count`` of its records gets c-TF-IDF terms (of texts, or
    titles); ``source`` says which."""
    clusters = check_clusters(clusters, len(df))
    scores = keyword_scores(df, clusters, top_n, min_count, exclude)
    table = _per_cluster(scores, "keyword", "keywords").assign(source="keywords")
    missing = sorted(set(np.unique(clusters).tolist()) - set(table["cluster"]))
    if missing:
        terms = ctfidf_labels(df, clusters, top_n)
        table = pd.concat([table, terms[terms["cluster"].isin(missing)].assign(method="keywords", source="c-TF-IDF")])
    return table.sort_values("cluster", ignore_index=True)


def compare_labels(*tables: pd.DataFrame) -> pd.DataFrame:
    """The labels of several labellers (``keyword_labels``, ``ctfidf_labels``, ``label_clusters``) side by side:
    one row per cluster, one ``label`` column per method, an empty cell where a labeller has no row."""
    if not tables:
        raise ValueError("pass at least one table of labels, e.g. compare_labels(keyword_labels(df, clusters), llm)")
    for table in tables:
        require_columns(table, LABEL_COLUMNS, "a table of labels", "pass the output of keyword_labels, "
                        "ctfidf_labels or label_clusters")
    long = pd.concat([t[["cluster", "method", "label"]] for t in tables], ignore_index=True)
    wide = long.pivot(index="cluster", columns="method", values="label").fillna("")
    wide = wide[list(dict.fromkeys(long["method"]))]  # methods in the order given
    return wide.rename_axis(columns=None).reset_index()


CHECK_COLUMNS = ["cluster", "method", "label", "own_rank", "own_similarity", "best_cluster", "reference_similarity",
                 "reference_rank", "passed"]


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def check_labels(df: pd.DataFrame, clusters, labels: pd.DataFrame, reference: pd.DataFrame | None = None,
                 embedder=None) -> pd.DataFrame:
    """Does each cluster's label describe its own titles better than the other clusters' titles?

    Each label (its terms joined by "; ") and every title of ``df`` are embedded (``embed_texts``, ``embedder``:
    the course's by default); a cluster's centroid is the mean of its titles' unit vectors. One row per
    cluster of ``labels`` (``LABEL_COLUMNS``): ``own_rank``, where its own centroid ranks among all clusters'
    centroids by cosine to the label (1 = best of ``n`` clusters), ``own_similarity`` (that cosine),
    ``best_cluster`` (the centroid it is closest to). With ``reference`` (e.g. ``keyword_labels``, one row per
    cluster): ``reference_similarity``, the cosine between the two labels of the cluster, and
    ``reference_rank``, where the cluster's own reference label ranks among all clusters' reference labels.
    ``passed``: own_rank 1 and, with a reference label for the cluster, reference_rank 1: the label points at
    its own cluster by the titles and by the other labeller's words. A label without terms (unparseable,
    failed) fails, with NaN in the numbers.
    """
    from helpers.embeddings import embed_texts
    from helpers.models import DEFAULT_EMBEDDER

    embedder = embedder or DEFAULT_EMBEDDER
    require_columns(df, ["title"], "df", "pass the clustered records, as to label_clusters")
    require_columns(labels, LABEL_COLUMNS, "labels", "pass the output of keyword_labels or label_clusters")
    clusters = check_clusters(clusters, len(df))
    ids = sorted(set(clusters.tolist()) - {-1})
    titles = df["title"].fillna("").astype(str).str.strip()
    kept = (clusters != -1) & (titles != "").to_numpy()
    vectors = embed_texts(titles[kept].tolist(), embedder)
    centroids = _unit_rows(np.stack([vectors[clusters[kept] == c].mean(axis=0) for c in ids]))
    texts = labels["terms"].map(lambda terms: "; ".join(terms) if isinstance(terms, list) else "")
    has_terms = (texts != "").to_numpy() & labels["cluster"].isin(ids).to_numpy()
    rows = [{"cluster": int(c), "method": m, "label": label} for c, m, label in
            zip(labels["cluster"], labels["method"], labels["label"])]
    label_vectors = {}  # row -> the label's unit vector, for the labels with terms; embedded once
    if has_terms.any():
        label_vectors = dict(zip(np.flatnonzero(has_terms), embed_texts(texts[has_terms].tolist(), embedder)))
        for i, vector in label_vectors.items():
            row, sims = rows[i], centroids @ vector
            own = ids.index(row["cluster"])
            row.update(own_rank=int(1 + (sims > sims[own]).sum()), own_similarity=float(sims[own]),
                       best_cluster=int(ids[int(np.argmax(sims))]))
    if reference is not None:
        _add_reference(rows, label_vectors, reference, embedder)
    for row in rows:
        row["passed"] = row.get("own_rank") == 1 and row.get("reference_rank", 1) == 1
    out = pd.DataFrame(rows).reindex(columns=CHECK_COLUMNS)
    return out.astype({"own_rank": "Int64", "best_cluster": "Int64", "reference_rank": "Int64"})


def _add_reference(rows: list[dict], label_vectors: dict, reference: pd.DataFrame, embedder) -> None:
    """``check_labels``' agreement with another labeller: cosine to the cluster's reference label and its rank
    (``label_vectors``: row -> the label's vector, as ``check_labels`` embedded it)."""
    from helpers.embeddings import embed_texts

    require_columns(reference, LABEL_COLUMNS, "reference", "pass the output of keyword_labels")
    reference = reference[reference["terms"].map(lambda t: isinstance(t, list) and len(t) > 0)]
    reference = reference.drop_duplicates("cluster").reset_index(drop=True)
    theirs = embed_texts(reference["terms"].map("; ".join).tolist(), embedder)
    position = {int(c): i for i, c in enumerate(reference["cluster"])}
    mine = [i for i in label_vectors if rows[i]["cluster"] in position]
    if not mine:
        return
    similarity = np.stack([label_vectors[i] for i in mine]) @ theirs.T
    for i, sims in zip(mine, similarity):
        own = position[rows[i]["cluster"]]
        rows[i].update(reference_similarity=float(sims[own]), reference_rank=int(1 + (sims > sims[own]).sum()))
