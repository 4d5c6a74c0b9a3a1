"""The OpenAI-compatible endpoint path against stub servers on loopback: concurrency, retries, marked failures,
where credentials go, broken replies, and the cache's identity of an endpoint.

``StubServer`` is a tiny ``http.server`` whose answer to each request is scripted
(status, delay, text); ``RawServer`` writes raw bytes, for replies that break HTTP
(garbage, a reply cut short, one that drips). The real server (``transformers serve``)
is tested in tests/test_serve.py. The slow-server cases wait on purpose, each under a
few seconds.
"""
import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from helpers.cache import cache_dir
from helpers.endpoint import Endpoint, Failure
from helpers.extraction import EvidenceSettings, ask_articles
from helpers.generation import GenerationSettings, generate, generator_key, make_messages
from helpers.llm_labels import label_clusters


class StubServer:
    """``/v1/chat/completions`` on 127.0.0.1: ``script(body, attempt)`` -> (status, seconds to wait, text or JSON)."""

    def __init__(self, script):
        self.script, self.requests, self.in_flight, self.max_in_flight = script, [], 0, 0
        self.authorizations = []  # the Authorization header of each request (None: none sent)
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    key = body["messages"][-1]["content"]
                    attempt = sum(r["messages"][-1]["content"] == key for r in stub.requests)
                    stub.requests.append(body)
                    stub.authorizations.append(self.headers.get("Authorization"))
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


# --------------------------------------------------------------------------- replies that break HTTP


class RawServer:
    """A TCP server on 127.0.0.1 that reads each request and writes ``reply(body)``: a list of (seconds to
    wait, bytes to send), then closes. ``requests``: (head, body) of each request received, as bytes."""

    def __init__(self, reply):
        self.reply, self.requests, self.stop = reply, [], threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def _serve(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection):
        with connection:
            connection.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                    data += connection.recv(65536) or b"\r\n\r\n"
                head, body = data.split(b"\r\n\r\n", 1)
                length = re.search(rb"content-length:\s*(\d+)", head, flags=re.IGNORECASE)
                while length and len(body) < int(length.group(1)):
                    body += connection.recv(65536)
                self.requests.append((head, body))
                for wait, piece in self.reply(json.loads(body) if body else None):
                    if self.stop.wait(wait):
                        return
                    connection.sendall(piece)
            except OSError:
                pass  # the client gave up or shut the connection

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.listener.close()


