"""Cluster labels: keyword PMI, c-TF-IDF, LLM themes, all in one shape, and their comparison."""
import pandas as pd
import pytest

from helpers import labels as lb
from helpers.llm_labels import parse_themes, sample_titles, theme_candidates


def test_keyword_only_in_cluster_tops_that_cluster(keyword_frame):
    df, labels = keyword_frame
    scores = lb.keyword_scores(df, labels, top_n=5, min_count=3)
    assert scores[scores["cluster"] == 0].sort_values("rank")["keyword"].iloc[0] == "peer review"
    assert "bibliometrics" not in set(scores.loc[scores["cluster"] == 0, "keyword"])  # everywhere -> not characteristic
    assert scores[scores["cluster"] == 1]["keyword"].iloc[0] == "citations"
    assert 2 not in set(scores["cluster"])  # no keywords at all: no row
    first = scores.iloc[0]
    assert first["n_records"] == 10 and first["score"] == pytest.approx(first["pmi"])  # all 10 records carry it


def test_every_labeller_returns_one_row_per_cluster_in_one_shape(keyword_frame):
    df, labels = keyword_frame
    keywords = lb.keyword_labels(df, labels)
    terms = lb.ctfidf_labels(df, labels, top_n=3)
    for table, method in [(keywords, "keywords"), (terms, "c-TF-IDF")]:
        assert list(table.columns[:4]) == lb.LABEL_COLUMNS
        assert table["cluster"].tolist() == [0, 1, 2] and (table["method"] == method).all()
        assert all(label == "; ".join(t) for label, t in zip(table["label"], table["terms"]))
    assert keywords.loc[0, "terms"][0] == "peer review"
    # cluster 2 has no keywords: its label comes from c-TF-IDF, and says so
    assert keywords.loc[2, "source"] == "c-TF-IDF" and {"gender", "grants"} <= set(keywords.loc[2, "terms"])
    assert keywords.loc[2, "label"] == "; ".join(lb.ctfidf_labels(df, labels).loc[2, "terms"])


def test_ctfidf_prefers_cluster_specific_words():
    texts = ["citation networks of journals"] * 5 + ["gender gap in grant funding"] * 5
    scores = lb.ctfidf_scores(texts, [0] * 5 + [1] * 5, top_n=3)
    assert set(scores[scores["cluster"] == 0]["term"]) <= {"citation", "networks", "journals"}
    assert set(scores[scores["cluster"] == 1]["term"]) <= {"gender", "gap", "grant", "funding"}
    assert (scores.groupby("cluster")["score"].diff().dropna() <= 0).all()  # ranked best first


def test_compare_labels_puts_methods_side_by_side(keyword_frame):
    df, labels = keyword_frame
    llm = pd.DataFrame({"cluster": [0, 1], "method": "LLM", "label": ["peer review; refereeing", "UNPARSEABLE: x"],
                        "terms": [["peer review", "refereeing"], []]})
    table = lb.compare_labels(lb.keyword_labels(df, labels), llm)
    assert list(table.columns) == ["cluster", "keywords", "LLM"]
    assert table["cluster"].tolist() == [0, 1, 2]
    assert table.loc[0, "LLM"] == "peer review; refereeing" and table.loc[2, "LLM"] == ""  # not labelled: empty
    with pytest.raises(ValueError, match="lacks column"):
        lb.compare_labels(llm.drop(columns="terms"))


@pytest.mark.parametrize("func", [lb.keyword_labels, lb.keyword_scores])
def test_mismatched_lengths_name_both(func, keyword_frame):
    df, labels = keyword_frame
    with pytest.raises(ValueError, match=r"22 rows but clusters has 21"):
        func(df, labels[:-1])


def test_ctfidf_mismatched_lengths():
    with pytest.raises(ValueError, match=r"3 rows but clusters has 2"):
        lb.ctfidf_scores(["a b", "c d", "e f"], [0, 1])


# --------------------------------------------------------------------------- parsing themes


@pytest.mark.parametrize("answer, expected", [
    ("1. Gender bias\n2. Research careers\n3. Mentoring", ["Gender bias", "Research careers", "Mentoring"]),
    ("- citations\n- altmetrics\n* peer review\n• impact", ["citations", "altmetrics", "peer review", "impact"]),
    ("Themes: open science; replication; data sharing", ["open science", "replication", "data sharing"]),
    ("Here are the main themes:\n\n**Knowledge graphs**\n**Ontologies**\n**Linked data**",
     ["Knowledge graphs", "Ontologies", "Linked data"]),
    ("Theme 1: Collaboration\nTheme 2: Team science\nTheme 3: Co-authorship networks",
     ["Collaboration", "Team science", "Co-authorship networks"]),
    ("gender; career; gender; academia; Gender; career", ["gender", "career", "academia"]),
    ("1) Citations: how papers cite each other\n2) Impact factor: journal metrics\n3) h-index",
     ["Citations", "Impact factor", "h-index"]),
])
def test_parse_themes_tolerates_formats_and_duplicates(answer, expected):
    assert parse_themes(answer) == expected


