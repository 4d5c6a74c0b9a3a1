import functools
import http.server
import threading

import pandas as pd
import pytest

from helpers import data
from helpers.cache import sha256_file
from helpers.data import CORPUS_COLUMNS, load_corpus

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused


def test_course_csv_has_1124_records_and_49_without_abstract(course_corpus):
    assert len(course_corpus) == 1124
    assert (~course_corpus["has_abstract"]).sum() == 49
    assert set(CORPUS_COLUMNS + ["text", "has_abstract"]) <= set(course_corpus.columns)
    assert course_corpus["keywords"].map(lambda k: isinstance(k, list)).all()
    assert (course_corpus["keywords"].map(len) == 0).sum() == 202
    assert all(k == k.lower() for ks in course_corpus["keywords"] for k in ks)
    with_abstract = course_corpus[course_corpus["has_abstract"]].iloc[0]
    assert with_abstract["title"] in with_abstract["text"] and with_abstract["abstract"] in with_abstract["text"]


def test_demo_corpus_has_separable_themes(demo_corpus):
    assert len(demo_corpus) >= 120
    counts = demo_corpus["theme"].value_counts()
    assert len(counts) >= 4 and counts.min() >= 20
    assert demo_corpus["title"].is_unique
    assert demo_corpus["year"].between(1990, 2026).all()


def _scopus_frame():
    return pd.DataFrame({
        "Authors": ["Keller M.; Osei A.", "Lind S."],
        "Author(s) ID": ["1; 2", "3"],
        "Title": ["Gender gaps in grant funding", "Café culture and team science"],
        "Year": [2021, 2019],
        "Source title": ["Scientometrics", "Research Policy"],
        "Cited by": [12, None],
        "DOI": ["10.5555/x.1", None],
        "Abstract": ["We study funding gaps.", "[No abstract available]"],
        "Author Keywords": ["Gender; Funding", None],
        "Index Keywords": ["gender", "teams"],
        "Document Type": ["Article", "Review"],
        "Language of Original Document": ["English", "English"],
        "Open Access": ["All Open Access; Gold Open Access", None],
        "Source": ["Scopus", "Scopus"],
        "EID": ["2-s2.0-1", "2-s2.0-2"],
    })


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "utf-16"])
def test_scopus_export_loads_to_course_schema(tmp_path, encoding):
    path = tmp_path / "scopus.csv"
    path.write_bytes(_scopus_frame().to_csv(index=False).encode(encoding))
    corpus = load_corpus(path)
    assert list(corpus.columns[: len(CORPUS_COLUMNS)]) == CORPUS_COLUMNS
    assert corpus.loc[0, "authors"] == "Keller M.; Osei A."
    assert corpus.loc[1, "title"] == "Café culture and team science"
    assert corpus.loc[0, "keywords"] == ["gender", "funding"] and corpus.loc[1, "keywords"] == []
    assert corpus["citations"].tolist() == [12, 0]  # blank "Cited by" means no citations
    assert corpus["has_abstract"].tolist() == [True, False]
    assert corpus.loc[1, "text"] == "Café culture and team science"
    assert corpus.loc[0, "outlet"] == "Scientometrics"


def test_course_schema_csv_path_loads(tmp_path, demo_corpus):
    path = tmp_path / "mine.csv"
    frame = demo_corpus.head(5).copy()
    frame["keywords"] = frame["keywords"].map("; ".join)
    frame[CORPUS_COLUMNS].to_csv(path, index=False)
    corpus = load_corpus(path)
    assert len(corpus) == 5
    assert corpus["keywords"].tolist() == demo_corpus.head(5)["keywords"].tolist()


def test_loading_never_modifies_the_source(tmp_path):
    path = tmp_path / "scopus.csv"
    path.write_bytes(_scopus_frame().to_csv(index=False).encode("utf-8-sig"))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_corpus(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"title,year\n", "no records"),
    (b"%PDF-1.7\x00\x01\x02 binary", "not a CSV"),
    (b"title,abstract\nb\x81\x8d\x8f,\x90\x9d\n", "encoding"),
    (b"just one line of prose without commas\nand another\n", "not a CSV"),
])
def test_bad_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        load_corpus(path)
    assert "bad.csv" in str(error.value)


