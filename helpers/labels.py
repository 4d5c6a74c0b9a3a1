"""Cluster labels, in one place and one shape: author keywords (PMI), c-TF-IDF terms, an LLM's themes.

Every labeller returns one row per cluster with ``cluster``, ``method``, ``label`` (the terms joined by
"; ") and ``terms`` (a list, best first), then columns of its own; ``compare_labels`` sets them side by side::

    compare_labels(keyword_labels(df, labels), ctfidf_labels(df["text"], labels),
                   label_clusters(df.groupby(labels)["title"].apply(list).to_dict()))
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from helpers import prompts
from helpers.checks import check_labels, require_columns
from helpers.data import parse_keywords
from helpers.endpoint import Failure
from helpers.generation import generate

LABEL_COLUMNS = ["cluster", "method", "label", "terms"]


def _per_cluster(scores: pd.DataFrame, term: str, method: str) -> pd.DataFrame:
    """A long frame of ranked terms (cluster, rank, ``term``) as one row per cluster in the labels' shape."""
    terms = scores.sort_values(["cluster", "rank"]).groupby("cluster", sort=True)[term].agg(list)
    return pd.DataFrame({"cluster": terms.index.astype(int), "method": method,
                         "label": terms.map("; ".join).to_numpy(), "terms": terms.to_numpy()})


def ctfidf_scores(texts, labels, top_n: int = 5) -> pd.DataFrame:
    """Top ``top_n`` terms per cluster by class-based TF-IDF: a long frame of cluster, rank (1 = best), term, score.

    A cluster's texts are one document: ``tf(term, cluster) * log(1 + mean words per cluster / count of term)``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    texts = ["" if t is None or (not isinstance(t, str) and pd.isna(t)) else str(t) for t in texts]
    labels = check_labels(labels, len(texts), what="texts")
    # one pass over the texts (a loop per cluster would grow with records x clusters)
    by_class = pd.Series(texts).groupby(labels).agg(" ".join)
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(by_class.tolist()).toarray().astype(float)
    except ValueError as err:  # only stop words or empty strings
        raise ValueError(f"no usable words in texts for c-TF-IDF ({err})") from None
    terms = vectorizer.get_feature_names_out()
    words_per_class = counts.sum(axis=1, keepdims=True)
    scores = counts / np.maximum(words_per_class, 1) * np.log(1 + words_per_class.mean() / counts.sum(axis=0))
    rows = []
    for c, row in zip(by_class.index, scores):
        for rank, j in enumerate(np.argsort(-row, kind="stable")[:top_n], start=1):
            if row[j] > 0:
                rows.append({"cluster": int(c), "rank": rank, "term": terms[j], "score": float(row[j])})
    return pd.DataFrame(rows, columns=["cluster", "rank", "term", "score"])


def ctfidf_labels(texts, labels, top_n: int = 5) -> pd.DataFrame:
    """Each cluster's ``top_n`` c-TF-IDF terms (``ctfidf_scores``), one row per cluster."""
    return _per_cluster(ctfidf_scores(texts, labels, top_n), "term", "c-TF-IDF")


def keyword_scores(df: pd.DataFrame, labels, top_n: int = 5, min_count: int = 3) -> pd.DataFrame:
    """Most characteristic author keywords per cluster: cluster, rank, keyword, n_records, pmi, score.

    Score = P(kw | cluster) * log(P(kw | cluster) / P(kw)): PMI weighted by how common the keyword is in
    the cluster, as plain PMI would crown keywords of three papers. Probabilities are over records with
    keywords; a keyword needs ``min_count`` records of the cluster. A cluster may have no row.
    """
    labels = check_labels(labels, len(df))
    keyword_lists = [parse_keywords(v) for v in df["keywords"]] if "keywords" in df else [[] for _ in labels]
    has_kw = np.array([len(k) > 0 for k in keyword_lists])
    n_total = int(has_kw.sum())
    overall = Counter(kw for kws in keyword_lists for kw in set(kws))
    rows = []
    for c in np.unique(labels):
        members = [set(keyword_lists[i]) for i in np.flatnonzero((labels == c) & has_kw)]
        scored = []
        for kw, count in Counter(kw for kws in members for kw in kws).items():
            p_in = count / len(members)
            pmi = math.log(p_in / (overall[kw] / n_total))
            if count >= min_count and pmi > 0:
                scored.append((p_in * pmi, count, kw, pmi))
        scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
        for rank, (score, count, kw, pmi) in enumerate(scored[:top_n], start=1):
            rows.append(dict(cluster=int(c), rank=rank, keyword=kw, n_records=count, pmi=pmi, score=score))
    return pd.DataFrame(rows, columns=["cluster", "rank", "keyword", "n_records", "pmi", "score"])


def keyword_labels(df: pd.DataFrame, labels, top_n: int = 5, min_count: int = 3) -> pd.DataFrame:
    """Each cluster's ``top_n`` author keywords (``keyword_scores``), one row per cluster; a cluster without a
    keyword in ``min_count`` of its records gets c-TF-IDF terms (of texts, or titles); ``source`` says which."""
    labels = check_labels(labels, len(df))
    table = _per_cluster(keyword_scores(df, labels, top_n, min_count), "keyword", "keywords").assign(source="keywords")
    missing = sorted(set(np.unique(labels).tolist()) - set(table["cluster"]))
    if missing:
        terms = ctfidf_labels(df["text"] if "text" in df else df["title"], labels, top_n)
        table = pd.concat([table, terms[terms["cluster"].isin(missing)].assign(method="keywords", source="c-TF-IDF")])
    return table.sort_values("cluster", ignore_index=True)


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


