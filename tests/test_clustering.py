"""Tests for helpers.clustering on small synthetic data (UMAP on a few hundred points)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from helpers import clustering as cl
from helpers import plots

N_CENTERS = 4
FAST_UMAP = dict(n_epochs=200)
COURSE_LIKE_UMAP = dict(n_neighbors=15, min_dist=0.0, metric="cosine", **FAST_UMAP)


@pytest.fixture(scope="module")
def blobs():
    """300 unit-length points in 64 dimensions around 4 well-separated centres."""
    x, truth = make_blobs(n_samples=300, n_features=64, centers=N_CENTERS, cluster_std=1.0,
                          center_box=(-10, 10), random_state=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), truth


def hdbscan_labels(reduced, min_cluster_size=15):
    import hdbscan

    return hdbscan.HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(reduced)


def reduce(x, n_components=5, random_state=42):
    import umap

    reducer = umap.UMAP(n_components=n_components, random_state=random_state, **COURSE_LIKE_UMAP)
    return cl.cached_fit_transform(reducer, x)


@pytest.fixture(scope="module")
def reduced(blobs):
    return reduce(blobs[0])


def test_reduce_shape_and_dtype(reduced, blobs):
    assert reduced.shape == (len(blobs[0]), 5)
    assert reduced.dtype == np.float32
    assert np.isfinite(reduced).all()


def test_reduce_same_seed_same_coordinates(blobs, reduced):
    import umap

    again = umap.UMAP(n_components=5, random_state=42, **COURSE_LIKE_UMAP).fit_transform(blobs[0])  # not from the cache
    np.testing.assert_array_equal(reduced, again)


def test_hdbscan_recovers_blobs(reduced, blobs):
    labels = hdbscan_labels(reduced)
    assert len(set(labels) - {-1}) == N_CENTERS
    assert adjusted_rand_score(blobs[1], labels) > 0.9


def test_same_seed_same_labels(blobs):
    first = hdbscan_labels(reduce(blobs[0], random_state=7))
    second = hdbscan_labels(reduce(blobs[0], random_state=7))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: reduce(np.ones(10)), "2-D"),
        (lambda: reduce(np.full((30, 4), np.nan)), "NaN"),
        (lambda: cl.cached_fit_transform(__import__("umap").UMAP(random_state=1), np.empty((0, 2))), "empty"),
        (lambda: cl.stability(np.ones((5, 2)), [1], np.zeros(4)), "5 rows but reference_clusters has 4"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("func", [cl.cluster_table, cl.export_frame])
def test_mismatched_lengths_name_both(func, keyword_frame):
    df, labels = keyword_frame
    with pytest.raises(ValueError, match=r"22 rows but clusters has 21"):
        func(df, labels[:-1], *([np.zeros((22, 2))] if func is cl.export_frame else []))


def test_cluster_table_rows_and_noise_last(keyword_frame):
    df, labels = keyword_frame
    labels = labels.copy()
    labels[-1] = -1
    table = cl.cluster_table(df, labels, n_examples=3)
    assert list(table["cluster"]) == [0, 1, 2, -1]
    assert table["is_noise"].tolist() == [False, False, False, True]
    assert table["size"].sum() == len(df)
    assert table.loc[0, "top_keywords"].startswith("peer review")
    assert len(table.loc[0, "example_titles"].split(" | ")) == 3


def test_stability_same_seed_gives_ari_one(blobs, reduced):
    reference = hdbscan_labels(reduced)
    out = cl.stability(blobs[0], seeds=[42], reference_clusters=reference, umap_params=COURSE_LIKE_UMAP,
                       hdbscan_params=dict(min_cluster_size=15))
    assert list(out.columns) == ["seed", "n_clusters", "noise_share", "ari", "ari_clustered"]
    assert out.loc[0, "ari"] == pytest.approx(1.0)
    assert out.loc[0, "n_clusters"] == N_CENTERS


def _citation_data(n=400, d=32, seed=0):
    """Citations driven by one embedding direction plus age; the embedding model should see it."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d))
    year = rng.integers(2000, 2024, size=n)
    signal = emb[:, 0]
    log_c = 0.1 * (2024 - year) + 1.0 * signal + rng.normal(scale=0.5, size=n) + 2
    df = pd.DataFrame({"year": year, "citations": np.round(np.expm1(np.clip(log_c, 0, None)))})
    return emb, df


def test_predict_citations_embedding_beats_age():
    emb, df = _citation_data()
    out = cl.predict_citations(emb, df).set_index("model")
    assert np.isfinite(out["r2_test"]).all()
    assert out.loc["embeddings + age", "r2_test"] > out.loc["age only", "r2_test"] + 0.1
    assert out.loc["age only", "n_features"] == 2


def test_predict_citations_mismatch():
    emb, df = _citation_data()
    with pytest.raises(ValueError, match="400 rows but embeddings has 399"):
        cl.predict_citations(emb[:-1], df)


def test_export_frame_joins_keywords(keyword_frame):
    df, labels = keyword_frame
    out = cl.export_frame(df, labels, np.zeros((len(df), 2)))
    assert out.loc[0, "keywords"] == "bibliometrics; peer review"
    assert out.loc[21, "keywords"] == ""
    assert {"cluster", "x", "y"} <= set(out.columns)


def test_plots_have_one_point_per_record(reduced, blobs):
    labels = hdbscan_labels(reduced)
    coords = reduced[:, :2]
    fig = plots.plot_clusters(coords, labels)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == len(coords)

    df = pd.DataFrame({"title": [f"paper {i}" for i in range(len(coords))], "year": 2020})
    ifig = plots.plot_clusters_interactive(coords, labels, df)
    assert sum(len(t.x) for t in ifig.data) == len(coords)
    assert "year: 2020" in ifig.data[0].text[0]


