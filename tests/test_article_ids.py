"""Issue 17 item 3: two different real PDFs with the same file name stay two articles through every step.

Two course PDFs are copied to ``a/paper.pdf`` and ``b/paper.pdf``; reading, passages, evidence and the
packaged SmolLM2's answers must keep them apart (on main they were merged under one name: one chat, one answer).
"""
import shutil

import pytest

from helpers.extraction import ask_articles, find_evidence
from helpers.pdfs import find_quote, read_articles, split_passages
from helpers.prompts import Question

FIRST = "paper_10.1007_978-3-031-22028-9_22.pdf"   # inclusive fitness, 4 pages
SECOND = "paper_10.1007_s40806-016-0050-z.pdf"     # criticisms of evolutionary psychology, 12 pages
QUESTION = Question("survey", "Does the article report a survey of researchers?",
                    definition="A survey of researchers asks scientists, by questionnaire, what they think or do, "
                               "and reports the share of respondents who gave each answer.")


@pytest.fixture(scope="module")
def same_named(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tmp")
    for folder, name in (("a", FIRST), ("b", SECOND)):
        (root / folder).mkdir()
        shutil.copyfile(data_dir / "SciSci_articles" / name, root / folder / "paper.pdf")
    return [root / "a" / "paper.pdf", root / "b" / "paper.pdf"]


def test_two_same_named_pdfs_give_two_rows_with_their_own_evidence(same_named, generator):
    pages, status = read_articles(same_named)
    assert status["file"].tolist() == ["a/paper.pdf", "b/paper.pdf"]
    assert (status["status"] == "ok").all() and status["n_pages"].tolist() == [4, 12]

    passages = split_passages(pages)
    assert passages.groupby("file")["page"].max().to_dict() == {"a/paper.pdf": 4, "b/paper.pdf": 12}

    evidence = find_evidence(pages, QUESTION)
    assert evidence["file"].tolist() == ["a/paper.pdf", "b/paper.pdf"]
    assert evidence["evidence"].nunique() == 2
    for row in evidence.itertuples():  # each article's quote is its own text, not the other's
        mine, other = pages[pages.file == row.file], pages[pages.file != row.file]
        assert find_quote(row.quote, mine)["found"] and not find_quote(row.quote, other)["found"]

    results = ask_articles((pages, status), QUESTION, generator=generator)
    assert results["file"].tolist() == ["a/paper.pdf", "b/paper.pdf"]  # two rows, not one merged twice
    assert (results["status"] == "ok").all() and results["verified"].all()
    assert results["quote"].tolist() == evidence["quote"].tolist()  # each row quotes its own article
    # the model read two different chats: its probabilities differ
    assert results["p_TRUE"].nunique() == 2
    assert results["answer"].isin(["TRUE", "FALSE", "UNCLEAR"]).all()
