"""Your own field from the command line: an export (or several) to clusters, a map, labels and a time plot.

    python -m helpers.field my_export.ris [more exports ...] --out outputs/my_field/

Notebook 2's steps with its settings: embed title and abstract, UMAP, HDBSCAN, keyword labels, trends.
Writes clusters.csv, map.html, labels.csv, trends.png (and trends.csv) into ``--out``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import hdbscan
import umap

from helpers import clustering, plots, trends
from helpers.data import load_corpus
from helpers.embeddings import embed_texts
from helpers.labels import keyword_labels

MIN_RECORDS = 50  # HDBSCAN's clusters need at least min_cluster_size (20) records each


def estimate_seconds(texts: list[str]) -> float:
    """Seconds to embed ``texts`` and run UMAP twice here, from the time of embedding a sample of 32."""
    sample = texts[:: max(1, len(texts) // 32)][:32]
    embed_texts(sample, cache=False)  # loads the model once; the first call pays for it
    start = time.perf_counter()
    embed_texts(sample, cache=False)
    per_text = (time.perf_counter() - start) / len(sample)
    return per_text * len(texts) + 15 + len(texts) / 100  # UMAP: numba's compilation, then about 1 s per 100


def main(argv: list[str] | None = None) -> None:
    """The command line: exports in, the four outputs written to ``--out``."""
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("exports", nargs="+", help="CSV (Scopus), OpenAlex JSON/JSONL, Web of Science, RIS or BibTeX")
    args.add_argument("--out", default="outputs/my_field", help="folder for the results (default: %(default)s)")
    args = args.parse_args(argv)

    corpus = load_corpus(args.exports if len(args.exports) > 1 else args.exports[0])
    df = corpus[corpus["has_abstract"]].reset_index(drop=True)
    if len(df) < MIN_RECORDS:
        raise SystemExit(f"only {len(df)} records have an abstract; clustering needs at least {MIN_RECORDS}.")
    print(f"{len(df):,} records with an abstract (of {len(corpus):,}). Embedding and UMAP will take about "
          f"{estimate_seconds(df['text'].tolist()) / 60:.1f} min on this device (a re-run reads the cache).")
    embeddings = embed_texts(df["text"])
    coords2d, reduced = (clustering.cached_fit_transform(
        umap.UMAP(n_components=k, random_state=clustering.COURSE_SEED, **clustering.COURSE_UMAP), embeddings) for k in (2, 5))
    labels = hdbscan.HDBSCAN(**clustering.COURSE_HDBSCAN).fit_predict(reduced)
    df = df.assign(cluster=labels)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clustering.export_frame(df.drop(columns="cluster"), labels, coords2d).to_csv(out / "clusters.csv", index=False)
    plots.plot_clusters_interactive(coords2d, labels, df, hover=("title", "year", "citations"), path=out / "map.html")
    table = keyword_labels(df, labels)
    table.to_csv(out / "labels.csv", index=False)
    try:
        moves, citations = trends.cluster_trends(df), trends.normalised_citations(df)
    except ValueError as error:  # too few years with enough records for a trend
        print(f"No time plot: {error}.")
    else:
        cited = citations.rename(columns={"n_records": "n_cited", "low": "cited_low", "high": "cited_high"})
        moves.merge(cited, on="cluster", how="left").to_csv(out / "trends.csv", index=False)
        plots.plot_field_trends(trends.cluster_shares(df), moves, citations, path=out / "trends.png",
                                 labels=table.set_index("cluster")["label"].to_dict())
    print(f"{len(set(labels) - {-1})} clusters; results in {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))


if __name__ == "__main__":
    main()
