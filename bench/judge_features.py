"""Which features let the judge tell an article that *does* an analysis from one that *discusses* it (issue 21).

    python -m bench.judge_features          # cross-validation, then the test part and the PDFs -> JUDGE_FEATURES.md
    python -m bench.judge_features --cv     # the cross-validation alone (what a candidate feature is judged by)

Run it from the repository root (``python bench/judge_features.py`` works too where the project is installed
editable from this clone, as ``make`` installs it).

1. Candidates are compared by 5-fold cross-validation (stratified by part and label, 10 shuffles) on the
   **tuning part only** of ``helpers/abstract_labels.csv`` (155 records), with accuracy on its random and
   hard records apart. 2. Only the judges kept, and the judges as they were before (the evidence vector
   alone, fitted on the 87 earlier tuning records and on all 155), are evaluated once on the test part
   (random and hard apart) and on the 27 PDFs, with ``compare_approaches`` (Wilson intervals, keyword rule,
   base rate). Nothing is fitted or chosen on test records or PDFs. It needs the course data
   (``SCISCI_DATA_DIR``) and runs offline on the packaged models; model answers and embeddings come from the
   course cache after the first run (about 30 minutes cold on a loaded 2-core machine, a few minutes warm).
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import fetch_articles, load_corpus
from helpers.embeddings import embed_texts
from helpers.evaluation import BASE_RATE, load_annotations
from helpers.extraction import (
    ANSWERS,
    SIGNAL_WEIGHT,
    EvidenceSettings,
    abstract_pages,
    build_prompts,
    compare_approaches,
    course_judge,
    find_evidence,
    fit_judge,
)
from helpers.features import SIGNALS
from helpers.generation import generator_key, score_choices
from helpers.models import load_generator
from helpers.pdfs import read_articles
from helpers.prompts import EXTRACTION_PROMPT, QUESTIONS, ChatPrompt
from helpers.text import split_sentences

REPORT = Path(__file__).resolve().parent / "JUDGE_FEATURES.md"
FOLDS, SHUFFLES = 5, 10
VECTOR_ONLY = EvidenceSettings(signals=False)  # the judge as it was: the evidence vector alone
KEPT = EvidenceSettings()  # the judge now: the evidence vector and the analysis signals
EXTRA_WEIGHT = 0.1  # a candidate's standardised columns, beside the unit-length evidence vector
WEIGHTS = (0.1, 0.2, 0.3, 0.5)  # the grid SIGNAL_WEIGHT is chosen from

# ----------------------------------------------------------------------------- candidates that were not kept

# "Discussing" for the contrastive pair; the "doing" side is each question's method sentence.
DISCUSSING = {
    "bibliometric": "This article reviews, discusses or describes bibliometric methods, indicators, tools or the "
                    "history of scientometrics without analysing any publication data of its own.",
    "knowledge_graph": "This article reviews or discusses knowledge graphs and ontologies, or maps co-occurring "
                       "keywords and citations, without building or querying a knowledge graph of its own.",
}
ARTICLE_TYPES = {
    "review": "This article reviews the literature and gives an overview of earlier studies.",
    "essay": "This essay argues a position and reflects on the debate.",
    "biography": "This article honours the life and work of a scientist.",
    "software": "This article presents a software tool, a package or a database for users.",
}
TYPE_CUES = {
    "review": r"\b(?:review|overview|state of the art|tutorial|we survey|this survey|a survey of|literature)\b",
    "essay": r"\b(?:essay|commentary|opinion|perspective|we argue|i argue|editorial|reflect\w*|debate)\b",
    "biography": r"\b(?:biograph\w*|obituar\w*|memoriam|tribute|life and work|his (?:work|contribution)\w*|"
                 r"her (?:work|contribution)\w*|memorial|honou?r\w*)\b",
    "software": r"\b(?:software|package|library|toolkit|tool|api|platform|python|open[- ]source|dashboard|"
                r"interface|web application|we present|prototype)\b",
}
DISCUSSING_VERBS = (r"\b(?:we|i|this (?:paper|article|essay|review|chapter|work|note|survey|study)|the (?:paper|article|"
                    r"essay|author))\s+(?:\w+\s+){0,2}?(?:review|discuss|argu|propos|describ|present|introduc|outlin|"
                    r"summari[sz]|overview|reflect|suggest|explain|consider|offer|provid)\w*")
# The narrower question, as a constrained choice of the packaged model (bibliometric question only: it asks
# about analysing data, which is what a bibliometric analysis does and a knowledge graph need not).
ANALYSED_PROMPT = ChatPrompt(
    "You are a careful research assistant who reads scientific articles.",
    "Text from the article:\n{passages}\n\nDid the authors themselves collect and analyse data in this article "
    "(for example count publications or citations, or compute statistics on a data set), rather than review, "
    "discuss or describe the work of others or a tool? Answer YES or NO.")


def sentence_similarities(texts: list[str], queries: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per text: its sentences' embeddings ``(s, dim)`` and their cosines to ``queries`` ``(s, len(queries))``."""
    sentences = [split_sentences(t) or [t] for t in texts]
    vectors = embed_texts([s for group in sentences for s in group])
    cosines = vectors @ embed_texts(queries).T
    ends = np.cumsum([len(group) for group in sentences])
    return np.split(vectors, ends[:-1]), np.split(cosines, ends[:-1])


