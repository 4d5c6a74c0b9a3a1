import re

import numpy as np
import pandas as pd
import pytest

from helpers import generation, retrieval
from helpers.retrieval import (
    METHODS,
    answer,
    build_index,
    cited_numbers,
    combine_indexes,
    label_passages,
    load_queries,
    recall_at_k,
    search,
    target_ranks,
)
from helpers.text import bm25_weights, tokenize

SEARCH_COLUMNS = ["rank", "score", "dense_rank", "dense_score", "lexical_rank", "lexical_score",
                  "title", "year", "doi", "text", "record"]


@pytest.fixture(scope="module")
def demo_index(demo_corpus, embedder):
    return build_index(demo_corpus)


@pytest.fixture(scope="module")
def toy_records():
    return pd.DataFrame({
        "title": ["Topic models", "Gender gap", "Citation age", "Team size"],
        "doi": ["10.1/a", "10.1/b", "10.1/c", "10.1/d"],
        "year": [2020, 2021, 2022, 2023],
        "text": [
            "We fit LDA topic models to thirty thousand abstracts of physics papers.",
            "Women receive fewer research grants than men with similar publication records.",
            "Older papers are cited less often as the literature grows each year.",
            "Large teams develop existing ideas while small teams disrupt science.",
        ],
    })


@pytest.fixture(scope="module")
def toy_index(toy_records, embedder):
    return build_index(toy_records)


def test_tokenize_keeps_acronyms_and_hyphenated_names():
    tokens = tokenize("The h-index, LDA and COVID\u201019 in a BERTopic model.")
    assert {"h-index", "index", "lda", "covid-19", "covid", "19", "bertopic", "model"} == set(tokens)
    assert "the" not in tokens and "h" not in tokens


def test_bm25_weights_follow_the_okapi_formula():
    texts = ["alpha beta beta", "beta gamma", "gamma gamma gamma delta epsilon"]
    weights, vocabulary = bm25_weights(texts, k1=1.5, b=0.75)
    lengths = np.array([3, 2, 5])
    tf, df, n = 2, 2, 3  # "beta" twice in text 0, in 2 of 3 texts
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * lengths[0] / lengths.mean()))
    assert weights.shape == (3, 5)
    assert weights[0, vocabulary["beta"]] == pytest.approx(expected, rel=1e-5)
    assert weights[0, vocabulary["gamma"]] == 0
    # a rarer word weighs more than a common one at the same count
    assert weights[1, vocabulary["gamma"]] < weights[0, vocabulary["alpha"]] * 2


def test_bm25_ranks_the_record_with_a_rare_exact_term_first(demo_index):
    weights = demo_index.term_weights
    per_term = np.diff(weights.indptr)
    rare = [t for t, col in demo_index.vocabulary.items() if per_term[col] == 1 and len(t) >= 6 and t.isalpha()]
    assert len(rare) >= 5
    for term in rare[:5]:
        holder = weights.indices[weights.indptr[demo_index.vocabulary[term]]]
        hits = search(demo_index, f"studies about {term.upper()}", k=5, method="lexical")
        assert hits["record"].iloc[0] == holder
        assert hits["lexical_rank"].iloc[0] == 1


def test_dense_finds_a_paraphrase_with_no_shared_words(toy_index):
    query = "female scientists obtain smaller funding"
    assert not set(tokenize(query)) & set(tokenize(" ".join(toy_index.records["text"])))
    assert search(toy_index, query, k=3, method="lexical").empty
    dense = search(toy_index, query, k=3, method="dense")
    assert dense["title"].iloc[0] == "Gender gap"
    assert dense["dense_score"].is_monotonic_decreasing
    assert dense["lexical_rank"].isna().all()


