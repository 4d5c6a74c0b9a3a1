"""Yes/no questions about article PDFs, answered with evidence that is checked against the text.

The pipeline, per article and question:

1. read the PDF page by page (``helpers.pdfs``); a file that can't be read
   becomes a row marked unreadable, with the reason;
2. cut the pages into passages and rank them by embedding similarity to a
   definition of the concept; the best passage's similarity is the
   ``evidence_score`` (retrieval alone, no LLM);
3. give the model only the best ``k`` passages and let it choose among TRUE /
   FALSE / UNCLEAR by its own probabilities (``generation.score_choices``):
   a constrained choice, so a small model can't answer off-format;
4. take an evidence quote separately (the passage sentence most similar to the
   definition, or one the model writes) and check that it really occurs in the
   article (``pdfs.find_quote``);
5. combine the two: the evidence score gives a prior (a threshold and the share
   of TRUE articles above and below it, fitted on the labelled set
   ``extraction_labels.csv``), the model's probabilities update it (``combine``).

Typical use::

    results = ask_articles(fetch_articles(), "bibliometric")
    plot_answers(results)
    evaluate_extraction(results, load_extraction_labels())
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import prompts
from helpers.data import doi_from_filename
from helpers.embeddings import embed_texts
from helpers.models import DEFAULT_EMBEDDER
from helpers.pdfs import find_quote, read_articles, split_passages, truncate_words

ANSWERS = prompts.EXTRACTION_ANSWERS  # TRUE, FALSE, UNCLEAR
UNPARSEABLE = "UNPARSEABLE"
LABELS_PATH = Path(__file__).with_name("extraction_labels.csv")

# How the evidence score becomes a prior for the combined answer: above
# ``threshold`` an article is TRUE with probability ``p_true_above``, below it with
# ``p_true_below``. Chosen on the labelled set (``extraction_labels.csv``, both
# questions pooled) by ``fit_evidence_prior``; a test recomputes them. They hold
# for the course's definitions, passage size and embedder: re-fit them on a few
# labelled articles of your own when you change those.
EVIDENCE_PRIOR = {"threshold": 0.4313, "p_true_above": 0.7895, "p_true_below": 0.0513}

# Terms whose presence in a record's author keywords counts as "mentions the concept".
KEYWORD_TERMS = {
    "knowledge_graph": ["knowledge graph", "linked data", "semantic web"],
    "bibliometric": ["bibliometric", "scientometric", "citation analysis"],
}

RESULT_COLUMNS = ["file", "question", "status", "answer", "evidence_score", "combined", "p_combined",
                  "p_TRUE", "p_FALSE", "p_UNCLEAR", "evidence", "page", "verified", "reason", "note"]


# --------------------------------------------------------------------------- questions and passages


def resolve_question(question: str, definition: str | None = None) -> tuple[str, str, str]:
    """(question id, question text, definition) for a course question id or your own question.

    ``question`` is a key of ``prompts.EXTRACTION_QUESTIONS`` ("knowledge_graph",
    "bibliometric"), or any yes/no question, which then needs a ``definition``.
    """
    known = prompts.EXTRACTION_QUESTIONS
    if question in known:
        return question, known[question]["question"], definition or known[question]["definition"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be one of {sorted(known)} or a yes/no question; got {question!r}")
    if not definition:
        raise ValueError("your own question needs a definition of the concept, e.g. "
                         "definition='A knowledge graph is ...'; the evidence passages are ranked against it")
    return question, question, definition


def rank_passages(passages: pd.DataFrame, query: str, k: int = 3, model=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """The ``k`` passages of each file most similar to ``query`` (a question or a definition).

    ``passages`` is the frame from ``pdfs.split_passages`` (one or many files).
    Returns those rows with ``similarity`` (cosine, -1..1) and ``rank``
    (1 = most similar), best first within each file.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1; got {k!r}")
    missing = [c for c in ("file", "page", "text") if c not in passages]
    if missing:
        raise ValueError(f"passages lacks column(s) {missing}; pass the frame from split_passages")
    if passages.empty:
        return passages.assign(similarity=pd.Series(dtype=float), rank=pd.Series(dtype=int))
    vectors = embed_texts(passages["text"], model)
    query_vector = embed_texts([query], model)[0]
    ranked = passages.assign(similarity=vectors @ query_vector)
    ranked = ranked.sort_values(["file", "similarity"], ascending=[True, False], kind="stable")
    ranked = ranked.groupby("file", sort=False).head(k)
    ranked["rank"] = ranked.groupby("file", sort=False).cumcount() + 1
    return ranked.reset_index(drop=True)


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"“])")


