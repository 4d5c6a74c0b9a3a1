"""Analysis signals: what an article that does an analysis writes and one that discusses it does not."""
import numpy as np
import pandas as pd

from helpers.features import SIGNALS, analysis_signals, article_signals

STUDY = ("We analysed 4,000 Scopus records published between 2000 and 2020. Citations per paper grew by 12% "
         "per year, and 9,217 Web of Science philosophy-of-science papers were retrieved for comparison.")
REVIEW = ("This review discusses bibliometric methods, from bibliographic coupling to the h-index, and argues "
          "that citation analysis needs theory as much as data.")


def counts(text):
    return dict(zip(SIGNALS, np.expm1(analysis_signals([text]).iloc[0].to_numpy()).round().astype(int)))


def test_a_study_of_records_gives_every_signal_and_a_review_of_methods_none():
    assert counts(STUDY) == {"record_counts": 2, "year_ranges": 1, "databases_with_numbers": 2,
                             "method_verbs": 2, "results_with_numbers": 1}
    assert counts(REVIEW) == dict.fromkeys(SIGNALS, 0)
    # A tool paper names a database but reports nothing it counted; a biography has years but no range.
    assert counts("We present pybliometrics, a Python wrapper for the Scopus API.") == dict.fromkeys(SIGNALS, 0)
    assert counts("Born in 1927, he founded the Science Citation Index.")["year_ranges"] == 0


def test_what_counts_as_a_count_of_records():
    assert counts("Data came from 1,500+ citations to the book.")["record_counts"] == 1  # "+" and thousands
    assert counts("The data end in 2020. Citations were then rare.")["record_counts"] == 0  # a year, then a sentence
    assert counts("Theory predicts 3 regimes of growth.")["record_counts"] == 0  # not a record noun
    assert counts("Data were downloaded from OpenAlex in 2023.") == {
        "record_counts": 0, "year_ranges": 0, "databases_with_numbers": 1, "method_verbs": 1,
        "results_with_numbers": 0}


def test_signals_are_log_counts_and_missing_text_is_zero():
    signals = analysis_signals([STUDY, None, ""])
    assert list(signals.columns) == list(SIGNALS) and len(signals) == 3
    assert signals.iloc[0]["record_counts"] == np.log1p(2)
    assert (signals.iloc[1:] == 0).all().all()


def test_article_signals_take_each_files_strongest_passage():
    passages = pd.DataFrame({"file": ["b.pdf", "a.pdf", "b.pdf", "a.pdf"],
                             "text": [REVIEW, "We counted 300 papers.", STUDY, "We counted 300 papers and 20 books."]})
    per_file = article_signals(passages).set_index("file")
    assert list(per_file.index) == ["b.pdf", "a.pdf"]  # in order of first appearance
    assert per_file.at["a.pdf", "record_counts"] == np.log1p(2)  # the maximum over passages, not the sum
    assert per_file.loc["b.pdf"].equals(analysis_signals([STUDY]).iloc[0].rename("b.pdf"))
