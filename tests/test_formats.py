r"""Own exports into the course schema: OpenAlex, Web of Science, RIS, BibTeX, and several merged.

The files in tests/fixtures/ are written as the tools write them: Web of Science plain text with a BOM and
continuation lines, tab-delimited UTF-16 with CRLF and a trailing tab, RIS from Scopus and Zotero (CRLF, seven
AU lines), BibTeX from Scopus and Zotero (``{\"u}``, ``note = {Cited by: 12; ...}``), an OpenAlex page with a
null abstract and DOIs in upper case. The same four papers recur across them, so the merge has known duplicates.
"""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import formats
from helpers.data import CORPUS_COLUMNS, load_corpus, normalise_title
from helpers.text import doi_key

FIXTURES = Path(__file__).parent / "fixtures"
GENDER_GAPS = "Gender gaps in grant funding: evidence from three national research councils"


def _schema_ok(corpus, course_corpus_columns=CORPUS_COLUMNS + ["text", "has_abstract"]):
    assert list(corpus.columns[: len(course_corpus_columns)]) == course_corpus_columns
    assert corpus["keywords"].map(lambda k: isinstance(k, list)).all()
    assert all(k == k.lower() for ks in corpus["keywords"] for k in ks)
    assert str(corpus["year"].dtype) == "Int64"


@pytest.mark.parametrize("name, kind", [
    ("wos_plain.txt", "wos"), ("wos_tab_utf16.txt", "wos-tab"), ("scopus_zotero.ris", "ris"),
    ("scopus_zotero.bib", "bibtex"), ("openalex_page.json", "openalex"),
])
def test_format_is_detected_from_content_not_extension(tmp_path, name, kind):
    moved = tmp_path / "export.dat"  # an extension that says nothing
    moved.write_bytes((FIXTURES / name).read_bytes())
    corpus = load_corpus(moved)
    _schema_ok(corpus)
    assert GENDER_GAPS in corpus["title"].tolist()
    assert formats.detect_format((FIXTURES / name).read_bytes().decode("utf-16" if "utf16" in name else "utf-8-sig")) == kind


def test_a_csv_whose_abstract_looks_like_another_format_stays_a_csv(tmp_path):
    path = tmp_path / "scopus.csv"
    abstract = "Tweets by\n@NASA (the agency)\nTY  - JOUR\nwere coded."
    pd.DataFrame({"Title": ["A"], "Abstract": [abstract], "Year": [2020], "Cited by": [1]}).to_csv(path, index=False)
    assert load_corpus(path).loc[0, "abstract"] == abstract


def test_web_of_science_plain_text_joins_continuation_lines(capsys):
    corpus = load_corpus(FIXTURES / "wos_plain.txt")
    first = corpus.iloc[0]
    assert first["title"] == GENDER_GAPS  # TI spread over two lines
    assert first["authors"] == "Keller, M; Osei, A; Muller, J"  # one AU per line
    assert first["keywords"] == ["gender", "grant funding", "peer review", "research councils"]
    assert first["abstract"].endswith("the gap closed where panels were trained.")
    assert (first["year"], first["citations"], first["doi"], first["outlet"]) == (2021, 12, "10.5555/gg.2021", "SCIENTOMETRICS")
    assert first["wos_id"] == "WOS:000612345600012" and "Univ Bern" in first["affiliations"]
    assert corpus["citations"].tolist() == [12, 0, 40] and corpus["citations"].dtype == "int64"
    assert "Read 3 records from wos_plain.txt (Web of Science plain text)" in capsys.readouterr().out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_web_of_science_tab_delimited_in_utf16_and_utf8(tmp_path, encoding):
    text = (FIXTURES / "wos_tab_utf16.txt").read_bytes().decode("utf-16")
    path = tmp_path / "savedrecs.txt"
    path.write_bytes(text.encode(encoding))
    corpus = load_corpus(path)
    assert corpus["title"].tolist() == [GENDER_GAPS, 'Café culture and "team science"']  # a quote is a character
    assert corpus.loc[0, "keywords"] == ["gender", "grant funding", "peer review", "research councils"]
    assert corpus["citations"].tolist() == [12, 0] and corpus["year"].tolist() == [2021, 2019]
    assert "wos_id" in corpus and None not in corpus.columns


