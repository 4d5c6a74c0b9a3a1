"""Tests for helpers/pdfs.py on small PDFs built here with PyMuPDF, and on the course PDFs when present."""
import os
import random
from pathlib import Path

import pandas as pd
import pytest

from helpers.cache import sha256_file
from helpers.data import doi_from_filename
from helpers.pdfs import (
    PdfError,
    article_ids,
    clean_text,
    extract_pages,
    find_quote,
    list_pdfs,
    pdf_damage,
    read_articles,
    split_passages,
    truncate_words,
)

try:
    import pymupdf
except ImportError:
    import fitz as pymupdf

PAGE_ONE = (
    "Citation analysis is a core bibliomet-\n"
    "ric method for studying how science grows.\n"
    "The h-index summarises a career in one number."
)
PAGE_TWO = "Peer review decides which manuscripts are published and which are not."


def _text_pdf(path, pages):
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 72), text, fontsize=11)
    doc.save(path)
    doc.close()
    return path


@pytest.fixture
def good_pdf(tmp_path):
    return _text_pdf(tmp_path / "good.pdf", [PAGE_ONE, PAGE_TWO])


@pytest.fixture
def bad_pdfs(tmp_path):
    """Each kind of unreadable file, with a word its error must contain."""
    files = {}
    files["empty.pdf"] = "empty"
    (tmp_path / "empty.pdf").write_bytes(b"")

    files["notes.pdf"] = "not a pdf"
    (tmp_path / "notes.pdf").write_text("Just some notes saved with the wrong extension.\n" * 20)

    files["garbage.pdf"] = "damaged"
    noise = random.Random(0).randbytes(4000)
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + noise)

    files["truncated.pdf"] = "damaged"
    whole = _text_pdf(tmp_path / "whole.pdf", [PAGE_ONE]).read_bytes()
    (tmp_path / "whole.pdf").unlink()
    (tmp_path / "truncated.pdf").write_bytes(whole[:200])

    files["locked.pdf"] = "password"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), PAGE_ONE)
    doc.save(tmp_path / "locked.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user", owner_pw="owner")
    doc.close()

    files["scan.pdf"] = "ocr"
    doc = pymupdf.open()
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 40, 40), False)
    pixmap.clear_with(180)
    doc.new_page().insert_image(pymupdf.Rect(72, 72, 272, 272), pixmap=pixmap)
    doc.save(tmp_path / "scan.pdf")
    doc.close()

    files["missing.pdf"] = "not found"
    return {tmp_path / name: word for name, word in files.items()}


def test_extract_pages_gives_one_row_per_page(good_pdf):
    pages = extract_pages(good_pdf)
    assert list(pages.columns) == ["file", "page", "text"]
    assert pages["page"].tolist() == [1, 2]
    assert (pages["file"] == "good.pdf").all()
    assert "Citation analysis" in pages["text"].iloc[0]
    assert "Peer review" in pages["text"].iloc[1] and "Peer review" not in pages["text"].iloc[0]


def test_each_bad_file_raises_pdf_error_naming_file_and_reason(bad_pdfs):
    for path, word in bad_pdfs.items():
        with pytest.raises(PdfError) as caught:
            extract_pages(path)
        message = str(caught.value).lower()
        assert path.name in message, message
        assert word in message, message
        assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_read_articles_reports_every_file_and_keeps_the_good_one(good_pdf, bad_pdfs):
    paths = [*bad_pdfs, good_pdf]
    pages, status = read_articles(paths)
    assert status["file"].tolist() == [p.name for p in paths]
    assert list(status.columns) == ["file", "status", "reason", "n_pages", "n_chars"]
    good = status.set_index("file").loc["good.pdf"]
    assert good["status"] == "ok" and good["reason"] == "" and good["n_pages"] == 2
    assert good["n_chars"] == pages["text"].str.len().sum()
    bad = status[status["file"] != "good.pdf"]
    assert (bad["status"] == "unreadable").all()
    for path, word in bad_pdfs.items():
        assert word in bad.set_index("file").loc[path.name, "reason"].lower()
    assert set(pages["file"]) == {"good.pdf"} and len(pages) == 2


