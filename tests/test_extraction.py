"""Extraction: bad files become rows, each step does its job, the judge learns only from the tuning part."""
import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from helpers.evaluation import ABSTRACT_ANNOTATIONS, evaluate, keyword_rule, load_annotations, part_of
from helpers.extraction import (
    ANSWERS,
    MIN_PER_CLASS,
    EvidenceSettings,
    ask_articles,
    build_prompts,
    combine,
    compare_approaches,
    course_judge,
    drop_references,
    find_evidence,
    fit_judge,
    lexical_candidates,
    rank_passages,
    verify_quotes,
)
from helpers.features import SIGNALS, analysis_signals
from helpers.prompts import EXTRACTION_PROMPT, QUESTIONS, ChatPrompt, Question

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


SMALL = EvidenceSettings(k=2, passage_words=40)


TOY_TEXTS = ["We counted citations of 5000 Scopus papers.", "We analysed co-authorship in Web of Science.",
             "We mapped publications per country from OpenAlex.", "Citation counts of 300 journals were compared.",
             "This essay reflects on the philosophy of science.", "We interviewed twelve school teachers.",
             "A survey of students about their classes.", "We ran a laboratory experiment on memory."]


def _toy_evidence():
    """Evidence rows of ``TOY_TEXTS`` as ``find_evidence`` gives them (vector, score, analysis signals)."""
    from helpers.embeddings import embed_texts

    evidence = pd.DataFrame({"file": [f"toy{i}" for i in range(8)], "vector": list(embed_texts(TOY_TEXTS)),
                             "evidence_score": np.linspace(0.6, 0.1, 8)})
    return pd.concat([evidence, analysis_signals(TOY_TEXTS)], axis=1)


def _toy_judge(weight=0.0, settings=SMALL):
    """A judge fitted on vectors of toy sentences, four per answer (fast, no course data), for ``settings``."""
    truth = np.array([True] * 4 + [False] * 4)
    evidence = _toy_evidence()
    judge = fit_judge(evidence, truth, question=QUESTIONS["bibliometric"], settings=settings, prompt=EXTRACTION_PROMPT,
                      model=None)
    return dataclasses.replace(judge, llm_weight=weight)


def test_ask_articles_one_row_per_pdf_and_verified_quote(pdf_folder, generator):
    results = ask_articles(pdf_folder, "bibliometric", generator=generator, judge=_toy_judge())
    assert sorted(results["file"]) == ["corrupted.pdf", "empty.pdf", "good.pdf"]
    rows = results.set_index("file")
    for bad in ("corrupted.pdf", "empty.pdf"):
        assert rows.at[bad, "status"] == "unreadable"
        assert rows.at[bad, "reason"]  # says why
        assert pd.isna(rows.at[bad, "answer"])
    assert "empty" in rows.at["empty.pdf", "reason"]
    good = rows.loc["good.pdf"]
    assert good["status"] == "ok" and good["answer"] in ANSWERS
    assert np.isclose(good[["p_TRUE", "p_FALSE", "p_UNCLEAR"]].sum(), 1.0)
    assert good["combined"] == "TRUE" and good["p_combined"] > 0.5  # weight 0: the evidence decides
    assert good["p_combined"] == pytest.approx(good["p_evidence"])
    assert good["verified"] and good["page"] == 2  # the most relevant sentence is on the methods page
    assert "bibliometric" in good["quote"].lower()
    assert -1 <= good["evidence_score"] <= 1 and good["note"] == ""


def test_over_long_evidence_is_cut_with_a_note(pdf_folder, generator):
    results = ask_articles(pdf_folder / "good.pdf", "bibliometric", generator=generator,
                           judge=_toy_judge(settings=dataclasses.replace(SMALL, evidence_words=15)))
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


