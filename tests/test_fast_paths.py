"""Fast paths give the same answers as the plain ones (speed itself is measured by bench/run.py, never here)."""
import numpy as np
import pytest

from helpers.embeddings import embed_texts
from helpers.models import get_device, load_embedder, load_query_embedder, model_info
from helpers.retrieval import build_index, embed_query

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def int8_and_fp32(demo_corpus):
    texts = demo_corpus["text"].tolist()
    return embed_texts(texts, cache=False, backend="onnx-int8"), embed_texts(texts, cache=False)


def test_onnx_int8_vectors_agree_with_fp32(int8_and_fp32):
    int8, fp32 = int8_and_fp32
    assert int8.shape == fp32.shape == (150, 384)
    assert int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosine = (int8 * fp32).sum(axis=1)
    # int8 weights per channel: close to fp32 on average, a little less on the worst record
    # (bench/RESULTS.md has the figures on the course corpus); not the same vectors.
    assert cosine.mean() >= 0.99
    assert cosine.min() >= 0.97
    assert not np.allclose(int8, fp32)


def test_onnx_int8_keeps_neighbours(int8_and_fp32, demo_corpus):
    # What the course uses vectors for: each record's nearest neighbour and its theme.
    int8, fp32 = int8_and_fp32
    themes = demo_corpus["theme"].to_numpy()

    def nearest_theme(x):
        sim = x @ x.T
        np.fill_diagonal(sim, -1)
        return themes[sim.argmax(axis=1)]

    assert (nearest_theme(int8) == nearest_theme(fp32)).mean() >= 0.95


def test_backends_are_cached_apart(demo_corpus):
    texts = demo_corpus["text"].head(10).tolist()
    fp32 = embed_texts(texts)
    int8 = embed_texts(texts, backend="onnx-int8")
    assert not np.array_equal(fp32, int8)
    np.testing.assert_array_equal(embed_texts(texts, backend="onnx-int8"), int8)
    np.testing.assert_array_equal(embed_texts(texts), fp32)


def test_int8_model_is_named_apart():
    int8, fp32 = model_info(load_embedder(backend="onnx-int8")), model_info(load_embedder())
    assert (int8.backend, int8.dtype, int8.checkpoint) == ("onnx-int8", "int8", fp32.checkpoint)
    assert int8.key == f"{fp32.checkpoint}|onnx-int8|int8|cpu" != fp32.key


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown embedder backend 'tensorrt'"):
        load_embedder(backend="tensorrt")
    with pytest.raises(ValueError, match="CPU only"):
        load_embedder(device="cuda", backend="onnx-int8")
    with pytest.raises(ValueError, match="CPU only"):
        load_embedder(device="cuda", backend="onnx")


def test_onnx_fp32_gives_pytorchs_vectors(demo_corpus):
    texts = demo_corpus["text"].head(20).tolist() + ["citation networks", "h-index"]
    onnx = embed_texts(texts, cache=False, backend="onnx")
    fp32 = embed_texts(texts, cache=False)
    assert onnx.shape == fp32.shape == (22, 384)
    np.testing.assert_allclose(onnx, fp32, atol=1e-4)


@pytest.mark.skipif(get_device() != "cpu", reason="the ONNX query path is the CPU's")
def test_queries_go_through_onnx_and_are_remembered(demo_corpus):
    index = build_index(demo_corpus.head(30))
    assert model_info(load_query_embedder(index.model)).backend == "onnx"
    query = "citation impact of highly cited papers"
    vector = embed_query(index, query)
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert not vector.flags.writeable  # shared by every repeat of the query
    assert embed_query(index, query) is vector
    np.testing.assert_allclose(vector, embed_texts([query], cache=False)[0], atol=1e-5)


def test_query_embedder_keeps_models_it_cannot_convert():
    int8 = load_embedder(backend="onnx-int8")
    assert load_query_embedder(int8) is int8  # already converted: used as it is


# --------------------------------------------------------------------------- the harness's own helpers


def test_resampled_corpus_is_reproducible_and_perturbed():
    from bench.resample import resample_corpus

    first = resample_corpus(200, seed=1)
    assert len(first) == 200
    assert first["text"].tolist() == resample_corpus(200, seed=1)["text"].tolist()
    assert first["text"].tolist() != resample_corpus(200, seed=2)["text"].tolist()
    assert first["text"].str.len().min() > 0


def test_perturbation_keeps_most_words():
    from bench.resample import perturb

    rng = np.random.default_rng(0)
    text = " ".join(f"word{i}" for i in range(200))
    out = perturb(text, rng)
    assert out != text
    assert 0.85 * 200 <= len(out.split()) <= 200
    assert set(out.split()) <= set(text.split())


def test_resampled_embeddings_are_unit_vectors_near_the_source():
    from bench.resample import resample_embeddings

    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 384)).astype(np.float32)
    source /= np.linalg.norm(source, axis=1, keepdims=True)
    out = resample_embeddings(source, 500)
    assert out.shape == (500, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert (out @ source.T).max(axis=1).min() > 0.5
