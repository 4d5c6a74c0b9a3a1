"""Yes/no questions about articles, answered from evidence checked against the text, and measured honestly.

One function per step, each with its settings as an object you can see and change
(``ask_articles`` runs all five for every article and one ``prompts.Question``):
1. ``find_evidence``: passages that match the question's definition (BM25 prefilter, then embeddings;
   ``EvidenceSettings``), and signals of an analysis performed in them and in the passages that match the
   question's method sentence (``features.analysis_signals``);
2. ``build_prompts``: definition, evidence and question as a chat (a ``prompts.ChatPrompt``);
3. ``generation.score_choices``: the model's constrained choice of TRUE / FALSE / UNCLEAR;
4. ``verify_quotes``: the quoted sentence occurs in the article;
5. ``Judge``: a few-shot classifier's P(TRUE) from the evidence vector and the analysis signals, updated by
   the model's odds. A judge records the question, evidence settings (signals included), prompt and model it
   was fitted with, and refuses to judge anything made otherwise.
``compare_approaches`` measures the approaches on annotated documents that nothing was tuned on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.checks import require_columns
from helpers.embeddings import embed_texts
from helpers.endpoint import Failure
from helpers.evaluation import evaluate, keyword_rule, load_annotations, wilson_interval
from helpers.features import SIGNALS, article_signals
from helpers.generation import GenerationSettings, generate, generator_key, resolve_generator, score_choices
from helpers.hub import DEFAULT_EMBEDDER
from helpers.pdfs import find_quote, read_articles, split_passages, truncate_words
from helpers.prompts import (
    EXTRACTION_ANSWERS,
    EXTRACTION_PROMPT,
    QUOTE_PROMPT,
    UNPARSEABLE,
    ChatPrompt,
    Question,
    get_question,
)
from helpers.text import bm25_scores, bm25_weights, split_sentences

ANSWERS = EXTRACTION_ANSWERS  # TRUE, FALSE, UNCLEAR
# Fewest annotated tuning examples of each answer (TRUE and FALSE) that a judge is fitted on.
MIN_PER_CLASS = 3
ANSWER_COLUMNS = ["file", "question", "status", "answer", "combined", "p_combined", "p_evidence", "evidence_score",
                  "p_TRUE", "p_FALSE", "p_UNCLEAR", "quote", "page", "verified", "reason", "note"]


@dataclass(frozen=True)
class EvidenceSettings:
    """How step 1 finds an article's evidence.

    ``candidates`` passages per article that share most words with the definition (BM25; None: all) are
    embedded with ``embedder``; the ``k`` most similar are kept, and their ``n_sentences`` sentences most
    similar to the definition, cut to ``evidence_words`` words, are the evidence. Passages are windows of at
    most ``passage_words`` words. With ``signals``, the signals of an analysis performed
    (``features.SIGNALS``) are measured in those ``k`` passages and in the ``k`` candidates most similar to
    the question's ``method`` sentence, and the judge reads them beside the evidence vector;
    ``signals=False`` gives the evidence vector alone (the judge as it was before them).
    """

    k: int = 3
    n_sentences: int = 4
    passage_words: int = 120
    evidence_words: int = 200
    candidates: int | None = 12
    embedder: object = DEFAULT_EMBEDDER
    signals: bool = True

    def __post_init__(self):
        for name in ("k", "n_sentences", "passage_words", "evidence_words"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
        if self.candidates is not None and (not isinstance(self.candidates, int) or self.candidates < self.k):
            raise ValueError(f"candidates must be None (all passages) or a whole number >= k={self.k}; "
                             f"got {self.candidates!r}")
        if not isinstance(self.signals, bool):
            raise ValueError(f"signals must be True or False; got {self.signals!r}")


# --------------------------------------------------------------------------- step 1: evidence

_REFERENCES = re.compile(r"^\s*(?:\d+\.?\s*)?(?:references|bibliography|literature cited|works cited)\s*:?\s*$",
                         re.IGNORECASE | re.MULTILINE)


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


def lexical_candidates(passages: pd.DataFrame, query: str, n: int | None) -> pd.DataFrame:
    """The ``n`` passages of each file that share most words with ``query``, by BM25 (all when ``n`` is None)."""
    if n is None or passages.empty:
        return passages
    weights, vocabulary = bm25_weights(passages["text"].tolist())
    ranked = passages.assign(_bm25=bm25_scores(weights, vocabulary, query))
    ranked = ranked.sort_values(["file", "_bm25"], ascending=[True, False], kind="stable")
    return ranked.groupby("file", sort=False).head(n).drop(columns="_bm25").sort_index()


def rank_passages(passages: pd.DataFrame, query: str, k: int = 3, embedder=DEFAULT_EMBEDDER) -> pd.DataFrame:
    """The ``k`` passages of each file (``pdfs.split_passages`` rows) most similar to ``query``, best first,
    with ``similarity`` (cosine, -1..1), ``vector`` (the passage's embedding) and ``rank`` (1 = most similar).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1; got {k!r}")
    require_columns(passages, ["file", "page", "text"], "passages", "pass the frame from split_passages")
    if passages.empty:
        return passages.assign(similarity=pd.Series(dtype=float), vector=pd.Series(dtype=object),
                               rank=pd.Series(dtype=int))
    vectors = embed_texts(passages["text"], embedder)
    ranked = passages.assign(similarity=vectors @ embed_texts([query], embedder)[0], vector=list(vectors))
    ranked = ranked.sort_values(["file", "similarity"], ascending=[True, False], kind="stable")
    ranked = ranked.groupby("file", sort=False).head(k)
    ranked["rank"] = ranked.groupby("file", sort=False).cumcount() + 1
    return ranked.reset_index(drop=True)


EVIDENCE_COLUMNS = ["file", "evidence_score", "evidence", "quote", "page", "vector", "note"]


def find_evidence(pages: pd.DataFrame, question: Question | str,
                  settings: EvidenceSettings = EvidenceSettings()) -> pd.DataFrame:
    """Step 1: each article's evidence for ``question`` (a ``Question`` or a course id), by retrieval alone.

    Reference lists are dropped, pages cut into passages, and ``settings`` (``EvidenceSettings``) say which
    passages and sentences are kept. One row per article: file, evidence_score (best passage's cosine to
    the definition), evidence ("- [page p] ..." lines), quote and page (the most similar sentence), vector
    (mean embedding of the top passages, ``(dim,)``, unit length), note; with ``settings.signals`` also a
    column per ``features.SIGNALS`` (the strongest passage's, among the definition's and the method's).
    """
    question = get_question(question)
    definition = question.definition
    columns = EVIDENCE_COLUMNS + (list(SIGNALS) if settings.signals else [])
    passages = split_passages(drop_references(pages), max_words=settings.passage_words)
    candidates = lexical_candidates(passages, definition, settings.candidates)
    top = rank_passages(candidates, definition, settings.k, settings.embedder)
    if top.empty:
        return pd.DataFrame(columns=columns)
    sentences = pd.DataFrame([{"file": p.file, "page": int(p.page), "sentence": s}
                              for p in top.itertuples() for s in split_sentences(p.text)],
                             columns=["file", "page", "sentence"]).drop_duplicates(["file", "sentence"])
    if not sentences.empty:
        definition_vector = embed_texts([definition], settings.embedder)[0]
        sentences["similarity"] = embed_texts(sentences["sentence"], settings.embedder) @ definition_vector
    rows = []
    for file, passages_of in top.groupby("file", sort=False):
        chosen = sentences[sentences["file"] == file].nlargest(settings.n_sentences, "similarity") \
            if not sentences.empty else sentences
        if chosen.empty:  # no sentence to split off (a table, a list): the best passage itself
            chosen = passages_of.head(1).rename(columns={"text": "sentence"})
        lines = "\n".join(f"- [page {c.page}] {c.sentence}" for c in chosen.sort_values("page", kind="stable").itertuples())
        evidence, was_cut = truncate_words(lines, settings.evidence_words)
        vector = np.stack(passages_of["vector"]).mean(axis=0)
        rows.append({"file": file, "evidence_score": float(passages_of["similarity"].iloc[0]), "evidence": evidence,
                     "quote": chosen.iloc[0]["sentence"], "page": int(chosen.iloc[0]["page"]),
                     "vector": vector / np.linalg.norm(vector),
                     "note": f"evidence cut to {settings.evidence_words} words to fit the model [... truncated]"
                     if was_cut else ""})
    evidence = pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
    if settings.signals:
        # Reports of work done sit in the methods section more than where the concept is defined. The method's
        # passages are ranked among the same candidates, whose vectors are cached: they cost no new embedding.
        searched = [top] + ([rank_passages(candidates, question.method, settings.k, settings.embedder)]
                            if question.method.strip() else [])
        searched = pd.concat(searched, ignore_index=True).drop_duplicates(["file", "passage"])
        evidence = evidence.merge(article_signals(searched), on="file", how="left")
    return evidence.reindex(columns=columns)


# --------------------------------------------------------------------------- steps 2-4: prompt, choice, quote


def build_prompts(evidence: pd.DataFrame, question: Question | str, prompt: ChatPrompt = EXTRACTION_PROMPT) -> list:
    """Step 2: one chat per row of ``evidence`` (from ``find_evidence``): definition, evidence, question.

    ``prompt``'s user template needs ``{passages}`` and ``{question}`` slots; ``{definition}`` and ``{file}``
    are filled when present. A prompt without a system message sends none.
    """
    question = get_question(question)
    prompt.require("passages", "question")
    return [prompt.messages(definition=question.definition, file=e.file, passages=e.evidence,
                            question=question.question) for e in evidence.itertuples()]


def verify_quotes(quotes: pd.DataFrame, pages: pd.DataFrame) -> pd.DataFrame:
    """Step 4: does each ``quote`` (columns file, quote, page) occur in its article's ``pages``?

    Returns ``quotes`` with ``verified`` (bool) and ``page`` (where it was found; the given page when it
    was not). Matching tolerates line breaks, hyphenation and typographic quotes (``pdfs.find_quote``).
    """
    found = [find_quote(q.quote, pages[pages["file"] == q.file]) for q in quotes.itertuples()]
    return quotes.assign(verified=[f["found"] for f in found],
                         page=[f["page"] if f["found"] else q.page for f, q in zip(found, quotes.itertuples())])


# --------------------------------------------------------------------------- step 5: the judge


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _model_log_odds(p_true, p_false) -> np.ndarray:
    """log(p_true / p_false), 0 where the model gave no probabilities; an endpoint's 1/0 stays finite."""
    ratio = np.log(np.clip(np.asarray(p_true, dtype=float), 1e-6, 1) / np.clip(np.asarray(p_false, dtype=float), 1e-6, 1))
    return np.where(np.isfinite(ratio), ratio, 0.0)


def combine(p_evidence, p_true, p_false, llm_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: the evidence's P(TRUE) updated by the model's odds: (answers TRUE/FALSE, P(TRUE)), each ``(n,)``.

    log-odds = logit(p_evidence) + llm_weight * log(p_true / p_false). With ``llm_weight`` 0 the model does
    not count; with 1 this is Bayes' rule with the evidence as the prior, so a confident model overrules
    weak evidence. Where the model gave no probabilities (NaN), the evidence decides alone.
    """
    score = _logit(p_evidence) + llm_weight * _model_log_odds(p_true, p_false)
    posterior = 1 / (1 + np.exp(-score))
    return np.where(posterior >= 0.5, "TRUE", "FALSE"), posterior


# How much the analysis signals (log counts, about 0-2.5) count beside the evidence vector (unit length, 384
# components of about 0.05): chosen among 0.1, 0.2, 0.3 and 0.5 by 5-fold cross-validation on the tuning
# part, both course questions together (bench/JUDGE_FEATURES.md).
SIGNAL_WEIGHT = 0.2


def judge_inputs(evidence: pd.DataFrame, settings: EvidenceSettings) -> np.ndarray:
    """What the judge's classifier reads of each evidence row, ``(n, dim)``: the evidence vector, and with
    ``settings.signals`` the ``features.SIGNALS`` columns times ``SIGNAL_WEIGHT`` after it ``(n, dim + 5)``."""
    vectors = np.stack(evidence["vector"])
    if not settings.signals:
        return vectors
    missing = [s for s in SIGNALS if s not in evidence]
    if missing:
        raise ValueError(f"the evidence has no analysis signals ({', '.join(missing)}), but these settings read "
                         "them: make it with find_evidence(pages, question, settings) with the same settings")
    return np.hstack([vectors, SIGNAL_WEIGHT * evidence[list(SIGNALS)].to_numpy(float)])


@dataclass(frozen=True)
class Judge:
    """Step 5, learned from annotated tuning examples of one question.

    ``classifier`` maps what the judge reads of the evidence (``judge_inputs``: the evidence vector and, with
    ``settings.signals``, the analysis signals) to P(TRUE); ``llm_weight`` is how much the model's log-odds
    count (0: ignored); ``threshold`` is the evidence score that best separates the examples. It records what
    it was fitted with: ``question``, evidence ``settings``, ``prompt`` and ``model`` (the generator's
    identity, None when fitted without the model), and ``n_tuning`` / ``n_true`` examples.
    """

    question: Question
    settings: EvidenceSettings
    prompt: ChatPrompt
    model: str | None
    classifier: object = field(repr=False)
    llm_weight: float
    threshold: float
    n_tuning: int
    n_true: int

    @property
    def features(self) -> tuple[str, ...]:
        """The names of what the classifier reads: the evidence vector, then any analysis signals."""
        return ("evidence vector",) + (SIGNALS if self.settings.signals else ())

    def p_evidence(self, evidence: pd.DataFrame) -> np.ndarray:
        """P(TRUE) from the evidence alone, ``(n,)``."""
        return self.classifier.predict_proba(judge_inputs(evidence, self.settings))[:, 1]

    def decide(self, evidence: pd.DataFrame, choices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(answers TRUE/FALSE, P(TRUE)) of evidence rows and the model's ``choices`` on them (``combine``)."""
        return combine(self.p_evidence(evidence), choices["TRUE"], choices["FALSE"], self.llm_weight)

    def differences(self, question: Question, settings: EvidenceSettings, prompt: ChatPrompt,
                    model: str | None) -> list[str]:
        """What differs between the judge's fitting and the given question, settings, prompt and model."""
        found = [f"{name} ({mine!r} when fitted, {theirs!r} now)" for name, mine, theirs in
                 [("question", self.question, question), ("evidence settings", self.settings, settings)]
                 if mine != theirs]
        if self.prompt != prompt:
            found.append("the prompt")
        if self.model is not None and self.llm_weight > 0 and self.model != model:
            found.append(f"the model ({self.model} when fitted, {model} now)")
        return found

    def __repr__(self) -> str:
        reads = "the evidence vector" + (f" and {len(SIGNALS)} analysis signals" if self.settings.signals else "")
        return (f"Judge({self.question.id!r}: logistic regression on {reads}, {self.n_tuning} tuning examples "
                f"({self.n_true} TRUE), model weight {self.llm_weight:.2f})")


def _classifier():
    from sklearn.linear_model import LogisticRegression

    # C chosen by 5-fold cross-validation on the tuning part among 0.1-10 (best for both course questions).
    return LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)


def fit_judge(evidence: pd.DataFrame, truth, choices: pd.DataFrame | None = None, *, question: Question,
              settings: EvidenceSettings, prompt: ChatPrompt, model: str | None) -> Judge:
    """Step 5's judge from tuning examples: ``evidence`` (``find_evidence`` with ``settings``), ``truth`` (bool,
    same order), optionally the model's ``choices`` on them (prompted with ``prompt``, from ``model``).

    The model gets a weight only when its log-odds added to the classifier's (cross-validated) make more
    examples right. Needs ``MIN_PER_CLASS`` examples of each answer.
    """
    from sklearn.model_selection import cross_val_predict

    truth = np.asarray(truth, dtype=bool)
    if len(truth) != len(evidence):
        raise ValueError(f"{len(evidence)} evidence rows but {len(truth)} annotations")
    n_true, n_false = int(truth.sum()), int((~truth).sum())
    if min(n_true, n_false) < MIN_PER_CLASS:
        raise ValueError(f"too few annotations to learn from: {n_true} TRUE and {n_false} FALSE tuning examples; "
                         f"annotate at least {MIN_PER_CLASS} of each (and as many again to test on)")
    x = judge_inputs(evidence, settings)
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
    return Judge(question, settings, prompt, model if choices is not None else None,
                 _classifier().fit(x, truth), weight, threshold, len(truth), n_true)


def abstract_pages(records: pd.DataFrame) -> pd.DataFrame:
    """Corpus records as one-page "articles": file = the ``file`` column, else the DOI; text = the record's
    ``text`` (``load_corpus``: title and abstract)."""
    require_columns(records, ["text"], "records", "pass rows of load_corpus or load_annotations(corpus)")
    return pd.DataFrame({"file": (records["file"] if "file" in records else records["doi"]).to_numpy(), "page": 1,
                         "text": records["text"].to_numpy()})


def course_judge(question: Question | str, generator=None, settings: EvidenceSettings = EvidenceSettings(),
                 prompt: ChatPrompt = EXTRACTION_PROMPT) -> Judge:
    """The judge of a course question, fitted on the tuning part of the annotated abstracts with exactly these
    ``settings``, ``prompt`` and ``generator`` (None: the default model; False: without the model)."""
    from helpers.data import load_corpus

    question = get_question(question)
    annotations = load_annotations(load_corpus("course"))
    tuning = annotations[(annotations["question_id"] == question.id) & (annotations["split"] == "tuning")]
    tuning = tuning[tuning["text"].notna()].reset_index(drop=True)
    if tuning.empty:
        raise ValueError(f"the course has no annotated tuning abstracts for {question.id!r}; for your own question "
                         "pass annotations=... to ask_articles instead")
    print(f"Fitting the judge of {question.id!r} on {len(tuning)} annotated tuning abstracts ({settings}).")
    evidence = find_evidence(abstract_pages(tuning), question, settings)
    truth = tuning.set_index("file").loc[evidence["file"], "label"] == "TRUE"
    choices, model = None, None
    if generator is not False:
        generator = resolve_generator(generator)
        # errors="mark": an endpoint that fails gives no probabilities, and the model then earns no weight.
        choices = score_choices(build_prompts(evidence, question, prompt), ANSWERS, generator, errors="mark")
        model = generator_key(generator)
    return fit_judge(evidence, truth, choices, question=question, settings=settings, prompt=prompt, model=model)


def judge_from_annotations(evidence: pd.DataFrame, choices: pd.DataFrame, annotations: pd.DataFrame,
                           question: Question, settings: EvidenceSettings, prompt: ChatPrompt, model: str) -> Judge:
    """A judge fitted on half of your own ``annotations`` (file, label) of these articles (seeded), its accuracy
    on the other half printed with its interval; ``question``, ``settings``, ``prompt`` and ``model`` are
    those ``evidence`` and ``choices`` were made with, recorded in the judge."""
    require_columns(annotations, ["file", "label"], "annotations", "give one row per annotated article and its label")
    annotated = annotations.merge(evidence.reset_index().rename(columns={"index": "row"}), on="file")
    if annotated.empty:
        raise ValueError("none of the annotated files is among the readable articles")
    truth = annotated["label"].astype(str).str.upper() == "TRUE"
    rng = np.random.default_rng(0)
    tuning = np.zeros(len(annotated), bool)
    for value in (True, False):  # half of each answer tunes, half tests
        idx = rng.permutation(np.flatnonzero(truth.to_numpy() == value))
        tuning[idx[: (len(idx) + 1) // 2]] = True
    rows = annotated["row"].to_numpy()
    judge = fit_judge(evidence.iloc[rows[tuning]], truth[tuning], choices.iloc[rows[tuning]], question=question,
                      settings=settings, prompt=prompt, model=model)
    test = ~tuning
    predicted, _ = judge.decide(evidence.iloc[rows[test]], choices.iloc[rows[test]])
    right = int(((predicted == "TRUE") == truth[test].to_numpy()).sum())
    low, high = wilson_interval(right, int(test.sum()))
    print(f"{judge}. Held-out accuracy on the other {test.sum()} annotated articles: {right}/{test.sum()} "
          f"(95% interval {low:.2f}-{high:.2f}); always answering the majority: "
          f"{max(truth[test].mean(), 1 - truth[test].mean()):.2f}.")
    return judge


def compare_approaches(pages: pd.DataFrame, annotations: pd.DataFrame, judge: Judge, generator=None) -> pd.DataFrame:
    """``evaluate`` of each approach on annotated documents (``pages`` from ``read_articles`` or
    ``abstract_pages``; ``annotations`` with file, label and, for the keyword rule, keywords), all with the
    judge's question, evidence settings and prompt: the keyword rule, the model alone, similarity to the
    definition, the few-shot classifier, and step 5's combination. Annotations with a ``part`` column
    (``load_annotations``: "random", "hard", "pdf") get each part's rows apart, then all together."""
    generator = resolve_generator(generator)
    _check_judge(judge, judge.question, judge.settings, judge.prompt, generator_key(generator))
    evidence = find_evidence(pages, judge.question, judge.settings)
    annotations = annotations.set_index("file").loc[evidence["file"]]
    choices = score_choices(build_prompts(evidence, judge.question, judge.prompt), ANSWERS, generator)
    p_evidence = judge.p_evidence(evidence)
    predictions = {"zero-shot prompting (model alone)": choices["choice"] == "TRUE",
                   "similarity to the definition": evidence["evidence_score"] >= judge.threshold,
                   "few-shot classifier": p_evidence >= 0.5,
                   "classifier + model (step 5)": judge.decide(evidence, choices)[0] == "TRUE"}
    if "keywords" in annotations and judge.question.keyword_terms:
        predictions = {"keyword rule": keyword_rule(annotations["keywords"], judge.question), **predictions}
    return evaluate(predictions, annotations["label"] == "TRUE", annotations["part"] if "part" in annotations else None)


def _check_judge(judge: Judge, question, settings, prompt, model) -> None:
    differences = judge.differences(question, settings, prompt, model)
    if differences:
        raise ValueError(f"this judge was fitted with other {'; '.join(differences)}, so its answers would not "
                         "mean what they say. Fit one for these settings, e.g. course_judge(question, generator, "
                         "settings, prompt), or leave judge out to get the model's own answers")


# --------------------------------------------------------------------------- all steps at once


def _read(articles):
    """(pages, status) from a folder, a list of PDF paths, or an earlier ``read_articles`` result."""
    if isinstance(articles, tuple) and len(articles) == 2 and all(isinstance(a, pd.DataFrame) for a in articles):
        return articles
    if isinstance(articles, (list, tuple)) and not articles:
        raise ValueError("no PDF given: the list of articles is empty")
    return read_articles(articles)


def ask_articles(articles, question: Question | str, *, generator=None, judge: Judge | None = None,
                 settings: EvidenceSettings | None = None, prompt: ChatPrompt | None = None,
                 quote: str = "similarity", annotations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ask one yes/no question of every article, all five steps: one row per PDF, unreadable ones included.

    ``articles``: a folder, PDF paths, or ``read_articles``' ``(pages, status)``. ``question``: a course id or
    a ``Question``. ``settings`` and ``prompt`` default to the ``judge``'s (else ``EvidenceSettings()`` and
    ``prompts.EXTRACTION_PROMPT``); a judge fitted otherwise is refused. Without a judge, ``annotations``
    (file, label TRUE/FALSE) of some articles fit one on half of them and print its accuracy on the other
    half; without either, ``combined`` is the model's own answer. ``quote="model"``: the model writes the quote.
    Columns ``ANSWER_COLUMNS``; status "ok", "unreadable" or "failed" (an endpoint gave no answer); answer the
    model's choice (UNPARSEABLE when its text names none; None when not ok); reason why not ok.
    """
    question = get_question(question)
    settings = settings or (judge.settings if judge else EvidenceSettings())
    prompt = prompt or (judge.prompt if judge else EXTRACTION_PROMPT)
    if quote not in ("similarity", "model"):
        raise ValueError(f"quote must be 'similarity' or 'model'; got {quote!r}")
    generator = resolve_generator(generator)
    model = generator_key(generator)
    if judge is not None:
        _check_judge(judge, question, settings, prompt, model)
    pages, status = _read(articles)
    evidence = find_evidence(pages[pages["file"].isin(status.loc[status["status"] == "ok", "file"])], question,
                             settings)
    out = status[["file", "status", "reason"]].assign(question=question.id)
    no_text = (out["status"] == "ok") & ~out["file"].isin(evidence["file"])
    out.loc[no_text, ["status", "reason"]] = ["unreadable", "no passage of text long enough to judge"]
    if evidence.empty:
        return out.reindex(columns=ANSWER_COLUMNS)

    choices = score_choices(build_prompts(evidence, question, prompt), ANSWERS, generator, errors="mark")
    if quote == "model":
        written = generate([QUOTE_PROMPT.messages(question=question.question, definition=question.definition,
                                                  file=e.file, passages=e.evidence) for e in evidence.itertuples()],
                           generator, GenerationSettings(max_new_tokens=80), errors="mark")
        evidence = evidence.assign(quote=["" if isinstance(w, Failure) else w.strip().strip("\"“”'") for w in written])
    evidence = verify_quotes(evidence, pages)

    if judge is None and annotations is not None:
        judge = judge_from_annotations(evidence, choices, annotations, question, settings, prompt, model)
    answer = choices["choice"].fillna(UNPARSEABLE)
    if judge is not None:
        p_evidence = judge.p_evidence(evidence)
        combined, p_combined = judge.decide(evidence, choices)
    else:
        print("No judge: `combined` is the model's own answer (UNCLEAR counted as FALSE). For step 5 pass "
              "judge=course_judge(...) for a course question, or annotations=... for your own.")
        p_evidence, combined, p_combined = np.nan, answer.replace("UNCLEAR", "FALSE").to_numpy(), np.nan
    return _answer_table(out, evidence, choices, answer, combined, p_combined, p_evidence)


def _answer_table(out, evidence, choices, answer, combined, p_combined, p_evidence) -> pd.DataFrame:
    """``out`` (one row per article) joined with the answers of the articles that had evidence."""
    result = evidence.assign(answer=answer.to_numpy(), combined=combined, p_combined=p_combined, p_evidence=p_evidence,
                             **{f"p_{c}": choices[c].to_numpy() for c in ANSWERS})
    result["note"] = [n + ("; " if n else "") + "evidence quote not found in the article" if q and not v else n
                      for n, q, v in zip(result["note"], result["quote"], result["verified"])]
    out = out.merge(result.drop(columns=["evidence", "vector"]), on="file", how="left")
    why = out["file"].map(dict(zip(evidence["file"], choices["error"])))
    failed = why.notna()  # an endpoint gave no answer: the row says why, the retrieval part stays
    if failed.any():
        out.loc[failed, "status"] = "failed"
        out.loc[failed, "reason"] = "no answer from the model: " + why[failed].astype(str)
    for column in ("answer", "combined"):  # None, not NaN, as for unreadable rows
        out[column] = pd.Series([None if f or not isinstance(v, str) else v for f, v in zip(failed, out[column])],
                                index=out.index, dtype=object)
    return out.reindex(columns=ANSWER_COLUMNS).astype({"page": "Int64", "evidence_score": float})
