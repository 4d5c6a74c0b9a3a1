"""Every figure of the course, in one place: plain functions that take a result first and only draw.

Each returns its Figure and saves it to ``path`` when one is given (``save_figure``): PNG or PDF for
matplotlib, HTML for plotly.
"""
from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.checks import NOISE, check_clusters, check_matrix
from helpers.prompts import EXTRACTION_ANSWERS, UNPARSEABLE

NOISE_COLOUR = "#b0b0b0"
NOISE_NAME = "noise (not in any cluster)"
MIN_CONTRAST = 45  # CIELAB distance (plus map distance, see _colours) wanted between two clusters' colours
TREND_COLOURS = {"growing": "#1b9e77", "shrinking": "#d95f02", "no clear trend": "#7f7f7f"}


def save_figure(fig, path, dpi: int = 150):
    """Write a matplotlib (PNG, PDF, ...) or plotly (HTML) figure to ``path`` when one is given; returns ``fig``."""
    if path is not None:
        if hasattr(fig, "write_html"):
            fig.write_html(Path(path))
        else:
            fig.savefig(Path(path), dpi=dpi)
    return fig


def plot_similarity(similarity, names=None, title: str | None = None, path=None, wrap: int = 35):
    """Heatmap of a square similarity matrix ``(n, n)``, each value written in its cell; returns the Figure.

    Tick labels: ``names``, else a DataFrame's index, wrapped at ``wrap`` characters. Saved to ``path`` if given.
    """
    import matplotlib.pyplot as plt

    if names is None:
        names = list(similarity.index) if isinstance(similarity, pd.DataFrame) else None
    matrix = np.asarray(similarity, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"similarity must be a square (n, n) matrix; got shape {matrix.shape}.")
    n = matrix.shape[0]
    names = [str(i) for i in range(n)] if names is None else [str(name) for name in names]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for a {n} x {n} similarity matrix; give one name per row.")
    ticks = [textwrap.fill(name, wrap) for name in names]
    size = min(12.0, 2.5 + 1.1 * n)
    fig, ax = plt.subplots(figsize=(size + 2, size))
    low, high = min(0.0, matrix.min()), max(1.0, matrix.max())
    image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
    for i in range(n):
        for j in range(n):
            # dark text on the bright end of viridis, white on the dark end
            bright = (matrix[i, j] - low) / (high - low) > 0.6
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                    color="black" if bright else "white", fontsize=9)
    ax.set_xticks(range(n), ticks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), ticks, fontsize=8)
    fig.colorbar(image, ax=ax, label="cosine similarity", shrink=0.8)
    ax.set_title(title or "Cosine similarity")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _lab(rgb) -> np.ndarray:
    """Colours (n, 3), sRGB in 0-1, as CIELAB (D65): distances there track how different colours look."""
    # The standard formulas: sRGB's transfer curve and matrix (IEC 61966-2-1), then CIE 1976 L*a*b*.
    rgb = np.asarray(rgb, dtype=float)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@functools.cache
def cluster_palette() -> tuple[str, ...]:
    """tab20's 18 colours (its greys left out: they would read as noise), ordered so that the first n differ most.

    Each next colour is the one farthest (CIELAB distance) from noise grey and the colours before it, so
    clusters 0 and 1 never get tab20's dark and light blue, and the first 12 differ from each other and from
    grey by 27 or more (2 is just noticeable).
    """
    import matplotlib

    candidates = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i not in (14, 15)]
    lab, taken, order = _lab(candidates), _lab([matplotlib.colors.to_rgb(NOISE_COLOUR)]), []
    while len(order) < len(candidates):
        distance = np.linalg.norm(lab[:, None] - taken[None], axis=-1).min(axis=1)
        distance[order] = -1
        order.append(int(distance.argmax()))
        taken = np.vstack([taken, lab[order[-1]]])
    return tuple(matplotlib.colors.to_hex(candidates[i]) for i in order)