def _http_reply(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


def _completion_bytes(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def _generation_files():
    return sorted(cache_dir("generations").glob("*.json"))


DRIP = [(0.05, b"x")] * 60  # a byte every 50 ms for at most 3 s: each read is quick, the reply never ends

BROKEN_REPLIES = {
    "not HTTP": ([(0, b"\x16\x03\x01 garbage, not HTTP\r\n\r\n")], "did not answer in HTTP"),
    "closed without a reply": ([], "closed the connection without answering"),
    "cut short": ([(0, _http_reply(_completion_bytes("a long answer"))[:-10])], "broke off its reply"),
    "headers drip": ([(0, b"HTTP/1.1 200 OK\r\nX-Slow: ")] + DRIP, "within 0.5 s (timeout)"),
    "body drips": ([(0, b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")] + DRIP, "within 0.5 s (timeout)"),
    "invalid UTF-8": ([(0, _http_reply(_completion_bytes("caf").replace(b'caf"', b'caf\xe9"')))], "not UTF-8"),
    "lone surrogate": ([(0, _http_reply(b'{"choices": [{"message": {"content": "a\\udc80"}}]}'))], "not valid UTF-8"),
}


@pytest.mark.parametrize("case", BROKEN_REPLIES)
def test_a_broken_reply_is_a_failure_with_its_reason_within_the_deadline(case):
    """Item 9 of issue 17: never a raw http.client error; a reply that drips ends at the deadline."""
    reply, reason = BROKEN_REPLIES[case]
    with RawServer(lambda body: reply) as server:
        endpoint = _endpoint(server.url, timeout=0.5, retries=0)
        start = time.perf_counter()
        (answer,) = generate([make_messages("hello")], endpoint, errors="mark")
        elapsed = time.perf_counter() - start
        with pytest.raises(RuntimeError, match=re.escape(reason)):  # errors="raise": one clear error
            generate([make_messages("hello")], endpoint)
    assert isinstance(answer, Failure) and reason in answer.reason, answer
    assert elapsed < 2.0  # the deadline, not the 3 s the drip would take
    assert _generation_files() == []  # nothing cached: asked again next run


def test_a_broken_server_keeps_every_record_of_label_clusters_and_ask_articles(tmp_path, clustered_titles):
    """Item 9: the callers mark the rows a broken reply failed, and keep the others."""
    def reply(body):
        if "Citation" in body["messages"][-1]["content"] or body["max_tokens"] == 16:  # 16: ask_articles' choice
            return [(0, b"SSH-2.0-OpenSSH_9.6\r\n")]  # e.g. a wrong port: something that is not HTTP
        return [(0, _http_reply(_completion_bytes("gender; careers; mentoring")))]

    titles = {0: ["Women in science", "Women deans"], 1: ["Citation counts", "Citation drift"]}
    with RawServer(reply) as server:
        table = label_clusters(*clustered_titles(titles), _endpoint(server.url, retries=0))
        assert table["cluster"].tolist() == [0, 1]
        assert table.loc[0, "label"] == "gender; careers; mentoring"
        assert table.loc[1, "label"].startswith("FAILED:") and "did not answer in HTTP" in table.loc[1, "error"]

        folder = _one_pdf(tmp_path)
        results = ask_articles(folder, "bibliometric", generator=_endpoint(server.url, retries=0),
                               settings=EvidenceSettings(passage_words=40), quote="model")
    assert len(results) == 1
    assert results.loc[0, "status"] == "failed" and "did not answer in HTTP" in results.loc[0, "reason"]


def _one_pdf(tmp_path):
    import pymupdf

    folder = tmp_path / "pdfs"
    folder.mkdir()
    doc = pymupdf.open()
    doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 520, 770), "We counted publications and citations per author "
                                  "in Scopus between 2000 and 2020 and normalised citation counts by field.")
    doc.save(folder / "paper.pdf")
    doc.close()
    return folder


@pytest.mark.parametrize("address, problem", [
    ("http://127.0.0.1:99999/v1", "bad port"),
    ("http://127.0.0.1:80a/v1", "bad port"),
    ("http:///v1", "names no host"),
    ("http://user:secret@127.0.0.1:8000/v1", "user name or password"),
    ("http://127.0.0.1:8000/v1?x=1", "query"),
    ("http://127.0.0.1:8000/ v1", "spaces"),
])
def test_a_malformed_address_is_refused_when_the_endpoint_is_built(address, problem, monkeypatch):
    with pytest.raises(ValueError, match=problem):
        Endpoint(address, "m")
    monkeypatch.setenv("SCISCI_LLM_BASE_URL", address)
    monkeypatch.setenv("SCISCI_LLM_MODEL", "m")
    with pytest.raises(ValueError, match=problem):
        Endpoint.from_env()


# --------------------------------------------------------------------------- where credentials go


def test_plain_http_carries_a_key_only_to_this_machine(monkeypatch):
    """Item 1: refused when the Endpoint is built, before any traffic."""
    for address in ("http://10.1.2.3:8000/v1", "http://gpu-node:8000/v1", "http://[2001:db8::1]:8000/v1"):
        with pytest.raises(ValueError, match="plain http to another machine.*SSH tunnel"):
            Endpoint(address, "m", token="key")
    for address in ("http://127.0.0.1:8000/v1", "http://127.9.9.9:8000/v1", "http://localhost:8000/v1",
                    "http://[::1]:8000/v1", "https://gpu-node:8443/v1"):
        assert Endpoint(address, "m", token="key").token == "key"
    assert Endpoint("http://gpu-node:8000/v1", "m").token is None  # no key: nothing to leak
    monkeypatch.setenv("SCISCI_LLM_BASE_URL", "http://gpu-node:8000/v1")
    monkeypatch.setenv("SCISCI_LLM_MODEL", "m")
    monkeypatch.setenv("SCISCI_LLM_API_KEY", "key")
    with pytest.raises(ValueError, match="plain http to another machine"):
        Endpoint.from_env()


def test_the_hugging_face_token_goes_only_to_the_hugging_face_router(monkeypatch):
    """Item 1: HF_TOKEN is not the key of any other server, and is never sent to one."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.delenv("SCISCI_LLM_API_KEY", raising=False)
    monkeypatch.setenv("SCISCI_LLM_MODEL", "stub/model")
    monkeypatch.setenv("SCISCI_LLM_RETRIES", "0")
    with StubServer(lambda body, attempt: (200, 0, "ok")) as stub:
        monkeypatch.setenv("SCISCI_LLM_BASE_URL", stub.url)
        assert generate([make_messages("hello")], cache=False) == ["ok"]
    assert stub.authorizations == [None]
    for address, token in [("https://router.huggingface.co/v1", "hf_secret"),
                           ("http://router.huggingface.co/v1", None),  # not over plain http
                           ("https://router.huggingface.co.example.org/v1", None),
                           ("https://example.org/router.huggingface.co/v1", None)]:
        monkeypatch.setenv("SCISCI_LLM_BASE_URL", address)
        assert Endpoint.from_env().token == token, address
    monkeypatch.setenv("SCISCI_LLM_API_KEY", "router-key")  # the endpoint's own key comes first
    monkeypatch.setenv("SCISCI_LLM_BASE_URL", "https://router.huggingface.co/v1")
    assert Endpoint.from_env().token == "router-key"


def test_https_sends_the_key_only_to_a_certificate_it_trusts(tmp_path, monkeypatch):
    """A loopback TLS server with a self-signed certificate: refused, nothing sent, until its certificate is trusted."""
    import shutil
    import ssl

    from helpers import endpoint as endpoint_module

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    with StubServer(lambda body, attempt: (200, 0, "over TLS")) as stub:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        stub.httpd.socket = context.wrap_socket(stub.httpd.socket, server_side=True)
        endpoint = _endpoint(stub.url.replace("http://127.0.0.1", "https://localhost"), token="secret-key", retries=0)
        endpoint_module._tls_context.cache_clear()
        (refused,) = generate([make_messages("hello")], endpoint, cache=False, errors="mark")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read by ssl.create_default_context
        endpoint_module._tls_context.cache_clear()
        try:
            answers = generate([make_messages("hello")], endpoint, cache=False)
        finally:
            endpoint_module._tls_context.cache_clear()
    assert isinstance(refused, Failure) and "did not show a valid certificate" in refused.reason
    assert answers == ["over TLS"] and stub.authorizations == ["Bearer secret-key"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_naming_it_and_nothing_follows_it(status):
    """Item 1: a redirect to a second loopback port; that port records what reaches it: nothing."""
    with RawServer(lambda body: [(0, _http_reply(_completion_bytes("the other host's answer")))]) as elsewhere:
        target = elsewhere.url + "/chat/completions"
        moved = _http_reply(b"", f"{status} Moved", f"Location: {target}\r\n".encode())
        with RawServer(lambda body: [(0, moved)]) as server:
            endpoint = _endpoint(server.url, token="secret-key", retries=2)
            (answer,) = generate([make_messages("hello")], endpoint, errors="mark")
            assert len(server.requests) == 1  # not retried: the server meant it
            assert b"Bearer secret-key" in server.requests[0][0]  # the key went where it was meant to go
    assert isinstance(answer, Failure)
    assert f"redirect (HTTP {status}) to {target}" in answer.reason and "not followed" in answer.reason
    assert elsewhere.requests == []  # no request, so no Authorization header, no chat


# --------------------------------------------------------------------------- the endpoint's identity in the cache


def test_two_servers_serving_one_model_name_each_get_their_own_requests():
    """Item 5: the cache key is the endpoint's (address, model, kind of server), not the model name."""
    with StubServer(lambda body, attempt: (200, 0, "from A")) as a, \
            StubServer(lambda body, attempt: (200, 0, "from B")) as b:
        first, second = _endpoint(a.url), _endpoint(b.url)
        assert first.model == second.model and first.key != second.key
        assert generate([make_messages("hello")], first) == ["from A"]
        assert generate([make_messages("hello")], second) == ["from B"]
        assert generate([make_messages("hello")], first) == ["from A"]  # from the cache
        assert (len(a.requests), len(b.requests)) == (1, 1)
        assert _endpoint(a.url, server="plain").key != first.key  # another kind sends other settings


@pytest.mark.parametrize("server", ["vllm", "transformers", "plain"])
def test_the_cached_record_holds_exactly_the_settings_sent(server):
    """Item 5: a 'plain' server gets no penalty, so neither its cache key nor its record claims one."""
    with StubServer(lambda body, attempt: (200, 0, "answer")) as stub:
        endpoint = _endpoint(stub.url, server=server)
        settings = GenerationSettings(max_new_tokens=7, repetition_penalty=1.3)
        assert generate([make_messages("hello")], endpoint, settings) == ["answer"]
        (path,) = _generation_files()
        record = json.loads(path.read_text(encoding="utf-8"))
        sent = {k: v for k, v in stub.requests[0].items() if k not in ("model", "messages")}
        assert record["settings"] == sent and record["generator"] == endpoint.key == generator_key(endpoint)
        assert record["messages"] == stub.requests[0]["messages"]
        penalty = {"vllm": {"repetition_penalty": 1.3}, "transformers": {"frequency_penalty": 0.3}, "plain": {}}
        assert {k: v for k, v in sent.items() if "penalty" in k} == penalty[server]
        # Without the penalty: the same request for a 'plain' server (served from the cache), another for the rest.
        generate([make_messages("hello")], endpoint, GenerationSettings(max_new_tokens=7))
        assert len(stub.requests) == (1 if server == "plain" else 2)


@pytest.mark.parametrize("content", ["null", "", "{\"output\": \"cut sho", "[1, 2]", "{\"output\": 5}"])
def test_an_unreadable_cache_file_is_computed_again_and_named(content, capsys):
    """Item 10 (generations): JSON null, garbage or a wrong shape is recomputed, with one line naming the file."""
    with StubServer(lambda body, attempt: (200, 0, "fresh answer")) as stub:
        endpoint = _endpoint(stub.url)
        generate([make_messages("hello")], endpoint)
        (path,) = _generation_files()
        path.write_text(content, encoding="utf-8")
        capsys.readouterr()
        assert generate([make_messages("hello")], endpoint) == ["fresh answer"]
        assert len(stub.requests) == 2
    lines = [line for line in capsys.readouterr().out.splitlines() if str(path) in line]
    assert len(lines) == 1 and "unreadable" in lines[0]
    assert json.loads(path.read_text(encoding="utf-8"))["output"] == "fresh answer"  # replaced


def test_importing_the_endpoint_does_not_import_torch():
    code = "import helpers.endpoint, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
