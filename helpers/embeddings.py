"""Texts to vectors (``embed_texts``: ``SentenceTransformer.encode``, cached on disk); zero-shot labels."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from helpers.cache import cache_dir, content_hash, read_cached, write_atomically
from helpers.models import DEFAULT_EMBEDDER, embedder_info, load_embedder, model_info


def check_texts(texts) -> list[str]:
    """Texts as a list of str; raises ValueError naming the rows that are empty or missing."""
    labels = list(texts.index) if isinstance(texts, pd.Series) else None
    texts = list(texts)
    if not texts:
        raise ValueError("No texts to embed: the input is empty.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        names = [labels[i] for i in bad] if labels is not None else bad
        shown = ", ".join(map(str, names[:10])) + (" ..." if len(names) > 10 else "")
        raise ValueError(f"{len(bad)} text(s) are empty or missing (NaN) at row(s) {shown}; drop or fill them first.")
    return texts


# Texts per forward pass. On a CPU, batches of 16 abstracts (256 tokens each) keep the
# activations in cache: 1.02-1.19x the docs/s of sentence-transformers' default 32, same
# vectors (bench/RESULTS.md).
CPU_BATCH_SIZE = 16
GPU_BATCH_SIZE = 128


def embed_texts(texts, model=DEFAULT_EMBEDDER, batch_size: int | None = None, cache: bool = True,
                show_progress: bool | None = None, backend: str = "torch") -> np.ndarray:
    """``model.encode(texts, normalize_embeddings=True)``, with a disk cache: float32 ``(n, dim)``, rows of length 1.

    Empty texts are refused by row, batches suit the device, and a re-run with the same model and texts
    returns at once, without loading a model given by name (a hub name while online is loaded to learn its
    revision). ``model``: a name or folder (loaded with ``load_embedder``, with ``backend``) or a loaded
    SentenceTransformer. Vectors are cached by the model's identity (``ModelInfo.key``: its weights,
    backend, dtype and device), so two models never share an entry.
    """
    texts = check_texts(texts)
    path = _cache_path(texts, model, backend) if cache else None
    vectors = read_cached(path, np.load) if cache else None
    if vectors is not None and vectors.shape[0] == len(texts):
        return vectors
    embedder = load_embedder(model, backend=backend) if isinstance(model, str) else model
    if show_progress is None:
        show_progress = len(texts) > 500
    if batch_size is None:
        batch_size = CPU_BATCH_SIZE if str(embedder.device) == "cpu" else GPU_BATCH_SIZE
    vectors = embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=show_progress).astype(np.float32)
    if cache:
        write_atomically(path, lambda tmp: np.save(tmp, vectors))
    return vectors


def _cache_path(texts: list[str], model, backend: str):
    """The cache file of ``texts`` embedded by ``model`` (a name, with ``backend``, or a loaded model)."""
    info = embedder_info(model, backend) if isinstance(model, str) else model_info(model)
    if info is None:  # only loading tells which revision a hub name is; load_embedder keeps it for the caller
        info = model_info(load_embedder(model, backend=backend))
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", info.name.rstrip("/").split("/")[-1])[:60]
    return cache_dir("embeddings") / f"{readable}-{info.backend}-{content_hash(info.key, texts)}.npy"


# Descriptions for zero-shot sentiment: several phrasings per label, averaged.
SENTIMENT_DESCRIPTIONS = {
    "POSITIVE": ["I feel good, happy and great.", "This is wonderful, excellent and pleasant.",
                 "A positive, joyful and satisfied statement."],
    "NEGATIVE": ["I feel bad, sad and terrible.", "This is awful, horrible and unpleasant.",
                 "A negative, angry and disappointed statement."],
}


class SimilarityClassifier:
    """Zero-shot labels: a text gets the label whose descriptions its embedding is closest to.

    Called like a ``pipeline("sentiment-analysis")``: one ``{"label", "score"}`` per text, the score a softmax
    (at ``temperature``) of the cosines to each label's mean description vector.
    """

    def __init__(self, embedder, label_descriptions: dict[str, list[str]] = SENTIMENT_DESCRIPTIONS,
                 temperature: float = 0.05):
        if not label_descriptions or len(label_descriptions) < 2:
            raise ValueError("give at least two labels, each with a list of descriptions")
        self.embedder, self.labels, self.temperature = embedder, list(label_descriptions), temperature
        centroids = np.stack([embed_texts(label_descriptions[label], embedder, cache=False).mean(axis=0)
                              for label in self.labels])
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        print(f"Zero-shot classifier: labels {', '.join(self.labels)} by similarity to their descriptions, "
              f"with {model_info(embedder).name if not isinstance(embedder, str) else embedder}.")

    def __call__(self, texts) -> list[dict]:
        """One ``{"label", "score"}`` per text (one text: a list of one)."""
        logits = embed_texts([texts] if isinstance(texts, str) else texts, self.embedder, cache=False) @ self.centroids.T
        probs = np.exp((logits - logits.max(axis=1, keepdims=True)) / self.temperature)
        probs /= probs.sum(axis=1, keepdims=True)
        return [{"label": self.labels[i], "score": float(p[i])} for p, i in zip(probs, probs.argmax(axis=1))]
