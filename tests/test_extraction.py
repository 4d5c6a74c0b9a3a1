"""Extraction from PDFs: bad files become rows, evidence is verified, the labelled set is evaluated by code."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from helpers import extraction, prompts
from helpers.extraction import (
    ANSWERS, EVIDENCE_PRIOR, ask_articles, auc, choose_threshold, combine, evaluate_extraction, evidence_scores,
    fit_evidence_prior, keyword_baseline, load_extraction_labels, rank_passages,
)

try:
    import pymupdf
except ImportError:
    import fitz as pymupdf

GOOD_TEXT = [
    ("Introduction. Science of science studies how research is produced. Many questions about careers, "
     "teams and funding can be answered with data about publications. This paper describes such a study "
     "and what it finds about international collaboration."),
    ("Data and methods. We performed a bibliometric analysis of 120000 publications indexed in Scopus "
     "between 2000 and 2020. We counted publications and citations per author and built a co-authorship "
     "network for every country. Citation counts were normalised by field and year."),
]


def _make_pdf(path, pages):
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 520, 770), text, fontsize=11)
    doc.save(path)
    doc.close()


@pytest.fixture
def pdf_folder(tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    _make_pdf(folder / "good.pdf", GOOD_TEXT)
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "corrupted.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    return folder


def test_ask_articles_one_row_per_pdf_and_verified_quote(pdf_folder, generator):
    results = ask_articles(pdf_folder, "bibliometric", generator=generator, k=2, max_words=40)
    assert sorted(results["file"]) == ["corrupted.pdf", "empty.pdf", "good.pdf"]
    rows = results.set_index("file")
    for bad in ("corrupted.pdf", "empty.pdf"):
        assert rows.at[bad, "status"] == "unreadable"
        assert rows.at[bad, "reason"]  # says why
        assert rows.at[bad, "answer"] is None or pd.isna(rows.at[bad, "answer"])
    assert "empty" in rows.at["empty.pdf", "reason"]
    good = rows.loc["good.pdf"]
    assert good["status"] == "ok" and good["answer"] in ANSWERS
    assert np.isclose(good[["p_TRUE", "p_FALSE", "p_UNCLEAR"]].sum(), 1.0)
    assert good["combined"] in ("TRUE", "FALSE") and 0 <= good["p_combined"] <= 1
    assert good["verified"] and good["page"] == 2  # the most relevant sentence is on the methods page
    assert "bibliometric" in good["evidence"].lower()
    assert -1 <= good["evidence_score"] <= 1 and good["note"] == ""


def test_over_long_evidence_is_cut_with_a_note(pdf_folder, generator):
    results = ask_articles(pdf_folder / "good.pdf", "bibliometric", generator=generator, k=2, max_words=40,
                           max_evidence_words=15)
    assert len(results) == 1
    assert "cut to 15 words" in results.loc[0, "note"]


def test_image_only_pdf_is_unreadable(tmp_path, generator):
    doc = pymupdf.open()
    page = doc.new_page()
    page.draw_rect(pymupdf.Rect(100, 100, 300, 300), color=(0, 0, 0), fill=(0.5, 0.5, 0.5))
    doc.save(tmp_path / "scan.pdf")
    doc.close()
    results = ask_articles([tmp_path / "scan.pdf", tmp_path / "missing.pdf"], "knowledge_graph", generator=generator)
    assert results["status"].tolist() == ["unreadable", "unreadable"]
    assert "no text" in results.loc[0, "reason"] and "not found" in results.loc[1, "reason"]


def test_own_question_needs_a_definition(pdf_folder):
    with pytest.raises(ValueError, match="definition"):
        ask_articles(pdf_folder, "Does the article use surveys?")
    with pytest.raises(ValueError, match="quote"):
        ask_articles(pdf_folder, "bibliometric", quote="best")


# --------------------------------------------------------------------------- with an OpenAI-compatible endpoint


def _serve(reply):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps({"choices": [{"message": {"content": reply(body)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_unparseable_answer_and_unverified_quote_are_flagged(pdf_folder, monkeypatch, tmp_path):
    def reply(body):
        text = body["messages"][-1]["content"]
        if text.startswith("Question:"):  # the request for a quote: an invented sentence
            return '"We analysed ten million patents with a knowledge graph."'
        return "Perhaps, it depends on the reader."

    httpd = _serve(reply)
    try:
        monkeypatch.setenv("SCISCI_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("SCISCI_LLM_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/v1")
        monkeypatch.setenv("SCISCI_LLM_MODEL", "fake/model")
        results = ask_articles(pdf_folder / "good.pdf", "bibliometric", quote="model", max_words=40)
    finally:
        httpd.shutdown()
        httpd.server_close()
    row = results.iloc[0]
    assert row["answer"] == "UNPARSEABLE"  # never guessed as FALSE
    assert row["combined"] == "UNPARSEABLE"
    assert row["evidence"] == "We analysed ten million patents with a knowledge graph."
    assert not row["verified"] and "not found" in row["note"]


# --------------------------------------------------------------------------- retrieval and the evidence score


def test_rank_passages_top_k_per_file():
    passages = pd.DataFrame({
        "file": ["a.pdf"] * 3 + ["b.pdf"] * 2, "page": [1, 2, 3, 1, 1], "passage": [0, 1, 2, 0, 1],
        "text": ["We thank the reviewers for their comments.", "The weather was sunny in Basel.",
                 "We built a knowledge graph of papers, authors and concepts linked by typed relations.",
                 "Our survey asked 200 teachers about their classes.", "Knowledge graphs of scholarly data."],
    })
    ranked = rank_passages(passages, prompts.EXTRACTION_QUESTIONS["knowledge_graph"]["definition"], k=2)
    assert ranked.groupby("file").size().to_dict() == {"a.pdf": 2, "b.pdf": 2}
    best = ranked[ranked["rank"] == 1].set_index("file")
    assert best.at["a.pdf", "page"] == 3 and best.at["b.pdf", "text"].startswith("Knowledge graphs")
    assert (ranked.groupby("file")["similarity"].diff().dropna() <= 0).all()  # best first


def test_choose_threshold_auc_and_prior():
    scores, truth = [0.1, 0.2, 0.3, 0.6, 0.7, 0.35], [False, False, False, True, True, True]
    t = choose_threshold(scores, truth)
    assert 0.3 < t <= 0.35 and auc(scores, truth) == 1.0
    assert auc([0.1, 0.9], [True, False]) == 0.0
    assert np.isnan(choose_threshold([0.1, 0.2], [False, False]))
    prior = fit_evidence_prior(scores, truth)
    assert prior["p_true_above"] == (3 + 1) / (3 + 2) and prior["p_true_below"] == 1 / 5
    # A hesitant model leaves the decision to the evidence; a confident one overrules it.
    assert combine(0.45, 0.55, 0.9, prior)[0] == "TRUE"
    assert combine(0.55, 0.45, 0.0, prior)[0] == "FALSE"
    assert combine(0.999, 0.001, 0.0, prior)[0] == "TRUE"
    assert combine(np.nan, np.nan, 0.9, prior) == ("UNPARSEABLE", pytest.approx(np.nan, nan_ok=True))


def test_evaluate_extraction_computes_accuracies():
    files = [f"f{i}.pdf" for i in range(6)]
    labels = pd.DataFrame({"file": files, "question_id": "bibliometric",
                           "label": ["TRUE", "TRUE", "TRUE", "FALSE", "FALSE", "FALSE"]})
    results = pd.DataFrame({
        "file": files, "question": "bibliometric", "status": "ok",
        "answer": ["TRUE", "FALSE", "FALSE", "TRUE", "FALSE", "FALSE"],
        "p_TRUE": [0.6, 0.4, 0.45, 0.55, 0.4, 0.3], "p_FALSE": [0.4, 0.6, 0.55, 0.45, 0.6, 0.7],
        "evidence_score": [0.7, 0.6, 0.65, 0.2, 0.3, 0.25],
    })
    prior = fit_evidence_prior(results["evidence_score"], labels["label"] == "TRUE")
    table = evaluate_extraction(results, labels, prior).set_index("question")
    row = table.loc["bibliometric"]
    assert row["n"] == 6 and row["n_true"] == 3
    assert row["model_accuracy"] == pytest.approx(3 / 6)  # rows 1, 5 and 6 are right
    assert row["evidence_auc"] == 1.0 and row["evidence_accuracy"] == 1.0 and row["combined_accuracy"] == 1.0
    assert row["always_false_accuracy"] == 0.5
    assert table.loc["all", "n"] == 6


def test_keyword_baseline(demo_corpus):
    table = keyword_baseline(demo_corpus).set_index("concept")
    assert set(table.index) == set(extraction.KEYWORD_TERMS)
    kg = demo_corpus["keywords"].apply(lambda ks: any("knowledge graph" in k or "linked data" in k
                                                      or "semantic web" in k for k in ks))
    assert table.at["knowledge_graph", "n_mentioning"] == kg.sum() > 0
    assert 0 < table.at["knowledge_graph", "share"] < 1


# --------------------------------------------------------------------------- the labelled set (real PDFs)


def test_labelled_set_is_valid(data_dir):
    labels = load_extraction_labels()
    assert labels["file"].nunique() >= 8
    assert set(labels["question_id"]) == set(prompts.EXTRACTION_QUESTIONS)
    assert not labels.duplicated(["file", "question_id"]).any()
    assert (labels["note"].str.len() > 10).all()  # every judgement says why
    folder = data_dir / "SciSci_articles"
    missing = [f for f in labels["file"].unique() if not (folder / f).is_file()]
    assert not missing, f"labelled PDFs not in the course data: {missing}"


def test_evidence_prior_is_the_one_fitted_on_the_labelled_set(data_dir):
    labels = load_extraction_labels()
    files = [data_dir / "SciSci_articles" / f for f in labels["file"].unique()]
    from helpers.pdfs import read_articles

    articles = read_articles(files)
    scores = pd.concat([evidence_scores(articles, q) for q in prompts.EXTRACTION_QUESTIONS])
    merged = scores.merge(labels, left_on=["file", "question"], right_on=["file", "question_id"])
    assert len(merged) == len(labels)
    fitted = fit_evidence_prior(merged["evidence_score"], merged["label"] == "TRUE")
    for key, value in fitted.items():
        assert EVIDENCE_PRIOR[key] == pytest.approx(value, abs=1e-3), key
    # The evidence score separates the labels better than chance.
    assert auc(merged["evidence_score"], merged["label"] == "TRUE") > 0.7