def split_sentences(text: str, min_words: int = 6, max_words: int = 60) -> list[str]:
    """Sentences of a passage with ``min_words`` to ``max_words`` words (fragments and run-ons left out)."""
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text or "")]
    return [s for s in sentences if min_words <= len(s.split()) <= max_words]


def best_sentences(top_passages: pd.DataFrame, query: str, n: int = 1, model=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """The ``n`` sentences of each file's top passages most similar to ``query``.

    Returns file, sentence, page, similarity, rank (1 = most similar), best first
    within each file. Sentences come from ``split_sentences``; a file whose top
    passages hold none (e.g. only a table) is missing from the result.
    """
    rows = [{"file": p.file, "page": int(p.page), "sentence": s}
            for p in top_passages.itertuples() for s in split_sentences(p.text)]
    if not rows:
        return pd.DataFrame(columns=["file", "sentence", "page", "similarity", "rank"])
    sentences = pd.DataFrame(rows).drop_duplicates(["file", "sentence"], ignore_index=True)
    sentences["similarity"] = embed_texts(sentences["sentence"], model) @ embed_texts([query], model)[0]
    best = sentences.sort_values(["file", "similarity"], ascending=[True, False], kind="stable")
    best = best.groupby("file", sort=False).head(n)
    best["rank"] = best.groupby("file", sort=False).cumcount() + 1
    return best[["file", "sentence", "page", "similarity", "rank"]].reset_index(drop=True)


# --------------------------------------------------------------------------- asking the articles


def _read(articles):
    """(pages, status) from a folder, a list of PDF paths, or an earlier ``read_articles`` result."""
    if isinstance(articles, tuple) and len(articles) == 2 and all(isinstance(a, pd.DataFrame) for a in articles):
        return articles
    if isinstance(articles, (list, tuple)) and not articles:
        raise ValueError("no PDF given: the list of articles is empty")
    return read_articles(articles)


def combine(p_true: float, p_false: float, evidence_score: float, prior: dict | None = None) -> tuple[str, float]:
    """The combined judgement: the evidence score as a prior, the model's choice as the update.

    The prior P(TRUE) is ``prior["p_true_above"]`` when ``evidence_score`` reaches
    ``prior["threshold"]``, else ``prior["p_true_below"]`` (default
    ``EVIDENCE_PRIOR``). It is updated by the model's odds ``p_true / p_false``
    (UNCLEAR left out): posterior = prior * p_true / (prior * p_true + (1 - prior) * p_false).
    So a model that barely prefers one answer leaves the decision to the
    evidence, and a confident model can overrule it. Returns (TRUE or FALSE,
    posterior); (UNPARSEABLE, NaN) when the model gave no probabilities.
    """
    prior = EVIDENCE_PRIOR if prior is None else prior
    if any(not np.isfinite(x) for x in (p_true, p_false)) or p_true + p_false <= 0:
        return UNPARSEABLE, np.nan
    if not np.isfinite(prior["threshold"]) or not np.isfinite(evidence_score):
        belief = 0.5  # no prior fitted: the model alone decides
    else:
        belief = prior["p_true_above"] if evidence_score >= prior["threshold"] else prior["p_true_below"]
    posterior = belief * p_true / (belief * p_true + (1 - belief) * p_false)
    return ("TRUE" if posterior >= 0.5 else "FALSE"), float(posterior)


def fit_evidence_prior(scores, truth) -> dict:
    """Threshold (``choose_threshold``) and the share of TRUE articles above and below it.

    Shares are smoothed (add one TRUE and one FALSE), so a handful of labels
    never gives a prior of exactly 0 or 1.
    """
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=bool)
    threshold = choose_threshold(scores, truth)
    above = scores >= threshold
    return {"threshold": threshold,
            "p_true_above": float((truth[above].sum() + 1) / (above.sum() + 2)),
            "p_true_below": float((truth[~above].sum() + 1) / ((~above).sum() + 2))}


