"""Signals that an article *performed* an analysis rather than discussed one: what the judge reads beside the
evidence vector.

The evidence vector says what an article is about, so a review of bibliometric methods and a bibliometric
study of 4,000 Scopus records look alike to it. What differs is how the text reports the work: counts of
records, the years covered, a database named with a number, "we collected ...", results with numbers.
``analysis_signals`` counts these in passages, with regular expressions (no model; instant):

    analysis_signals(["We analysed 4,000 Scopus records from 2000 to 2020."])   # every signal but results
    analysis_signals(["This review discusses bibliographic coupling."])          # all 0
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from helpers.text import split_sentences

# What a count of records counts: publications and their parts, people and places, graph elements.
_RECORDS = (r"records|articles|papers|publications|documents|citations|references|patents|journals|authors|"
            r"researchers|scientists|scholars|works|items|books|theses|dissertations|preprints|abstracts|entities|"
            r"triples|nodes|edges|concepts|countries|institutions|universities|grants|acknowledgements|studies|"
            r"titles|keywords|tweets|mentions|links")
# A number, then at most four words, then a record noun: "9,217 Web of Science philosophy-of-science papers".
_RECORD_COUNT = re.compile(r"\b\d(?:[\d,.]*\d)?\+?\s*(?:million\s+|thousand\s+)?(?:[A-Za-z-]+\s+){0,4}?(?:" + _RECORDS
                           + r")\b", re.IGNORECASE)
_YEAR = r"(?:1[89]\d\d|20\d\d)"
# "2000-2020", "2000 to 2020", "between 1990 and 2019" (a dash of any kind).
_YEAR_RANGE = re.compile(rf"\b{_YEAR}\s*(?:-|\u2013|\u2014|to|and|until|through)\s*{_YEAR}\b", re.IGNORECASE)
_DATABASE = re.compile(r"\b(?:web of science|wos|scopus|openalex|dimensions|pubmed|medline|microsoft academic|mag|"
                       r"google scholar|crossref|cnki|dblp|arxiv|semantic scholar|aminer|ssrn|orcid|wikidata|dbpedia)\b",
                       re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# Authors reporting their own work ("we collected", "this study analyses", "data were retrieved").
_METHOD_VERB = re.compile(
    r"\b(?:we|this (?:study|paper|article|work|research)|our (?:study|analysis|results|data)|the authors)\s+"
    r"(?:\w+\s+){0,2}?(?:collect|analy[sz]|retriev|count|extract|examin|measur|comput|calculat|construct|buil|"
    r"identif|investigat|compil|gather|map|download|appl|conduct|perform|use|find|found|show|observ|obtain|model|"
    r"test|compar|explor|quantif|trac|assess|evaluat|estimat)\w*"
    r"|\b(?:were|was)\s+(?:collected|retrieved|analy[sz]ed|extracted|downloaded|counted|obtained|gathered|harvested|"
    r"identified)\b", re.IGNORECASE)
_RESULT_WORD = re.compile(r"\d\s*%|\bpercent\b|\b\d+(?:\.\d+)?\s*times\b|\bincreas|\bdecreas|\bgrew\b|\bcorrelat|"
                          r"\bsignificant", re.IGNORECASE)

SIGNALS = ("record_counts", "year_ranges", "databases_with_numbers", "method_verbs", "results_with_numbers")


def _counts(text: str) -> list[int]:
    """The five raw counts of one text, in the order of ``SIGNALS``."""
    sentences = split_sentences(text, min_words=3, max_words=200) or [text]
    with_number = [s for s in sentences if _DIGIT.search(s)]
    return [len(_RECORD_COUNT.findall(text)), len(_YEAR_RANGE.findall(text)),
            sum(bool(_DATABASE.search(s)) for s in with_number), len(_METHOD_VERB.findall(text)),
            sum(bool(_RESULT_WORD.search(s)) for s in with_number)]


def analysis_signals(texts) -> pd.DataFrame:
    """Signals of an analysis performed in each of ``texts``: one row per text, columns ``SIGNALS``, each
    log(1 + count) (so the tenth number adds less than the first):

    - record_counts: a number followed within four words by records, papers, citations, authors, ...;
    - year_ranges: "2000-2020", "from 1990 to 2019";
    - databases_with_numbers: sentences naming a database (Scopus, Web of Science, OpenAlex, ...) and a number;
    - method_verbs: "we collected / analysed / counted ...", "this study examines", "data were retrieved";
    - results_with_numbers: sentences with a number and a result word (%, times, increased, correlated, ...).
    """
    texts = ["" if not isinstance(t, str) else t for t in texts]
    counts = np.array([_counts(t) for t in texts], dtype=float).reshape(len(texts), len(SIGNALS))
    return pd.DataFrame(np.log1p(counts), columns=list(SIGNALS))


def article_signals(passages: pd.DataFrame) -> pd.DataFrame:
    """``analysis_signals`` of each file's passages (columns file, text), the strongest passage per signal:
    one row per file (in order of first appearance), columns file and ``SIGNALS``. A passage is a window of
    about the same length in an abstract and in a whole article, so the maximum does not grow with length as
    a sum would."""
    signals = analysis_signals(passages["text"].tolist()).assign(file=passages["file"].to_numpy())
    return signals.groupby("file", sort=False)[list(SIGNALS)].max().reset_index()
