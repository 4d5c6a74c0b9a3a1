"""tools/make_reference.py writes the reference files it has the notebook outputs for, and says what it skipped."""
import numpy as np
import pandas as pd
import pytest

import tools.make_reference as make_reference
from helpers.clustering import CLUSTERS_FILE, export_frame
from helpers.reference import compare_clusters, record_ids


@pytest.fixture
def reference_files(tmp_path, monkeypatch):
    """The reference paths moved to a temporary folder, so the committed files are never touched."""
    folder = tmp_path / "reference"
    paths = {"REFERENCE_DIR": folder, "REFERENCE_CLUSTERS": folder / "course_clusters.csv",
             "REFERENCE_ANSWERS": folder / "pdf_answers.csv", "REFERENCE_ENVIRONMENT": folder / "environment.json"}
    for name, path in paths.items():
        monkeypatch.setattr(make_reference, name, path)
    monkeypatch.setattr(make_reference, "course_environment", lambda: {"seed": 42, "device": "cpu"})
    return paths


def test_writes_the_clusters_it_finds_and_skips_the_missing_answers(demo_corpus, tmp_path, reference_files, capsys):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    clusters = np.arange(len(demo_corpus)) % 4 - 1
    export_frame(demo_corpus, clusters, np.zeros((len(demo_corpus), 2))).to_csv(outputs / CLUSTERS_FILE, index=False)
    assert make_reference.main([str(outputs)]) == 0
    printed = capsys.readouterr().out
    assert "course_clusters.csv (150 records), environment.json" in printed
    assert "Skipped pdf_answers.csv (no pdf_extraction.csv: run notebook 3)" in printed
    assert not reference_files["REFERENCE_ANSWERS"].exists()
    written = pd.read_csv(reference_files["REFERENCE_CLUSTERS"], dtype={"record_id": str})
    assert written["record_id"].tolist() == record_ids(demo_corpus).tolist()
    assert compare_clusters(demo_corpus, clusters, reference_files["REFERENCE_CLUSTERS"])["ari"] == pytest.approx(1.0)


def test_writes_nothing_without_outputs_or_with_ids_that_repeat(demo_corpus, tmp_path, reference_files, capsys):
    assert make_reference.main([str(tmp_path)]) == 1
    assert "Nothing written" in capsys.readouterr().out and not reference_files["REFERENCE_DIR"].exists()
    twice = pd.concat([demo_corpus, demo_corpus.head(1)], ignore_index=True)
    export_frame(twice, np.zeros(len(twice), dtype=int), np.zeros((len(twice), 2))).to_csv(tmp_path / CLUSTERS_FILE,
                                                                                         index=False)
    with pytest.raises(SystemExit, match="1 records share an id"):
        make_reference.main([str(tmp_path)])
    assert not reference_files["REFERENCE_CLUSTERS"].exists()


def test_every_course_record_has_its_own_id(course_corpus):
    """Two course records share title, year and the start of their abstract (a Russian article and its
    translation, DOI missing); the whole abstract tells them apart, so the reference maps ids one to one."""
    assert record_ids(course_corpus).is_unique