def evidence_scores(articles, question: str, definition: str | None = None, max_words: int = 120,
                    embedder=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """Retrieval alone, no LLM: each readable article's best passage for the concept.

    Returns one row per readable PDF: file, question, evidence_score (cosine
    similarity of its best passage to the definition), page, passage (text).
    ``articles`` and ``question`` as in ``ask_articles``.
    """
    question_id, _, definition = resolve_question(question, definition)
    pages, _ = _read(articles)
    best = rank_passages(split_passages(pages, max_words=max_words), definition, k=1, model=embedder)
    return pd.DataFrame({"file": best["file"], "question": question_id, "evidence_score": best["similarity"],
                         "page": best["page"], "passage": best["text"]})


def ask_articles(articles, question: str, definition: str | None = None, generator=None, k: int = 3,
                 n_sentences: int = 4, max_words: int = 120, max_evidence_words: int = 200,
                 prior: dict | None = None,
                 quote: str = "similarity", system: str = prompts.EXTRACTION_SYSTEM,
                 user: str = prompts.EXTRACTION_USER, embedder=DEFAULT_EMBEDDER, batch_size: int = 4,
                 cache: bool = True) -> pd.DataFrame:
    """Ask one yes/no question of every article: one row per PDF, unreadable ones included.

    ``articles``: a folder, a list of PDF paths, or the ``(pages, status)`` pair
    from ``pdfs.read_articles`` (read once, ask many questions). ``question``:
    "knowledge_graph", "bibliometric" (see ``prompts.EXTRACTION_QUESTIONS``) or
    your own yes/no question with a ``definition``.
    Pages are cut into passages of ``max_words`` words and the ``k`` most
    similar to the definition are kept; of their sentences, the ``n_sentences``
    most similar go into the prompt in reading order (cut to
    ``max_evidence_words`` words, with a note, so it fits the model), and the
    model chooses among TRUE / FALSE / UNCLEAR by its probabilities. Sentences
    rather than whole passages keep the prompt short: a 135M model on a CPU
    reads four sentences of 27 articles in seconds, three passages in minutes.
    ``quote="similarity"`` takes the evidence sentence most similar to the
    definition; ``quote="model"`` lets the model write it (then ``verified``
    matters most). ``prior`` (default
    ``EVIDENCE_PRIOR``) turns the evidence score into the prior of ``combine``.

    Returns one row per PDF: file, question, status ("ok"/"unreadable", or
    "failed" when an endpoint gave no answer), answer (the model's:
    TRUE/FALSE/UNCLEAR, or UNPARSEABLE when its text names none; None when
    unreadable or failed), evidence_score (best passage's cosine similarity to
    the definition), combined and p_combined (see ``combine``), p_TRUE /
    p_FALSE / p_UNCLEAR (the model's), evidence (the quote), page, verified
    (the quote occurs in the article), reason (why unreadable or failed), note.
    """
    from helpers.endpoint import Failure
    from helpers.generation import generate, make_messages, resolve_generator, score_choices

    question_id, question_text, definition = resolve_question(question, definition)
    if quote not in ("similarity", "model"):
        raise ValueError(f"quote must be 'similarity' or 'model'; got {quote!r}")
    for slot in ("{passages}", "{question}"):
        if slot not in user:
            raise ValueError(f"the user prompt needs a {slot} slot")
    pages, status = _read(articles)
    passages = split_passages(pages, max_words=max_words)
    ranked = rank_passages(passages, definition, k=k, model=embedder)

    rows = {}
    ranked_files = set(ranked["file"])
    for s in status.itertuples():
        rows[s.file] = {"file": s.file, "question": question_id, "status": s.status, "reason": s.reason,
                        "evidence": "", "verified": False, "note": ""}
        if s.status == "ok" and s.file not in ranked_files:
            rows[s.file].update(status="unreadable", reason="no passage of text long enough to judge")
    readable = [f for f, r in rows.items() if r["status"] == "ok"]
    if not readable:
        return pd.DataFrame(list(rows.values())).reindex(columns=RESULT_COLUMNS)

    generator = resolve_generator(generator)
    sentences = best_sentences(ranked[ranked["file"].isin(readable)], definition, n=n_sentences, model=embedder)
    chats, evidence_of = [], {}
    for file in readable:
        top = ranked[ranked["file"] == file]
        chosen = sentences[sentences["file"] == file]
        if chosen.empty:  # no sentence to split off (a table, a list): the best passage itself
            chosen = top.head(1).rename(columns={"text": "sentence"})
        # Reading order (page, then place in the ranked passages) reads better than similarity order.
        chosen = chosen.sort_values("page", kind="stable")
        evidence = "\n".join(f"- [page {c.page}] {c.sentence}" for c in chosen.itertuples())
        evidence, was_cut = truncate_words(evidence, max_evidence_words)
        if was_cut:
            rows[file]["note"] = f"evidence cut to {max_evidence_words} words to fit the model [... truncated]"
        evidence_of[file] = evidence
        rows[file]["evidence_score"] = float(top["similarity"].iloc[0])
        chats.append(make_messages(user.format(definition=definition, file=file, passages=evidence,
                                               question=question_text), system))
    choices = score_choices(chats, ANSWERS, generator, batch_size=batch_size, cache=cache, errors="mark")

    if quote == "similarity":
        best = sentences[sentences["rank"] == 1].set_index("file")
        quote_of = {f: (best.at[f, "sentence"], int(best.at[f, "page"])) if f in best.index else ("", None)
                    for f in readable}
    else:
        asks = [make_messages(prompts.EVIDENCE_QUOTE_USER.format(question=question_text, definition=definition,
                                                                 file=f, passages=evidence_of[f]),
                              prompts.EVIDENCE_SYSTEM) for f in readable]
        written = generate(asks, generator, max_new_tokens=80, batch_size=batch_size, cache=cache, errors="mark")
        quote_of = {f: ("", None) if isinstance(q, Failure) else (q.strip().strip("\"“”'"), None)
                    for f, q in zip(readable, written)}

    for file, (_, probs) in zip(readable, choices.iterrows()):
        row = rows[file]
        failed = isinstance(probs["error"], str)
        if failed:  # the endpoint gave no answer: the row says why, the retrieval part stays
            row.update(status="failed", reason=f"no answer from the model: {probs['error']}")
        row["answer"] = None if failed else probs["choice"] if isinstance(probs["choice"], str) else UNPARSEABLE
        row.update({f"p_{c}": probs[c] for c in ANSWERS})
        row["combined"], row["p_combined"] = combine(probs["TRUE"], probs["FALSE"], row["evidence_score"], prior)
        if failed:
            row["combined"] = None
        text, page = quote_of[file]
        found = find_quote(text, pages[pages["file"] == file])
        row.update(evidence=text, verified=found["found"], page=found["page"] if found["found"] else page)
        if text and not found["found"]:
            row["note"] = (row["note"] + "; " if row["note"] else "") + "evidence quote not found in the article"
    out = pd.DataFrame(list(rows.values())).reindex(columns=RESULT_COLUMNS)
    return out.astype({"page": "Int64", "verified": bool, "evidence_score": float})


# --------------------------------------------------------------------------- baselines, labels, evaluation


def _mentions(keywords, terms) -> bool:
    keywords = keywords if isinstance(keywords, list) else []
    return any(term in kw for kw in keywords for term in terms)


def keyword_baseline(corpus: pd.DataFrame, terms_by_concept: dict | None = None, files=None) -> pd.DataFrame:
    """How often the corpus' author keywords mention each concept (a baseline without any model).

    A record mentions a concept when one of its author keywords contains one
    of the concept's terms (lower case; default ``KEYWORD_TERMS``). Shares are
    over records that have author keywords. With ``files`` (PDF names such as
    the ``file`` column of ``ask_articles``), the same is counted for the
    records of those articles, matched by DOI.
    Returns one row per concept: concept, terms, n_records, n_mentioning, share
    (and n_articles, n_articles_mentioning, share_articles with ``files``).
    """
    terms_by_concept = terms_by_concept or KEYWORD_TERMS
    if "keywords" not in corpus:
        raise ValueError("the corpus has no 'keywords' column; load it with helpers.data.load_corpus")
    with_keywords = corpus[corpus["keywords"].apply(lambda k: isinstance(k, list) and len(k) > 0)]
    articles = None
    if files is not None:
        dois = {(doi_from_filename(f) or "").lower() for f in files}
        articles = with_keywords[with_keywords["doi"].fillna("").str.lower().isin(dois)]
    rows = []
    for concept, terms in terms_by_concept.items():
        terms = [t.lower() for t in terms]
        hits = with_keywords["keywords"].apply(_mentions, terms=terms)
        row = {"concept": concept, "terms": "; ".join(terms), "n_records": len(with_keywords),
               "n_mentioning": int(hits.sum()), "share": hits.mean() if len(hits) else np.nan}
        if articles is not None:
            art_hits = articles["keywords"].apply(_mentions, terms=terms)
            row.update(n_articles=len(articles), n_articles_mentioning=int(art_hits.sum()),
                       share_articles=art_hits.mean() if len(art_hits) else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def load_extraction_labels(path: str | Path = LABELS_PATH) -> pd.DataFrame:
    """The hand-labelled set: file, question_id, label ("TRUE"/"FALSE"), note (why, from reading the PDF)."""
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("file", "question_id", "label") if c not in labels]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    bad = sorted(set(labels["label"]) - {"TRUE", "FALSE"})
    if bad:
        raise ValueError(f"{path}: labels must be TRUE or FALSE; found {bad}")
    return labels


def choose_threshold(scores, truth) -> float:
    """The evidence-score threshold that best separates TRUE (``truth`` True) from FALSE.

    Candidates are midpoints between consecutive sorted scores; the most
    accurate one wins (ties: the one with the widest gap, then the lowest).
    NaN when ``truth`` holds only one class.
    """
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=bool)
    if len(scores) != len(truth) or len(scores) == 0:
        raise ValueError("scores and truth must be non-empty and of equal length")
    if truth.all() or not truth.any():
        return np.nan
    values = np.unique(scores)
    candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    gaps = np.diff(values) if len(values) > 1 else np.zeros(1)
    accuracy = np.array([((scores >= t) == truth).mean() for t in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(candidates[best[np.argmax(gaps[best])]])


def auc(scores, truth) -> float:
    """Area under the ROC curve: the chance a random TRUE article scores above a random FALSE one."""
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=bool)
    pos, neg = scores[truth], scores[~truth]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def _labelled(results: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    merged = results.merge(labels, left_on=["file", "question"], right_on=["file", "question_id"], how="inner")
    merged = merged[merged["status"] == "ok"]
    if merged.empty:
        raise ValueError("no readable result matches the labelled set (by file and question)")
    return merged.assign(truth=merged["label"] == "TRUE")


def evaluate_extraction(results: pd.DataFrame, labels: pd.DataFrame | None = None,
                        prior: dict | None = None) -> pd.DataFrame:
    """Accuracy on the labelled set: the model, the evidence score alone, and both combined.

    A prediction is correct when (answer == TRUE) equals the label. One row per
    question and one for all questions pooled, with columns: n, n_true,
    model_accuracy (the LLM's constrained choice), evidence_auc,
    threshold (of ``prior``, default ``EVIDENCE_PRIOR``), evidence_accuracy
    (score >= threshold), combined_accuracy (``combine`` with ``prior``),
    evidence_accuracy_loo and combined_accuracy_loo (the prior re-fitted on the
    pooled labels without the article judged: an honest estimate), and
    always_false_accuracy (the trivial baseline).
    """
    labels = load_extraction_labels() if labels is None else labels
    prior = EVIDENCE_PRIOR if prior is None else prior
    merged = _labelled(results, labels).reset_index(drop=True)
    scores, truth = merged["evidence_score"].to_numpy(dtype=float), merged["truth"].to_numpy()
    p_true, p_false = merged["p_TRUE"].to_numpy(dtype=float), merged["p_FALSE"].to_numpy(dtype=float)
    evidence_loo, combined_loo = np.zeros(len(merged), bool), np.zeros(len(merged), bool)
    for i in range(len(merged)):
        keep = np.arange(len(merged)) != i
        refit = fit_evidence_prior(scores[keep], truth[keep])
        evidence_loo[i] = (scores[i] >= refit["threshold"]) == truth[i]
        combined_loo[i] = (combine(p_true[i], p_false[i], scores[i], refit)[0] == "TRUE") == truth[i]
    combined = np.array([combine(t, f, s, prior)[0] == "TRUE" for t, f, s in zip(p_true, p_false, scores)])
    merged = merged.assign(model_ok=(merged["answer"] == "TRUE").to_numpy() == truth,
                           evidence_ok=(scores >= prior["threshold"]) == truth, combined_ok=combined == truth,
                           evidence_loo=evidence_loo, combined_loo=combined_loo)
    rows = []
    for question, g in list(merged.groupby("question")) + [("all", merged)]:
        rows.append({
            "question": question, "n": len(g), "n_true": int(g["truth"].sum()),
            "model_accuracy": g["model_ok"].mean(),
            "evidence_auc": auc(g["evidence_score"], g["truth"]), "threshold": prior["threshold"],
            "evidence_accuracy": g["evidence_ok"].mean(), "combined_accuracy": g["combined_ok"].mean(),
            "evidence_accuracy_loo": g["evidence_loo"].mean(), "combined_accuracy_loo": g["combined_loo"].mean(),
            "always_false_accuracy": 1 - g["truth"].mean(),
        })
    return pd.DataFrame(rows)


def plot_answers(results: pd.DataFrame, title: str | None = None, path=None):
    """Bar chart of answers per question (unreadable files as their own bar); returns the Figure.

    Uses the ``combined`` answer when present, else ``answer``.
    """
    import matplotlib.pyplot as plt

    column = "combined" if "combined" in results and results["combined"].notna().any() else "answer"
    shown = results[column].where(results["status"] == "ok", results["status"]).fillna(UNPARSEABLE)
    order = [a for a in ANSWERS + [UNPARSEABLE, "unreadable", "failed"] if a in set(shown)]
    counts = pd.crosstab(shown, results["question"]).reindex(order).fillna(0)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(order) * max(1, counts.shape[1]) / 2, 3.5))
    counts.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_xlabel(f"{column} answer")
    ax.set_ylabel("articles")
    ax.set_title(title or "Answers per question")
    ax.legend(title="question", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