def test_ris_from_scopus_and_zotero():
    corpus = load_corpus(FIXTURES / "scopus_zotero.ris")
    scopus, zotero = corpus.iloc[0], corpus.iloc[1]
    assert scopus["authors"] == "Keller, M.; Osei, A.; Müller, J."
    assert scopus["citations"] == 12  # from N1 "Cited By: 12"
    assert scopus["outlet"] == "Scientometrics" and scopus["outlet_type"] == "Article"
    assert len(zotero["authors"].split("; ")) == 7  # seven AU lines
    assert zotero["outlet_type"] == "Conference paper" and zotero["year"] == 2023
    assert pd.isna(zotero["citations"]) and pd.isna(zotero["doi"])  # Zotero has none: missing, not 0


def test_bibtex_from_scopus_and_zotero_decodes_latex(capsys):
    corpus = load_corpus(FIXTURES / "scopus_zotero.bib")
    scopus, zotero, proceedings = corpus.iloc[0], corpus.iloc[1], corpus.iloc[2]
    assert scopus["authors"] == "Keller, M.; Osei, A.; Müller, J."  # {\"u}
    assert scopus["citations"] == 12 and scopus["keywords"] == ["gender", "grant funding", "peer review"]
    assert scopus["open_access"] == "All Open Access; Green Open Access; Hybrid Gold Open Access"
    assert scopus["has_abstract"] and scopus["outlet_type"] == "Article"
    assert zotero["title"] == "Café culture and team science"  # {\'e}
    assert zotero["keywords"] == ["collaboration", "informal interaction", "team science"]  # comma-separated
    assert proceedings["title"] == "Mapping the Science of Science with Language Models"  # braces gone
    assert proceedings["outlet_type"] == "Conference paper" and not proceedings["has_abstract"]
    assert proceedings["text"] == proceedings["title"]
    assert corpus["citations"].isna().tolist() == [False, True, True]


def test_openalex_page_list_and_json_lines_read_the_same(tmp_path):
    page = json.loads((FIXTURES / "openalex_page.json").read_text())
    (tmp_path / "list.json").write_text(json.dumps(page["results"]))
    (tmp_path / "works.jsonl").write_text("\n".join(json.dumps(w) for w in page["results"]) + "\n")
    frames = [load_corpus(p) for p in (FIXTURES / "openalex_page.json", tmp_path / "list.json", tmp_path / "works.jsonl")]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    corpus = frames[0]
    first, no_abstract = corpus.iloc[0], corpus.iloc[1]
    assert first["abstract"].startswith("We study gender gaps in grant funding across three")  # rebuilt from the index
    assert first["authors"] == "Marta Keller; Ama Osei; Jörg Müller"
    assert first["affiliations"] == "University of Bern; ETH Zurich"
    assert first["doi"] == "10.5555/GG.2021" and doi_key(first["doi"]) == "10.5555/gg.2021"
    assert first["keywords"] == ["gender gap", "grant funding"] and first["topics"] == "Gender and research funding"
    assert first["open_access"] == "All Open Access; Hybrid Gold Open Access" and first["language"] == "en"
    assert (first["outlet"], first["outlet_type"], first["citations"]) == ("Scientometrics", "Article", 13)
    assert not no_abstract["has_abstract"] and no_abstract["text"] == no_abstract["title"]