def test_own_question_needs_a_definition_and_enough_annotations(pdf_folder, generator):
    with pytest.raises(ValueError, match="definition"):
        ask_articles(pdf_folder, "Does the article use surveys?")
    with pytest.raises(ValueError, match="definition"):
        Question("surveys", "Does the article use surveys?", "")
    with pytest.raises(ValueError, match="quote"):
        ask_articles(pdf_folder, "bibliometric", quote="best")
    annotations = pd.DataFrame({"file": ["good.pdf"], "label": ["TRUE"]})
    own = Question("citations", "Does it count citations?", "Counting citations of papers.")
    with pytest.raises(ValueError, match="too few annotations"):
        ask_articles(pdf_folder, own, generator=generator, annotations=annotations)


def test_a_judge_refuses_what_it_was_not_fitted_for(pdf_folder, generator, capsys):
    judge = _toy_judge()
    assert judge.settings == SMALL and judge.question == QUESTIONS["bibliometric"] and judge.prompt == EXTRACTION_PROMPT
    with pytest.raises(ValueError, match=r"evidence settings .*k=2.*k=5") as error:
        ask_articles(pdf_folder, "bibliometric", generator=generator, judge=judge,
                     settings=dataclasses.replace(SMALL, k=5))
    assert "course_judge" in str(error.value)  # says how to get a judge that fits
    with pytest.raises(ValueError, match="the prompt"):
        ask_articles(pdf_folder, "bibliometric", generator=generator, judge=judge,
                     prompt=ChatPrompt("Be brief.", EXTRACTION_PROMPT.user))
    with pytest.raises(ValueError, match="question"):
        ask_articles(pdf_folder, "knowledge_graph", generator=generator, judge=judge)
    knowing = dataclasses.replace(judge, model="some/other-model", llm_weight=1.0)
    with pytest.raises(ValueError, match="the model"):
        ask_articles(pdf_folder, "bibliometric", generator=generator, judge=knowing)
    # A judge that reads the analysis signals is refused for evidence without them, and the other way round.
    with pytest.raises(ValueError, match=r"evidence settings .*signals=True.*signals=False"):
        ask_articles(pdf_folder, "bibliometric", generator=generator, judge=judge,
                     settings=dataclasses.replace(SMALL, signals=False))
    vector_only = _toy_judge(settings=dataclasses.replace(SMALL, signals=False))
    with pytest.raises(ValueError, match=r"signals=False.*signals=True"):
        ask_articles(pdf_folder, "bibliometric", generator=generator, judge=vector_only, settings=SMALL)
    # Without a judge nothing is fitted behind the learner's back: the model's answer, and a line that says so.
    results = ask_articles(pdf_folder, "bibliometric", generator=generator, settings=SMALL)
    assert "No judge" in capsys.readouterr().out
    good = results.set_index("file").loc["good.pdf"]
    assert good["combined"] == good["answer"].replace("UNCLEAR", "FALSE") and pd.isna(good["p_evidence"])


def test_stage_functions_take_few_parameters():
    import inspect

    from helpers.llm_labels import label_clusters

    for function in (ask_articles, label_clusters):
        assert len(inspect.signature(function).parameters) <= 8, function.__name__


# --------------------------------------------------------------------------- the steps one by one


def test_drop_references_cuts_the_list_in_the_second_half_only():
    pages = pd.DataFrame({"file": "a.pdf", "page": [1, 2, 3, 4],
                          "text": ["Intro\nReferences\nto earlier work are below.", "Methods: we counted.",
                                   "Results.\nReferences\nSmith J (2019) Journal of Informetrics 3:1-9",
                                   "Jones K (2020) Scientometrics 9:1-2"]})
    kept = drop_references(pages)
    assert kept["page"].tolist() == [1, 2, 3]  # page 4 is all references
    assert "earlier work" in kept["text"].iloc[0]  # a heading in the first half is not the list
    assert kept["text"].iloc[2].strip() == "Results." and "Informetrics" not in " ".join(kept["text"])


