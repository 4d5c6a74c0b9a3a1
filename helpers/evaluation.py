"""How good is an answer? Hand annotations, baselines and accuracy with honest intervals.

``load_annotations`` reads the course's hand annotations (``LABELS.md`` says how they were made),
``keyword_rule`` is the baseline that needs no model, ``evaluate`` gives each method's accuracy with a 95%
Wilson interval and the base rate beside it, for each part of the annotations apart (records drawn at
random, hard cases, PDFs). The pipelines that are measured (``extraction``, ``retrieval``) call these;
nothing here runs a model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import doi_from_filename
from helpers.prompts import QUESTIONS, Question, get_question
from helpers.text import join_on_doi

PDF_ANNOTATIONS = Path(__file__).with_name("extraction_labels.csv")
ABSTRACT_ANNOTATIONS = Path(__file__).with_name("abstract_labels.csv")
ANNOTATION_COLUMNS = ["file", "source", "question_id", "label", "split", "stratum", "part", "note"]


def part_of(stratum: str) -> str:
    """The part of the annotations a stratum belongs to, reported apart (LABELS.md, "Reporting"): "hard" for
    the hard-case strata (``hard_*``), "pdf" for the PDFs, "random" for the first 170 records."""
    return "hard" if stratum.startswith("hard") else "pdf" if stratum == "pdf" else "random"


def load_annotations(corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """The course's hand annotations, one row per document and question.

    Columns: file (PDF name, or the record's DOI), source ("pdf" / "abstract"), question_id, label
    ("TRUE" / "FALSE"), split ("tuning" / "test"; every PDF is "test"), stratum (how the record was
    chosen: "random", "kg_terms", a hard-case stratum, or "pdf"), part (``part_of`` the stratum: "random",
    "hard" or "pdf"; ``evaluate`` reports each apart), note. With ``corpus`` (``load_corpus``), adds each
    document's doi, title, abstract, keywords and text.
    """
    pdf = pd.read_csv(PDF_ANNOTATIONS, dtype=str, keep_default_na=False).assign(source="pdf", split="test",
                                                                                stratum="pdf")
    wide = pd.read_csv(ABSTRACT_ANNOTATIONS, dtype=str, keep_default_na=False)
    abstracts = wide.melt(id_vars=["doi", "split", "stratum", "note"], value_vars=list(QUESTIONS),
                          var_name="question_id", value_name="label").rename(columns={"doi": "file"})
    annotations = pd.concat([pdf, abstracts.assign(source="abstract")], ignore_index=True)
    annotations = annotations.assign(part=annotations["stratum"].map(part_of))[ANNOTATION_COLUMNS]
    bad = sorted(set(annotations["label"]) - {"TRUE", "FALSE"})
    if bad:
        raise ValueError(f"annotations must be TRUE or FALSE; found {bad}")
    if corpus is not None:
        doi = annotations["file"].where(annotations["source"] == "abstract",
                                        annotations["file"].map(doi_from_filename))
        annotations = join_on_doi(annotations.assign(doi=doi), corpus, ["title", "abstract", "keywords", "text"])
    return annotations


def keyword_rule(keywords, question: Question | str) -> np.ndarray:
    """The baseline without any model: TRUE where a record's author keywords contain a term of the question's
    ``keyword_terms``. ``keywords``: one list of lower-case keywords per record (``load_corpus``'s
    ``keywords`` column); a record without keywords is FALSE."""
    terms = get_question(question).keyword_terms
    if not terms:
        raise ValueError(f"question {get_question(question).id!r} has no keyword_terms, so no keyword rule")
    return np.array([isinstance(k, list) and any(t in kw for kw in k for t in terms) for k in keywords], dtype=bool)


def wilson_interval(n_right: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``n_right / n`` (sound for small n and for 0 or n right)."""
    if n == 0:
        return np.nan, np.nan
    p = n_right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


BASE_RATE = "base rate (always the majority answer)"


def evaluate(predictions: dict, truth, part=None) -> pd.DataFrame:
    """Accuracy with a 95% Wilson interval of each method (name -> TRUE answers, bool, in ``truth``'s order),
    plus the base rate. One row per method: method, n, n_true, accuracy, ci_low, ci_high,
    true_positives, false_positives.

    ``part``: the part each record belongs to (e.g. ``load_annotations``' "random" / "hard"), same order.
    Then every part gets its own rows (base rate included), in order of first appearance, and, where there
    are several, all records together come last as "all"; a column ``part`` comes first. A figure pooled
    over easy and hard records would hide where a method fails.
    """
    truth = np.asarray(truth, dtype=bool)
    if part is None:
        return _accuracy_table(predictions, truth)
    part = np.asarray(part, dtype=object)
    if len(part) != len(truth):
        raise ValueError(f"{len(truth)} records but {len(part)} parts; give one part per record")
    names = list(dict.fromkeys(part))
    blocks = [(name, part == name) for name in names] + ([("all", np.ones(len(truth), bool))] if len(names) > 1 else [])
    tables = [_accuracy_table({m: np.asarray(p, dtype=bool)[rows] for m, p in predictions.items()}, truth[rows])
              .assign(part=name) for name, rows in blocks]
    table = pd.concat(tables, ignore_index=True)
    return table[["part"] + [c for c in table.columns if c != "part"]]


def _accuracy_table(predictions: dict, truth: np.ndarray) -> pd.DataFrame:
    """``evaluate``'s table for one set of records."""
    majority = truth.mean() >= 0.5
    rows = []
    for method, predicted in {**predictions, BASE_RATE: np.full(len(truth), majority)}.items():
        predicted = np.asarray(predicted, dtype=bool)
        right = int((predicted == truth).sum())
        low, high = wilson_interval(right, len(truth))
        rows.append({"method": method, "n": len(truth), "n_true": int(truth.sum()), "accuracy": right / len(truth),
                     "ci_low": low, "ci_high": high, "true_positives": int((predicted & truth).sum()),
                     "false_positives": int((predicted & ~truth).sum())})
    return pd.DataFrame(rows)