def candidates(question, rows: pd.DataFrame, evidence: pd.DataFrame, generator) -> tuple[dict, dict]:
    """Each candidate's columns for the tuning ``rows`` ``{name: (n, d)}`` and its cost in seconds (warm cache
    except where measured cold)."""
    texts = rows["text"].tolist()
    queries = [question.method, DISCUSSING[question.id], *ARTICLE_TYPES.values()]
    vectors, cosines = sentence_similarities(texts, queries)
    method_vectors = []
    for v, c in zip(vectors, cosines):
        best = v[np.argsort(-c[:, 0])[:2]].mean(axis=0)
        method_vectors.append(best / np.linalg.norm(best))
    best = np.array([c.max(axis=0) for c in cosines])
    found = {
        "analysis signals (kept)": evidence[list(SIGNALS)].to_numpy(float),
        "method sentences' vector (2 best, beside the evidence vector)": np.array(method_vectors),
        "similarity to the method sentence": best[:, [0]],
        "contrast: similarity to doing minus to discussing": best[:, [0]] - best[:, [1]],
        "article type: similarity to 4 type descriptions": best[:, 2:],
        "article type: cue words": np.array([[min(len(re.findall(p, t, re.I)), 3) for p in TYPE_CUES.values()]
                                            for t in texts], float),
        "discussing verbs (we review, we argue, ...)": np.log1p([[len(re.findall(DISCUSSING_VERBS, t, re.I))]
                                                               for t in texts]),
    }
    cost = {}
    if question.id == "bibliometric":
        chats = [ANALYSED_PROMPT.messages(passages=e) for e in evidence["evidence"]]
        answers = score_choices(chats, ["YES", "NO"], generator)
        found["LLM: did the authors themselves analyse data?"] = np.log(answers["YES"] / answers["NO"]).to_numpy()[:, None]
        start = time.perf_counter()  # seconds per chat, computed afresh on 20 of them
        score_choices(chats[:20], ["YES", "NO"], generator, cache=False)
        cost["LLM: did the authors themselves analyse data?"] = (time.perf_counter() - start) / 20
        print(f"The narrower question says YES for {(answers['choice'] == 'YES').mean():.0%} of the tuning records.")
    return found, cost


# ----------------------------------------------------------------------------- cross-validation


def _folds(truth: np.ndarray, part: np.ndarray):
    """(shuffle, train, test) index triples: 5 folds stratified by part and label, ``SHUFFLES`` times."""
    from sklearn.model_selection import StratifiedKFold

    strata = np.char.add(part.astype(str), truth.astype(str))
    with warnings.catch_warnings():  # the knowledge-graph question has 3 hard TRUE records: fewer than 5 folds
        warnings.filterwarnings("ignore", message="The least populated class")
        for shuffle in range(SHUFFLES):
            for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=shuffle).split(truth, strata):
                yield shuffle, train, test


