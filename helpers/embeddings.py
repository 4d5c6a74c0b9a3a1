"""Texts to vectors: ``embed_texts`` with an on-disk cache, and zero-shot labels by similarity."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from helpers.cache import cache_dir, content_hash
from helpers.models import DEFAULT_EMBEDDER, load_embedder


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


def _model_name(model) -> str:
    return model if isinstance(model, str) else getattr(model, "scisci_name", None) or type(model).__name__


def embed_texts(texts, model=DEFAULT_EMBEDDER, batch_size: int = 64, cache: bool = True,
                show_progress: bool | None = None) -> np.ndarray:
    """Embed texts: float32 array ``(n, dim)``, each row L2-normalised (so dot product = cosine).

    ``model`` is a name (loaded with ``load_embedder``) or a loaded
    SentenceTransformer. Results are cached on disk by model name and a hash of
    the texts, so a re-run returns at once without loading the model.
    """
    texts = check_texts(texts)
    name = _model_name(model)
    path = cache_dir("embeddings") / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name)}-{content_hash(name, texts)}.npy"
    if cache and path.is_file():
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors
        except (OSError, ValueError):
            pass  # an unreadable cache file is recomputed below
    embedder = load_embedder(model) if isinstance(model, str) else model
    if show_progress is None:
        show_progress = len(texts) > 500
    vectors = embedder.encode(
        texts, batch_size=batch_size, normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=show_progress,
    ).astype(np.float32)
    if cache:
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors


def classify_by_similarity(texts, label_descriptions: dict[str, list[str]], model=DEFAULT_EMBEDDER,
                           temperature: float = 0.05) -> pd.DataFrame:
    """Zero-shot labels: each text gets the label whose descriptions it is most similar to.

    Returns a DataFrame ``(n, 2)`` with ``label`` and ``score`` (softmax of
    cosine similarities to each label's mean description vector, at ``temperature``).
    """
    labels = list(label_descriptions)
    centroids = np.stack([
        embed_texts(label_descriptions[label], model, cache=False).mean(axis=0) for label in labels
    ])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    similarity = embed_texts(texts, model, cache=False) @ centroids.T
    logits = similarity / temperature
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    return pd.DataFrame({"label": [labels[i] for i in best], "score": probs[np.arange(len(best)), best]})
