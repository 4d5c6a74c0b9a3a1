"""Yes/no questions about articles, answered from evidence checked against the text, and measured honestly.

One function per step (``ask_articles`` runs all five for every article and one question):
1. ``find_evidence``: passages that match a definition (a BM25 prefilter, then embeddings);
2. ``build_prompts``: definition, evidence and question as a chat;
3. ``generation.score_choices``: the model's constrained choice of TRUE / FALSE / UNCLEAR;
4. ``verify_quotes``: the quoted sentence occurs in the article;
5. ``combine``: a few-shot classifier's P(TRUE), updated by the model's odds (``fit_judge``).
``compare_approaches`` measures them on labelled documents that nothing was tuned on (``LABELS.md``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import prompts
from helpers.cache import save_figure
from helpers.checks import require_columns
from helpers.data import doi_from_filename
from helpers.embeddings import embed_texts
from helpers.models import DEFAULT_EMBEDDER
from helpers.pdfs import find_quote, read_articles, split_passages, truncate_words

ANSWERS = prompts.EXTRACTION_ANSWERS  # TRUE, FALSE, UNCLEAR
UNPARSEABLE = "UNPARSEABLE"
PDF_LABELS = Path(__file__).with_name("extraction_labels.csv")
ABSTRACT_LABELS = Path(__file__).with_name("abstract_labels.csv")
# Passages per article that are embedded after the lexical prefilter (None: all of them).
CANDIDATES = 12
# Fewest labelled tuning examples of each answer (TRUE and FALSE) that fit_judge accepts.
MIN_PER_CLASS = 3

# Terms whose presence in a record's author keywords counts as "mentions the concept" (the keyword rule).
KEYWORD_TERMS = {
    "knowledge_graph": ["knowledge graph", "linked data", "semantic web"],
    "bibliometric": ["bibliometric", "scientometric", "citation analysis"],
}

RESULT_COLUMNS = ["file", "question", "status", "answer", "combined", "p_combined", "p_evidence", "evidence_score",
                  "p_TRUE", "p_FALSE", "p_UNCLEAR", "evidence", "page", "verified", "reason", "note"]


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


# --------------------------------------------------------------------------- step 1: evidence

_REFERENCES = re.compile(r"^\s*(?:\d+\.?\s*)?(?:references|bibliography|literature cited|works cited)\s*:?\s*$",
                         re.IGNORECASE | re.MULTILINE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"“])")


def drop_references(pages: pd.DataFrame) -> pd.DataFrame:
    """``pages`` without each article's reference list: from the first line that reads only "References"
    (or "Bibliography", ...) in the article's second half. Cited titles would pass for evidence.
    """
    kept = []
    for _, article in pages.groupby("file", sort=False):
        article = article.sort_values("page")
        last = article["page"].max()
        cut = next(((page, m.start()) for page, text in zip(article["page"], article["text"])
                    if page > last / 2 and isinstance(text, str) for m in [_REFERENCES.search(text)] if m), None)
        if cut is not None:
            article = article[article["page"] <= cut[0]].copy()
            article.loc[article["page"] == cut[0], "text"] = article.loc[article["page"] == cut[0], "text"].str[:cut[1]]
        kept.append(article)
    return pd.concat(kept, ignore_index=True) if kept else pages


def lexical_candidates(passages: pd.DataFrame, query: str, n: int | None = CANDIDATES) -> pd.DataFrame:
    """The ``n`` passages of each file that share most words with ``query``, by BM25 (all when ``n`` is None)."""
    from helpers.retrieval import bm25_weights, tokenize

    if n is None or passages.empty:
        return passages
    weights, vocabulary = bm25_weights(passages["text"].tolist())
    columns = [vocabulary[t] for t in set(tokenize(query)) if t in vocabulary]
    scores = np.asarray(weights[:, columns].sum(axis=1)).ravel() if columns else np.zeros(len(passages))
    ranked = passages.assign(_bm25=scores).sort_values(["file", "_bm25"], ascending=[True, False], kind="stable")
    return ranked.groupby("file", sort=False).head(n).drop(columns="_bm25").sort_index()


def rank_passages(passages: pd.DataFrame, query: str, k: int = 3, model=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """The ``k`` passages of each file (``pdfs.split_passages`` rows) most similar to ``query``, best first,
    with ``similarity`` (cosine, -1..1), ``vector`` (the passage's embedding) and ``rank`` (1 = most similar).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1; got {k!r}")
    require_columns(passages, ["file", "page", "text"], "passages", "pass the frame from split_passages")
    if passages.empty:
        return passages.assign(similarity=pd.Series(dtype=float), vector=pd.Series(dtype=object),
                               rank=pd.Series(dtype=int))
    vectors = embed_texts(passages["text"], model)
    ranked = passages.assign(similarity=vectors @ embed_texts([query], model)[0], vector=list(vectors))
    ranked = ranked.sort_values(["file", "similarity"], ascending=[True, False], kind="stable")
    ranked = ranked.groupby("file", sort=False).head(k)
    ranked["rank"] = ranked.groupby("file", sort=False).cumcount() + 1
    return ranked.reset_index(drop=True)


def split_sentences(text: str, min_words: int = 6, max_words: int = 60) -> list[str]:
    """Sentences of a passage with ``min_words`` to ``max_words`` words (fragments and run-ons left out)."""
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text or "")]
    return [s for s in sentences if min_words <= len(s.split()) <= max_words]