def test_read_articles_accepts_a_folder(good_pdf, bad_pdfs):
    pages, status = read_articles(good_pdf.parent)
    on_disk = sorted(p.name for p in bad_pdfs if p.exists()) + ["good.pdf"]
    assert sorted(status["file"]) == sorted(on_disk)
    assert (status["status"] == "ok").sum() == 1


def test_reading_leaves_source_files_unchanged(good_pdf, bad_pdfs):
    paths = [good_pdf] + [p for p in bad_pdfs if p.exists()]
    before = {p: sha256_file(p) for p in paths}
    read_articles(paths)
    assert {p: sha256_file(p) for p in paths} == before


def test_list_pdfs_sorted_and_filtered(tmp_path):
    for name in ["b.pdf", "a.PDF", "notes.txt", ".hidden.pdf"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.pdf").mkdir()
    assert [p.name for p in list_pdfs(tmp_path)] == ["a.PDF", "b.pdf"]
    with pytest.raises(FileNotFoundError, match="folder not found"):
        list_pdfs(tmp_path / "nowhere")


def _numbered_page(n_sentences, words_per_sentence=10, start=0):
    """Sentences of numbered words, so every word in a passage can be traced back."""
    sentences, k = [], start
    for _ in range(n_sentences):
        words = [f"w{k + i}" for i in range(words_per_sentence)]
        k += words_per_sentence
        sentences.append(" ".join(words) + ".")
    return " ".join(sentences)


def test_split_passages_respects_max_words_overlap_and_pages():
    pages = pd.DataFrame({
        "file": ["a.pdf", "a.pdf", "a.pdf", "b.pdf"],
        "page": [1, 2, 3, 1],
        "text": [_numbered_page(30), _numbered_page(12, start=1000), "17", _numbered_page(4, start=2000)],
    })
    passages = split_passages(pages, max_words=45, overlap=8)
    assert list(passages.columns) == ["file", "page", "passage", "text"]
    words = passages["text"].str.split()
    assert words.str.len().max() <= 45
    # the page that holds only a page number gives no passage
    assert set(passages.loc[passages.file == "a.pdf", "page"]) == {1, 2}
    for _, group in passages.groupby("file"):
        assert group["passage"].tolist() == list(range(len(group)))
    for (file, page), group in passages.groupby(["file", "page"]):
        chunks = group["text"].str.split().tolist()
        for prev, nxt in zip(chunks, chunks[1:]):
            assert prev[-8:] == nxt[:8]
        # words stay on their own page and none is lost
        source = pages[(pages.file == file) & (pages.page == page)]["text"].iloc[0].split()
        assert {w for c in chunks for w in c} == set(source)
    # with room for sentences, windows end at a sentence end
    assert passages["text"].iloc[:-1].str.endswith(".").all()


def test_split_passages_cuts_long_sentences_and_validates_args():
    pages = pd.DataFrame({"file": ["a.pdf"], "page": [4], "text": [" ".join(f"x{i}" for i in range(100))]})
    passages = split_passages(pages, max_words=30, overlap=0)
    assert passages["text"].str.split().str.len().tolist() == [30, 30, 30, 10]
    assert (passages["page"] == 4).all()
    for max_words, overlap in [(10, 10), (10, 20), (10, -1), (0, 0)]:
        with pytest.raises(ValueError, match="max_words > overlap"):
            split_passages(pages, max_words=max_words, overlap=overlap)


def test_hyphenation_across_line_breaks_is_repaired(good_pdf):
    assert clean_text("a bibliomet-\nric  study\n of  ﬁelds") == "a bibliometric study of fields"
    assert clean_text("the h-index and\nInternet-\nBased tools") == "the h-index and Internet- Based tools"
    passages = split_passages(extract_pages(good_pdf))
    joined = " ".join(passages["text"])
    assert "bibliometric method" in joined and "bibliomet-" not in joined
    assert "h-index" in joined


def test_find_quote_tolerates_layout_but_not_fabrication(good_pdf):
    pages = extract_pages(good_pdf)
    hit = find_quote("a core bibliometric method for studying", pages)
    assert hit["found"] and hit["page"] == 1
    assert hit["match"].startswith("a core bibliomet") and hit["match"].endswith("for studying")
    assert find_quote("CITATION   analysis is a\tcore", pages)["found"]
    assert find_quote("Peer review decides which manuscripts are published", pages)["page"] == 2
    # a real sentence, lightly altered, is not evidence
    assert not find_quote("Citation analysis is a core method for studying art.", pages)["found"]
    assert find_quote("made up: peer review is always fair to everyone", pages) == {"found": False, "page": None, "match": ""}
    # present in the text but too short to count, unless the threshold allows it
    assert not find_quote("core bibliometric", pages)["found"]
    assert find_quote("core bibliometric", pages, min_chars=5)["found"]


def test_find_quote_folds_ligatures_quotes_dashes_and_page_breaks():
    pages = pd.DataFrame({
        "file": ["x.pdf", "x.pdf"],
        "page": [3, 4],
        "text": ["The so-called \u201cﬁrst-mover\u201d effect\u2014as Merton noted\u2014shapes",
                 "citation counts for decades after publication."],
    })
    assert find_quote('The so-called "first-mover" effect - as Merton noted', pages)["page"] == 3
    hit = find_quote("shapes citation counts for decades", pages)
    assert hit["found"] and hit["page"] == 3
    assert find_quote("citation counts for decades", pages)["page"] == 4
    # PDFs often store an accent as a separate combining mark; a typed quote has it precomposed
    accents = pd.DataFrame({"file": ["z.pdf"], "page": [1], "text": ["as Mu\u0308nch (2014) argued for low-impact journals"]})
    assert find_quote("as M\u00fcnch (2014) argued for low", accents)["found"]
    two_files = pd.concat([pages, pages.assign(file="y.pdf")])
    with pytest.raises(ValueError, match="one file"):
        find_quote("citation counts for decades", two_files)


def test_truncate_words():
    text = "one two  three\nfour five"
    assert truncate_words(text, 3) == ("one two  three", True)
    assert truncate_words(text, 5) == (text, False)
    assert truncate_words(text, 50) == (text, False)
    with pytest.raises(ValueError):
        truncate_words(text, 0)


def _course_articles():
    root = os.environ.get("SCISCI_DATA_DIR")
    if root:
        return Path(root) / "SciSci_articles"
    local = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return local / "SciSci_articles" if local.is_dir() else None


def test_course_pdfs_read_and_quotes_round_trip():
    folder = _course_articles()
    if folder is None or not folder.is_dir():
        pytest.skip("course PDFs not found: set SCISCI_DATA_DIR to the folder holding SciSci_articles/")
    pages, status = read_articles(list_pdfs(folder))
    ok = status[status["status"] == "ok"]
    assert len(ok) >= 27, status[status["status"] != "ok"].to_string()
    assert (ok["n_chars"] > 1000).all()
    assert (status.loc[status["status"] != "ok", "reason"] != "").all()
    passages = split_passages(pages)
    assert set(passages["file"]) == set(ok["file"])
    # a stretch of one passage per article is found again on that passage's page
    for _, passage in passages.groupby("file").nth(3).iterrows():
        quote = " ".join(passage["text"].split()[20:40])
        file_pages = pages[pages["file"] == passage["file"]]
        hit = find_quote(quote, file_pages)
        assert hit["found"] and hit["page"] == passage["page"], (passage["file"], quote)


# --------------------------------------------------------------------------- article ids, damaged files, empty folders


def test_same_file_name_in_two_folders_gives_two_articles(tmp_path):
    """Issue 17 item 3: two different paper.pdf are two articles, each keyed by the shortest path end that differs."""
    first = _text_pdf(tmp_path / "a" / "paper.pdf", [PAGE_ONE])
    second = _text_pdf(tmp_path / "b" / "paper.pdf", [PAGE_TWO])
    other = _text_pdf(tmp_path / "other.pdf", [PAGE_TWO])
    pages, status = read_articles([first, second, other])
    assert status["file"].tolist() == ["a/paper.pdf", "b/paper.pdf", "other.pdf"]
    assert (status["status"] == "ok").all()
    by_file = pages.set_index("file")["text"]
    assert "Citation analysis" in by_file["a/paper.pdf"] and "Peer review" in by_file["b/paper.pdf"]
    passages = split_passages(pages)
    assert set(passages["file"]) == {"a/paper.pdf", "b/paper.pdf", "other.pdf"}
    assert find_quote("Peer review decides which manuscripts", pages[pages.file == "b/paper.pdf"])["found"]
    assert not find_quote("Peer review decides which manuscripts", pages[pages.file == "a/paper.pdf"])["found"]


def test_article_ids_grow_only_as_far_as_needed():
    ids = article_ids(["x/a/paper.pdf", "y/a/paper.pdf", "z/b/paper.pdf", "z/b/notes.pdf", "/abs/c/one.pdf"])
    assert ids == ["x/a/paper.pdf", "y/a/paper.pdf", "b/paper.pdf", "notes.pdf", "one.pdf"]
    assert len(set(ids)) == len(ids)
    # the course's names stay as they are, and the DOI is still read from an id with folders
    assert article_ids(["d/paper_10.1007_s11192-021-04069-9.pdf"]) == ["paper_10.1007_s11192-021-04069-9.pdf"]
    assert doi_from_filename("a/paper_10.1007_s11192-021-04069-9.pdf") == "10.1007/s11192-021-04069-9"


def test_a_file_named_twice_is_read_once(good_pdf, tmp_path, capsys):
    link = tmp_path / "link.pdf"
    link.symlink_to(good_pdf)
    pages, status = read_articles([good_pdf, str(good_pdf), link])
    assert status["file"].tolist() == ["good.pdf"] and len(pages) == 2
    assert "2 path(s) named a file already in the list" in capsys.readouterr().out


def test_an_empty_folder_is_an_error_that_says_what_is_there(tmp_path):
    (tmp_path / "notes.txt").write_text("not a pdf")
    with pytest.raises(ValueError, match="no PDF files in") as error:
        read_articles(tmp_path)
    assert "sub-folders" not in str(error.value)
    _text_pdf(tmp_path / "2023" / "x.pdf", [PAGE_ONE])
    with pytest.raises(ValueError, match="sub-folders hold 1.*recursive=True"):
        read_articles(tmp_path)
    assert [p.name for p in list_pdfs(tmp_path, recursive=True)] == ["x.pdf"]
    with pytest.raises(ValueError, match="list of articles is empty"):
        read_articles([])


def test_a_truncated_pdf_is_damaged_not_without_text(tmp_path):
    """Issue 17 item 14b: a cut-off download is named as damaged, whatever MuPDF can still rebuild from it."""
    folder = _course_articles()
    if folder is None or not folder.is_dir():
        pytest.skip("course PDFs not found: set SCISCI_DATA_DIR to the folder holding SciSci_articles/")
    source = folder / "paper_10.1007_978-3-319-39952-2_42.pdf"
    whole = source.read_bytes()
    assert pdf_damage(whole) is None and len(extract_pages(source)) > 1
    for share in (0.3, 0.9, 0.99):
        cut = tmp_path / f"cut-{share}.pdf"
        cut.write_bytes(whole[:int(len(whole) * share)])
        assert "truncated" in pdf_damage(cut.read_bytes())
        with pytest.raises(PdfError, match="damaged PDF.*truncated") as error:
            extract_pages(cut)
        assert "no text layer" not in str(error.value)