def test_hybrid_returns_k_distinct_rows_with_the_documented_columns(demo_index):
    hits = search(demo_index, "Do gender differences in citations persist?", k=7)
    assert list(hits.columns) == SEARCH_COLUMNS
    assert len(hits) == 7 and hits["record"].is_unique
    assert hits["rank"].tolist() == list(range(1, 8))
    assert hits["score"].is_monotonic_decreasing
    assert hits["dense_score"].between(-1, 1).all()
    # the record columns are the index's own rows
    expected = demo_index.records.loc[hits["record"], "title"].tolist()
    assert hits["title"].tolist() == expected


def test_hybrid_fuses_both_rankings(demo_index):
    query = "ComplEx knowledge graph embeddings for venue recommendation"
    hybrid = search(demo_index, query, k=5)
    for hit in hybrid.itertuples():
        ranks = [r for r in (hit.dense_rank, hit.lexical_rank) if pd.notna(r) and r <= retrieval.FUSION_DEPTH]
        assert hit.score == pytest.approx(sum(1 / (60 + r) for r in ranks))
    assert hybrid.loc[0, "dense_rank"] <= 3 and hybrid.loc[0, "lexical_rank"] <= 3


@pytest.mark.parametrize("theme, query", [
    ("gender", "women and men in academic careers"),
    ("citations", "predicting how often papers get cited"),
    ("reproducibility", "replication of published experiments"),
    ("collaboration", "co-authorship and teams of researchers"),
    ("knowledge_graphs", "ontologies and linked entities of scholarly data"),
])
def test_searching_a_theme_returns_records_of_that_theme(demo_index, theme, query):
    hits = search(demo_index, query, k=5)
    themes = demo_index.records.loc[hits["record"], "theme"]
    assert (themes == theme).sum() >= 4, themes.tolist()


def test_answer_below_threshold_says_nothing_relevant_without_the_model(demo_index, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was called although nothing relevant was found")

    monkeypatch.setattr(generation, "generate", no_model)
    result = answer(demo_index, "best recipe for banana bread", k=3)
    assert result["relevant"] is False and result["sources"].empty
    assert result["answer"].startswith("Nothing relevant found") and result["kind"] == "nothing relevant"
    assert "Nothing relevant found" in capsys.readouterr().out
    lexical = answer(demo_index, "zzyzx qwertyuiop", k=3, method="lexical")  # no record shares a word
    assert "no record shares a word" in lexical["answer"] and "nan" not in lexical["answer"]


def test_answer_numbers_its_sources_and_asks_the_model(demo_index, monkeypatch, capsys):
    seen = {}

    def fake_generate(messages_list, generator=None, max_new_tokens=128, **kwargs):
        seen["chats"] = messages_list
        return ["Replication rates are low [1]."]

    monkeypatch.setattr(generation, "generate", fake_generate)
    result = answer(demo_index, "How often do replications of psychology studies succeed?", k=3, min_score=0.2)
    sources = result["sources"]
    assert result["relevant"] is True and result["answer"] == "Replication rates are low [1]."
    assert result["kind"] == "generated" and result["citations"] == [1]
    assert sources["number"].tolist() == list(range(1, len(sources) + 1)) and 1 <= len(sources) <= 3
    assert (sources["dense_score"] >= 0.2).all()
    (chat,) = seen["chats"]
    assert chat[0]["role"] == "system" and "[1]" in chat[0]["content"]
    user = chat[1]["content"]
    for number, title in zip(sources["number"], sources["title"]):
        assert f"[{number}] {title}" in user
    printed = capsys.readouterr().out
    assert "Sources:" in printed and f"[1] {sources['title'].iloc[0][:60]}" in printed
    assert "citations: [1]" in printed


def test_cited_numbers():
    assert cited_numbers("A [2]. B [1, 3][2]. C [4-5]. Not a citation: [a], (1).") == [2, 1, 3, 4, 5]
    assert cited_numbers("no citations at all") == [] and cited_numbers(None) == []


@pytest.mark.parametrize("written", ["Replication rates are low, as many studies show.",
                                     "Replication rates are low [7]."])  # no citation, or one to no source
def test_an_answer_that_cites_no_source_becomes_extractive(demo_index, monkeypatch, capsys, written):
    monkeypatch.setattr(generation, "generate", lambda *args, **kwargs: [written])
    result = answer(demo_index, "How often do replications of psychology studies succeed?", k=3, min_score=0.2)
    assert result["kind"] == "extractive" and result["generated"] == written
    sources = result["sources"].set_index("number")
    assert result["citations"] and set(result["citations"]) <= set(sources.index)
    # every sentence is its source's own, followed by that source's number
    for sentence, number in re.findall(r"(.+?) \[(\d+)\](?: |$)", result["answer"]):
        assert sentence.strip() in " ".join(sources.at[int(number), "text"].split())
    printed = capsys.readouterr().out
    assert "extractive" in printed and "citations: [" in printed and written[:30] in printed


def test_answer_with_the_real_model(demo_index, generator, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))  # a fresh generation cache: the model really runs
    result = answer(demo_index, "What share of psychology findings replicate?", generator=generator, k=2,
                    verbose=False)
    assert result["relevant"] is True and result["kind"] in ("generated", "extractive", "refused")
    assert isinstance(result["answer"], str) and result["answer"].strip() and result["generated"].strip()
    assert len(list((tmp_path / "generations").glob("*.json"))) == 1


