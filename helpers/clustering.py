"""Stage 2, from embeddings to topics: the plumbing around ``umap.UMAP`` and ``hdbscan.HDBSCAN``.

A UMAP result cached on disk, a table of each cluster's labels and examples (figures: ``helpers.plots``),
and two checks of how far to trust the result: stability across seeds, held-out citation prediction.
"""
from __future__ import annotations

import hashlib
import warnings
from functools import cache
from importlib.metadata import packages_distributions, version
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.cache import cache_dir, content_hash, outputs_dir, read_cached, write_atomically
from helpers.checks import NOISE, check_labels, check_matrix, require_columns
from helpers.data import load_corpus, parse_keywords
from helpers.labels import ctfidf_labels, keyword_labels

# Notebook 2's settings, in one place: the notebook shows and uses them, and notebook 3 recomputes
# its clusters with them when notebook 2 has not run (chosen on the course corpus).
COURSE_SEED = 42
COURSE_UMAP = dict(n_neighbors=15, min_dist=0.0, metric="cosine")
COURSE_HDBSCAN = dict(min_cluster_size=20, min_samples=5, max_cluster_size=300)
CLUSTERS_FILE = "science_of_science_clusters.csv"


# --------------------------------------------------------------------------- UMAP, cached


def _fit_transform(estimator, x) -> np.ndarray:
    with warnings.catch_warnings():
        # a seed makes UMAP single-threaded; that is the point, so the warning is noise here
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
        return np.asarray(estimator.fit_transform(x), dtype=np.float32)


def cached_fit_transform(estimator, x) -> np.ndarray:
    """``estimator.fit_transform(x)`` as float32, kept on disk under a hash of ``x``, the estimator's parameters
    and the version of the package that defines it.

    Only for a seeded estimator such as ``umap.UMAP(..., random_state=42)``; unseeded, or from code of no
    installed package (no version to key on), it is computed every time. An unreadable cache file is replaced.
    """
    x = check_matrix(x, "x")
    params = estimator.get_params()
    if params.get("random_state") is None or (code := _package_version(type(estimator).__module__)) is None:
        return _fit_transform(estimator, x)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    key = content_hash(digest, x.shape, str(x.dtype), type(estimator).__name__, params, code)
    path = cache_dir("fit_transform") / f"{type(estimator).__name__}-{key}.npy"
    cached = read_cached(path, np.load)
    if cached is not None and cached.shape[0] == x.shape[0]:
        return cached
    result = _fit_transform(estimator, x)
    write_atomically(path, lambda tmp: np.save(tmp, result))
    return result


@cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()  # top-level module -> distributions, e.g. "sklearn" -> ["scikit-learn"]


def _package_version(module: str) -> str | None:
    """The version of the installed distribution that holds ``module`` (``sklearn.decomposition._pca`` ->
    scikit-learn's ``"1.6.1"``), or None for code of no installed distribution (a notebook's own class)."""
    names = _distributions().get(module.split(".")[0], [])
    return ";".join(sorted(version(name) for name in set(names))) or None