def test_lexical_candidates_keeps_the_passages_sharing_words_with_the_query():
    passages = pd.DataFrame({"file": ["a"] * 3 + ["b"] * 2, "page": 1, "passage": [0, 1, 2, 0, 1],
                             "text": ["the weather in Basel", "we counted citations of papers",
                                      "a survey of teachers", "citations and publications counted", "a poem"]})
    kept = lexical_candidates(passages, "counting citations of publications", n=1)
    assert kept["text"].tolist() == ["we counted citations of papers", "citations and publications counted"]
    assert lexical_candidates(passages, "citations", n=None) is passages


def test_rank_passages_top_k_per_file():
    passages = pd.DataFrame({
        "file": ["a.pdf"] * 3 + ["b.pdf"] * 2, "page": [1, 2, 3, 1, 1], "passage": [0, 1, 2, 0, 1],
        "text": ["We thank the reviewers for their comments.", "The weather was sunny in Basel.",
                 "We built a knowledge graph of papers, authors and concepts linked by typed relations.",
                 "Our survey asked 200 teachers about their classes.", "Knowledge graphs of scholarly data."],
    })
    ranked = rank_passages(passages, QUESTIONS["knowledge_graph"].definition, k=2)
    assert ranked.groupby("file").size().to_dict() == {"a.pdf": 2, "b.pdf": 2}
    best = ranked[ranked["rank"] == 1].set_index("file")
    assert best.at["a.pdf", "page"] == 3 and best.at["b.pdf", "text"].startswith("Knowledge graphs")
    assert (ranked.groupby("file")["similarity"].diff().dropna() <= 0).all()  # best first


def test_steps_evidence_prompt_and_quote():
    pages = pd.DataFrame({"file": "a.pdf", "page": [1, 2], "text": GOOD_TEXT})
    definition = QUESTIONS["bibliometric"].definition
    evidence = find_evidence(pages, "bibliometric", SMALL)
    row = evidence.iloc[0]
    assert row["page"] == 2 and "bibliometric analysis" in row["quote"]
    assert row["evidence"].startswith("- [page ") and row["vector"].shape == (384,)
    assert np.isclose(np.linalg.norm(row["vector"]), 1.0, atol=1e-5)
    chat = build_prompts(evidence, "bibliometric")[0]
    assert [m["role"] for m in chat] == ["system", "user"]
    assert definition in chat[1]["content"] and row["evidence"] in chat[1]["content"]
    with pytest.raises(ValueError, match="slot"):
        build_prompts(evidence, "bibliometric", ChatPrompt(None, "no slots here"))
    quotes = pd.DataFrame({"file": ["a.pdf", "a.pdf"], "page": [1, 1],
                           "quote": [row["quote"], "We analysed ten million patents with a knowledge graph."]})
    checked = verify_quotes(quotes, pages)
    assert checked["verified"].tolist() == [True, False] and checked["page"].tolist() == [2, 1]


def test_the_judge_reads_the_analysis_signals_and_records_it():
    judge = _toy_judge()
    assert judge.features == ("evidence vector", *SIGNALS) and "5 analysis signals" in repr(judge)
    assert judge.classifier.coef_.shape == (1, 384 + len(SIGNALS))
    assert judge.classifier.coef_[0, 384:].sum() > 0  # the toy analyses report counts and methods, the others not
    evidence = _toy_evidence()
    silent = evidence.assign(**dict.fromkeys(SIGNALS, 0.0))  # same vectors, no reported analysis
    assert (judge.p_evidence(evidence)[:4] > judge.p_evidence(silent)[:4]).all()
    vector_only = _toy_judge(settings=dataclasses.replace(SMALL, signals=False))
    assert vector_only.features == ("evidence vector",) and vector_only.classifier.coef_.shape == (1, 384)
    assert "signals" not in repr(vector_only)
    with pytest.raises(ValueError, match="no analysis signals"):
        judge.p_evidence(evidence.drop(columns=list(SIGNALS)))
    with pytest.raises(ValueError, match="no analysis signals"):
        fit_judge(evidence.drop(columns=list(SIGNALS)), [True] * 4 + [False] * 4, question=QUESTIONS["bibliometric"],
                  settings=SMALL, prompt=EXTRACTION_PROMPT, model=None)