def _colours(clusters, coords=None) -> dict[int, str]:
    """A colour per cluster from ``cluster_palette``, grey for noise.

    With the map's ``coords`` (n, 2), largest cluster first, each cluster takes the first free colour whose
    contrast with every coloured cluster is at least ``MIN_CONTRAST`` (the most contrasting one if none is):
    contrast = CIELAB distance of the colours + 100 x the distance of the clusters' medians over the map's
    extent, so clusters side by side never look alike while far ones may. Without ``coords``, palette order.
    """
    import matplotlib

    palette = cluster_palette()
    clusters = np.asarray(clusters)
    ids = sorted(set(int(c) for c in clusters) - {NOISE})
    colours = {c: palette[i % len(palette)] for i, c in enumerate(ids)}
    if coords is not None and len(ids) <= len(palette):
        coords = np.asarray(coords, dtype=float)
        centres = {c: np.median(coords[clusters == c], axis=0) for c in ids}
        extent = float(np.ptp(coords, axis=0).max()) or 1.0
        lab = dict(zip(palette, _lab([matplotlib.colors.to_rgb(p) for p in palette])))
        colours = {}
        for c in sorted(ids, key=lambda c: (-np.sum(clusters == c), c)):
            contrast = {p: min((np.linalg.norm(lab[p] - lab[q]) + 100 * np.linalg.norm(centres[c] - centres[d]) / extent
                                for d, q in colours.items()), default=np.inf)
                        for p in palette if p not in colours.values()}
            colours[c] = next((p for p, value in contrast.items() if value >= MIN_CONTRAST),
                              max(contrast, key=contrast.get))
    colours[NOISE] = NOISE_COLOUR
    return colours


def plot_clusters(coords2d, clusters, title: str | None = None, path=None, names: dict | None = None,
                  point_size: float = 8):
    """Static scatter of 2-D coordinates (n, 2) coloured by cluster, noise in grey; returns the Figure.

    Each cluster's number sits at its median position; the legend names the clusters (``names``: cluster ->
    short topic name, e.g. its top keywords) and the noise.
    """
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    coords = check_matrix(coords2d, "coords2d")
    clusters = check_clusters(clusters, coords.shape[0], what="coords2d")
    colours, names = _colours(clusters, coords), names or {}
    fig, ax = plt.subplots(figsize=(11, 6.5))
    # noise first so clusters are drawn on top of it; in the legend it comes last
    for c in [NOISE] + sorted(set(clusters) - {NOISE}):
        mask = clusters == c
        if not mask.any():
            continue
        name = NOISE_NAME if c == NOISE else textwrap.shorten(f"{c} {names.get(c, '')}", 45, placeholder="...")
        ax.scatter(coords[mask, 0], coords[mask, 1], s=point_size, c=colours[c], alpha=0.5 if c == NOISE else 0.8,
                   linewidths=0, label=name, zorder=0 if c == NOISE else 1)
        if c != NOISE:
            cx, cy = np.median(coords[mask], axis=0)
            ax.annotate(str(c), (cx, cy), ha="center", va="center", fontsize=10, weight="bold",
                        path_effects=[effects.withStroke(linewidth=3, foreground="white")])
    handles, texts = ax.get_legend_handles_labels()
    if NOISE in clusters:  # noise last
        handles, texts = handles[1:] + handles[:1], texts[1:] + texts[:1]
    ax.legend(handles, texts, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, markerscale=2.5, frameon=False,
              title="cluster, top keywords" if names else "cluster", title_fontsize=8, alignment="left")
    ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2",
           title=title or f"{len(set(clusters) - {NOISE})} clusters, {np.mean(clusters == NOISE):.0%} noise")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_clusters_interactive(coords2d, clusters, df: pd.DataFrame, hover=("title", "year"), title: str | None = None, path=None):
    """Plotly scatter of 2-D coordinates coloured by cluster, ``hover`` columns of ``df`` on hover; returns the Figure."""
    import plotly.graph_objects as go

    coords = check_matrix(coords2d, "coords2d")
    clusters = check_clusters(clusters, coords.shape[0], what="coords2d")
    check_clusters(clusters, len(df))
    colours = _colours(clusters, coords)
    hover_cols = [h for h in hover if h in df]
    fig = go.Figure()
    for c in sorted(set(clusters) - {NOISE}) + ([NOISE] if NOISE in clusters else []):
        mask, name = clusters == c, NOISE_NAME if c == NOISE else f"cluster {c}"
        hover_text = ["<br>".join(f"{h}: {textwrap.shorten(str(df[h].iloc[i]), 90)}" for h in hover_cols)
                      for i in np.flatnonzero(mask)]
        fig.add_trace(go.Scattergl(x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=name,
                                   marker=dict(size=5, color=colours[c], opacity=0.5 if c == NOISE else 0.85),
                                   text=hover_text, hovertemplate="%{text}<extra>" + name + "</extra>"))
    fig.update_layout(title=title or "Clusters (hover for title and year)", template="plotly_white", width=900,
                      height=650, xaxis=dict(showticklabels=False, title="UMAP 1"),
                      yaxis=dict(showticklabels=False, title="UMAP 2"))
    return save_figure(fig, path)