def _scores(right: np.ndarray, part: np.ndarray) -> dict:
    """Mean accuracy over the shuffles ``right`` ``(shuffles, n)``: all, random and hard records."""
    return {"all": right.mean(), "random": right[:, part == "random"].mean(), "hard": right[:, part == "hard"].mean()}


def cv_classifier(vectors, extra, truth, part, weight=EXTRA_WEIGHT, standardise=True) -> dict:
    """Cross-validated accuracy of the judge's classifier on ``[vectors, weight * extra]`` (``extra``
    standardised on each training fold unless not ``standardise``; None: the vector alone)."""
    from sklearn.linear_model import LogisticRegression

    right = np.zeros((SHUFFLES, len(truth)), bool)
    for shuffle, train, test in _folds(truth, part):
        x_train, x_test = vectors[train], vectors[test]
        if extra is not None:
            e_train, e_test = extra[train], extra[test]
            if standardise:
                centre, spread = e_train.mean(axis=0), e_train.std(axis=0) + 1e-9
                e_train, e_test = (e_train - centre) / spread, (e_test - centre) / spread
            x_train, x_test = np.hstack([x_train, weight * e_train]), np.hstack([x_test, weight * e_test])
        model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000).fit(x_train, truth[train])
        right[shuffle, test] = model.predict(x_test) == truth[test]
    return _scores(right, part)


def cv_judge(evidence, choices, truth, part, question, settings) -> dict:
    """Cross-validated accuracy of step 5 as ``fit_judge`` makes it (classifier + the model's weighed odds)."""
    right = np.zeros((SHUFFLES, len(truth)), bool)
    for shuffle, train, test in _folds(truth, part):
        judge = fit_judge(evidence.iloc[train], truth[train], choices.iloc[train], question=question,
                          settings=settings, prompt=EXTRACTION_PROMPT, model="m")
        right[shuffle, test] = (judge.decide(evidence.iloc[test], choices.iloc[test])[0] == "TRUE") == truth[test]
    return _scores(right, part)