def test_find_evidence_looks_for_signals_where_the_method_is_described():
    pages = pd.DataFrame({"file": "a.pdf", "page": [1, 2], "text": [
        "Bibliometric analysis is the quantitative analysis of publication and citation data, for example counting "
        "publications or citations, or co-authorship analysis of databases such as Web of Science or Scopus.",
        "Methods. We collected 4,000 records published between 2000 and 2020 and counted them per country."]})
    settings = EvidenceSettings(k=1, passage_words=40)
    course = find_evidence(pages, "bibliometric", settings).iloc[0]
    assert course["page"] == 1  # the evidence is the definition's passage ...
    assert course["record_counts"] > 0 and course["year_ranges"] > 0  # ... the signals come from the method's
    own = dataclasses.replace(QUESTIONS["bibliometric"], id="own", method="")  # a question without a method
    assert (find_evidence(pages, own, settings).iloc[0][list(SIGNALS)] == 0).all()
    assert all(q.method for q in QUESTIONS.values())
    with pytest.raises(ValueError, match="method"):
        Question("own", "Does it count?", "Counting papers.", method=None)
    with pytest.raises(ValueError, match="signals"):
        EvidenceSettings(signals="yes")


def test_compare_approaches_reports_each_part_apart(generator):
    pages = pd.DataFrame({"file": [f"toy{i}" for i in range(8)], "page": 1, "text": TOY_TEXTS})
    # Toy records 0, 1, 4, 5 drawn at random, 2, 3, 6, 7 hard (two of each answer in each part).
    annotations = pd.DataFrame({"file": pages["file"], "label": ["TRUE"] * 4 + ["FALSE"] * 4,
                                "part": ["random", "random", "hard", "hard"] * 2})
    table = compare_approaches(pages, annotations, _toy_judge(), generator)
    assert table["part"].unique().tolist() == ["random", "hard", "all"]
    sizes = table.groupby("part", sort=False)[["n", "n_true"]].first()
    assert sizes.to_dict("index") == {"random": {"n": 4, "n_true": 2}, "hard": {"n": 4, "n_true": 2},
                                      "all": {"n": 8, "n_true": 4}}
    step5 = table[table["method"] == "classifier + model (step 5)"].set_index("part")
    by_part = step5.loc[["random", "hard"], "true_positives"].sum()
    assert by_part == step5.at["all", "true_positives"]  # the parts add up to the whole
    one_part = compare_approaches(pages, annotations.assign(part="pdf"), _toy_judge(), generator)
    assert one_part["part"].unique().tolist() == ["pdf"]  # a single part: no "all" rows repeating it


def test_combine_weighs_the_model_by_what_it_earned():
    p_evidence = np.array([0.8, 0.3, 0.3])
    answers, posterior = combine(p_evidence, [0.1, 0.9, 0.999], [0.9, 0.1, 0.001], llm_weight=0.0)
    assert answers.tolist() == ["TRUE", "FALSE", "FALSE"] and posterior == pytest.approx(p_evidence)
    answers, _ = combine(p_evidence, [0.45, 0.55, 0.999], [0.55, 0.45, 0.001], llm_weight=1.0)
    assert answers.tolist() == ["TRUE", "FALSE", "TRUE"]  # a hesitant model leaves it to the evidence, a sure one overrules
    answers, posterior = combine([0.7], [np.nan], [np.nan], llm_weight=1.0)
    assert answers.tolist() == ["TRUE"] and posterior[0] == pytest.approx(0.7)  # no model answer: evidence alone


