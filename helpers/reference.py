"""Is my result the course's? A learner's clusters and answers held against reference files made by the course.

    record_ids(df)                          # one stable id per record, whatever the order of the rows
    compare_clusters(df, clusters)          # adjusted Rand index with the reference clustering of the corpus
    compare_answers(results)                # agreement with the reference answers on the course PDFs
    environment(seed=42)                    # versions, device and seeds: what a difference may come from

The reference files in ``helpers/reference/`` are written by ``python -m tools.make_reference`` from a fresh
``make run`` (``make reference``), never by hand, with the environment they were made in beside them.
"""
from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.checks import check_labels, require_columns

REFERENCE_DIR = Path(__file__).with_name("reference")
REFERENCE_CLUSTERS = REFERENCE_DIR / "course_clusters.csv"
REFERENCE_ANSWERS = REFERENCE_DIR / "pdf_answers.csv"
REFERENCE_ENVIRONMENT = REFERENCE_DIR / "environment.json"
PACKAGES = ("torch", "transformers", "sentence-transformers", "umap-learn", "hdbscan", "scikit-learn", "numpy",
            "numba", "pynndescent")


def record_ids(df: pd.DataFrame) -> pd.Series:
    """A 12-character id per record from its title, year, DOI and the start of its abstract: the same record
    gets the same id in another order, in another session, on another machine."""
    require_columns(df, ["title", "year"], "the records")
    year = pd.to_numeric(df["year"], errors="coerce").map(lambda y: "" if pd.isna(y) else str(int(y)))
    parts = [df["title"], year, df.get("doi"), df["abstract"].fillna("").astype(str).str[:200] if "abstract" in df else None]
    keys = pd.DataFrame({i: ("" if p is None else p.fillna("").astype(str)) for i, p in enumerate(parts)})
    return keys.apply(lambda row: hashlib.sha1("\x1f".join(row).encode("utf-8")).hexdigest()[:12], axis=1)


def environment(**extra) -> dict:
    """Python, the versions of the packages results depend on, the device and ``extra`` (e.g. seed=42)."""
    from helpers.models import get_device

    found = {"python": platform.python_version(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return {**found, "device": get_device(), **extra}


def environment_differences(here: dict, reference: dict) -> list[str]:
    """Each entry that differs between two ``environment()`` dicts, as "name: here vs reference"."""
    return [f"{key}: {here.get(key, '-')} here, {reference.get(key, '-')} in the reference"
            for key in sorted(set(here) | set(reference)) if here.get(key) != reference.get(key)]


def compare_clusters(df: pd.DataFrame, clusters, reference=REFERENCE_CLUSTERS) -> dict:
    """How far ``clusters`` (one id per row of ``df``, -1 noise) agree with the reference clustering.

    Returns n_common (records in both), ari (adjusted Rand index over them, noise a group of its own;
    1.0 = the same partition, whatever the cluster numbers), n_clusters and reference_n_clusters,
    noise_share and reference_noise_share.
    """
    from sklearn.metrics import adjusted_rand_score

    clusters = check_labels(clusters, len(df), other="clusters")
    ours = pd.Series(clusters, index=record_ids(df).to_numpy())
    theirs = pd.read_csv(reference, dtype={"record_id": str}).set_index("record_id")["cluster"]
    common = ours.index.intersection(theirs.index)
    if common.empty:
        raise ValueError("none of these records is in the reference clustering: it is made for the course corpus")
    a, b = ours.loc[common].to_numpy(), theirs.loc[common].to_numpy()
    return {"n_common": len(common), "ari": float(adjusted_rand_score(b, a)),
            "n_clusters": len(set(a) - {-1}), "reference_n_clusters": len(set(b) - {-1}),
            "noise_share": float(np.mean(a == -1)), "reference_noise_share": float(np.mean(b == -1))}


def compare_answers(results: pd.DataFrame, reference=REFERENCE_ANSWERS) -> pd.DataFrame:
    """The ``combined`` answers of ``results`` (``ask_articles``) next to the reference answers of the same
    file and question: file, question, combined, reference, same (bool). Rows not in both are left out."""
    require_columns(results, ["file", "question", "combined"], "results", "pass the table from ask_articles")
    theirs = pd.read_csv(reference, dtype=str, keep_default_na=False).rename(columns={"combined": "reference"})
    ours = results[["file", "question"]].assign(combined=results["combined"].fillna("None").astype(str))
    both = ours.merge(theirs, on=["file", "question"])
    return both.assign(same=both["combined"] == both["reference"])


def reference_environment() -> dict:
    """The environment the reference files were made in."""
    return json.loads(REFERENCE_ENVIRONMENT.read_text(encoding="utf-8"))
