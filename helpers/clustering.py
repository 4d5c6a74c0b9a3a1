"""Stage 2: from embeddings to topics.

UMAP reduces the embeddings, HDBSCAN (or KMeans) groups them, author keywords
and c-TF-IDF terms label the groups, and two checks say how far to trust the
result: stability across seeds and a held-out citation prediction.

Everything is deterministic for a fixed ``random_state``. ``compute`` functions
return numpy/pandas objects; the ``plot_*`` functions take those results
first and only draw.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.cache import cache_dir, content_hash
from helpers.data import parse_keywords

NOISE = -1
NOISE_COLOUR = "#b0b0b0"


# --------------------------------------------------------------------------- checks


def _check_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (records x dimensions), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: there are no records to work with")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinite values in {bad} rows")
    return x


def _check_lengths(n_rows: int, labels, what: str = "df", other: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{other} must be 1-D, got shape {labels.shape}")
    if len(labels) != n_rows:
        raise ValueError(f"{what} has {n_rows} rows but {other} has {len(labels)}; they must match")
    return labels.astype(int)


# --------------------------------------------------------------------------- reduce and cluster


def reduce(
    embeddings,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.0,
    metric: str = "cosine",
    random_state: int = 42,
    cache: bool = False,
    **umap_kwargs,
) -> np.ndarray:
    """UMAP projection of ``embeddings`` (n, d) to (n, n_components) float32.

    With fewer records than ``n_neighbors + 1`` the neighbourhood is shrunk to
    ``n - 1`` and a note is printed, so a small corpus still runs. A fixed
    ``random_state`` makes UMAP single-threaded and the result reproducible.
    ``cache=True`` keeps the result on disk under a hash of the embeddings and
    the parameters (only with a fixed seed), so a re-run skips UMAP and its
    compilation. Extra keyword arguments (e.g. ``n_epochs``) go to ``umap.UMAP``.
    """
    x = _check_matrix(embeddings, "embeddings")
    n = x.shape[0]
    if n < n_components + 2 or n < 4:
        raise ValueError(
            f"embeddings has {n} rows; UMAP needs at least {max(4, n_components + 2)} "
            f"to find {n_components} dimensions"
        )
    if n_neighbors >= n:
        print(f"Note: only {n} records, so n_neighbors is reduced from {n_neighbors} to {n - 1}.")
        n_neighbors = n - 1
    params = dict(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                  metric=metric, random_state=random_state, **umap_kwargs)
    path = None
    if cache and random_state is not None:
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
        key = content_hash(digest, x.shape, str(x.dtype), params, version("umap-learn"))
        path = cache_dir("umap") / f"umap-{key}.npy"
        if path.is_file():
            return np.load(path)
    import umap  # slow to import (numba), so only when there is work to do

    with warnings.catch_warnings():
        # a seed makes UMAP single-threaded; that is the point, so the warning is noise here
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
        coords = umap.UMAP(**params).fit_transform(x).astype(np.float32)
    if path is not None:
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, coords)
        tmp.replace(path)
    return coords


def cluster(
    reduced,
    method: str = "hdbscan",
    min_cluster_size: int = 15,
    k: int | None = None,
    random_state: int = 42,
    **kwargs,
) -> np.ndarray:
    """Cluster labels (n,) int for the rows of ``reduced`` (n, d).

    ``method="hdbscan"``: density-based, finds the number of clusters itself
    and marks records that fit nowhere as noise (-1); extra keyword arguments
    (e.g. ``min_samples``, ``cluster_selection_method``) go to ``hdbscan.HDBSCAN``.
    ``method="kmeans"``: exactly ``k`` clusters, every record assigned.
    """
    x = np.asarray(reduced)
    if x.size == 0:
        raise ValueError("reduced is empty: there are no records to cluster")
    x = _check_matrix(x, "reduced")
    n = x.shape[0]
    method = str(method).lower()
    if method == "hdbscan":
        import hdbscan

        if n < min_cluster_size:
            raise ValueError(
                f"only {n} records but min_cluster_size={min_cluster_size}: "
                "lower min_cluster_size or add records"
            )
        model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, **kwargs)
        return model.fit_predict(x).astype(int)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        if k is None:
            raise ValueError('method="kmeans" needs the number of clusters: pass k=...')
        if k < 1 or k > n:
            raise ValueError(f"k must be between 1 and the number of records ({n}), got {k}")
        model = KMeans(n_clusters=k, n_init=10, random_state=random_state, **kwargs)
        return model.fit_predict(x).astype(int)
    raise ValueError(f'unknown method {method!r}: use "hdbscan" or "kmeans"')


# --------------------------------------------------------------------------- labels


def ctfidf_terms(texts, labels, top_n: int = 5) -> pd.DataFrame:
    """Top ``top_n`` terms per cluster by class-based TF-IDF.

    All texts of a cluster are treated as one document; a term scores high
    when it is frequent in that cluster and rare across clusters:
    ``tf(term, cluster) * log(1 + mean words per cluster / total count of term)``.
    Returns a long frame: cluster, rank (1 = best), term, score.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    texts = ["" if t is None or (not isinstance(t, str) and pd.isna(t)) else str(t) for t in texts]
    labels = _check_lengths(len(texts), labels, what="texts")
    # one pass over the texts (a loop per cluster would grow with records x clusters)
    by_class = pd.Series(texts).groupby(labels).agg(" ".join)
    classes, joined = by_class.index.to_numpy(), by_class.tolist()
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(joined).toarray().astype(float)
    except ValueError as err:  # only stop words or empty strings
        raise ValueError(f"no usable words in texts for c-TF-IDF ({err})") from None
    terms = vectorizer.get_feature_names_out()
    words_per_class = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(words_per_class, 1)
    idf = np.log(1 + words_per_class.mean() / counts.sum(axis=0))
    scores = tf * idf
    rows = []
    for c, row in zip(classes, scores):
        order = np.argsort(-row, kind="stable")[:top_n]
        for rank, j in enumerate(order, start=1):
            if row[j] > 0:
                rows.append({"cluster": int(c), "rank": rank, "term": terms[j], "score": float(row[j])})
    return pd.DataFrame(rows, columns=["cluster", "rank", "term", "score"])


