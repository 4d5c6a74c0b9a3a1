"""How a field moves: each cluster's share of the records per year, its trend, and citations normalised by year.

Shares, not counts, since a corpus grows: a topic that keeps its share while the field doubles is not growing.
Intervals are seeded bootstraps over records, years held fixed (each year's records resampled among themselves).
The clusters are fitted on all years at once, so a topic's boundaries are the same in 2005 and in 2025.
Pure functions on a frame with ``year``, ``cluster`` and ``citations``; ``helpers.plots.plot_field_trends`` draws them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.checks import NOISE, require_columns


def _counts(frame: pd.DataFrame, min_records: int) -> pd.DataFrame:
    """Records per year (rows) and cluster (columns), years with fewer than ``min_records`` records left out."""
    require_columns(frame, ["year", "cluster"], "the clustered corpus", "pass the corpus with a cluster column")
    years = pd.to_numeric(frame["year"], errors="coerce")
    known = frame[years.notna()].assign(year=years[years.notna()].astype(int), cluster=lambda f: f["cluster"].astype(int))
    counts = pd.crosstab(known["year"], known["cluster"])
    counts = counts[counts.sum(axis=1) >= min_records]
    if len(counts) < 3:
        raise ValueError(f"only {len(counts)} year(s) have at least {min_records} records; a trend needs three or "
                         "more (lower min_records, or add records)")
    return counts


def _resampled_shares(counts: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap shares, shape (n_boot, years, clusters): each year's records drawn again with replacement."""
    rng = np.random.default_rng(seed)
    totals = counts.sum(axis=1).to_numpy()
    probabilities = counts.to_numpy() / totals[:, None]
    draws = np.stack([rng.multinomial(n, p, size=n_boot) for n, p in zip(totals, probabilities)], axis=1)
    return draws / totals[None, :, None]


def cluster_shares(frame: pd.DataFrame, min_records: int = 10, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each cluster's share of each year's records with a 95% bootstrap interval: one row per year and cluster.

    Columns: year, cluster, n_records, n_year (the field's records that year), share, share_low, share_high.
    Years with fewer than ``min_records`` records are left out (their shares are noise).
    """
    counts = _counts(frame, min_records)
    low, high = np.percentile(_resampled_shares(counts, n_boot, seed), [2.5, 97.5], axis=0)
    totals = counts.sum(axis=1)
    rows = [{"year": int(year), "cluster": int(cluster), "n_records": int(counts.iat[i, j]), "n_year": int(totals.iat[i]),
             "share": counts.iat[i, j] / totals.iat[i], "share_low": low[i, j], "share_high": high[i, j]}
            for i, year in enumerate(counts.index) for j, cluster in enumerate(counts.columns)]
    return pd.DataFrame(rows)


def _slopes(shares: np.ndarray, years: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares slope of shares on years along axis -2 (per cluster, per bootstrap draw)."""
    w = weights / weights.sum()
    centred = years - (w * years).sum()  # so the weighted mean share drops out of the slope
    return np.tensordot(w * centred, shares, axes=([0], [-2])) / (w * centred**2).sum()


def cluster_trends(frame: pd.DataFrame, min_records: int = 10, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Whether each cluster's share grows or shrinks: the slope of its yearly share, in percentage points a year.

    The slope is a line through the yearly shares, each year weighted by its records (the same as regressing
    membership on year over the records). ``trend`` is "growing" or "shrinking" only where the 95% bootstrap
    interval of the slope excludes zero, else "no clear trend". Columns: cluster, n_records, share (all years),
    slope_pp, slope_low, slope_high, trend; largest cluster first, noise last.
    """
    counts = _counts(frame, min_records)
    years = counts.index.to_numpy(dtype=float)
    weights = counts.sum(axis=1).to_numpy(dtype=float)
    slope = _slopes(counts.to_numpy() / weights[:, None], years, weights) * 100
    low, high = np.percentile(_slopes(_resampled_shares(counts, n_boot, seed), years, weights) * 100, [2.5, 97.5], axis=0)
    table = pd.DataFrame({"cluster": counts.columns.astype(int), "n_records": counts.sum(axis=0).to_numpy(),
                          "share": counts.sum(axis=0).to_numpy() / counts.to_numpy().sum(),
                          "slope_pp": slope, "slope_low": low, "slope_high": high})
    table["trend"] = np.where(table["slope_low"] > 0, "growing", np.where(table["slope_high"] < 0, "shrinking", "no clear trend"))
    order = table.assign(is_noise=table["cluster"] == NOISE).sort_values(["is_noise", "n_records"], ascending=[True, False])
    return order.drop(columns="is_noise").reset_index(drop=True)


def normalised_citations(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Citations per cluster, each record's count divided by the mean of its publication year, with 95% intervals.

    1.0 means cited as much as the average record of the same year, so old clusters are not "more cited"
    merely for being old. Records without year or citations, and years whose records have no citation at all,
    are left out. Columns: cluster, n_records, mean_normalised, low, high, median_citations.
    """
    require_columns(frame, ["year", "cluster", "citations"], "the clustered corpus")
    data = pd.DataFrame({"year": pd.to_numeric(frame["year"], errors="coerce"), "cluster": frame["cluster"],
                         "citations": pd.to_numeric(frame["citations"], errors="coerce")}).dropna()
    year_mean = data.groupby("year")["citations"].transform("mean")
    data = data[year_mean > 0].assign(normalised=data["citations"] / year_mean[year_mean > 0])
    if data.empty:
        raise ValueError("no record has both a year and a citation count; normalised citations need them")
    rng = np.random.default_rng(seed)
    rows = []
    for cluster, group in data.groupby("cluster", sort=True):
        values = group["normalised"].to_numpy()
        means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        rows.append({"cluster": int(cluster), "n_records": len(values), "mean_normalised": values.mean(),
                     "low": low, "high": high, "median_citations": float(group["citations"].median())})
    return pd.DataFrame(rows)