def plot_answers(results: pd.DataFrame, title: str | None = None, path=None):
    """Bar chart of answers per question (unreadable files as their own bar); returns the Figure.

    Uses the ``combined`` answer when present, else ``answer``.
    """
    import matplotlib.pyplot as plt

    column = "combined" if "combined" in results and results["combined"].notna().any() else "answer"
    shown = results[column].where(results["status"] == "ok", results["status"]).fillna(UNPARSEABLE)
    order = [a for a in EXTRACTION_ANSWERS + [UNPARSEABLE, "unreadable", "failed"] if a in set(shown)]
    counts = pd.crosstab(shown, results["question"]).reindex(order).fillna(0)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(order) * max(1, counts.shape[1]) / 2, 3.5))
    counts.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_xlabel(f"{column} answer")
    ax.set_ylabel("articles")
    ax.set_title(title or "Answers per question")
    ax.legend(title="question", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_field_trends(shares: pd.DataFrame, trends: pd.DataFrame, citations: pd.DataFrame | None = None,
                      names: dict | None = None, path=None, n_cols: int = 4):
    """One panel per cluster: its yearly share with the 95% band, coloured by trend, titled with its label and
    normalised citations; the first panel, the field's records per year. Noise is left out. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    clusters = [c for c in trends["cluster"] if c != NOISE]
    n_rows = math.ceil((len(clusters) + 1) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 2.3 * n_rows), squeeze=False, sharex=True)
    axes = axes.ravel()
    totals = shares.drop_duplicates("year").set_index("year")["n_year"]
    axes[0].bar(totals.index, totals.to_numpy(), color="#4c4c4c", width=0.8)
    axes[0].set_title("the field: records per year", fontsize=9)
    cited = citations.set_index("cluster") if citations is not None else None
    by_cluster = trends.set_index("cluster")
    for ax, cluster in zip(axes[1:], clusters):
        row, rows = by_cluster.loc[cluster], shares[shares["cluster"] == cluster]
        colour = TREND_COLOURS[row["trend"]]
        ax.fill_between(rows["year"], rows["share_low"] * 100, rows["share_high"] * 100, color=colour, alpha=0.25, linewidth=0)
        ax.plot(rows["year"], rows["share"] * 100, color=colour, linewidth=1.5)
        ax.set_ylim(0, max(rows["share_high"].max() * 105, 1))  # each panel its own scale: small clusters show too
        name = f"{cluster}: {names[cluster]}" if names and cluster in names else f"cluster {cluster}"
        detail = f"{row['trend']} ({row['slope_pp']:+.2f} pp/yr)"
        if cited is not None and cluster in cited.index:
            detail += f", cited {cited.at[cluster, 'mean_normalised']:.1f}x"
        ax.set_title(f"{name[:38]}\n{detail}", fontsize=8, color=colour if row["trend"] != "no clear trend" else "black")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.tick_params(labelsize=7, labelbottom=True)
    for ax in axes[len(clusters) + 1:]:
        ax.set_visible(False)
    fig.supylabel("share of the year's records (%)", fontsize=9)
    fig.suptitle("How the field moves: each cluster's share per year, 95% bootstrap band "
                 "(green growing, orange shrinking, grey no clear trend)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
