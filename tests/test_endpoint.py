"""The OpenAI-compatible endpoint path against a stub server on loopback: concurrency, retries, marked failures.

The stub is a tiny ``http.server`` whose answer to each request is scripted
(status, delay, text); the real server (``transformers serve``) is tested in
tests/test_serve.py. About 10 s in all (the slow-server cases wait on purpose).
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from helpers.endpoint import Endpoint, Failure
from helpers.extraction import EvidenceSettings, ask_articles
from helpers.generation import generate, make_messages
from helpers.llm_labels import label_clusters


class StubServer:
    """``/v1/chat/completions`` on 127.0.0.1: ``script(body, attempt)`` -> (status, seconds to wait, text or payload)."""

    def __init__(self, script):
        self.script, self.requests, self.in_flight, self.max_in_flight = script, [], 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    key = body["messages"][-1]["content"]
                    attempt = sum(r["messages"][-1]["content"] == key for r in stub.requests)
                    stub.requests.append(body)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    status, wait, reply = stub.script(body, attempt)
                    time.sleep(wait)
                    if isinstance(reply, str) and status == 200:
                        reply = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                    data = json.dumps(reply).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _endpoint(url, **kw):
    settings = dict(model="stub/model", concurrency=4, timeout=5, retries=2, backoff=0.01)
    return Endpoint(url, **{**settings, **kw})


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCISCI_LLM_BASE_URL", raising=False)


def test_endpoint_from_env_and_its_checks(monkeypatch):
    assert Endpoint.from_env() is None  # not set: local generation
    monkeypatch.setenv("SCISCI_LLM_BASE_URL", "http://127.0.0.1:8000/v1/")
    monkeypatch.setenv("SCISCI_LLM_MODEL", "org/model")
    monkeypatch.setenv("SCISCI_LLM_API_KEY", "secret-token")
    monkeypatch.setenv("SCISCI_LLM_CONCURRENCY", "8")
    monkeypatch.setenv("SCISCI_LLM_SERVER", "transformers")
    endpoint = Endpoint.from_env()
    assert (endpoint.base_url, endpoint.model, endpoint.concurrency, endpoint.server) == (
        "http://127.0.0.1:8000/v1", "org/model", 8, "transformers")
    assert "secret-token" not in repr(endpoint)  # the token never shows up in a printed object
    monkeypatch.setenv("SCISCI_LLM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SCISCI_LLM_TIMEOUT"):
        Endpoint.from_env()
    with pytest.raises(ValueError, match="http://"):
        Endpoint("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match="server must be one of"):
        Endpoint("http://127.0.0.1:8000", "m", server="tgi")
    with pytest.raises(ValueError, match="concurrency >= 1"):
        Endpoint("http://127.0.0.1:8000", "m", concurrency=0)


def test_repetition_penalty_is_sent_as_each_server_takes_it():
    chat = [make_messages("hi")][0]
    bodies = {s: Endpoint("http://127.0.0.1:1", "m", server=s).request_body(chat, 8, 0.0, 1.2)
              for s in ("vllm", "transformers", "plain")}
    assert bodies["vllm"]["repetition_penalty"] == 1.2 and "frequency_penalty" not in bodies["vllm"]
    assert bodies["transformers"]["frequency_penalty"] == pytest.approx(0.2)  # transformers serve adds 1
    assert not {"repetition_penalty", "frequency_penalty"} & set(bodies["plain"])
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 8 for b in bodies.values())


def test_requests_run_concurrently_within_the_bound_and_keep_their_order():
    with StubServer(lambda body, attempt: (200, 0.2, "answer to " + body["messages"][-1]["content"])) as stub:
        chats = [make_messages(f"q{i}") for i in range(9)]
        answers = generate(chats, _endpoint(stub.url, concurrency=3), cache=False)
    assert answers == [f"answer to q{i}" for i in range(9)]
    assert stub.max_in_flight == 3  # concurrent, and never more than the bound


def test_429_and_5xx_are_retried_with_backoff_then_answered():
    def script(body, attempt):
        return (429, 0, {"error": "slow down"}) if attempt == 0 else (503, 0, {}) if attempt == 1 else (200, 0, "ok")

    with StubServer(script) as stub:
        answers = generate([make_messages("a"), make_messages("b")], _endpoint(stub.url, retries=2), cache=False)
    assert answers == ["ok", "ok"]
    assert len(stub.requests) == 6  # three attempts each


def test_a_500_becomes_a_marked_row_with_the_reason(capsys, clustered_titles):
    def script(body, attempt):
        text = body["messages"][-1]["content"]
        return (500, 0, {"error": "model overloaded"}) if "Citation" in text else (200, 0, "gender; careers; mentoring")

    titles = {0: ["Women in science", "Women deans"], 1: ["Citation counts", "Citation drift"]}
    with StubServer(script) as stub:
        table = label_clusters(*clustered_titles(titles), _endpoint(stub.url, retries=1))
        assert len(stub.requests) == 3  # cluster 1: tried twice
    assert table["cluster"].tolist() == [0, 1]  # no record lost
    assert table.loc[0, "parsed"] and pd.isna(table.loc[0, "error"])
    failed = table.loc[1]
    assert not failed["parsed"] and failed["terms"] == [] and failed["answer"] == ""
    assert "HTTP 500" in failed["error"] and "model overloaded" in failed["error"] and "2 attempts" in failed["error"]
    assert failed["label"].startswith("FAILED: HTTP 500")
    assert "1 of 2 request(s)" in capsys.readouterr().out  # said once, clearly
    # generate() itself raises by default, naming the reason.
    with StubServer(lambda body, attempt: (500, 0, {"error": "boom"})) as stub:
        with pytest.raises(RuntimeError, match="HTTP 500"):
            generate([make_messages("x")], _endpoint(stub.url, retries=0), cache=False)


def test_a_slow_server_times_out_within_the_bound():
    with StubServer(lambda body, attempt: (200, 3.0, "too late")) as stub:
        start = time.perf_counter()
        answers = generate([make_messages("a"), make_messages("b")], _endpoint(stub.url, timeout=0.5, retries=1),
                           cache=False, errors="mark")
        elapsed = time.perf_counter() - start
    assert all(isinstance(a, Failure) and "timeout" in a.reason and "0.5 s" in a.reason for a in answers)
    assert elapsed < 2.5  # 2 attempts x 0.5 s, concurrently; not the server's 3 s


def test_a_server_that_is_down_gives_marked_rows(clustered_titles):
    with StubServer(lambda body, attempt: (200, 0, "")) as stub:
        url = stub.url  # a port that was just freed: nothing listens there now
    table = label_clusters(*clustered_titles({0: ["A title"], 1: ["Another title"]}), _endpoint(url, retries=1))
    assert table["error"].str.contains("cannot reach").all()
    assert table["label"].str.startswith("FAILED: cannot reach").all()


def test_failed_answers_are_not_cached_and_are_asked_again(monkeypatch):
    """The cache is the one local generation uses: answers that came back are reused, failures are retried."""
    failing = {"on": True}

    def script(body, attempt):
        text = body["messages"][-1]["content"]
        return (503, 0, {}) if failing["on"] and text == "b" else (200, 0, f"re: {text}")

    with StubServer(script) as stub:
        endpoint = _endpoint(stub.url, retries=0)
        first = generate([make_messages("a"), make_messages("b")], endpoint, errors="mark")
        assert first[0] == "re: a" and isinstance(first[1], Failure)
        failing["on"] = False
        assert generate([make_messages("a"), make_messages("b")], endpoint) == ["re: a", "re: b"]
        asked = [r["messages"][-1]["content"] for r in stub.requests]
    assert sorted(asked[:2]) == ["a", "b"]  # sent concurrently: either may arrive first
    assert asked[2:] == ["b"]  # "a" came from the disk cache the second time


def test_ask_articles_marks_failed_rows_and_keeps_the_retrieval(tmp_path):
    import pymupdf

    folder = tmp_path / "pdfs"
    folder.mkdir()
    text = ("Data and methods. We performed a bibliometric analysis of 120000 publications indexed in Scopus "
            "between 2000 and 2020. We counted publications and citations per author and built a co-authorship "
            "network for every country. Citation counts were normalised by field and year.")
    doc = pymupdf.open()
    doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 520, 770), text, fontsize=11)
    doc.save(folder / "paper.pdf")
    doc.close()
    with StubServer(lambda body, attempt: (502, 0, {"error": "bad gateway"})) as stub:
        results = ask_articles(folder, "bibliometric", generator=_endpoint(stub.url, retries=0),
                               settings=EvidenceSettings(passage_words=40))
    row = results.iloc[0]
    assert row["status"] == "failed" and "HTTP 502" in row["reason"]
    assert row["answer"] is None and row["combined"] is None
    assert row["evidence_score"] > 0.3 and row["quote"]  # retrieval did its part
