"""Checks against the reference: ids that survive reordering, ARI that ignores cluster numbers, answer agreement."""
import numpy as np
import pandas as pd
import pytest

from helpers.reference import compare_answers, compare_clusters, environment, environment_differences, record_ids


def test_record_ids_are_unique_and_survive_another_order(demo_corpus):
    ids = record_ids(demo_corpus)
    assert ids.is_unique and ids.str.len().eq(12).all()
    shuffled = demo_corpus.sample(frac=1, random_state=0)
    assert record_ids(shuffled).tolist() == ids.loc[shuffled.index].tolist()


def test_compare_clusters_ignores_numbering_and_sees_a_real_change(demo_corpus, tmp_path):
    clusters = demo_corpus["theme"].astype("category").cat.codes.to_numpy()
    reference = tmp_path / "clusters.csv"
    pd.DataFrame({"record_id": record_ids(demo_corpus), "cluster": clusters}).to_csv(reference, index=False)
    renumbered = np.where(clusters >= 0, 10 - clusters, -1)
    same = compare_clusters(demo_corpus.iloc[::-1], renumbered[::-1], reference)  # other order, other numbers
    assert same["ari"] == pytest.approx(1.0) and same["n_common"] == len(demo_corpus)
    moved = clusters.copy()
    moved[:40] = (moved[:40] + 1) % clusters.max()
    assert compare_clusters(demo_corpus, moved, reference)["ari"] < 0.9
    with pytest.raises(ValueError, match="course corpus"):
        compare_clusters(demo_corpus.assign(title="other " + demo_corpus["title"]), clusters, reference)


def test_compare_answers_and_environment(tmp_path):
    reference = tmp_path / "answers.csv"
    pd.DataFrame({"file": ["a.pdf", "b.pdf", "c.pdf"], "question": "q", "combined": ["TRUE", "FALSE", "None"]}).to_csv(
        reference, index=False)
    results = pd.DataFrame({"file": ["a.pdf", "b.pdf", "c.pdf"], "question": "q", "combined": ["TRUE", "TRUE", None]})
    table = compare_answers(results, reference)
    assert table["same"].tolist() == [True, False, True]
    here = environment(seed=42)
    assert here["seed"] == 42 and here["python"] and here["umap-learn"] != "not installed"
    assert environment_differences(here, {**here, "device": "cuda"}) == [f"device: {here['device']} here, cuda in the reference"]
