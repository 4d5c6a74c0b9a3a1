"""Stage ``cluster``: UMAP + HDBSCAN with the libraries' defaults against notebook 2's settings, cache and PCA-50 path."""
from __future__ import annotations

from bench.common import SEED, Stage, course_embeddings, peak_mib, timed, umap5
from bench.tables import measured_when, num, ratio, variant_table


def variants(device: str) -> list[str]:
    """The defaults, notebook 2's path, and PCA to 50-D first."""
    return ["baseline", "ours", "pca50"]


def job(variant: str, n: int | None) -> dict:
    """Reduce + cluster the course embeddings: UMAP + HDBSCAN defaults, or notebook 2's settings and cache."""
    import numpy as np

    embeddings = course_embeddings()
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

        settings = (("PCA to 50-D, then " if pca else "") + "cached_fit_transform(umap.UMAP(5-D, cosine, seed 42)) "
                    "+ hdbscan.HDBSCAN(notebook 2's parameters)")
    labels, wall, cpu = timed(run)
    if variant == "ours":
        _, warm, _ = timed(run)  # the UMAP cache hit (the warm re-run of notebook 2)
        extra["warm_seconds"] = warm
        from helpers.data import load_corpus
        from helpers.labels import keyword_labels

        corpus = load_corpus("course")
        df = corpus[corpus["has_abstract"]].reset_index(drop=True).iloc[: len(labels)]
        _, extra["keyword_labels_seconds"], _ = timed(keyword_labels, df, labels, top_n=5)
    n_clusters = len(set(labels.tolist()) - {-1})
    return {"n": len(embeddings), "seconds": wall, "cpu_seconds": cpu, "settings": settings,
            "n_clusters": n_clusters, "noise_share": float(np.mean(labels == -1)),
            "peak_mib": peak_mib(), "rss_before_mib": rss_before, **extra}


def _clusters_and_noise(r: dict) -> str:
    noise = num(100 * r["noise_share"], 0, "%") if "noise_share" in r else "-"
    return f"{r.get('n_clusters', '-')} / {noise}"


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The clustering table (time, cached re-run, clusters and noise) and keyword_labels' time."""
    base = st["variants"].get("baseline", {})
    ours = st["variants"].get("ours", {})
    lines = [f"## Reduction + clustering ({base.get('n', '?')} abstracts)", "",
             measured_when(st) + " Times include numba's "
             "compilation of UMAP, which every fresh Python process pays (about half of a small run).", ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("wall s", lambda r: num(r.get("seconds"))),
            ("CPU s", lambda r: num(r.get("cpu_seconds"))),
            ("ratio (wall)", lambda r: ratio(base.get("seconds"), r.get("seconds"))),
            ("cached re-run s", lambda r: num(r.get("warm_seconds"), 2)),
            ("clusters / noise", _clusters_and_noise),
            ("peak MiB", lambda r: num(r.get("peak_mib"), 0))]
    lines += variant_table(st, cols) + [""]
    if ours.get("keyword_labels_seconds") is not None:
        lines += [f"`keyword_labels` on the result: {num(ours['keyword_labels_seconds'], 3)} s.", ""]
    return lines, []


STAGE = Stage("cluster", job=job, variants=variants, report=report, quick_size=300)
