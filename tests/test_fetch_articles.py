"""Issue 17 item 14a: the three course PDFs without a checksum are checked by their structure.

A copy cut short (in the mirror, in the download folder, or as it arrives from a loopback server standing in
for the course's address) is never handed to the reader; a damaged local copy is replaced only by a whole one.
"""
import functools
import http.server
import threading

import pytest

from helpers import data
from helpers.pdfs import pdf_damage

MIRRORED, LOCAL, SERVED = data.ARTICLES_WITHOUT_CHECKSUM
WHOLE = "paper_10.1007_978-3-319-39952-2_42.pdf"  # a course PDF that stands in for the three, whole or cut


@pytest.fixture
def course_source(tmp_path, data_dir, monkeypatch):
    """A mirror with the checksummed PDFs and one cut copy, a download folder, and a loopback 'course address'."""
    mirror, downloads, served = (tmp_path / d / data.ARTICLES_FOLDER for d in ("mirror", "downloads", "served"))
    for folder in (mirror, downloads, served):
        folder.mkdir(parents=True)
    for pdf in (data_dir / data.ARTICLES_FOLDER).glob("*.pdf"):
        (mirror / pdf.name).symlink_to(pdf)
    whole = (data_dir / data.ARTICLES_FOLDER / WHOLE).read_bytes()
    half = whole[: len(whole) // 2]
    (mirror / MIRRORED).write_bytes(half)       # a damaged copy in the mirror: reported, never used
    (downloads / LOCAL).write_bytes(half)       # a half download from an earlier run: fetched again
    (served / LOCAL).write_bytes(whole)
    (served / SERVED).write_bytes(half)         # a download cut short: refused, nothing left behind
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SCISCI_DATA_DIR", str(mirror.parent))
    monkeypatch.setenv("SCISCI_DOWNLOAD_DIR", str(downloads.parent))
    monkeypatch.setattr(data, "COURSE_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield downloads, whole
    server.shutdown()


def test_pdfs_without_checksum_are_used_only_when_whole(course_source, capsys):
    downloads, whole = course_source
    paths = data.fetch_articles()
    out = capsys.readouterr().out
    names = [p.name for p in paths]
    assert len(paths) == 28 and MIRRORED not in names and SERVED not in names
    assert downloads / LOCAL in paths and (downloads / LOCAL).read_bytes() == whole  # the whole file in its place
    assert f"{downloads / LOCAL}: damaged PDF" in out and "downloading it again" in out
    assert f"{MIRRORED}: " in out and f"{SERVED}: " in out and "28 of the course's 30 articles available" in out
    assert "2 missing:" in out
    # the damaged copy is kept aside (never deleted); no half download, no temporary folder
    assert sorted(p.name for p in downloads.iterdir()) == [LOCAL, LOCAL + ".orig"]
    assert (downloads / (LOCAL + ".orig")).read_bytes() == whole[: len(whole) // 2]
    assert f"kept as {LOCAL}.orig" in out
    assert all(pdf_damage(p.read_bytes()) is None for p in paths)


def test_a_damaged_local_copy_is_kept_when_the_download_fails(course_source, monkeypatch, capsys):
    downloads, _ = course_source
    monkeypatch.setattr(data, "COURSE_URL", "http://127.0.0.1:9/")  # nothing listens there
    half = (downloads / LOCAL).read_bytes()
    paths = data.fetch_articles(include_missing=True)
    assert len(paths) == 30  # kept where it would be, so that read_articles reports it as damaged
    assert (downloads / LOCAL).read_bytes() == half
    assert "downloading it again failed" in capsys.readouterr().out
    assert sorted(p.name for p in downloads.iterdir()) == [LOCAL]


def test_a_stub_too_small_for_an_article_is_refused(tmp_path):
    stub = tmp_path / "stub.pdf"
    stub.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    assert pdf_damage(stub.read_bytes()) is None
    assert "too small for an article" in data._pdf_problem(stub)


def test_the_report_is_short_and_true_and_leaves_no_empty_folder(data_dir, tmp_path, monkeypatch, capsys):
    """Issue 22: the mirror holds 27 PDFs; the three it lacks get one short line each with the reason, the count
    says 27 (not 30) with or without include_missing, and no empty download folder is left behind."""
    downloads = tmp_path / "downloads"  # does not exist yet: the call may make it, and must remove it again
    monkeypatch.setenv("SCISCI_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SCISCI_DOWNLOAD_DIR", str(downloads))
    monkeypatch.setattr(data, "COURSE_URL", "http://127.0.0.1:9/")  # nothing listens: no connection
    paths = data.fetch_articles(include_missing=True)
    out = capsys.readouterr().out.splitlines()
    assert len(paths) == 30 and sum(p.is_file() for p in paths) == 27
    assert out[0] == "27 of the course's 30 articles available."
    assert out[1].startswith("3 missing (kept in the list")
    assert out[2:] == [f"  {name}: no local copy, and the download failed (no connection)"
                       for name in sorted(data.ARTICLES_WITHOUT_CHECKSUM)]
    assert not downloads.exists()


def test_a_file_the_course_address_lacks_is_reported_by_its_http_status(course_source, monkeypatch, capsys):
    downloads, _ = course_source
    (downloads / LOCAL).unlink()
    (downloads.parent.parent / "served" / data.ARTICLES_FOLDER / LOCAL).unlink()  # the server answers 404 now
    names = [p.name for p in data.fetch_articles()]
    out = capsys.readouterr().out
    assert LOCAL not in names and f"  {LOCAL}: no local copy, and the download failed (HTTP 404)\n" in out
    assert max(len(line) for line in out.splitlines()) < 100