def cluster_table(df: pd.DataFrame, labels, top_n: int = 5, n_examples: int = 3,
                  random_state: int = 42) -> pd.DataFrame:
    """One row per cluster, largest first, noise (``is_noise``) last: cluster, size, share, top keywords,
    top c-TF-IDF terms and a seeded sample of example titles."""
    labels = check_labels(labels, len(df))
    keywords = keyword_labels(df, labels, top_n=top_n).set_index("cluster")["label"]
    terms = ctfidf_labels(df, labels, top_n=top_n).set_index("cluster")["label"]
    rng = np.random.default_rng(random_state)
    titles = df["title"].astype(str).to_numpy()
    sizes = pd.Series(labels).value_counts()
    order = [c for c in sizes.index if c != NOISE] + ([NOISE] if NOISE in sizes.index else [])
    rows = []
    for c in order:
        idx = np.flatnonzero(labels == c)
        picks = rng.choice(idx, size=min(n_examples, len(idx)), replace=False)
        rows.append({"cluster": int(c), "is_noise": c == NOISE, "size": int(sizes[c]),
                     "share": round(sizes[c] / len(labels), 3), "top_keywords": keywords.get(c, ""),
                     "top_terms": terms.get(c, ""), "example_titles": " | ".join(titles[sorted(picks)])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- checks on the result


def stability(embeddings, seeds, reference_labels, n_components: int = 5, umap_params: dict | None = None,
              hdbscan_params: dict | None = None) -> pd.DataFrame:
    """Re-run UMAP (cached) and HDBSCAN with each of ``seeds`` and compare with ``reference_labels``.

    Pass the reference run's parameters (default: notebook 2's), or the comparison is moot. One row per
    seed: seed, n_clusters, noise_share, ari (adjusted Rand index over all records, noise a group of its
    own) and ari_clustered (over records that are noise in neither run; NaN if fewer than 2).
    """
    import hdbscan
    import umap
    from sklearn.metrics import adjusted_rand_score

    x = check_matrix(embeddings, "embeddings")
    reference = check_labels(reference_labels, x.shape[0], what="embeddings", other="reference_labels")
    rows = []
    for seed in seeds:
        reducer = umap.UMAP(n_components=n_components, random_state=int(seed), **(umap_params or COURSE_UMAP))
        labels = hdbscan.HDBSCAN(**(hdbscan_params or COURSE_HDBSCAN)).fit_predict(cached_fit_transform(reducer, x))
        both = (labels != NOISE) & (reference != NOISE)
        rows.append({"seed": int(seed), "n_clusters": len(set(labels) - {NOISE}),
                     "noise_share": float(np.mean(labels == NOISE)),
                     "ari": float(adjusted_rand_score(reference, labels)),
                     "ari_clustered": float(adjusted_rand_score(reference[both], labels[both])) if both.sum() >= 2 else np.nan})
    return pd.DataFrame(rows)


def predict_citations(embeddings, df: pd.DataFrame, test_size: float = 0.25, random_state: int = 42,
                      reference_year: int | None = None) -> pd.DataFrame:
    """Held-out R² for predicting log1p(citations) from embeddings + age vs age alone.

    Age = ``reference_year`` (default: the latest in ``df``) minus year; both models get age and log1p(age),
    as citations grow roughly with its log. Ridge on standardised features, alpha chosen by leave-one-out
    on the training split. Rows without year or citations are dropped. One row per model: model,
    n_features, alpha, r2_train, r2_test, n_train, n_test.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = check_matrix(embeddings, "embeddings")
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
    feature_sets = {"embeddings + age": np.hstack([x[keep], age_features]), "age only": age_features}
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=random_state)
    alphas = np.logspace(-2, 5, 15)
    rows = []
    for name, features in feature_sets.items():
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
        model.fit(features[idx_train], y[idx_train])
        rows.append({"model": name, "n_features": features.shape[1], "alpha": float(model[-1].alpha_),
                     "r2_train": r2_score(y[idx_train], model.predict(features[idx_train])),
                     "r2_test": r2_score(y[idx_test], model.predict(features[idx_test])),
                     "n_train": len(idx_train), "n_test": len(idx_test)})
    return pd.DataFrame(rows)


def export_frame(df: pd.DataFrame, labels, coords2d) -> pd.DataFrame:
    """``df`` plus ``cluster``, ``x``, ``y`` columns, with list-valued keywords ``; ``-joined for CSV."""
    labels = check_labels(labels, len(df))
    coords = check_matrix(coords2d, "coords2d")
    if coords.shape != (len(df), 2):
        raise ValueError(f"coords2d must have shape ({len(df)}, 2), got {coords.shape}")
    out = df.assign(cluster=labels, x=coords[:, 0], y=coords[:, 1])
    if "keywords" in out:
        out["keywords"] = ["; ".join(parse_keywords(v)) for v in out["keywords"]]
    return out


# --------------------------------------------------------------------------- notebook 2's result, for notebook 3


def load_clusters(path=None) -> pd.DataFrame:
    """Notebook 2's clustered corpus: one row per record with ``cluster``, ``x``, ``y``.

    Read from ``outputs/science_of_science_clusters.csv`` (or ``path``); when it is missing, recomputed
    with notebook 2's settings (from the cache when notebook 2 ran here). Says which it did.
    """
    import hdbscan
    import umap

    from helpers.embeddings import embed_texts

    path = Path(path) if path else outputs_dir() / CLUSTERS_FILE
    if path.is_file():
        frame = require_columns(load_corpus(path), ["cluster", "x", "y"], str(path), "not a file of notebook 2")
        frame["cluster"] = frame["cluster"].astype(int)
        print(f"Loaded notebook 2's clusters from {path}.")
        return frame
    print(f"{path} not found (notebook 2 has not run here): recomputing its clusters with the same settings.")
    corpus = load_corpus("course")
    df = corpus[corpus["has_abstract"]].reset_index(drop=True)
    embeddings = embed_texts(df["text"])
    coords2d, reduced = (cached_fit_transform(umap.UMAP(n_components=k, random_state=COURSE_SEED, **COURSE_UMAP), embeddings)
                         for k in (2, 5))
    labels = hdbscan.HDBSCAN(**COURSE_HDBSCAN).fit_predict(reduced)
    out = export_frame(df, labels, coords2d)
    out["keywords"] = df["keywords"]  # keep the lists, as load_corpus gives them
    return out
