"""fetch_openalex against a loopback server that answers like OpenAlex's /works: cursor pages, one 429.

The served works are the demo corpus's records written in OpenAlex's work format (tests/openalex_works.py),
not OpenAlex data. pyalex's base address (``pyalex.config.openalex_url``) points at the server.
"""
import http.server
import json
import threading
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pyalex
import pytest
from openalex_works import works_from_records

from helpers import openalex
from helpers.data import load_corpus

PAGE_CAP = 50  # the server gives at most 50 works a page, so 120 works take three pages


class FakeOpenAlex(http.server.BaseHTTPRequestHandler):
    works: ClassVar[list] = []
    requests: ClassVar[list] = []
    answers_429: ClassVar[list] = []  # headers of the 429 answers still to give, one per request

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append({"path": url.path, "query": query, "authorization": self.headers.get("Authorization")})
        if self.answers_429:
            self._send(429, {"error": "Too many requests"}, self.answers_429.pop(0))
            return
        per_page = min(int(query.get("per-page", 25)), PAGE_CAP)
        start = 0 if query["cursor"] == "*" else int(query["cursor"].removeprefix("c"))
        results = self.works[start: start + per_page]
        more = start + per_page < len(self.works)
        self._send(200, {"meta": {"count": len(self.works), "db_response_time_ms": 3, "page": None,
                                  "per_page": per_page, "next_cursor": f"c{start + per_page}" if more else None,
                                  "groups_count": None}, "results": results, "group_by": []})

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_openalex(demo_corpus, monkeypatch, tmp_path):
    FakeOpenAlex.works = works_from_records(demo_corpus)
    FakeOpenAlex.requests = []
    FakeOpenAlex.answers_429 = [{"Retry-After": "0"}]  # one rate limit, then pages
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAlex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(pyalex.config, "openalex_url", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("SCISCI_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.delenv("OPENALEX_API_KEY", raising=False)
    yield FakeOpenAlex
    server.shutdown()
    server.server_close()


def test_pages_are_followed_by_cursor_after_a_429_and_saved(fake_openalex, demo_corpus, monkeypatch):
    monkeypatch.setenv("OPENALEX_API_KEY", "test-key")
    path = openalex.fetch_openalex(search="science of science", filter={"publication_year": ">2000"}, n_max=120)
    assert path.suffix == ".jsonl" and path.parent.name == "openalex"
    lines = path.read_text().splitlines()
    assert len(lines) == 120
    assert [json.loads(line)["id"] for line in lines] == [w["id"] for w in fake_openalex.works[:120]]
    cursors = [r["query"]["cursor"] for r in fake_openalex.requests]
    assert cursors == ["*", "*", "c50", "c100"]  # the 429, its retry, then the cursor of each page
    first = fake_openalex.requests[0]
    assert first["path"] == "/works" and first["query"]["search"] == "science of science"
    assert first["query"]["filter"] == "publication_year:>2000"
    assert {r["authorization"] for r in fake_openalex.requests} == {"Bearer test-key"}
    corpus = load_corpus(path)
    assert corpus["title"].tolist() == demo_corpus["title"].head(120).tolist()
    assert corpus["citations"].tolist() == demo_corpus["citations"].head(120).tolist()


def test_a_rerun_reads_the_file_not_the_api(fake_openalex, capsys):
    path = openalex.fetch_openalex(search="teams", n_max=30)
    asked = len(fake_openalex.requests)
    assert openalex.fetch_openalex(search="teams", n_max=30) == path
    assert len(fake_openalex.requests) == asked
    out = capsys.readouterr().out
    assert "100 credits a day" in out  # no key: the free limit is said
    assert "fetched earlier" in out


def test_fewer_works_than_asked_for_end_with_the_last_page(fake_openalex, demo_corpus):
    path = openalex.fetch_openalex(search="everything", n_max=10_000)
    assert len(path.read_text().splitlines()) == len(demo_corpus)


def test_credits_used_up_is_an_error_naming_the_key(fake_openalex, tmp_path):
    fake_openalex.answers_429 = [{"X-RateLimit-Remaining": "0"}] * 10
    with pytest.raises(RuntimeError, match="credits are used up.*OPENALEX_API_KEY"):
        openalex.fetch_openalex(search="teams", n_max=10)
    assert len(fake_openalex.requests) == 1  # not retried
    assert not list((tmp_path / "outputs").rglob("*.jsonl"))  # nothing half-written is left as if complete


def test_a_server_that_keeps_refusing_gives_up_after_bounded_tries(fake_openalex, monkeypatch):
    fake_openalex.answers_429 = [{"Retry-After": "0"}] * 20
    with pytest.raises(RuntimeError, match=f"no page after {openalex.MAX_TRIES} tries"):
        openalex.fetch_openalex(search="teams", n_max=10)
    assert len(fake_openalex.requests) == openalex.MAX_TRIES


def test_a_query_is_required():
    with pytest.raises(ValueError, match="search"):
        openalex.fetch_openalex()