def find_evidence(pages: pd.DataFrame, definition: str, k: int = 3, n_sentences: int = 4, max_words: int = 120,
                  max_evidence_words: int = 200, candidates: int | None = CANDIDATES,
                  embedder=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """Step 1: each article's evidence for the concept of ``definition``, by retrieval alone (no LLM).

    Per article (``pages`` from ``read_articles``, reference lists dropped), the ``candidates`` passages
    with most words of the definition (BM25; None: all) are embedded, the ``k`` most similar kept, and
    their ``n_sentences`` most similar sentences form the evidence. One row per article: file,
    evidence_score (best passage's cosine), evidence ("- [page p] ..." lines, at most
    ``max_evidence_words``), quote and page (the most similar sentence), vector (mean embedding of the
    top passages, ``(dim,)``), note.
    """
    passages = lexical_candidates(split_passages(drop_references(pages), max_words=max_words), definition,
                                  candidates)
    top = rank_passages(passages, definition, k=k, model=embedder)
    if top.empty:
        return pd.DataFrame(columns=["file", "evidence_score", "evidence", "quote", "page", "vector", "note"])
    sentences = pd.DataFrame([{"file": p.file, "page": int(p.page), "sentence": s}
                              for p in top.itertuples() for s in split_sentences(p.text)],
                             columns=["file", "page", "sentence"]).drop_duplicates(["file", "sentence"])
    if not sentences.empty:
        sentences["similarity"] = embed_texts(sentences["sentence"], embedder) @ embed_texts([definition], embedder)[0]
    rows = []
    for file, passages_of in top.groupby("file", sort=False):
        chosen = sentences[sentences["file"] == file].nlargest(n_sentences, "similarity") if not sentences.empty \
            else sentences
        if chosen.empty:  # no sentence to split off (a table, a list): the best passage itself
            chosen = passages_of.head(1).rename(columns={"text": "sentence"})
        evidence, was_cut = truncate_words(
            "\n".join(f"- [page {c.page}] {c.sentence}" for c in chosen.sort_values("page", kind="stable").itertuples()),
            max_evidence_words)
        vector = np.stack(passages_of["vector"]).mean(axis=0)
        rows.append({"file": file, "evidence_score": float(passages_of["similarity"].iloc[0]), "evidence": evidence,
                     "quote": chosen.iloc[0]["sentence"], "page": int(chosen.iloc[0]["page"]),
                     "vector": vector / np.linalg.norm(vector),
                     "note": f"evidence cut to {max_evidence_words} words to fit the model [... truncated]"
                     if was_cut else ""})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- steps 2-4: prompt, choice, quote


def build_prompts(evidence: pd.DataFrame, question: str, definition: str | None = None,
                  system: str | None = prompts.EXTRACTION_SYSTEM, user: str = prompts.EXTRACTION_USER) -> list:
    """Step 2: one chat per row of ``evidence`` (from ``find_evidence``): definition, evidence, question.

    ``user`` needs ``{passages}`` and ``{question}`` slots (``{definition}`` and
    ``{file}`` are filled when present); ``system=None`` sends no system message.
    """
    from helpers.generation import make_messages

    _, question_text, definition = resolve_question(question, definition)
    for slot in ("{passages}", "{question}"):
        if slot not in user:
            raise ValueError(f"the user prompt needs a {slot} slot")
    return [make_messages(user.format(definition=definition, file=e.file, passages=e.evidence,
                                      question=question_text), system) for e in evidence.itertuples()]


def verify_quotes(quotes: pd.DataFrame, pages: pd.DataFrame) -> pd.DataFrame:
    """Step 4: does each ``quote`` (columns file, quote, page) occur in its article's ``pages``?

    Returns ``quotes`` with ``verified`` (bool) and ``page`` (where it was
    found; the given page when it was not). Matching tolerates line breaks,
    hyphenation and typographic quotes (``pdfs.find_quote``).
    """
    found = [find_quote(q.quote, pages[pages["file"] == q.file]) for q in quotes.itertuples()]
    return quotes.assign(verified=[f["found"] for f in found],
                         page=[f["page"] if f["found"] else q.page for f, q in zip(found, quotes.itertuples())])


# --------------------------------------------------------------------------- step 5: the judge


@dataclass(frozen=True)
class Judge:
    """What step 5 learned from labelled tuning examples of one question: ``classifier`` (evidence vector
    -> P(TRUE)), ``llm_weight`` (how much the model's log-odds count; 0: ignored), ``threshold`` (the
    evidence score that best separates the examples), ``n_tuning`` and ``n_true`` (the examples).
    """

    question: str
    classifier: object
    llm_weight: float
    threshold: float
    n_tuning: int
    n_true: int

    def p_evidence(self, evidence: pd.DataFrame) -> np.ndarray:
        """P(TRUE) from the evidence alone, ``(n,)``."""
        return self.classifier.predict_proba(np.stack(evidence["vector"]))[:, 1]

    def __repr__(self) -> str:
        return (f"Judge({self.question!r}: logistic regression on {self.n_tuning} tuning examples "
                f"({self.n_true} TRUE), model weight {self.llm_weight:.2f})")


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _model_log_odds(p_true, p_false) -> np.ndarray:
    """log(p_true / p_false), 0 where the model gave no probabilities; an endpoint's 1/0 stays finite."""
    ratio = np.log(np.clip(np.asarray(p_true, dtype=float), 1e-6, 1) / np.clip(np.asarray(p_false, dtype=float), 1e-6, 1))
    return np.where(np.isfinite(ratio), ratio, 0.0)


def combine(p_evidence, p_true, p_false, llm_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: the evidence's P(TRUE) updated by the model's odds: (answers TRUE/FALSE, P(TRUE)), each ``(n,)``.

    log-odds = logit(p_evidence) + llm_weight * log(p_true / p_false). With
    ``llm_weight`` 0 the model does not count; with 1 this is Bayes' rule with
    the evidence as the prior, so a confident model overrules weak evidence.
    Where the model gave no probabilities (NaN), the evidence decides alone.
    """
    score = _logit(p_evidence) + llm_weight * _model_log_odds(p_true, p_false)
    posterior = 1 / (1 + np.exp(-score))
    return np.where(posterior >= 0.5, "TRUE", "FALSE"), posterior


def _classifier():
    from sklearn.linear_model import LogisticRegression

    # C chosen by 5-fold cross-validation on the tuning part among 0.1-10 (best for both course questions).
    return LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)


def fit_judge(evidence: pd.DataFrame, truth, question: str, choices: pd.DataFrame | None = None) -> Judge:
    """Step 5's judge from tuning examples: ``evidence`` (``find_evidence``), ``truth`` (bool, same order),
    optionally the model's ``choices`` on them. The model gets a weight only when its log-odds added to
    the classifier's (cross-validated) make more examples right. Needs ``MIN_PER_CLASS`` of each answer.
    """
    from sklearn.model_selection import cross_val_predict

    truth = np.asarray(truth, dtype=bool)
    if len(truth) != len(evidence):
        raise ValueError(f"{len(evidence)} evidence rows but {len(truth)} labels")
    n_true, n_false = int(truth.sum()), int((~truth).sum())
    if min(n_true, n_false) < MIN_PER_CLASS:
        raise ValueError(f"too few labels to learn from: {n_true} TRUE and {n_false} FALSE tuning examples; "
                         f"label at least {MIN_PER_CLASS} of each (and as many again to test on)")
    x = np.stack(evidence["vector"])
    weight = 0.0
    if choices is not None:
        folds = min(5, n_true, n_false)
        logit_cv = cross_val_predict(_classifier(), x, truth, cv=folds, method="decision_function")
        llm = _model_log_odds(choices["TRUE"], choices["FALSE"])
        # The weight that gets most tuning examples right (ties: the smallest), among a few candidates.
        candidates = [0.0, 0.25, 0.5, 1.0, 2.0]
        right = [((logit_cv + w * llm >= 0) == truth).sum() for w in candidates]
        weight = candidates[int(np.argmax(right))]
    scores = evidence["evidence_score"].to_numpy(float)
    values = np.unique(scores)
    cuts = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    threshold = float(cuts[int(np.argmax([((scores >= c) == truth).sum() for c in cuts]))])
    return Judge(question, _classifier().fit(x, truth), weight, threshold, len(truth), n_true)


# --------------------------------------------------------------------------- labels, baselines, evaluation


def abstract_pages(records: pd.DataFrame) -> pd.DataFrame:
    """Corpus records as one-page "articles" (file = the ``file`` column, else the DOI; text = title. abstract)."""
    return pd.DataFrame({"file": (records["file"] if "file" in records else records["doi"]).to_numpy(), "page": 1,
                         "text": (records["title"] + ". " + records["abstract"]).to_numpy()})


def load_labels(corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """The course's hand labels, one row per document and question (how they were made: ``LABELS.md``).

    Columns: file (PDF name, or the record's DOI), source ("pdf" / "abstract"), question_id,
    label ("TRUE" / "FALSE"), split ("tuning" / "test"; every PDF is "test"), note. With
    ``corpus`` (``load_corpus``), adds each document's doi, title, abstract and keywords.
    """
    pdf = pd.read_csv(PDF_LABELS, dtype=str, keep_default_na=False).assign(source="pdf", split="test")
    wide = pd.read_csv(ABSTRACT_LABELS, dtype=str, keep_default_na=False)
    abstracts = wide.melt(id_vars=["doi", "split", "note"], value_vars=list(KEYWORD_TERMS), var_name="question_id",
                          value_name="label").rename(columns={"doi": "file"}).assign(source="abstract")
    # The abstracts' notes explain the bibliometric call (and the knowledge-graph one when TRUE).
    labels = pd.concat([pdf, abstracts], ignore_index=True)[["file", "source", "question_id", "label", "split", "note"]]
    bad = sorted(set(labels["label"]) - {"TRUE", "FALSE"})
    if bad:
        raise ValueError(f"labels must be TRUE or FALSE; found {bad}")
    if corpus is not None:
        records = corpus.dropna(subset=["doi"]).assign(doi=lambda c: c["doi"].str.lower()).drop_duplicates("doi")
        doi = np.where(labels["source"] == "pdf", labels["file"].map(lambda f: (doi_from_filename(f) or "").lower()),
                       labels["file"].str.lower())
        labels = labels.assign(doi=doi).merge(records[["doi", "title", "abstract", "keywords"]], on="doi", how="left")
    return labels


def keyword_rule(keywords, question: str) -> np.ndarray:
    """The baseline without any model: TRUE where a record's author keywords contain a term of ``KEYWORD_TERMS``.

    ``keywords``: one list of lower-case keywords per record (``load_corpus``'s
    ``keywords`` column); a record without keywords is FALSE.
    """
    terms = KEYWORD_TERMS[question]
    return np.array([isinstance(k, list) and any(t in kw for kw in k for t in terms) for k in keywords], dtype=bool)


def wilson_interval(n_right: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``n_right / n`` (sound for small n and for 0 or n right)."""
    if n == 0:
        return np.nan, np.nan
    p = n_right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def evaluate(predictions: dict, truth) -> pd.DataFrame:
    """Accuracy with a 95% Wilson interval of each method (name -> TRUE answers, bool, in ``truth``'s order),
    plus the base rate. One row per method: method, n, n_true, accuracy, ci_low, ci_high,
    true_positives, false_positives.
    """
    truth = np.asarray(truth, dtype=bool)
    majority = truth.mean() >= 0.5
    rows = []
    for method, predicted in {**predictions, "base rate (always the majority answer)":
                              np.full(len(truth), majority)}.items():
        predicted = np.asarray(predicted, dtype=bool)
        right = int((predicted == truth).sum())
        low, high = wilson_interval(right, len(truth))
        rows.append({"method": method, "n": len(truth), "n_true": int(truth.sum()), "accuracy": right / len(truth),
                     "ci_low": low, "ci_high": high, "true_positives": int((predicted & truth).sum()),
                     "false_positives": int((predicted & ~truth).sum())})
    return pd.DataFrame(rows)


def compare_approaches(pages: pd.DataFrame, labels: pd.DataFrame, question: str, generator=None,
                       judge: Judge | None = None) -> pd.DataFrame:
    """``evaluate`` of each approach on labelled documents (``pages`` from ``read_articles`` or
    ``abstract_pages``; ``labels`` with file, label and, for the keyword rule, keywords): the keyword rule,
    the model alone, similarity to the definition, the few-shot classifier, and step 5's combination.
    """
    from helpers.generation import resolve_generator, score_choices

    question_id, _, definition = resolve_question(question)
    generator = resolve_generator(generator)
    judge = judge or course_judge(question_id, generator)
    evidence = find_evidence(pages, definition)
    labels = labels.set_index("file").loc[evidence["file"]]
    choices = score_choices(build_prompts(evidence, question_id), ANSWERS, generator)
    p_evidence = judge.p_evidence(evidence)
    predictions = {"zero-shot prompting (model alone)": choices["choice"] == "TRUE",
                   "similarity to the definition": evidence["evidence_score"] >= judge.threshold,
                   "few-shot classifier": p_evidence >= 0.5,
                   "classifier + model (step 5)": combine(p_evidence, choices["TRUE"], choices["FALSE"],
                                                          judge.llm_weight)[0] == "TRUE"}
    if "keywords" in labels:
        predictions = {"keyword rule": keyword_rule(labels["keywords"], question_id), **predictions}
    return evaluate(predictions, labels["label"] == "TRUE")


# --------------------------------------------------------------------------- all steps at once


def _read(articles):
    """(pages, status) from a folder, a list of PDF paths, or an earlier ``read_articles`` result."""
    if isinstance(articles, tuple) and len(articles) == 2 and all(isinstance(a, pd.DataFrame) for a in articles):
        return articles
    if isinstance(articles, (list, tuple)) and not articles:
        raise ValueError("no PDF given: the list of articles is empty")
    return read_articles(articles)


def course_judge(question: str, generator=None, embedder=DEFAULT_EMBEDDER) -> Judge:
    """The judge of a course question, fitted on the tuning part of ``abstract_labels.csv`` (87 records)."""
    from helpers.data import load_corpus
    from helpers.generation import resolve_generator, score_choices

    labels = load_labels(load_corpus("course"))
    tuning = labels[(labels["question_id"] == question) & (labels["split"] == "tuning")]
    tuning = tuning[tuning["abstract"].notna()].reset_index(drop=True)
    _, question_text, definition = resolve_question(question)
    evidence = find_evidence(abstract_pages(tuning), definition, embedder=embedder)
    tuning = tuning.set_index("file").loc[evidence["file"]]
    choices = None
    if generator is not False:
        # errors="mark": an endpoint that fails gives no probabilities, and the model then earns no weight.
        choices = score_choices(build_prompts(evidence, question), ANSWERS, resolve_generator(generator), errors="mark")
    return fit_judge(evidence, tuning["label"] == "TRUE", question, choices)


def ask_articles(articles, question: str, definition: str | None = None, generator=None, judge: Judge | None = None,
                 labels: pd.DataFrame | None = None, k: int = 3, n_sentences: int = 4, max_words: int = 120,
                 max_evidence_words: int = 200, candidates: int | None = CANDIDATES, quote: str = "similarity",
                 system: str | None = prompts.EXTRACTION_SYSTEM, user: str = prompts.EXTRACTION_USER,
                 embedder=DEFAULT_EMBEDDER, batch_size: int = 4, cache: bool = True, seed: int = 0) -> pd.DataFrame:
    """Ask one yes/no question of every article, all five steps: one row per PDF, unreadable ones included.

    ``articles``: a folder, PDF paths, or ``read_articles``' ``(pages, status)``. ``question``: a course
    question id or your own yes/no question with a ``definition``. Step 5's ``judge`` defaults to
    ``course_judge`` for a course question; for your own, ``labels`` (file, label TRUE/FALSE) for some
    articles tune one on half of them and print its accuracy on the other half; without either,
    ``combined`` is the model's own answer. ``quote="model"``: the model writes the quote.
    Columns: ``RESULT_COLUMNS``; status is "ok", "unreadable" or "failed" (an endpoint gave no answer),
    answer the model's choice (UNPARSEABLE when its text names none; None when not ok), reason why not ok.
    """
    from helpers.endpoint import Failure
    from helpers.generation import generate, make_messages, resolve_generator, score_choices

    question_id, question_text, definition = resolve_question(question, definition)
    if quote not in ("similarity", "model"):
        raise ValueError(f"quote must be 'similarity' or 'model'; got {quote!r}")
    pages, status = _read(articles)
    evidence = find_evidence(pages[pages["file"].isin(status.loc[status["status"] == "ok", "file"])], definition,
                             k=k, n_sentences=n_sentences, max_words=max_words,
                             max_evidence_words=max_evidence_words, candidates=candidates, embedder=embedder)
    out = status[["file", "status", "reason"]].assign(question=question_id)
    no_text = (out["status"] == "ok") & ~out["file"].isin(evidence["file"])
    out.loc[no_text, ["status", "reason"]] = ["unreadable", "no passage of text long enough to judge"]
    if evidence.empty:
        return out.reindex(columns=RESULT_COLUMNS)

    generator = resolve_generator(generator)
    prompts_ = build_prompts(evidence, question_text, definition, system, user)
    choices = score_choices(prompts_, ANSWERS, generator, batch_size=batch_size, cache=cache, errors="mark")
    if quote == "model":
        asks = [make_messages(prompts.EVIDENCE_QUOTE_USER.format(question=question_text, definition=definition,
                                                                 file=e.file, passages=e.evidence),
                              prompts.EVIDENCE_SYSTEM) for e in evidence.itertuples()]
        written = generate(asks, generator, max_new_tokens=80, batch_size=batch_size, cache=cache, errors="mark")
        evidence = evidence.assign(quote=["" if isinstance(w, Failure) else w.strip().strip("\"“”'") for w in written])
    evidence = verify_quotes(evidence, pages)

    if judge is None and labels is not None:
        judge = _judge_from_labels(evidence, choices, labels, question_id, seed)
    elif judge is None and question_id in KEYWORD_TERMS and definition == prompts.EXTRACTION_QUESTIONS[question_id][
            "definition"]:
        judge = course_judge(question_id, generator, embedder)
    answer = choices["choice"].fillna(UNPARSEABLE)
    if judge is not None:
        p_evidence = judge.p_evidence(evidence)
        combined, p_combined = combine(p_evidence, choices["TRUE"], choices["FALSE"], judge.llm_weight)
    else:  # nothing to combine with: the model's answer, UNCLEAR counted as FALSE
        p_evidence, combined, p_combined = np.nan, answer.replace("UNCLEAR", "FALSE").to_numpy(), np.nan

    result = evidence.assign(answer=answer.to_numpy(), combined=combined,
                             p_combined=p_combined, p_evidence=p_evidence,
                             **{f"p_{c}": choices[c].to_numpy() for c in ANSWERS})
    result["note"] = [n + ("; " if n else "") + "evidence quote not found in the article" if q and not v else n
                      for n, q, v in zip(result["note"], result["quote"], result["verified"])]
    result = result.drop(columns="evidence").rename(columns={"quote": "evidence"})
    out = out.merge(result, on="file", how="left")
    why = out["file"].map(dict(zip(evidence["file"], choices["error"])))
    failed = why.notna()  # an endpoint gave no answer: the row says why, the retrieval part stays
    if failed.any():
        out.loc[failed, "status"] = "failed"
        out.loc[failed, "reason"] = "no answer from the model: " + why[failed].astype(str)
    for column in ("answer", "combined"):  # None, not NaN, as for unreadable rows
        out[column] = pd.Series([None if f or not isinstance(v, str) else v for f, v in zip(failed, out[column])],
                                index=out.index, dtype=object)
    return out.reindex(columns=RESULT_COLUMNS).astype({"page": "Int64", "evidence_score": float})


def _judge_from_labels(evidence, choices, labels, question, seed):
    """Fit a judge on half of the user's labels and print its accuracy on the other half."""
    require_columns(labels, ["file", "label"], "labels", "give one row per labelled article with its label")
    labelled = labels.merge(evidence.reset_index().rename(columns={"index": "row"}), on="file")
    if labelled.empty:
        raise ValueError("none of the labelled files is among the readable articles")
    truth = labelled["label"].astype(str).str.upper() == "TRUE"
    rng = np.random.default_rng(seed)
    tuning = np.zeros(len(labelled), bool)
    for value in (True, False):  # half of each answer tunes, half tests
        idx = rng.permutation(np.flatnonzero(truth.to_numpy() == value))
        tuning[idx[: (len(idx) + 1) // 2]] = True
    rows = labelled["row"].to_numpy()
    judge = fit_judge(evidence.iloc[rows[tuning]], truth[tuning], question, choices.iloc[rows[tuning]])
    test = ~tuning
    predicted, _ = combine(judge.p_evidence(evidence.iloc[rows[test]]), choices["TRUE"].iloc[rows[test]],
                           choices["FALSE"].iloc[rows[test]], judge.llm_weight)
    right = int(((predicted == "TRUE") == truth[test].to_numpy()).sum())
    low, high = wilson_interval(right, int(test.sum()))
    print(f"{judge}. Held-out accuracy on the other {test.sum()} labelled articles: {right}/{test.sum()} "
          f"(95% interval {low:.2f}-{high:.2f}); always answering the majority: "
          f"{max(truth[test].mean(), 1 - truth[test].mean()):.2f}.")
    return judge


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
    return save_figure(fig, path)