def test_missing_columns_are_listed(tmp_path):
    path = tmp_path / "partial.csv"
    pd.DataFrame({"title": ["A"], "year": [2020]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="abstract, citations") as error:
        load_corpus(path)
    assert "partial.csv" in str(error.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_corpus(tmp_path / "nowhere.csv")


@pytest.fixture
def isolated_download(tmp_path, monkeypatch):
    """No mirror, an empty download folder and an unreachable source."""
    monkeypatch.delenv("SCISCI_DATA_DIR", raising=False)
    monkeypatch.setenv("SCISCI_DOWNLOAD_DIR", str(tmp_path))
    monkeypatch.setattr(data, "COURSE_URL", UNREACHABLE)
    return tmp_path


def test_no_network_and_no_copy_says_how_to_point_at_one(isolated_download):
    with pytest.raises(FileNotFoundError, match="SCISCI_DATA_DIR"):
        load_corpus("course")


def test_corrupted_cached_file_is_detected_by_checksum(isolated_download):
    cached = isolated_download / "science_of_science.csv"
    cached.write_text("title,abstract,year,citations\nA,B,2020,1\n")
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_corpus("course")
    assert cached.read_text().startswith("title,abstract")  # kept for inspection, not deleted


def test_mirror_with_wrong_file_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "science_of_science.csv").write_text("title,abstract,year,citations\nA,B,2020,1\n")
    monkeypatch.setenv("SCISCI_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.course_csv_path()


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on loopback serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_is_verified_and_cached(isolated_download, local_server):
    served, url = local_server
    (served / "file.txt").write_text("course data")
    digest = sha256_file(served / "file.txt")
    path = data.fetch_file("file.txt", digest, url=url + "file.txt")
    assert path == isolated_download / "file.txt" and path.read_text() == "course data"
    (served / "file.txt").unlink()  # a second call is served from the cache
    assert data.fetch_file("file.txt", digest, url=url + "file.txt") == path


def test_download_with_wrong_checksum_leaves_nothing_behind(isolated_download, local_server):
    served, url = local_server
    (served / "file.txt").write_text("tampered")
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.fetch_file("file.txt", "0" * 64, url=url + "file.txt")
    assert list(isolated_download.glob("file.txt*")) == []


def test_fetch_articles_reports_missing_files_by_name(data_dir, monkeypatch, capsys):
    monkeypatch.setattr(data, "COURSE_URL", UNREACHABLE)
    monkeypatch.setenv("SCISCI_DOWNLOAD_DIR", str(data_dir.parent / "no-such-folder"))
    paths = data.fetch_articles()
    out = capsys.readouterr().out
    assert len(paths) == 27 and all(p.suffix == ".pdf" and p.is_file() for p in paths)
    for name in data.ARTICLES_WITHOUT_CHECKSUM:
        assert name in out
    with_missing = data.fetch_articles(include_missing=True)
    assert len(with_missing) == 30
    assert {p.name for p in with_missing if not p.is_file()} == set(data.ARTICLES_WITHOUT_CHECKSUM)


def test_doi_from_filename():
    assert data.doi_from_filename("paper_10.1007_s11192-021-04069-9.pdf") == "10.1007/s11192-021-04069-9"
    assert data.doi_from_filename("paper_10.1007_978-3-031-22028-9_22.pdf") == "10.1007/978-3-031-22028-9_22"
    assert data.doi_from_filename("notes.pdf") is None


def test_a_failed_download_is_retried(isolated_download, local_server, monkeypatch):
    served, url = local_server
    (served / "file.txt").write_text("course data")
    digest = sha256_file(served / "file.txt")
    calls = []
    real_get = http.server.SimpleHTTPRequestHandler.do_GET

    def flaky_get(handler):
        calls.append(handler.path)
        if len(calls) == 1:
            handler.send_error(503, "busy")
        else:
            real_get(handler)

    monkeypatch.setattr(http.server.SimpleHTTPRequestHandler, "do_GET", flaky_get)
    assert data.fetch_file("file.txt", digest, url=url + "file.txt").read_text() == "course data"
    assert len(calls) == 2


def test_course_files_come_from_a_fixed_commit():
    assert data.COURSE_URL.endswith(f"/{data.COURSE_COMMIT}/") and len(data.COURSE_COMMIT) == 40
    assert "/main/" not in data.COURSE_URL


def test_a_user_edited_course_file_is_kept_aside_not_replaced(isolated_download, local_server, capsys):
    served, url = local_server
    (served / "science_of_science.csv").write_text("title,abstract,year,citations\nCourse,Record,2020,1\n")
    digest = sha256_file(served / "science_of_science.csv")
    mine = isolated_download / "science_of_science.csv"
    mine.write_text("title,abstract,year,citations\nMy edit,Kept,2020,1\n")
    path = data.fetch_file("science_of_science.csv", digest, url=url + "science_of_science.csv")
    assert path == mine and path.read_text().startswith("title,abstract,year,citations\nCourse")
    assert (isolated_download / "science_of_science.csv.orig").read_text().endswith("My edit,Kept,2020,1\n")
    assert "science_of_science.csv.orig" in capsys.readouterr().out
    mine.write_text("a second edit\n")  # an earlier .orig is never overwritten
    data.fetch_file("science_of_science.csv", digest, url=url + "science_of_science.csv")
    assert (isolated_download / "science_of_science.csv.orig").read_text().endswith("My edit,Kept,2020,1\n")
    assert (isolated_download / "science_of_science.csv.orig2").read_text() == "a second edit\n"


def test_one_stray_byte_is_reported_by_line_not_turned_into_mojibake(tmp_path):
    path = tmp_path / "scopus.csv"
    text = _scopus_frame().assign(Authors=["Müller K.; Osei A.", "Lind S."]).to_csv(index=False)
    path.write_bytes(text.encode().replace("Café".encode(), b"Caf\xe9"))  # one cp1252 byte
    with pytest.warns(UserWarning, match=r"1 byte\(s\) are not valid UTF-8, on line\(s\) 3") as caught:
        corpus = load_corpus(path)
    assert corpus.loc[0, "authors"] == "Müller K.; Osei A."  # not MÃ¼ller
    assert corpus.loc[1, "title"] == "Caf\ufffd culture and team science"
    assert "scopus.csv" in str(caught[0].message)


def test_duplicate_eids_and_dois_are_reported(tmp_path):
    path = tmp_path / "scopus.csv"
    frame = _scopus_frame()
    pd.concat([frame, frame.iloc[[0]]]).to_csv(path, index=False)
    with pytest.warns(UserWarning, match="share their EID") as caught:
        load_corpus(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "share their DOI" in messages and "10.5555/x.1" in messages and "records 1, 3" in messages
    assert len(load_corpus([path])) == 2  # the way out the warning names


def test_a_cut_off_last_row_is_reported(tmp_path):
    path = tmp_path / "scopus.csv"
    text = _scopus_frame().to_csv(index=False)
    path.write_text(text[: text.rindex("Research Policy")])
    with pytest.warns(UserWarning, match="last row has 5 of 15 fields: the file looks cut off"):
        corpus = load_corpus(path)
    assert len(corpus) == 2 and pd.isna(corpus.loc[1, "outlet"])