def cross_validate(annotations, generator) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(candidate table, signal-weight grid, costs in seconds) on the tuning part of both questions."""
    rows, grid, costs = [], [], {}
    for question in QUESTIONS.values():
        tuning = annotations[(annotations["question_id"] == question.id) & (annotations["split"] == "tuning")]
        tuning = tuning.reset_index(drop=True)
        evidence = find_evidence(abstract_pages(tuning), question, KEPT).set_index("file").loc[tuning["file"]]
        evidence = evidence.reset_index()
        choices = score_choices(build_prompts(evidence, question), ANSWERS, generator)
        truth, part = (tuning["label"] == "TRUE").to_numpy(), tuning["part"].to_numpy()
        vectors = np.stack(evidence["vector"])
        found, cost = candidates(question, tuning, evidence, generator)
        costs.update({(question.id, k): v for k, v in cost.items()})

        def add(name, result, kind, question_id=question.id):
            rows.append({"question": question_id, "features": name, "kind": kind, **result})

        add("step 5 as before: evidence vector", cv_judge(evidence, choices, truth, part, question, VECTOR_ONLY),
            "judge")
        add("step 5 kept: evidence vector + analysis signals",
            cv_judge(evidence, choices, truth, part, question, KEPT), "judge")
        base = cv_classifier(vectors, None, truth, part)
        add("evidence vector alone", base, "classifier")
        signals = found["analysis signals (kept)"]
        for name, columns in found.items():
            if name.startswith("method sentences' vector"):  # a second unit vector: beside the first, as it is
                add("+ " + name, cv_classifier(np.hstack([vectors, columns]), None, truth, part), "classifier")
                add("+ analysis signals + " + name, cv_classifier(np.hstack([vectors, columns]), signals, truth, part),
                    "classifier")
                continue
            add("+ " + name, cv_classifier(vectors, columns, truth, part), "classifier")
            if name != "analysis signals (kept)":
                add("+ analysis signals + " + name, cv_classifier(vectors, np.hstack([signals, columns]), truth, part),
                    "classifier")
        for weight in WEIGHTS:  # the signals as the judge reads them: raw log counts times a weight
            grid.append({"question": question.id, "weight": weight,
                         **cv_classifier(vectors, signals, truth, part, weight, standardise=False)})
    return pd.DataFrame(rows), pd.DataFrame(grid), costs


# ----------------------------------------------------------------------------- the test part and the PDFs


def judge_on(rows, question, settings, generator):
    """A judge fitted as ``course_judge`` fits it, on the given tuning ``rows`` (file, text, label)."""
    evidence = find_evidence(abstract_pages(rows), question, settings)
    truth = rows.set_index("file").loc[evidence["file"], "label"] == "TRUE"
    choices = score_choices(build_prompts(evidence, question), ANSWERS, generator, errors="mark")
    return fit_judge(evidence, truth, choices, question=question, settings=settings, prompt=EXTRACTION_PROMPT,
                     model=generator_key(generator))


def evaluate_once(annotations, pdf_pages, generator) -> pd.DataFrame:
    """Every approach on the test part (random, hard, all) and the PDFs, for the judges before and now."""
    tables = []
    for question in QUESTIONS.values():
        mine = annotations[annotations["question_id"] == question.id]
        earlier = mine[(mine["split"] == "tuning") & (mine["part"] == "random")].reset_index(drop=True)
        judges = {"before: evidence vector, 87 earlier tuning records": judge_on(earlier, question, VECTOR_ONLY,
                                                                                   generator),
                  "today: evidence vector, 155 tuning records": course_judge(question, generator, VECTOR_ONLY),
                  "kept: evidence vector + analysis signals, 155": course_judge(question, generator, KEPT)}
        test = mine[(mine["source"] == "abstract") & (mine["split"] == "test")]
        pdfs = mine[mine["source"] == "pdf"]
        for name, judge in judges.items():
            print(f"{question.id}, {name}: {judge}")
            for documents, labels in [(abstract_pages(test), test), (pdf_pages, pdfs)]:
                table = compare_approaches(documents, labels, judge, generator)
                tables.append(table.assign(question=question.id, judge=name))
    return pd.concat(tables, ignore_index=True)


# ----------------------------------------------------------------------------- costs and the report


def signal_costs(annotations, pdf_pages) -> dict:
    """Seconds that the signals add to step 1, in an empty cache: the 155 tuning abstracts and the 27 PDFs of
    the bibliometric question (step 1 without them first, so the difference is what the signals add)."""
    tuning = annotations[(annotations["question_id"] == "bibliometric") & (annotations["split"] == "tuning")]
    before, found = os.environ.get("SCISCI_CACHE"), {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SCISCI_CACHE"] = cache
        try:
            for what, pages in [("155 tuning abstracts", abstract_pages(tuning)), ("27 PDFs", pdf_pages)]:
                start = time.perf_counter()
                find_evidence(pages, "bibliometric", VECTOR_ONLY)
                middle = time.perf_counter()
                find_evidence(pages, "bibliometric", KEPT)
                found[what] = (middle - start, time.perf_counter() - middle)
        finally:
            if before is None:
                os.environ.pop("SCISCI_CACHE")
            else:
                os.environ["SCISCI_CACHE"] = before
    return found


def targets(results: pd.DataFrame) -> str:
    """Issue 21's targets, each against the kept judge's step 5 on records nothing was fitted on."""
    step5 = results[(results["judge"].str.startswith("kept")) & (results["method"] == "classifier + model (step 5)")]
    at = step5.set_index(["question", "part"])

    def acc(q, p):
        return at.at[(q, p), "accuracy"]

    checks = [("bibliometric, hard test part >= 0.85", acc("bibliometric", "hard") >= 0.85,
               f"{acc('bibliometric', 'hard'):.2f}"),
              ("bibliometric, random test part not below 0.84", acc("bibliometric", "random") >= 0.84,
               f"{acc('bibliometric', 'random'):.2f}"),
              ("knowledge graph, hard test part: false positives <= true positives",
               at.at[("knowledge_graph", "hard"), "false_positives"] <= at.at[("knowledge_graph", "hard"), "true_positives"],
               f"{at.at[('knowledge_graph', 'hard'), 'false_positives']} FP, "
               f"{at.at[('knowledge_graph', 'hard'), 'true_positives']} TP"),
              ("knowledge graph, all test records >= 0.95", acc("knowledge_graph", "all") >= 0.95,
               f"{acc('knowledge_graph', 'all'):.2f}"),
              ("bibliometric, 27 PDFs >= 0.96", acc("bibliometric", "pdf") >= 0.96, f"{acc('bibliometric', 'pdf'):.2f}")]
    return "\n".join(f"- {'met' if ok else '**not met**'}: {name} ({value})" for name, ok, value in checks)


def _cell(row) -> str:
    return (f"{row['accuracy']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] "
            f"({row['true_positives']} TP, {row['false_positives']} FP)")


def test_tables(results: pd.DataFrame) -> str:
    """One markdown table per question: methods down, parts across (random, hard, all test records, PDFs)."""
    out = []
    kept = "kept: evidence vector + analysis signals, 155"
    for question, mine in results.groupby("question", sort=False):
        parts = ["random", "hard", "all", "pdf"]
        header = mine[mine["judge"] == kept].drop_duplicates("part").set_index("part")
        lines = ["| method | " + " | ".join(f"{p} (n={header.at[p, 'n']}, {header.at[p, 'n_true']} TRUE)"
                                           for p in parts) + " |", "|---|" + "---|" * len(parts)]
        shared = [("keyword rule", "keyword rule"), (BASE_RATE, "base rate (majority answer)"),
                  ("zero-shot prompting (model alone)", "zero-shot prompting (model alone)")]
        for method, label in shared:
            rows = mine[(mine["judge"] == kept) & (mine["method"] == method)].set_index("part")
            lines.append(f"| {label} | " + " | ".join(_cell(rows.loc[p]) for p in parts) + " |")
        for judge in mine["judge"].unique():
            for method, label in [("classifier + model (step 5)", "step 5"), ("few-shot classifier", "classifier")]:
                rows = mine[(mine["judge"] == judge) & (mine["method"] == method)].set_index("part")
                lines.append(f"| {judge}: {label} | " + " | ".join(_cell(rows.loc[p]) for p in parts) + " |")
        out.append(f"### {question}\n\n" + "\n".join(lines))
    return "\n\n".join(out)


def cv_tables(cv: pd.DataFrame, grid: pd.DataFrame) -> str:
    """The cross-validation as markdown: a table per question, then the signal-weight grid."""
    lines = []
    for question, mine in cv.groupby("question", sort=False):
        rows = mine.set_index("features")
        lines += [f"### {question}", "", "| features | all (155) | random (87) | hard (68) | change: all / hard |",
                  "|---|---|---|---|---|"]
        for row in mine.itertuples():
            # A candidate alone against the vector alone; on top of the signals against the signals alone.
            reference = "+ analysis signals (kept)" if row.features.startswith("+ analysis signals + ") else \
                "evidence vector alone" if row.features.startswith("+ ") else None
            change = "" if reference is None else \
                f"{row.all - rows.at[reference, 'all']:+.3f} / {row.hard - rows.at[reference, 'hard']:+.3f}"
            name = f"**{row.features}**" if row.kind == "judge" else row.features
            lines.append(f"| {name} | {row.all:.3f} | {row.random:.3f} | {row.hard:.3f} | {change} |")
        lines.append("")
    lines += ["Signal weight (the signals as the judge reads them: log counts times the weight, not standardised):",
              "", "| weight | " + " | ".join(f"{q}: all / random / hard" for q in grid["question"].unique()) + " | mean all |",
              "|---|" + "---|" * (grid["question"].nunique() + 1)]
    for weight, rows in grid.groupby("weight"):
        cells = [f"{r.all:.3f} / {r.random:.3f} / {r.hard:.3f}" for r in rows.itertuples()]
        lines.append(f"| {weight} | " + " | ".join(cells) + f" | {rows['all'].mean():.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Cross-validate, evaluate once (unless ``--cv``), write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cv", action="store_true", help="the cross-validation on the tuning part alone")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    loadavg = Path("/proc/loadavg")
    load = loadavg.read_text().split()[:3] if loadavg.is_file() else ["?"] * 3
    annotations = load_annotations(load_corpus("course"))
    annotations = annotations[(annotations["source"] == "pdf") | annotations["text"].notna()]
    generator = load_generator()
    cv, grid, llm_cost = cross_validate(annotations, generator)
    best_weight = grid.groupby("weight")["all"].mean().idxmax()
    sections = [f"# The judge's features: doing vs discussing (issue 21)\n\nWritten by `python -m bench.judge_features` "
                f"({time.strftime('%Y-%m-%d')}; load average at start {' '.join(load)} on 2 cores). The judge is "
                f"step 5 of `helpers/extraction.py`; the labels are `helpers/abstract_labels.csv` "
                f"(`helpers/LABELS.md`).",
                "## 1. Cross-validation on the tuning part (nothing else is used to choose)\n\n"
                f"{FOLDS}-fold cross-validation stratified by part and label, mean over {SHUFFLES} shuffles, on the "
                "155 tuning records (87 random, 68 hard). Bold rows are step 5 exactly as `fit_judge` makes it "
                "(classifier + the model's weighed odds). The other rows are the judge's classifier alone "
                "(logistic regression, C=10, balanced) on the evidence vector and a candidate's columns, "
                f"standardised on each training fold and scaled by {EXTRA_WEIGHT} (a second vector: beside it, "
                "unscaled). *Change*: a candidate alone against the evidence vector alone; \"+ analysis signals + "
                "...\" against the signals alone.\n\n" + cv_tables(cv, grid) +
                f"\n\nBest mean over both questions: weight {best_weight}; `extraction.SIGNAL_WEIGHT` = {SIGNAL_WEIGHT}."]
    if not args.cv:
        pages, _ = read_articles(fetch_articles())
        results = evaluate_once(annotations, pages, generator)
        results.to_csv(Path(tempfile.gettempdir()) / "judge_features_test.csv", index=False)
        sections.append("## 2. Once on the test part and the PDFs\n\nEach cell: accuracy [95% Wilson interval] "
                        "(true positives, false positives). `random` and `hard`: the test part's records drawn at "
                        "random (strata random, kg_terms) and chosen hard; `all`: both; `pdf`: the 27 course PDFs. "
                        "The keyword rule, base rate and zero-shot rows do not depend on the judge.\n\n"
                        + test_tables(results) + "\n\nTargets of issue 21 (kept judge, step 5):\n\n" + targets(results))
        costs = signal_costs(annotations, pages)
        lines = [f"- Signals, {what}: step 1 without them {a:.1f} s, then with them {b:.1f} s more (the method "
                 "sentence's passages ranked among the cached candidates, the counting)" for what, (a, b) in costs.items()]
        lines += [f"- {name} ({q}): {s:.2f} s per chat, so about {155 * s:.0f} s for the 155 tuning abstracts "
                  f"and {27 * s:.0f} s for the 27 PDFs" for (q, name), s in llm_cost.items()]
        sections.append("## 3. Cost (seconds, empty cache, this machine's load)\n\n" + "\n".join(lines))
    sections.append(f"Total run: {time.perf_counter() - start:.0f} s.")
    text = "\n\n".join(sections) + "\n"
    if not args.cv:
        REPORT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