def test_fit_judge_learns_and_ignores_a_model_at_chance():
    rng = np.random.default_rng(0)
    truth = np.array([True] * 20 + [False] * 20)
    vectors = rng.normal(size=(40, 8)) + np.where(truth[:, None], 1.0, -1.0)
    evidence = pd.DataFrame({"vector": list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)),
                             "evidence_score": np.where(truth, 0.5, 0.2) + rng.uniform(-0.05, 0.05, 40)})
    noise = rng.uniform(0.2, 0.8, size=40)
    at_chance = pd.DataFrame({"TRUE": noise, "FALSE": 1 - noise})
    setup = dict(question=QUESTIONS["bibliometric"], settings=EvidenceSettings(signals=False), prompt=EXTRACTION_PROMPT,
                 model="m")
    judge = fit_judge(evidence, truth, at_chance, **setup)
    assert judge.llm_weight == 0.0 and judge.n_tuning == 40 and judge.n_true == 20
    assert 0.25 < judge.threshold < 0.45  # between the two groups of evidence scores
    assert ((judge.p_evidence(evidence) >= 0.5) == truth).mean() >= 0.9
    # Evidence that says nothing and a model that knows: the model earns a weight.
    blank = pd.DataFrame({"vector": list(rng.normal(size=(40, 8))), "evidence_score": 0.3})
    knowing = pd.DataFrame({"TRUE": np.where(truth, 0.9, 0.1), "FALSE": np.where(truth, 0.1, 0.9)})
    assert fit_judge(blank, truth, knowing, **setup).llm_weight > 0
    assert fit_judge(blank, truth, None, **setup).model is None  # no choices weighed: no model recorded
    with pytest.raises(ValueError, match=f"at least {MIN_PER_CLASS} of each"):
        fit_judge(evidence.head(22), truth[:22], **setup)  # 20 TRUE, only 2 FALSE


# --------------------------------------------------------------------------- the labelled sets and their split


