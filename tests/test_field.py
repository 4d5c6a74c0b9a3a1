"""The command `python -m helpers.field EXPORT --out FOLDER` on the demo corpus written as RIS."""
import pandas as pd
from openalex_works import ris_from_records

from helpers import field


def test_the_command_writes_clusters_map_labels_and_time_plot(tmp_path, demo_corpus, capsys):
    export = tmp_path / "my_export.ris"
    export.write_text(ris_from_records(demo_corpus))
    out = tmp_path / "my_field"
    field.main([str(export), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "146 records with an abstract (of 150)" in printed and "min on this device" in printed
    assert printed.index("min on this device") < printed.index("clusters; results in")  # the cost comes first
    clusters = pd.read_csv(out / "clusters.csv")
    assert len(clusters) == 146 and {"cluster", "x", "y", "title", "year"} <= set(clusters.columns)
    assert clusters["cluster"].nunique() >= 3
    labels = pd.read_csv(out / "labels.csv")
    assert set(labels["cluster"]) == set(clusters["cluster"])
    assert "plotly" in (out / "map.html").read_text()[:5000].lower()
    assert (out / "trends.png").stat().st_size > 10_000
    trends = pd.read_csv(out / "trends.csv")
    assert set(trends["trend"]) <= {"growing", "shrinking", "no clear trend"}
