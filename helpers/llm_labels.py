"""Cluster labels written by an instruct model: sample titles, ask for 3-5 themes, parse the answer.

``label_clusters(df, clusters, generator)`` takes the same input as ``labels.keyword_labels`` and returns
one row per cluster in the same shape (``labels.LABEL_COLUMNS`` first), so ``labels.compare_labels``
sets both side by side. The prompt is ``prompts.CLUSTER_LABEL_PROMPT``; the other choices are
``LabelSettings``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.checks import NOISE, check_labels
from helpers.endpoint import Failure
from helpers.generation import GenerationSettings, generate
from helpers.prompts import CLUSTER_LABEL_PROMPT, ChatPrompt

_PREFIX = re.compile(r"^\s*(?:here\s+are\s+)?(?:the\s+)?(?:main\s+)?(?:\d\s*(?:to|-|–)\s*\d\s+)?(?:main\s+)?"
                     r"(?:themes?|topics?|labels?|keywords?)\b[^:\n]*:\s*", flags=re.IGNORECASE)
_MARKER = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,2}[.):]|\(?[a-eA-E][.)](?=\s))\s*")
_NAMED = re.compile(r"^(?:theme|topic|label)\s*\d*\s*[:.-]\s*", flags=re.IGNORECASE)


def theme_candidates(text: str, max_words: int = 8) -> list[str]:
    """Every theme found in an answer, in order, deduplicated (case-insensitive).

    One theme per line, or comma/semicolon-separated on one line. Numbering, bullets, ``Themes:`` prefixes,
    emphasis, quotes and end punctuation are removed; ``Name: description`` keeps the name; a line of
    more than ``max_words`` words is prose and skipped.
    """
    if not isinstance(text, str):
        return []
    text = _PREFIX.sub("", text.strip().replace("**", "").replace("__", ""))
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and re.search(r"[,;]", lines[0]):
        lines = re.split(r"[,;]", lines[0])
    themes, seen = [], set()
    for line in lines:
        line = _NAMED.sub("", _MARKER.sub("", line.strip()))
        if ":" in line:
            name, _, rest = line.partition(":")
            line = name if name.strip() else rest
        line = line.strip().strip("\"'`“”‘’").strip().rstrip(".;,!").strip()
        if not line or line.endswith("?") or len(line.split()) > max_words or not re.search(r"[A-Za-z]", line):
            continue
        key = line.casefold()
        if key not in seen:
            seen.add(key)
            themes.append(line)
    return themes


def parse_themes(text: str, min_n: int = 3, max_n: int = 5) -> list[str] | None:
    """The first ``max_n`` themes of a model's answer (``theme_candidates``), or None (unparseable) below ``min_n``."""
    themes = theme_candidates(text)
    return themes[:max_n] if len(themes) >= min_n else None


def _short_title(title: str, max_words: int) -> str:
    # Scopus appends translations of non-English titles in square brackets: "...; [Науковедение ...]".
    title = re.sub(r"\s*;?\s*\[[^\]]*\]", "", title).strip() or title.strip()
    words = title.split()
    return " ".join(words[:max_words]) + " ..." if len(words) > max_words else title


def sample_titles(titles, n_titles: int = 10, seed: int = 0, max_words: int = 20) -> list[str]:
    """Up to ``n_titles`` distinct, non-empty titles drawn with ``seed``, cut to ``max_words`` words and without
    the translations Scopus appends: long prompts cost time and push the model towards copying titles."""
    titles = list(dict.fromkeys(t.strip() for t in titles if isinstance(t, str) and t.strip()))
    if len(titles) > n_titles:
        picks = np.random.default_rng(seed).choice(len(titles), size=n_titles, replace=False)
        titles = [titles[i] for i in sorted(picks)]
    return [_short_title(t, max_words) for t in titles]


def cluster_label_messages(titles: list[str], prompt: ChatPrompt = CLUSTER_LABEL_PROMPT) -> list[dict]:
    """The chat that asks for one cluster's themes: system, worked examples, then the titles, one per line."""
    return prompt.require("titles").messages(titles="\n".join(titles))