def cluster_label_messages(titles: list[str], system: str = prompts.CLUSTER_LABEL_SYSTEM,
                           user: str = prompts.CLUSTER_LABEL_USER,
                           examples=prompts.CLUSTER_LABEL_EXAMPLES) -> list[dict]:
    """The chat that asks for one cluster's themes: system, worked examples, then the titles.

    Each example ``(titles, answer)`` becomes a user and an assistant turn: the format to follow.
    """
    if "{titles}" not in user:
        raise ValueError("the user prompt needs a {titles} slot for the sampled titles")
    chat = [{"role": "system", "content": system}] if system else []
    for example_titles, answer in examples or []:
        chat += [{"role": "user", "content": user.format(titles="\n".join(example_titles))},
                 {"role": "assistant", "content": answer}]
    return chat + [{"role": "user", "content": user.format(titles="\n".join(titles))}]


# Keeps SmolLM2-135M from answering "ethics; ethics; ...": without it 5 of the course's 16 clusters came
# back unparseable; 1.5 breaks the format.
LABEL_REPETITION_PENALTY = 1.2


def label_clusters(titles_by_cluster: dict, generator=None, n_titles: int = 10, seed: int = 0,
                   system: str = prompts.CLUSTER_LABEL_SYSTEM, user: str = prompts.CLUSTER_LABEL_USER,
                   examples=prompts.CLUSTER_LABEL_EXAMPLES, max_new_tokens: int = 32,
                   repetition_penalty: float | None = LABEL_REPETITION_PENALTY, batch_size: int = 8,
                   min_n: int = 3, max_n: int = 5, cache: bool = True) -> pd.DataFrame:
    """Label each cluster with 3-5 short themes written by an instruct model: one row per cluster.

    ``titles_by_cluster``: cluster id -> titles, e.g. ``df.groupby("cluster")["title"].apply(list).to_dict()``;
    noise (negative ids) is left out. Each chat (``cluster_label_messages``) shows ``n_titles`` titles sampled
    with ``seed``; answers are greedy (``generate``; ``repetition_penalty=None``: plain greedy). Columns: the
    labels' four, ``label`` being "UNPARSEABLE: ..." (``terms`` empty) below ``min_n`` themes, or "FAILED: "
    and why when an endpoint gave no answer; then ``parsed``, ``n_themes`` (before the cut to ``max_n``),
    ``n_titles``, ``prompt`` (the last user message), ``answer`` (raw) and ``error`` (the failure, or None).
    """
    if not isinstance(titles_by_cluster, dict) or not titles_by_cluster:
        raise ValueError("titles_by_cluster must be a non-empty dict {cluster id: list of titles}")
    clusters = sorted(c for c in titles_by_cluster if not (isinstance(c, (int, np.integer)) and c < 0))
    if not clusters:
        raise ValueError("only the noise group (-1) was given; there is no cluster to label")
    sampled = {c: sample_titles(titles_by_cluster[c], n_titles, seed) for c in clusters}
    empty = [c for c in clusters if not sampled[c]]
    if empty:
        raise ValueError(f"cluster(s) {empty} have no non-empty title")
    chats = [cluster_label_messages(sampled[c], system, user, examples) for c in clusters]
    answers = generate(chats, generator, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       repetition_penalty=repetition_penalty, cache=cache, errors="mark")
    rows = []
    for c, chat, answer in zip(clusters, chats, answers):
        error = answer.reason if isinstance(answer, Failure) else None
        answer = "" if error else answer
        themes = parse_themes(answer, min_n, max_n)
        label = ("; ".join(themes) if themes else f"FAILED: {error}" if error
                 else "UNPARSEABLE: " + " ".join(answer.split())[:60])
        rows.append({"cluster": int(c), "method": "LLM", "label": label, "terms": themes or [],
                     "parsed": themes is not None, "n_themes": len(theme_candidates(answer)),
                     "n_titles": len(sampled[c]), "prompt": chat[-1]["content"], "answer": answer, "error": error})
    return pd.DataFrame(rows)


def compare_labels(*tables: pd.DataFrame) -> pd.DataFrame:
    """The labels of several labellers (``keyword_labels``, ``ctfidf_labels``, ``label_clusters``) side by side:
    one row per cluster, one ``label`` column per method, an empty cell where a labeller has no row."""
    if not tables:
        raise ValueError("pass at least one table of labels, e.g. compare_labels(keyword_labels(df, labels), llm)")
    for table in tables:
        require_columns(table, LABEL_COLUMNS, "a table of labels", "pass the output of keyword_labels, "
                        "ctfidf_labels or label_clusters")
    long = pd.concat([t[["cluster", "method", "label"]] for t in tables], ignore_index=True)
    wide = long.pivot(index="cluster", columns="method", values="label").fillna("")
    wide = wide[list(dict.fromkeys(long["method"]))]  # methods in the order given
    return wide.rename_axis(columns=None).reset_index()
