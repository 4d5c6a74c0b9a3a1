"""Input checks shared by every stage: each raises ValueError naming what is wrong and what to pass."""
from __future__ import annotations

import numpy as np
import pandas as pd

# The cluster id HDBSCAN gives to records that fit no cluster.
NOISE = -1


def require_columns(frame, columns, what: str = "the table", hint: str = "") -> pd.DataFrame:
    """``frame`` when it is a DataFrame holding all ``columns``; else a ValueError naming the missing ones."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(map(repr, missing))}"
                         f" (it has {', '.join(map(str, frame.columns[:15]))}){'; ' + hint if hint else ''}")
    return frame


def check_matrix(x, name: str) -> np.ndarray:
    """``x`` as a finite, numeric 2-D array (records x dimensions) with at least one row."""
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


def check_clusters(clusters, n_rows: int, what: str = "df", other: str = "clusters") -> np.ndarray:
    """Cluster ids (-1: noise) as a 1-D int array with one entry per row of ``what`` (``n_rows``)."""
    clusters = np.asarray(clusters)
    if clusters.ndim != 1:
        raise ValueError(f"{other} must be 1-D, got shape {clusters.shape}")
    if len(clusters) != n_rows:
        raise ValueError(f"{what} has {n_rows} rows but {other} has {len(clusters)}; they must match")
    return clusters.astype(int)
