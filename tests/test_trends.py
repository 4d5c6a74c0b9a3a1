"""How the field moves: shares per year with intervals, trends flagged only when the interval excludes zero,
citations normalised by year. Synthetic corpora with a known answer."""
import numpy as np
import pandas as pd
import pytest

from helpers.plots import plot_field_trends
from helpers.trends import cluster_shares, cluster_trends, normalised_citations


def _field(seed=0):
    """Ten years, 40 -> 220 records a year. Cluster 0 grows from 10% to 55%, cluster 1 shrinks from 60% to 15%,
    cluster 2 holds 25%; noise 5%. Citations: cluster 2's records get twice their year's typical count."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, year in enumerate(range(2010, 2020)):
        n = 40 + 20 * i
        p_grow = 0.10 + 0.05 * i
        p = [p_grow, 0.60 - 0.05 * i, 0.25, 0.05]
        clusters = rng.choice([0, 1, 2, -1], size=n, p=p)
        base = 2.0 * (2020 - year)  # older records have had longer to be cited
        citations = rng.poisson(np.where(clusters == 2, 2 * base, base))
        rows.append(pd.DataFrame({"year": year, "cluster": clusters, "citations": citations}))
    return pd.concat(rows, ignore_index=True)


def test_shares_per_year_sum_to_one_and_hold_their_estimate():
    shares = cluster_shares(_field())
    assert set(shares.columns) >= {"year", "cluster", "n_records", "n_year", "share", "share_low", "share_high"}
    assert np.allclose(shares.groupby("year")["share"].sum(), 1.0)
    assert ((shares["share_low"] <= shares["share"] + 1e-12) & (shares["share"] <= shares["share_high"] + 1e-12)).all()
    assert (shares.groupby("year")["n_year"].first().diff().dropna() == 20).all()  # the field's total beside the shares


def test_growing_and_shrinking_are_flagged_and_a_steady_cluster_is_not():
    trends = cluster_trends(_field()).set_index("cluster")
    assert trends.loc[0, "trend"] == "growing" and trends.loc[0, "slope_low"] > 0
    assert trends.loc[1, "trend"] == "shrinking" and trends.loc[1, "slope_high"] < 0
    assert trends.loc[2, "trend"] == "no clear trend" and trends.loc[2, "slope_low"] < 0 < trends.loc[2, "slope_high"]
    assert 3 < trends.loc[0, "slope_pp"] < 7  # 5 percentage points a year, estimated
    assert trends.index[-1] == -1  # noise last


def test_results_are_seeded():
    field = _field()
    pd.testing.assert_frame_equal(cluster_trends(field, seed=3), cluster_trends(field, seed=3))
    assert not cluster_trends(field, seed=3).equals(cluster_trends(field, seed=4))


def test_citations_are_normalised_by_year_so_age_does_not_count():
    cited = normalised_citations(_field()).set_index("cluster")
    assert cited.loc[2, "low"] > 1.2  # cited about twice as much as records of the same year
    assert cited.loc[0, "high"] < 1.0 and cited.loc[1, "high"] < 1.0
    # raw counts would favour the shrinking cluster, whose records are older
    raw = _field().groupby("cluster")["citations"].mean()
    assert raw.loc[1] > raw.loc[0]
    assert abs(cited.loc[1, "mean_normalised"] - cited.loc[0, "mean_normalised"]) < 0.25


def test_too_few_years_is_a_clear_error():
    with pytest.raises(ValueError, match="year"):
        cluster_trends(_field()[lambda f: f["year"] < 2012])


def test_the_plot_has_a_panel_per_cluster_and_the_field(tmp_path):
    field = _field()
    trends = cluster_trends(field)
    fig = plot_field_trends(cluster_shares(field), trends, normalised_citations(field), names={0: "growing topic"},
                            path=tmp_path / "trends.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 4 and titles[0].startswith("the field")
    assert any(t.startswith("0: growing topic\ngrowing") for t in titles)
    assert (tmp_path / "trends.png").stat().st_size > 10_000
