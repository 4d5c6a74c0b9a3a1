"""Shared text operations: one sentence splitter, one "title. abstract", one DOI key."""
import pandas as pd

from helpers.text import doi_key, join_on_doi, record_text, split_sentences


def test_sentences_do_not_end_at_abbreviations_or_initials():
    text = ("We used bibliographic databases, e.g. Scopus and Web of Science, as in Smith et al. 2020 and J. Doe. "
            "Then we counted 4,000 records per year. A third sentence follows here, long enough to count.")
    assert split_sentences(text, min_words=3) == [
        "We used bibliographic databases, e.g. Scopus and Web of Science, as in Smith et al. 2020 and J. Doe.",
        "Then we counted 4,000 records per year.",
        "A third sentence follows here, long enough to count.",
    ]
    assert split_sentences("Too short. Also short.", min_words=6) == []


def test_record_text_joins_title_and_abstract_once():
    text = record_text(pd.Series(["A title", "Is it a question?", "Only a title"]),
                       pd.Series(["The abstract.", "Yes.", None]))
    assert text.tolist() == ["A title. The abstract.", "Is it a question? Yes.", "Only a title"]


def test_doi_key_and_join():
    assert doi_key("https://doi.org/10.1007/S11192-021-04069-9 ") == "10.1007/s11192-021-04069-9"
    assert doi_key("doi:10.1/AB") == "10.1/ab" and doi_key(None) is None and doi_key("  ") is None
    frame = pd.DataFrame({"doi": ["10.1/AB", "10.2/x", None]})
    records = pd.DataFrame({"doi": ["https://doi.org/10.1/ab", "10.1/ab"], "title": ["first", "second"]})
    joined = join_on_doi(frame, records, ["title"])
    assert joined["title"].tolist()[0] == "first" and joined["title"].isna().tolist()[1:] == [True, True]