@pytest.mark.parametrize("query, k, method, problem", [
    ("", 5, "hybrid", "query is empty"),
    ("   ", 5, "hybrid", "query is empty"),
    (None, 5, "hybrid", "query is empty"),
    ("citations", 0, "hybrid", "k must be"),
    ("citations", 2.5, "dense", "k must be"),
    ("citations", 5, "bm25", "method must be"),
])
def test_bad_search_input_is_named(toy_index, query, k, method, problem):
    with pytest.raises(ValueError, match=problem):
        search(toy_index, query, k=k, method=method)


def test_bad_records_are_named(toy_records):
    with pytest.raises(ValueError, match="records is empty"):
        build_index(toy_records.iloc[0:0])
    with pytest.raises(ValueError, match="records lacks column.s. 'abstract'"):
        build_index(toy_records, text_column="abstract")
    with pytest.raises(ValueError, match="one row per record"):
        build_index(toy_records, embeddings=np.eye(3, 8, dtype=np.float32))
    with pytest.raises(ValueError, match=r"empty or missing .* row\(s\) 2"):
        build_index(toy_records.assign(text=["a b", "c d", None, "e f"]), embeddings=np.eye(4, dtype=np.float32))


def test_k_larger_than_the_records_returns_all(toy_index):
    hits = search(toy_index, "science", k=50)
    assert len(hits) == 4 and hits["record"].is_unique


def test_recall_at_k_on_a_toy_case(toy_index):
    queries = pd.DataFrame({
        "query": ["LDA topic models of physics abstracts", "Women receive fewer research grants", "grants"],
        "doi": ["10.1/a", "10.1/b", "10.1/c"],  # the third points at a record without the word
    })
    table = recall_at_k(toy_index, queries, ks=(1, 10))
    assert list(table.index) == list(METHODS) and table["n_queries"].eq(3).all()
    # lexical finds the first two at rank 1 and never returns record c for "grants"
    assert table.loc["lexical", "recall@1"] == pytest.approx(2 / 3)
    assert table.loc["lexical", "recall@10"] == pytest.approx(2 / 3)
    # dense and hybrid rank all 4 records, so every answer is in the top 10
    assert table.loc["dense", "recall@10"] == 1.0 and table.loc["hybrid", "recall@10"] == 1.0


def test_recall_at_k_agrees_with_search(demo_index):
    records = demo_index.records.dropna(subset=["doi"]).iloc[::15]
    queries = pd.DataFrame({"query": [" ".join(t.split()[:6]) for t in records["title"]], "doi": records["doi"]})
    table = recall_at_k(demo_index, queries, ks=(1, 3), methods=("hybrid",))
    found = [doi in set(search(demo_index, q, k=3)["doi"]) for q, doi in zip(queries["query"], queries["doi"])]
    first = [search(demo_index, q, k=1)["doi"].iloc[0] == doi for q, doi in zip(queries["query"], queries["doi"])]
    assert table.loc["hybrid", "recall@3"] == pytest.approx(np.mean(found))
    assert table.loc["hybrid", "recall@1"] == pytest.approx(np.mean(first))