def keyword_labels(df: pd.DataFrame, labels, top_n: int = 5, min_count: int = 3) -> pd.DataFrame:
    """Most characteristic author keywords per cluster.

    Score = P(kw | cluster) * log(P(kw | cluster) / P(kw)): pointwise mutual
    information weighted by how common the keyword is in the cluster, so a
    label is both specific to the cluster and shared by many of its records
    (plain PMI would crown keywords used by three papers). Probabilities are
    over records that have keywords; a keyword must occur in at least
    ``min_count`` records of the cluster. A cluster with no such keyword falls
    back to c-TF-IDF terms over ``df["text"]`` (``source`` says which).
    Returns a long frame: cluster, rank, keyword, n_records, pmi, score, source.
    """
    labels = _check_lengths(len(df), labels)
    keyword_lists = [parse_keywords(v) for v in df["keywords"]] if "keywords" in df else [[] for _ in labels]
    has_kw = np.array([len(k) > 0 for k in keyword_lists])
    n_total = int(has_kw.sum())
    overall = Counter(kw for kws in keyword_lists for kw in set(kws))
    columns = ["cluster", "rank", "keyword", "n_records", "pmi", "score", "source"]
    rows = []
    fallback = []
    for c in np.unique(labels):
        members = [set(keyword_lists[i]) for i in np.flatnonzero((labels == c) & has_kw)]
        in_cluster = Counter(kw for kws in members for kw in kws)
        scored = []
        for kw, count in in_cluster.items():
            if count < min_count:
                continue
            p_in = count / len(members)
            pmi = math.log(p_in / (overall[kw] / n_total))
            if pmi > 0:
                scored.append((p_in * pmi, count, kw, pmi))
        if not scored:
            fallback.append(int(c))
            continue
        scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
        for rank, (score, count, kw, pmi) in enumerate(scored[:top_n], start=1):
            rows.append(dict(cluster=int(c), rank=rank, keyword=kw, n_records=count, pmi=pmi, score=score, source="keywords"))
    if fallback:
        texts = df["text"] if "text" in df else df["title"]
        terms = ctfidf_terms(list(texts), labels, top_n=top_n)
        for r in terms[terms["cluster"].isin(fallback)].itertuples():
            rows.append(dict(cluster=r.cluster, rank=r.rank, keyword=r.term, n_records=np.nan, pmi=np.nan, score=r.score, source="c-tf-idf"))
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["cluster", "rank"], ignore_index=True)


