import numpy as np
import pandas as pd
import pytest

from helpers import embeddings
from helpers.embeddings import embed_texts


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    return tmp_path


def test_similar_topics_are_closer(embedder, fresh_cache):
    vectors = embed_texts([
        "Women face a persistent gender gap in academic careers and promotions.",
        "Female scientists are under-represented among senior researchers.",
        "Protein folding is predicted from amino-acid sequences with deep learning.",
    ], embedder)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_second_call_is_served_from_cache(embedder, fresh_cache, monkeypatch):
    texts = ["citation analysis of journals", "peer review at funding agencies"]
    first = embed_texts(texts)
    assert len(list((fresh_cache / "embeddings").glob("*.npy"))) == 1

    def no_model(*args, **kwargs):
        raise AssertionError("the model was called although the result is cached")

    monkeypatch.setattr(embeddings, "load_embedder", no_model)
    np.testing.assert_array_equal(embed_texts(texts), first)
    with pytest.raises(AssertionError, match="model was called"):
        embed_texts(texts + ["a new text needs the model"])


def test_corrupted_cache_file_is_recomputed(embedder, fresh_cache):
    texts = ["open science and data sharing"]
    first = embed_texts(texts)
    (path,) = (fresh_cache / "embeddings").glob("*.npy")
    path.write_bytes(b"not an array")
    np.testing.assert_allclose(embed_texts(texts), first, atol=1e-6)


@pytest.mark.parametrize("texts, rows", [
    (["fine", "", "also fine"], "row(s) 1"),
    (pd.Series(["ok", None, "  "], index=[10, 11, 12]), "row(s) 11, 12"),
    ([], "empty"),
])
def test_empty_or_missing_texts_are_rejected_by_row(texts, rows):
    with pytest.raises(ValueError, match=rows.replace("(", r"\(").replace(")", r"\)")):
        embed_texts(texts)


def test_similarity_classifier_labels_like_a_pipeline_and_says_so(embedder, capsys):
    classify = embeddings.SimilarityClassifier(embedder)
    assert "Zero-shot classifier: labels POSITIVE, NEGATIVE" in capsys.readouterr().out
    results = classify(["My paper was rejected and I feel miserable.", "What a wonderful, happy day!"])
    assert [r["label"] for r in results] == ["NEGATIVE", "POSITIVE"]
    assert all(0.5 < r["score"] <= 1 for r in results)
    topics = embeddings.SimilarityClassifier(embedder, {"citations": ["citation counts of papers"],
                                                        "gender": ["women and men in science"]})
    assert topics("The gender gap among professors")[0]["label"] == "gender"
    with pytest.raises(ValueError, match="at least two labels"):
        embeddings.SimilarityClassifier(embedder, {"only": ["one label"]})