def test_queries_without_an_answer_are_left_out_and_counted(toy_index, capsys):
    queries = pd.DataFrame({"query": ["Women receive fewer grants", "banana bread"], "doi": ["10.1/b", pd.NA]})
    ranks = target_ranks(toy_index, queries, methods=("dense",))
    assert len(ranks) == 1 and ranks.loc[0, "dense"] == 1
    assert "1 of 2 queries left out" in capsys.readouterr().out


def test_combine_indexes_reuses_embeddings_and_labels_sources(toy_records, toy_index, monkeypatch):
    passages = toy_records.rename(columns={"text": "passage_text"}).assign(file="x.pdf", page=[1, 2, 3, 4])
    passage_index = build_index(passages, "passage_text", embeddings=toy_index.embeddings)

    def no_embedding(*args, **kwargs):
        raise AssertionError("combine_indexes re-embedded the records")

    monkeypatch.setattr(retrieval, "embed_texts", no_embedding)
    both = combine_indexes(abstract=toy_index, passage=passage_index)
    monkeypatch.undo()  # searching embeds the query
    assert len(both.records) == 8 and both.records["source"].value_counts().to_dict() == {"abstract": 4, "passage": 4}
    np.testing.assert_array_equal(both.embeddings[4:], passage_index.embeddings)
    hits = search(both, "LDA", k=5, method="lexical")
    assert hits["record"].tolist() == [0, 4] and hits["source"].tolist() == ["abstract", "passage"]
    assert hits["file"].isna().iloc[0] and hits["file"].iloc[1] == "x.pdf"


def test_every_course_pdf_maps_to_a_corpus_record(course_corpus, data_dir):
    files = sorted(p.name for p in (data_dir / "SciSci_articles").glob("*.pdf"))
    assert len(files) >= 20
    passages = pd.DataFrame({"file": files, "page": 1, "passage": 0, "text": "some words here"})
    labelled = label_passages(passages, course_corpus)
    assert labelled["title"].notna().all() and labelled["year"].notna().all()
    assert (labelled["doi"].str.replace("/", "_") == labelled["file"].str[len("paper_"):-len(".pdf")]).all()


def test_query_set_names_real_course_records(course_corpus):
    queries = load_queries()
    assert set(queries["kind"]) == {"lexical", "paraphrase", "question", "off_topic"}
    on_topic = queries[queries["kind"] != "off_topic"]
    assert 20 <= len(on_topic) <= 30 and queries["query"].is_unique
    assert queries.loc[queries["kind"] == "off_topic", "doi"].isna().all()
    with_abstract = course_corpus[course_corpus["has_abstract"]]
    assert set(on_topic["doi"].str.lower()) <= set(with_abstract["doi"].dropna().str.lower())


def test_bm25_finds_the_exact_term_queries_on_the_course_corpus(course_corpus, embedder):
    # Random unit vectors stand in for the corpus embeddings: only BM25 is tested, and no corpus embedding is needed.
    corpus = course_corpus[course_corpus["has_abstract"]]
    vectors = np.random.default_rng(0).normal(size=(len(corpus), 384)).astype(np.float32)
    index = build_index(corpus, embeddings=vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    queries = load_queries()
    table = recall_at_k(index, queries[queries["kind"] == "lexical"], ks=(1, 10), methods=("lexical",))
    assert table.loc["lexical", "recall@1"] >= 0.8 and table.loc["lexical", "recall@10"] == 1.0


def test_off_topic_queries_score_below_the_threshold_on_the_demo_corpus(demo_index):
    off, on = (search(demo_index, q, k=1, method="dense")["dense_score"].iloc[0]
               for q in ["best recipe for banana bread", "gender gap in academic promotion"])
    assert off < retrieval.MIN_SCORE < on