def cluster_table(
    df: pd.DataFrame, labels, top_n: int = 5, n_examples: int = 3, random_state: int = 42
) -> pd.DataFrame:
    """One row per cluster: cluster, size, share, top keywords, top c-TF-IDF terms, example titles.

    Clusters are sorted by size; the noise group (-1), if any, is the last row
    and flagged in ``is_noise``. Example titles are a seeded random sample.
    """
    labels = _check_lengths(len(df), labels)
    kw = keyword_labels(df, labels, top_n=top_n)
    texts = df["text"] if "text" in df else df["title"]
    terms = ctfidf_terms(list(texts), labels, top_n=top_n)
    rng = np.random.default_rng(random_state)
    titles = df["title"].astype(str).to_numpy()
    sizes = pd.Series(labels).value_counts()
    order = [c for c in sizes.index if c != NOISE] + ([NOISE] if NOISE in sizes.index else [])
    rows = []
    for c in order:
        idx = np.flatnonzero(labels == c)
        picks = rng.choice(idx, size=min(n_examples, len(idx)), replace=False)
        rows.append(
            {
                "cluster": int(c),
                "is_noise": c == NOISE,
                "size": int(sizes[c]),
                "share": round(sizes[c] / len(labels), 3),
                "top_keywords": "; ".join(kw.loc[kw["cluster"] == c, "keyword"]),
                "top_terms": "; ".join(terms.loc[terms["cluster"] == c, "term"]),
                "example_titles": " | ".join(titles[sorted(picks)]),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- checks on the result


def stability(
    embeddings,
    seeds,
    reference_labels,
    n_components: int = 5,
    n_neighbors: int = 15,
    min_dist: float = 0.0,
    metric: str = "cosine",
    method: str = "hdbscan",
    min_cluster_size: int = 15,
    k: int | None = None,
    umap_kwargs: dict | None = None,
    cache: bool = False,
    **cluster_kwargs,
) -> pd.DataFrame:
    """Re-run reduce + cluster with other seeds and compare with ``reference_labels``.

    One row per seed: seed, n_clusters, noise_share, ari (adjusted Rand index
    over all records, noise counted as its own group) and ari_clustered (only
    records that are not noise in either run; NaN if fewer than 2).
    Pass the same UMAP and clustering parameters as the reference run (extra
    keyword arguments go to :func:`cluster`), or the comparison is moot;
    ``cache`` is passed on to :func:`reduce`.
    """
    from sklearn.metrics import adjusted_rand_score

    x = _check_matrix(embeddings, "embeddings")
    reference = _check_lengths(x.shape[0], reference_labels, what="embeddings", other="reference_labels")
    rows = []
    for seed in seeds:
        coords = reduce(x, n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                        metric=metric, random_state=int(seed), cache=cache, **(umap_kwargs or {}))
        labels = cluster(coords, method=method, min_cluster_size=min_cluster_size, k=k,
                         random_state=int(seed), **cluster_kwargs)
        both = (labels != NOISE) & (reference != NOISE)
        rows.append(
            {
                "seed": int(seed),
                "n_clusters": int(len(set(labels) - {NOISE})),
                "noise_share": float(np.mean(labels == NOISE)),
                "ari": float(adjusted_rand_score(reference, labels)),
                "ari_clustered": float(adjusted_rand_score(reference[both], labels[both])) if both.sum() >= 2 else np.nan,
            }
        )
    return pd.DataFrame(rows)


def predict_citations(
    embeddings,
    df: pd.DataFrame,
    test_size: float = 0.25,
    random_state: int = 42,
    reference_year: int | None = None,
) -> pd.DataFrame:
    """Held-out R² for predicting log1p(citations) from embeddings + age vs age alone.

    Age = ``reference_year`` (default: the latest year in ``df``) minus year;
    both models get age and log1p(age), since citations grow roughly with the
    log of age. Ridge regression on standardised features; the penalty alpha is
    chosen by leave-one-out cross-validation on the training split only, and
    R² is measured on the held-out split. Rows with missing year or citations
    are dropped. Returns one row per model: model, n_features, alpha,
    r2_train, r2_test, n_train, n_test.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _check_matrix(embeddings, "embeddings")
    if len(df) != x.shape[0]:
        raise ValueError(f"df has {len(df)} rows but embeddings has {x.shape[0]}; they must match")
    year = pd.to_numeric(df["year"], errors="coerce").to_numpy(dtype=float)
    cites = pd.to_numeric(df["citations"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(year) & np.isfinite(cites)
    if keep.sum() < 20:
        raise ValueError(f"only {int(keep.sum())} records with year and citations; need at least 20")
    ref = np.nanmax(year[keep]) if reference_year is None else reference_year
    age = np.clip(ref - year[keep], 0, None)
    age_features = np.column_stack([age, np.log1p(age)])
    y = np.log1p(np.clip(cites[keep], 0, None))
    feature_sets = {
        "embeddings + age": np.hstack([x[keep], age_features]),
        "age only": age_features,
    }
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=random_state)
    alphas = np.logspace(-2, 5, 15)
    rows = []
    for name, features in feature_sets.items():
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
        model.fit(features[idx_train], y[idx_train])
        rows.append(
            {
                "model": name,
                "n_features": features.shape[1],
                "alpha": float(model[-1].alpha_),
                "r2_train": r2_score(y[idx_train], model.predict(features[idx_train])),
                "r2_test": r2_score(y[idx_test], model.predict(features[idx_test])),
                "n_train": len(idx_train),
                "n_test": len(idx_test),
            }
        )
    return pd.DataFrame(rows)


def export_frame(df: pd.DataFrame, labels, coords2d) -> pd.DataFrame:
    """``df`` plus ``cluster``, ``x``, ``y`` columns, with list-valued keywords ``; ``-joined for CSV."""
    labels = _check_lengths(len(df), labels)
    coords = _check_matrix(coords2d, "coords2d")
    if coords.shape != (len(df), 2):
        raise ValueError(f"coords2d must have shape ({len(df)}, 2), got {coords.shape}")
    out = df.copy()
    if "keywords" in out:
        out["keywords"] = ["; ".join(parse_keywords(v)) for v in out["keywords"]]
    out["cluster"] = labels
    out["x"] = coords[:, 0]
    out["y"] = coords[:, 1]
    return out


# --------------------------------------------------------------------------- plots


def _colours(labels) -> dict[int, str]:
    """A colour per cluster (tab20 without its greys, cycled), grey for noise."""
    import matplotlib

    # tab20's two greys (entries 14, 15) would be mistaken for noise
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i not in (14, 15)]
    clusters = sorted(set(int(c) for c in labels) - {NOISE})
    colours = {c: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, c in enumerate(clusters)}
    colours[NOISE] = NOISE_COLOUR
    return colours


def plot_clusters(coords2d, labels, title: str | None = None, path=None, point_size: float = 8, annotate: bool = True):
    """Static scatter of 2-D coordinates (n, 2) coloured by cluster, noise in grey; returns the Figure."""
    import matplotlib.pyplot as plt

    coords = _check_matrix(coords2d, "coords2d")
    labels = _check_lengths(coords.shape[0], labels, what="coords2d")
    colours = _colours(labels)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    # noise first so clusters are drawn on top of it
    for c in [NOISE] + sorted(set(labels) - {NOISE}):
        mask = labels == c
        if not mask.any():
            continue
        ax.scatter(coords[mask, 0], coords[mask, 1], s=point_size, c=colours[c],
                   alpha=0.5 if c == NOISE else 0.8, linewidths=0, label="noise" if c == NOISE else str(c))
        if annotate and c != NOISE:
            cx, cy = np.median(coords[mask], axis=0)
            ax.annotate(str(c), (cx, cy), ha="center", va="center", fontsize=9, weight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(title or f"{len(set(labels) - {NOISE})} clusters, {np.mean(labels == NOISE):.0%} noise")
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=150)
    return fig


def plot_clusters_interactive(coords2d, labels, df: pd.DataFrame, hover=("title", "year"), title: str | None = None, path=None):
    """Plotly scatter of 2-D coordinates coloured by cluster, ``hover`` columns of ``df`` on hover; returns the Figure."""
    import plotly.graph_objects as go

    coords = _check_matrix(coords2d, "coords2d")
    labels = _check_lengths(coords.shape[0], labels, what="coords2d")
    _check_lengths(len(df), labels)
    colours = _colours(labels)
    hover_cols = [h for h in hover if h in df]

    def shorten(value, width=90):
        text = str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    fig = go.Figure()
    for c in sorted(set(labels) - {NOISE}) + ([NOISE] if NOISE in labels else []):
        mask = labels == c
        hover_text = [
            "<br>".join(f"{h}: {shorten(df[h].iloc[i])}" for h in hover_cols) for i in np.flatnonzero(mask)
        ]
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0], y=coords[mask, 1], mode="markers",
                name="noise" if c == NOISE else f"cluster {c}",
                marker=dict(size=5, color=colours[c], opacity=0.5 if c == NOISE else 0.85),
                text=hover_text, hovertemplate="%{text}<extra>" + ("noise" if c == NOISE else f"cluster {c}") + "</extra>",
            )
        )
    fig.update_layout(
        title=title or "Clusters (hover for title and year)", template="plotly_white",
        xaxis=dict(showticklabels=False, title="UMAP 1"), yaxis=dict(showticklabels=False, title="UMAP 2"),
        width=900, height=650,
    )
    if path is not None:
        fig.write_html(Path(path))
    return fig


def plot_cluster_sizes(labels, title: str | None = None, path=None):
    """Bar chart of records per cluster (largest first, noise last in grey); returns the Figure."""
    import matplotlib.pyplot as plt

    labels = np.asarray(labels).astype(int)
    sizes = pd.Series(labels).value_counts()
    order = [c for c in sizes.index if c != NOISE] + ([NOISE] if NOISE in sizes.index else [])
    colours = _colours(labels)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(order) + 2), 4))
    ax.bar([("noise" if c == NOISE else str(c)) for c in order], [sizes[c] for c in order],
           color=[colours[c] for c in order])
    ax.set_xlabel("cluster")
    ax.set_ylabel("records")
    ax.set_title(title or "Cluster sizes")
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=150)
    return fig


# --------------------------------------------------------------------------- notebook 2's result, for notebook 3

# The settings notebook 2 teaches with (tuned on the course corpus: 16 clusters, ~30 % noise).
COURSE_SEED = 42
COURSE_UMAP = dict(n_neighbors=15, min_dist=0.0, metric="cosine")
COURSE_HDBSCAN = dict(min_cluster_size=20, min_samples=5, max_cluster_size=300)
CLUSTERS_FILE = "science_of_science_clusters.csv"


def load_clusters(path=None) -> pd.DataFrame:
    """Notebook 2's clustered corpus: one row per record with ``cluster``, ``x``, ``y``.

    Read from ``outputs/science_of_science_clusters.csv`` (or ``path``) when it
    exists; otherwise recomputed from the course corpus with notebook 2's
    settings (embeddings and reductions come from the cache when notebook 2 ran).
    Says which it did.
    """
    from helpers.cache import outputs_dir
    from helpers.data import load_corpus
    from helpers.embeddings import embed_texts

    path = Path(path) if path else outputs_dir() / CLUSTERS_FILE
    if path.is_file():
        frame = load_corpus(path)
        missing = [c for c in ("cluster", "x", "y") if c not in frame]
        if missing:
            raise ValueError(f"{path}: not a file of notebook 2 (missing column(s) {', '.join(missing)}).")
        frame["cluster"] = frame["cluster"].astype(int)
        print(f"Loaded notebook 2's clusters from {path}.")
        return frame
    print(f"{path} not found (notebook 2 has not run here): recomputing its clusters with the same settings.")
    corpus = load_corpus("course")
    df = corpus[corpus["has_abstract"]].reset_index(drop=True)
    embeddings = embed_texts(df["text"])
    coords2d = reduce(embeddings, n_components=2, random_state=COURSE_SEED, cache=True, **COURSE_UMAP)
    reduced = reduce(embeddings, n_components=5, random_state=COURSE_SEED, cache=True, **COURSE_UMAP)
    labels = cluster(reduced, method="hdbscan", **COURSE_HDBSCAN)
    out = export_frame(df, labels, coords2d)
    out["keywords"] = df["keywords"]  # keep the lists, as load_corpus gives them
    return out
