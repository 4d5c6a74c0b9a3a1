"""Larger corpora made from the course's own: records drawn with replacement, texts perturbed, vectors jittered."""
from __future__ import annotations

from bench.common import SEED


def perturb(text: str, rng) -> str:
    """The text with ~5% of its words dropped and two neighbouring words swapped: a near-duplicate."""
    words = text.split()
    keep = [w for w in words if rng.random() > 0.05] or words
    if len(keep) > 3:
        i = int(rng.integers(0, len(keep) - 1))
        keep[i], keep[i + 1] = keep[i + 1], keep[i]
    return " ".join(keep)


def resample_corpus(n: int, seed: int = SEED):
    """``n`` records drawn with replacement from the course corpus (with abstracts), texts perturbed."""
    import numpy as np

    from helpers.data import load_corpus

    corpus = load_corpus("course")
    corpus = corpus[corpus["has_abstract"]].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = corpus.iloc[rng.integers(0, len(corpus), n)].reset_index(drop=True)
    rows["text"] = [perturb(t, rng) for t in rows["text"]]
    return rows


def resample_embeddings(vectors, n: int, noise: float = 0.02, seed: int = SEED):
    """``n`` unit vectors: rows of ``vectors`` drawn with replacement plus Gaussian noise, renormalised."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = vectors[rng.integers(0, len(vectors), n)] + rng.normal(0, noise, (n, vectors.shape[1])).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