def test_plot_saves_to_path(tmp_path, reduced):
    labels = hdbscan_labels(reduced)
    plots.plot_clusters(reduced[:, :2], labels, path=tmp_path / "c.png")
    plots.plot_clusters_interactive(reduced[:, :2], labels, pd.DataFrame({"title": ["x"] * len(labels)}),
                                 path=tmp_path / "c.html")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert (tmp_path / "c.html").stat().st_size > 0


def test_cached_fit_transform_returns_stored_result(blobs, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    first = reduce(blobs[0], n_components=2, random_state=3)
    stored = list((tmp_path / "fit_transform").glob("UMAP-*.npy"))
    assert len(stored) == 1
    np.testing.assert_array_equal(np.load(stored[0]), first)
    np.testing.assert_array_equal(reduce(blobs[0], n_components=2, random_state=3), first)
    reduce(blobs[0], n_components=2, random_state=4)  # another seed, another entry
    assert len(list((tmp_path / "fit_transform").glob("*.npy"))) == 2


def test_cached_fit_transform_shares_the_cache_of_a_umap_built_by_hand(blobs, tmp_path, monkeypatch):
    import umap

    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    by_hand = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.0, metric="cosine", random_state=3, **FAST_UMAP)
    first = cl.cached_fit_transform(by_hand, blobs[0])
    assert first.dtype == np.float32 and first.shape == (len(blobs[0]), 2)
    # another reducer with the same parameters finds the stored result instead of running UMAP again
    monkeypatch.setattr(umap.UMAP, "fit_transform", lambda *a, **k: pytest.fail("UMAP ran again"))
    np.testing.assert_array_equal(reduce(blobs[0], n_components=2, random_state=3), first)
    unseeded = umap.UMAP(n_components=2, **FAST_UMAP)
    with pytest.raises(pytest.fail.Exception, match="UMAP ran again"):  # no seed: never cached, always computed
        cl.cached_fit_transform(unseeded, blobs[0])
    assert len(list((tmp_path / "fit_transform").glob("*.npy"))) == 1


def test_cluster_colours_are_never_grey():
    import matplotlib.colors as mcolors

    colours = plots._colours(range(-1, 18))
    for label, colour in colours.items():
        r, g, b = mcolors.to_rgb(colour)
        assert (label == -1) == (r == g == b), (label, colour)


def test_load_clusters_reads_notebook2_file_with_keyword_lists(tmp_path, demo_corpus):
    from helpers.clustering import export_frame, load_clusters

    labels = np.arange(len(demo_corpus)) % 3
    coords = np.zeros((len(demo_corpus), 2))
    path = tmp_path / "clusters.csv"
    export_frame(demo_corpus, labels, coords).to_csv(path, index=False)
    loaded = load_clusters(path)
    assert loaded["cluster"].tolist() == labels.tolist()
    assert loaded["keywords"].tolist() == demo_corpus["keywords"].tolist()
    demo_corpus.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(ValueError, match="lacks column.s. .cluster., .x., .y.*not a file of notebook 2"):
        load_clusters(tmp_path / "plain.csv")


def _delta_e(a, b):
    import matplotlib.colors as mcolors

    return float(np.linalg.norm(plots._lab([mcolors.to_rgb(a)])[0] - plots._lab([mcolors.to_rgb(b)])[0]))


def test_palette_keeps_the_first_clusters_apart_from_each_other_and_from_noise():
    palette = plots.cluster_palette()
    assert len(set(palette)) == 18
    first = [*palette[:12], plots.NOISE_COLOUR]
    assert min(_delta_e(a, b) for i, a in enumerate(first) for b in first[i + 1:]) >= 27
    colours = plots._colours(range(-1, 2))  # without a map: palette order, no more tab20's blue beside light blue
    assert _delta_e(colours[0], colours[1]) >= 27


def test_neighbouring_clusters_on_the_map_get_contrasting_colours():
    """Twelve clusters in a row: each one's neighbour on the map has a clearly different colour."""
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal((i * 3.0, 0), 0.3, size=(20 + i, 2)) for i in range(12)])
    labels = np.repeat(np.arange(12), [20 + i for i in range(12)])
    colours = plots._colours(labels, coords)
    assert len(set(colours.values())) == 13  # twelve clusters and the noise grey, all different
    assert min(_delta_e(colours[i], colours[i + 1]) for i in range(11)) >= 35
    # the interactive map uses the same colours, so a cluster looks the same in both figures
    fig = plots.plot_clusters_interactive(coords, labels, pd.DataFrame({"title": [f"t{i}" for i in range(len(labels))]}))
    assert {t.name: t.marker.color for t in fig.data}["cluster 3"] == colours[3]


def test_static_map_names_clusters_and_noise_in_its_legend(reduced):
    labels = hdbscan_labels(reduced).copy()
    labels[::10] = -1  # some noise, whatever HDBSCAN left
    names = {c: f"topic {c}; words" for c in set(labels) - {-1}}
    fig = plots.plot_clusters(reduced[:, :2], labels, names=names)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[-1] == "noise (not in any cluster)"
    assert texts[:-1] == [f"{c} topic {c}; words" for c in sorted(set(labels) - {-1})]
    annotations = sorted(a.get_text() for a in fig.axes[0].texts)
    assert annotations == sorted(str(c) for c in set(labels) - {-1})  # each cluster's number on the map