def test_labelled_sets_are_valid_and_the_split_is_the_documented_one(data_dir, course_corpus):
    labels = load_annotations(course_corpus)
    assert set(labels["question_id"]) == set(QUESTIONS)
    assert not labels.duplicated(["file", "question_id"]).any()
    assert (labels["note"].str.len() > 10).all()  # every judgement says why
    pdfs = labels[labels["source"] == "pdf"]
    assert (pdfs["split"] == "test").all() and pdfs["file"].nunique() == 27
    missing = [f for f in pdfs["file"].unique() if not (data_dir / "SciSci_articles" / f).is_file()]
    assert not missing, f"labelled PDFs not in the course data: {missing}"
    abstracts = labels[labels["source"] == "abstract"]
    assert abstracts["abstract"].notna().all() and abstracts["file"].nunique() == 303
    # Every figure is reported on the random part (first 170 records), the hard part and the PDFs apart.
    assert (labels["part"] == labels["stratum"].map(part_of)).all() and set(pdfs["part"]) == {"pdf"}
    assert abstracts.groupby("part")["file"].nunique().to_dict() == {"hard": 133, "random": 170}
    pdf_dois = {f[len("paper_"):-len(".pdf")].replace("_", "/", 1).lower() for f in pdfs["file"]}
    assert not pdf_dois & set(abstracts["file"].str.lower())  # no article in both sets
    # The split column is what the two documented, seeded passes give (LABELS.md).
    wide = pd.read_csv(ABSTRACT_ANNOTATIONS, dtype=str, keep_default_na=False)
    hard_question = {"hard_bibliometric": "bibliometric", "hard_knowledge_graph": "knowledge_graph"}
    first = wide[wide["stratum"].isin(["random", "kg_terms"])]
    hard = wide[wide["stratum"].isin(hard_question)]
    assert len(first) == 170 and len(first) + len(hard) == len(wide)
    # Pass 1 (seed 13) re-derives the split of the first 170 records, which must not move; pass 2 (seed 21)
    # splits the hard records within each stratum and label of the question they were chosen for.
    own_label = hard.apply(lambda row: row[hard_question[row["stratum"]]], axis=1)
    expected = pd.Series("", index=wide.index)
    for seed, part, label in [(13, first, first["bibliometric"]), (21, hard, own_label)]:
        rng = np.random.default_rng(seed)
        for _, group in part.groupby([part["stratum"], label], sort=True):
            order = rng.permutation(group.index.to_numpy())
            expected[order[: (len(order) + 1) // 2]] = "tuning"
            expected[order[(len(order) + 1) // 2:]] = "test"
    assert (wide["split"] == expected).all()
    assert (first["split"] == "tuning").sum() == 87 and (hard["split"] == "tuning").sum() == 68
    counts = hard.groupby(["stratum", own_label]).size().to_dict()
    assert counts == {("hard_bibliometric", "FALSE"): 51, ("hard_bibliometric", "TRUE"): 32,
                      ("hard_knowledge_graph", "FALSE"): 45, ("hard_knowledge_graph", "TRUE"): 5}


def test_course_judge_learns_from_the_tuning_part_only(data_dir, course_corpus, monkeypatch, capsys):
    from helpers import extraction

    real = load_annotations(course_corpus)
    fitted = course_judge("bibliometric", generator=False)
    assert "Fitting the judge of 'bibliometric'" in capsys.readouterr().out  # never silently
    flipped_test = real.assign(label=np.where((real["split"] == "test") & (real["label"] == "TRUE"), "FALSE",
                                              np.where(real["split"] == "test", "TRUE", real["label"])))
    monkeypatch.setattr(extraction, "load_annotations", lambda corpus=None: flipped_test)
    same = course_judge("bibliometric", generator=False)
    assert np.array_equal(fitted.classifier.coef_, same.classifier.coef_)  # test labels changed nothing
    tuning = real[(real["split"] == "tuning") & (real["question_id"] == "bibliometric")]
    flipped_tuning = real.assign(label=np.where(real["file"].isin(tuning["file"].head(10)) &
                                                (real["question_id"] == "bibliometric"), "TRUE", real["label"]))
    monkeypatch.setattr(extraction, "load_annotations", lambda corpus=None: flipped_tuning)
    assert not np.array_equal(fitted.classifier.coef_, course_judge("bibliometric", generator=False).classifier.coef_)
    assert fitted.n_tuning == len(tuning) and fitted.model is None and fitted.settings == EvidenceSettings()


def test_the_classifier_beats_the_keyword_rule_on_the_held_out_abstracts_in_each_part(data_dir, course_corpus):
    from helpers.extraction import abstract_pages

    labels = load_annotations(course_corpus)
    test = labels[(labels["source"] == "abstract") & (labels["split"] == "test")
                  & (labels["question_id"] == "bibliometric")].reset_index(drop=True)
    judge = course_judge("bibliometric", generator=False)
    evidence = find_evidence(abstract_pages(test), "bibliometric", judge.settings)
    assert sorted(evidence["file"]) == sorted(test["file"])  # every record has evidence
    test = test.set_index("file").loc[evidence["file"]]
    truth = test["label"] == "TRUE"
    table = evaluate({"classifier": judge.p_evidence(evidence) >= 0.5,
                      "keyword rule": keyword_rule(test["keywords"], "bibliometric")}, truth, test["part"])
    # On the records drawn at random and on the hard ones (articles about bibliometrics that do none) apart.
    for part, rows in table.groupby("part"):
        rows = rows.set_index("method")
        assert rows.at["classifier", "accuracy"] >= rows.at["keyword rule", "accuracy"], part
        assert rows.at["classifier", "accuracy"] > rows.at["base rate (always the majority answer)", "accuracy"], part


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
        results = ask_articles(pdf_folder / "good.pdf", "bibliometric", quote="model", judge=_toy_judge(weight=1.0))
    finally:
        httpd.shutdown()
        httpd.server_close()
    row = results.iloc[0]
    assert row["answer"] == "UNPARSEABLE"  # never guessed as FALSE
    assert row["combined"] == "TRUE" and row["p_combined"] == pytest.approx(row["p_evidence"])  # evidence alone
    assert row["quote"] == "We analysed ten million patents with a knowledge graph."
    assert not row["verified"] and "not found" in row["note"]