# Keeps SmolLM2-135M from answering "ethics; ethics; ...": without it 5 of the course's 16 clusters came
# back unparseable; 1.5 breaks the format.
LABEL_REPETITION_PENALTY = 1.2


@dataclass(frozen=True)
class LabelSettings:
    """How clusters are labelled: ``n_titles`` titles per cluster, sampled with ``seed`` and cut to
    ``title_words`` words; at most ``max_new_tokens`` written, greedily, with ``repetition_penalty`` (None:
    plain greedy); an answer with fewer than ``min_themes`` themes is unparseable, one with more than
    ``max_themes`` is cut."""

    n_titles: int = 10
    seed: int = 0
    title_words: int = 20
    max_new_tokens: int = 32
    repetition_penalty: float | None = LABEL_REPETITION_PENALTY
    min_themes: int = 3
    max_themes: int = 5

    def __post_init__(self):
        if not 1 <= self.min_themes <= self.max_themes:
            raise ValueError(f"need 1 <= min_themes <= max_themes; got {self.min_themes}, {self.max_themes}")
        if self.n_titles < 1 or self.title_words < 1 or self.max_new_tokens < 1:
            raise ValueError("n_titles, title_words and max_new_tokens must be >= 1")


def label_clusters(df: pd.DataFrame, clusters, generator=None, prompt: ChatPrompt = CLUSTER_LABEL_PROMPT,
                   settings: LabelSettings = LabelSettings(), cache: bool = True) -> pd.DataFrame:
    """Label each cluster of ``df`` (cluster ids ``clusters``, one per row; noise left out) from its titles.

    Each chat (``cluster_label_messages``) shows the cluster's sampled titles; answers come from
    ``generate`` (greedy, batched, cached). One row per cluster: ``cluster``, ``method`` ("LLM"), ``label``
    (the themes joined by "; ", "UNPARSEABLE: ..." when too few themes were found, "FAILED: ..." when an
    endpoint gave no answer), ``terms``; then ``parsed``, ``n_themes`` (before the cut), ``n_titles``,
    ``prompt`` (the last user message), ``answer`` (raw) and ``error`` (the failure, or None).
    """
    if "title" not in df:
        raise ValueError("df needs a 'title' column: the titles are what the model reads")
    clusters = check_labels(clusters, len(df), other="clusters")
    titles_by_cluster = {int(c): df["title"][clusters == c].tolist() for c in np.unique(clusters) if c != NOISE}
    if not titles_by_cluster:
        raise ValueError("every record is noise (-1): there is no cluster to label")
    sampled = {c: sample_titles(t, settings.n_titles, settings.seed, settings.title_words)
               for c, t in titles_by_cluster.items()}
    empty = [c for c, titles in sampled.items() if not titles]
    if empty:
        raise ValueError(f"cluster(s) {empty} have no non-empty title")
    chats = [cluster_label_messages(titles, prompt) for titles in sampled.values()]
    answers = generate(chats, generator, GenerationSettings(max_new_tokens=settings.max_new_tokens,
                       repetition_penalty=settings.repetition_penalty), cache=cache, errors="mark")
    rows = []
    for (c, titles), chat, answer in zip(sampled.items(), chats, answers):
        error = answer.reason if isinstance(answer, Failure) else None
        answer = "" if error else answer
        themes = parse_themes(answer, settings.min_themes, settings.max_themes)
        label = ("; ".join(themes) if themes else f"FAILED: {error}" if error
                 else "UNPARSEABLE: " + " ".join(answer.split())[:60])
        rows.append({"cluster": c, "method": "LLM", "label": label, "terms": themes or [],
                     "parsed": themes is not None, "n_themes": len(theme_candidates(answer)),
                     "n_titles": len(titles), "prompt": chat[-1]["content"], "answer": answer, "error": error})
    return pd.DataFrame(rows)