def test_merge_removes_duplicates_keeps_the_most_complete_and_reports(capsys):
    paths = [FIXTURES / n for n in ("wos_plain.txt", "scopus_zotero.ris", "scopus_zotero.bib", "openalex_page.json")]
    merged = load_corpus(paths)
    _schema_ok(merged)
    out = capsys.readouterr().out
    assert len(merged) == 4  # four papers in ten records
    assert "Duplicates removed: 6 (5 with the same DOI, 1 with the same title and year)" in out
    for name, n in (("wos_plain.txt", 3), ("scopus_zotero.ris", 2), ("scopus_zotero.bib", 3), ("openalex_page.json", 2)):
        assert f"{name} (" in out and f": {n} records" in out
    assert "open_access" in out and "0%" in out  # RIS has no open-access field: shown, not invented
    by_title = merged.set_index(merged["title"].map(normalise_title))
    # the OpenAlex copy has no abstract: the Web of Science copy (abstract, citations) is kept
    open_access = by_title.loc["citation advantage of open access articles a reanalysis"]
    assert open_access["has_abstract"] and open_access["source"].startswith("wos_plain.txt")
    # no DOI anywhere: found by title and year; the RIS copy has the abstract and keywords
    mapping = by_title.loc["mapping the science of science with language models"]
    assert mapping["source"].startswith("scopus_zotero.ris") and mapping["has_abstract"]
    assert merged["source"].notna().all()


def test_same_title_and_year_with_different_dois_are_kept_apart(tmp_path, capsys):
    rows = pd.DataFrame({"title": ["Remembrance of weaning past", "Remembrance of weaning past"], "year": [2006, 2006],
                         "abstract": ["a", "b"], "citations": [0, 33], "doi": ["10.1007/x_51", "10.1007/s00134"]})
    rows.to_csv(tmp_path / "a.csv", index=False)
    assert len(load_corpus([tmp_path / "a.csv"])) == 2
    rows.assign(doi=[None, "10.1007/s00134"]).to_csv(tmp_path / "b.csv", index=False)
    assert len(load_corpus([tmp_path / "b.csv"])) == 1


def test_course_records_in_two_formats_merge_back_to_the_course(tmp_path, demo_corpus, capsys):
    """The demo corpus written as OpenAlex JSON Lines and as RIS: each record found twice."""
    from openalex_works import ris_from_records, works_from_records

    (tmp_path / "demo.jsonl").write_text("\n".join(json.dumps(w) for w in works_from_records(demo_corpus)))
    (tmp_path / "demo.ris").write_text(ris_from_records(demo_corpus))
    merged = load_corpus([tmp_path / "demo.jsonl", tmp_path / "demo.ris"])
    assert len(merged) == len(demo_corpus)
    assert sorted(merged["title"]) == sorted(demo_corpus["title"])
    assert f"Duplicates removed: {len(demo_corpus):,}" in capsys.readouterr().out


@pytest.mark.parametrize("name, content, message", [
    ("empty.ris", b"   \n", "empty"),
    ("cut.json", (FIXTURES / "openalex_page.json").read_bytes()[:900], "truncated"),
    ("cut.jsonl", b'{"id": "W1", "title": "A", "publication_year": 2020}\n{"id": "W2", "title": "B", "publ', "truncated"),
    ("cut.txt", (FIXTURES / "wos_plain.txt").read_bytes()[:700], "truncated"),
    ("cut.ris", (FIXTURES / "scopus_zotero.ris").read_bytes()[:1200], "truncated"),
    ("other.json", b'{"meta": {"count": 1}, "results": [{"name": "Bern", "country": "CH"}]}', "not OpenAlex works"),
    ("notitle.ris", b"TY  - JOUR\r\nPY  - 2020\r\nER  - \r\n", "no record has a title"),
    ("broken.bib", b"@article{a,\n  title = {Unclosed\n", "could not be parsed"),
    ("semicolons.csv", "Authors;Title;Year;Cited by\nA;Café;2020;1\n".encode(), "semicolons"),
    ("tabs.tsv", b"title\tabstract\tyear\tcitations\nA\tB\t2020\t1\n", "tabs"),
])
def test_bad_exports_get_errors_naming_format_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        load_corpus(path)
    assert name in str(error.value)


def test_a_truncated_bibtex_keeps_the_entries_before_and_says_so(tmp_path):
    text = (FIXTURES / "scopus_zotero.bib").read_text()
    path = tmp_path / "cut.bib"
    path.write_text(text[: text.index("@inproceedings") + 120])
    with pytest.warns(UserWarning, match="truncated"):
        corpus = load_corpus(path)
    assert len(corpus) == 2


def test_a_missing_parser_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "rispy", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install rispy"):
        load_corpus(FIXTURES / "scopus_zotero.ris")