def test_parse_themes_caps_at_max_and_rejects_too_few():
    many = "a1 topic; b2 topic; c3 topic; d4 topic; e5 topic; f6 topic; g7 topic"
    assert parse_themes(many) == ["a1 topic", "b2 topic", "c3 topic", "d4 topic", "e5 topic"]
    assert len(theme_candidates(many)) == 7
    assert parse_themes("Knowledge Graphs; Knowledge Graphs; Knowledge Graphs") is None  # one theme repeated
    assert parse_themes("I am sorry, I cannot tell what these articles have in common because they differ a lot.") is None
    assert parse_themes("") is None and parse_themes(None) is None


def test_parse_themes_skips_prose_lines():
    answer = ("These articles study many aspects of how science works in different countries and fields.\n"
              "- mobility\n- migration\n- brain drain")
    assert parse_themes(answer) == ["mobility", "migration", "brain drain"]


def test_sample_titles_is_reproducible_and_bounded():
    titles = [f"Title {i}" for i in range(40)] + ["", None, "Title 3"]
    first, again = sample_titles(titles, 10, seed=1), sample_titles(titles, 10, seed=1)
    assert first == again and len(first) == 10 and len(set(first)) == 10
    assert sample_titles(titles, 10, seed=2) != first
    assert sample_titles(["A", "B", "A"], 10) == ["A", "B"]




def test_excluded_keywords_label_no_cluster_and_change_no_other_score(keyword_frame):
    """A keyword on every record of cluster 0 and a third of the rest (like a search term) labels cluster 0;
    excluded (also spelled with a hyphen or capitals), it labels nothing, and the other scores stay as they were."""
    df, labels = keyword_frame
    df = df.copy()
    df["keywords"] = [list(k) + ["Meta-Science"] if isinstance(k, list) and (i < 10 or i % 3 == 0) else k
                      for i, k in enumerate(df["keywords"])]
    plain = lb.keyword_scores(df, labels)
    assert "meta-science" in set(plain.loc[plain["cluster"] == 0, "keyword"])
    excluded = lb.keyword_scores(df, labels, exclude=["metascience"])
    assert "meta-science" not in set(excluded["keyword"])
    kept = plain[plain["keyword"] != "meta-science"].drop(columns="rank").reset_index(drop=True)
    pd.testing.assert_frame_equal(excluded.drop(columns="rank").reset_index(drop=True), kept)
    table = lb.keyword_labels(df, labels, exclude=("meta science",))
    assert not any("meta-science" in terms for terms in table["terms"])
    assert table.loc[0, "terms"][0] == "peer review"


# --- the label check (issue 22): measured against the titles, not read -----------------------------------

def _demo_clusters(demo_corpus):
    themes = sorted(demo_corpus["theme"].unique())
    return themes, demo_corpus["theme"].map(themes.index).to_numpy()


def test_check_labels_ranks_each_label_against_every_clusters_titles(demo_corpus):
    themes, clusters = _demo_clusters(demo_corpus)
    fitting = {"citations": "citation counts; altmetrics", "collaboration": "research collaboration; teams",
               "gender": "gender gap; women in science", "knowledge_graphs": "knowledge graphs; ontologies",
               "reproducibility": "replication; reproducibility"}
    terms = [fitting[t].split("; ") for t in themes]
    terms[themes.index("gender")] = ["knowledge graph construction", "ontologies", "linked data"]  # another's label
    terms[themes.index("collaboration")] = []  # an answer that did not parse
    llm = pd.DataFrame({"cluster": range(len(themes)), "method": "LLM", "label": ["; ".join(t) for t in terms],
                        "terms": terms})
    check = lb.check_labels(demo_corpus, clusters, llm, reference=lb.keyword_labels(demo_corpus, clusters))
    assert list(check.columns) == lb.CHECK_COLUMNS and check["cluster"].tolist() == list(range(len(themes)))
    by_theme = check.set_index(pd.Index(themes))
    for theme in ["citations", "knowledge_graphs", "reproducibility"]:
        assert by_theme.at[theme, "own_rank"] == 1 and by_theme.at[theme, "passed"]
        assert by_theme.at[theme, "best_cluster"] == themes.index(theme)
    wrong = by_theme.loc["gender"]
    assert not wrong["passed"] and wrong["own_rank"] > 1 and wrong["best_cluster"] == themes.index("knowledge_graphs")
    assert wrong["reference_similarity"] < by_theme.at["citations", "reference_similarity"]
    unparsed = by_theme.loc["collaboration"]
    assert not unparsed["passed"] and pd.isna(unparsed["own_rank"]) and pd.isna(unparsed["reference_similarity"])
    assert check["own_similarity"].dropna().between(-1, 1).all()
    assert check["reference_rank"].dropna().between(1, len(themes)).all()
    # passed: its own cluster first by the titles and by the keyword labels' words
    assert check["passed"].tolist() == (check["own_rank"].eq(1) & check["reference_rank"].eq(1)).fillna(False).tolist()
    alone = lb.check_labels(demo_corpus, clusters, llm)  # without a reference: the titles alone decide
    assert alone["reference_rank"].isna().all() and alone["passed"].tolist() == check["passed"].tolist()


def test_check_labels_names_a_table_of_the_wrong_shape(demo_corpus):
    _, clusters = _demo_clusters(demo_corpus)
    with pytest.raises(ValueError, match="keyword_labels or label_clusters"):
        lb.check_labels(demo_corpus, clusters, pd.DataFrame({"cluster": [0], "label": ["x"]}))
