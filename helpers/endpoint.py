"""An OpenAI-compatible chat endpoint (vLLM, ``transformers serve``, Ollama, a hosted router) as one object.

``Endpoint.from_env()`` reads it from the environment, so the notebooks run unchanged against a server::

    SCISCI_LLM_BASE_URL=http://127.0.0.1:8000/v1   # the server's address, up to /v1
    SCISCI_LLM_MODEL=Qwen/Qwen2.5-1.5B-Instruct     # the model it serves
    SCISCI_LLM_API_KEY=...                          # the server's key, if it has one
    SCISCI_LLM_SERVER=vllm                          # or transformers, plain: how the repetition penalty is sent
    SCISCI_LLM_CONCURRENCY=8  SCISCI_LLM_TIMEOUT=120  SCISCI_LLM_RETRIES=3

What is sent where: each chat, the model name and the settings (``request_options``) go to
``<base URL>/chat/completions`` and nowhere else. The key is ``SCISCI_LLM_API_KEY``; the Hugging Face
token (``HF_TOKEN``) is used only for Hugging Face's own router (https://router.huggingface.co). A key
goes over plain http only to this machine (loopback); a redirect is never followed.

``Endpoint.complete`` sends many chats at once, retries transient errors with exponential backoff, and
returns each answer in order: the text, or a ``Failure`` naming the reason, never a lost record.
"""
from __future__ import annotations

import functools
import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ENV_BASE_URL = "SCISCI_LLM_BASE_URL"
ENV_MODEL = "SCISCI_LLM_MODEL"
ENV_API_KEY = "SCISCI_LLM_API_KEY"
ENV_SERVER = "SCISCI_LLM_SERVER"
ENV_CONCURRENCY = "SCISCI_LLM_CONCURRENCY"
ENV_TIMEOUT = "SCISCI_LLM_TIMEOUT"
ENV_RETRIES = "SCISCI_LLM_RETRIES"
# The one host that gets the Hugging Face token (its OpenAI-compatible router), and only over https.
HF_ROUTER_HOST = "router.huggingface.co"

# How each kind of server takes a repetition penalty (the OpenAI API has none):
# vLLM and SGLang read ``repetition_penalty``; ``transformers serve`` maps
# ``frequency_penalty`` p to ``repetition_penalty = 1 + p``; "plain" sends none.
SERVERS = ("vllm", "transformers", "plain")
RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Failure:
    """A request that did not give an answer: why (HTTP status, timeout, unreachable, malformed reply)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


class _Retryable(Exception):
    """A failure worth another try (rate limit, server error, timeout, no connection)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine: 127.0.0.0/8, ::1 or localhost."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_hf_router(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and parts.hostname == HF_ROUTER_HOST and parts.port in (None, 443)


def _check_address(url: str, has_key: bool) -> str:
    """``url`` without its trailing slash, or a ValueError saying what is wrong with it."""
    example = "e.g. http://127.0.0.1:8000/v1"
    if not isinstance(url, str) or any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"the endpoint address {url!r} holds spaces or control characters; {example}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the endpoint address must start with http:// or https://; got {url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as error:
        raise ValueError(f"the endpoint address {url!r} has a bad port ({error}); {example}") from None
    if not parts.hostname:
        raise ValueError(f"the endpoint address {url!r} names no host; {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the endpoint address {url!r} holds a user name or password; put the key in "
                         f"{ENV_API_KEY} instead")
    if parts.query or parts.fragment:
        raise ValueError(f"the endpoint address {url!r} has a ?query or #fragment; it ends at /v1, {example}")
    if has_key and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{url} is plain http to another machine, where the key would cross the network readable by anyone "
            "on the way. Use https://, or reach the server through an SSH tunnel (ssh -N -L 8000:127.0.0.1:8000 "
            "<server>, then http://127.0.0.1:8000/v1): a key goes over plain http only to this machine "
            "(127.0.0.1, ::1, localhost).")
    return url.rstrip("/")


class _Deadline:
    """Ends one request when its time is up, by shutting down the socket its reply comes on.

    A socket timeout bounds each read, not the reply: a server that sends a byte a second would
    otherwise hold the request for ever. Shutting the socket down ends any read blocked on it.
    (Connecting, with a proxy's tunnel and the TLS handshake, is bounded by the read timeout alone.)
    """

    def __init__(self, seconds: float):
        self.seconds, self.expired, self._sockets = seconds, False, []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's method, also under TLS
    except OSError:
        pass  # closed already


class _Watched:
    """An ``http.client`` connection whose socket a ``_Deadline`` watches once connected (urllib lets go of
    ``.sock`` when the headers are in, while the body is still to come on it)."""

    def __init__(self, host, *, deadline: _Deadline, **kwargs):
        super().__init__(host, **kwargs)
        self.deadline = deadline

    def connect(self):
        super().connect()
        self.deadline.watch(self.sock)


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the key and the chat to an address nobody chose."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        fp.close()
        raise RuntimeError(f"{req.full_url} answered with a redirect (HTTP {code}) to {newurl[:200]}; not followed, "
                           f"so neither the key nor the chat went there. If the server moved, set {ENV_BASE_URL} "
                           "to its new address.")


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPConnection, deadline=self.deadline), req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPSConnection, deadline=self.deadline), req,
                            context=_tls_context())


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """The system's certificate authorities, hostnames checked (read once: loading them takes milliseconds)."""
    return ssl.create_default_context()


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible ``/chat/completions`` endpoint and how to talk to it.

    ``token``: the key sent as ``Authorization: Bearer``, to this address only (plain http: loopback only).
    ``concurrency``: requests in flight at once; ``timeout``: seconds one request may take in all (connect,
    wait, read); ``retries``: further attempts after a 429 / 5xx / timeout / refused or dropped connection,
    ``backoff`` x 2^attempt seconds apart (at most 30, or the server's ``Retry-After``). ``server``: how a
    repetition penalty is sent (``SERVERS``).
    """

    base_url: str
    model: str
    token: str | None = field(default=None, repr=False)
    server: str = "vllm"
    concurrency: int = 4
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 1.0

    def __post_init__(self):
        if self.token is not None and not (isinstance(self.token, str) and self.token.isprintable()):
            raise ValueError("the endpoint's key must be text without line breaks or control characters")
        object.__setattr__(self, "base_url", _check_address(self.base_url, bool(self.token)))
        if not self.model:
            raise ValueError("the endpoint needs the name of the model it serves")
        if self.server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}; got {self.server!r}")
        if self.concurrency < 1 or self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError("concurrency >= 1, timeout > 0, retries >= 0 and backoff >= 0 are required; got "
                             f"{self.concurrency}, {self.timeout}, {self.retries}, {self.backoff}")

    @classmethod
    def from_env(cls) -> Endpoint | None:
        """The endpoint named by ``SCISCI_LLM_BASE_URL`` and friends, or None when it is not set.

        The key is ``SCISCI_LLM_API_KEY``; only for https://router.huggingface.co is it, when unset, the
        Hugging Face token (``HF_TOKEN`` or Colab's secret).
        """
        base = os.environ.get(ENV_BASE_URL, "").strip()
        if not base:
            return None
        model = os.environ.get(ENV_MODEL, "").strip()
        if not model:
            raise RuntimeError(f"{ENV_BASE_URL} is set ({base}) but {ENV_MODEL} is not; "
                               "set it to the model the endpoint serves")
        token = os.environ.get(ENV_API_KEY, "").strip() or None
        if token is None and _is_hf_router(base):
            from helpers.hub import hf_token

            token = hf_token()

        def number(name, kind, default):
            value = os.environ.get(name, "").strip()
            try:
                return kind(value) if value else default
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None

        return cls(base, model, token=token, server=os.environ.get(ENV_SERVER, "vllm").strip() or "vllm",
                   concurrency=number(ENV_CONCURRENCY, int, 4), timeout=number(ENV_TIMEOUT, float, 120.0),
                   retries=number(ENV_RETRIES, int, 3))

    @property
    def key(self) -> str:
        """The endpoint's identity in every cache: its address, the model it serves and its kind of server."""
        return f"openai-endpoint|{self.server}|{self.base_url}|{self.model}"

    def describe(self) -> str:
        """The line each call prints: model, address, kind of server, concurrency."""
        return (f"{self.model} via the OpenAI-compatible endpoint {self.base_url} "
                f"({self.server}; up to {self.concurrency} requests at once)")

    def takes_penalty(self) -> bool:
        """Whether a repetition penalty reaches the model (see ``SERVERS``)."""
        return self.server != "plain"

    def request_options(self, max_tokens: int, temperature: float = 0.0, repetition_penalty: float | None = None,
                        seed: int | None = None) -> dict:
        """The fields of a request besides model and messages: exactly the settings the server is sent.

        Temperature 0 is greedy decoding; the penalty is sent as this kind of server takes it, or not at all.
        """
        options = {"max_tokens": int(max_tokens), "temperature": float(temperature)}
        if repetition_penalty is not None and self.server == "vllm":
            options["repetition_penalty"] = float(repetition_penalty)
        elif repetition_penalty is not None and self.server == "transformers":
            options["frequency_penalty"] = round(float(repetition_penalty) - 1.0, 6)
        if seed is not None:
            options["seed"] = int(seed)
        return options

    def request_body(self, chat: list[dict], max_tokens: int, temperature: float = 0.0,
                     repetition_penalty: float | None = None, seed: int | None = None) -> dict:
        """The JSON body of one chat completion."""
        return {"model": self.model, "messages": chat,
                **self.request_options(max_tokens, temperature, repetition_penalty, seed)}

    def _send(self, body: dict) -> bytes:
        """One POST, all of it within ``timeout``: the reply's bytes; raises _Retryable or RuntimeError."""
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        with _Deadline(self.timeout) as deadline:
            handlers = [_RefuseRedirects(), _WatchedHTTP(deadline), _WatchedHTTPS(deadline)]
            if is_loopback(urllib.parse.urlsplit(url).hostname):
                handlers.append(urllib.request.ProxyHandler({}))  # this machine is reached directly, never via a proxy
            try:
                with urllib.request.build_opener(*handlers).open(request, timeout=self.timeout) as response:
                    reply = response.read()
            except urllib.error.HTTPError as exc:
                raise self._refusal(url, exc) from None
            except (OSError, http.client.HTTPException) as exc:
                raise self._transport_error(url, exc, deadline.expired) from None
            if deadline.expired:  # a reply cut short without a length to tell
                raise self._transport_error(url, TimeoutError(), True)
        return reply

    def _refusal(self, url: str, exc: urllib.error.HTTPError) -> Exception:
        """An HTTP error status as _Retryable (429, 5xx) or RuntimeError, with the start of the server's reason."""
        try:
            detail = " ".join(exc.read().decode("utf-8", errors="replace").split())[:200]
        except (OSError, http.client.HTTPException):
            detail = ""
        message = f"HTTP {exc.code} ({exc.reason}) from {url}: {detail}"
        if exc.code in (401, 403):
            message += (f". Set {ENV_API_KEY} to this server's key (the Hugging Face token is sent only to "
                        f"https://{HF_ROUTER_HOST})")
        if exc.code in RETRY_STATUS:
            return _Retryable(message, exc.headers.get("Retry-After"))
        return RuntimeError(message)

    def _transport_error(self, url: str, exc: Exception, expired: bool) -> Exception:
        """A failure below HTTP's status codes, as _Retryable (worth another try) or RuntimeError."""
        reason = getattr(exc, "reason", exc)  # a URLError wraps the socket's error
        if expired or isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return _Retryable(f"no answer from {url} within {self.timeout:g} s (timeout)")
        if isinstance(reason, ssl.SSLCertVerificationError):
            return RuntimeError(f"{url} did not show a valid certificate ({reason.verify_message}); not sent")
        if isinstance(reason, http.client.RemoteDisconnected):
            return _Retryable(f"{url} closed the connection without answering")
        if isinstance(reason, http.client.IncompleteRead):
            return _Retryable(f"{url} broke off its reply after {len(reason.partial)} bytes")
        if isinstance(reason, http.client.HTTPException):  # BadStatusLine, LineTooLong, ...
            return RuntimeError(f"{url} did not answer in HTTP ({type(reason).__name__}: {str(reason)[:80]!r}). "
                                "Is it an OpenAI-compatible server, and is the address right (http or https, port)?")
        return _Retryable(f"cannot reach {url}: {reason}. Is the server running, and is {ENV_BASE_URL} right?")

    def _post(self, body: dict) -> str:
        """One request: the answer's text; raises _Retryable or RuntimeError with the reason."""
        url = f"{self.base_url}/chat/completions"
        reply = self._send(body)
        try:
            payload = reply.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuntimeError(f"{url} replied with bytes that are not UTF-8 (at byte {exc.start}): "
                               f"{reply[:120]!r}") from None
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            raise RuntimeError(f"{url} returned something that is not an OpenAI-style chat completion: "
                               f"{payload[:200]!r}") from None
        if not isinstance(content, str):
            raise RuntimeError(f"{url} returned no text content: {payload[:200]!r}")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:  # JSON may escape a lone surrogate, which no UTF-8 text holds
            raise RuntimeError(f"{url} returned text that is not valid UTF-8 (a lone surrogate): "
                               f"{payload[:200]!r}") from None
        return content.strip()

    def chat(self, chat: list[dict], max_tokens: int, temperature: float = 0.0,
             repetition_penalty: float | None = None, seed: int | None = None) -> str | Failure:
        """One chat's answer, retried on transient errors; a ``Failure`` when every attempt failed."""
        body = self.request_body(chat, max_tokens, temperature, repetition_penalty, seed)
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except RuntimeError as exc:
                return Failure(str(exc))
            except _Retryable as exc:
                reason, retry_after = exc.args[0], exc.args[1] if len(exc.args) > 1 else None
                if attempt < self.retries:
                    wait = self.backoff * 2 ** attempt
                    if retry_after and str(retry_after).strip().isdigit():
                        wait = float(retry_after)
                    time.sleep(min(wait, MAX_BACKOFF_S))
            except Exception as exc:  # noqa: BLE001 - whatever else breaks, the record stays, with the reason
                return Failure(f"the request to {self.base_url} failed: {type(exc).__name__}: {exc}")
        return Failure(reason + (f" (after {self.retries + 1} attempts)" if self.retries else ""))

    def complete(self, chats: list[list[dict]], max_tokens: int, temperature: float = 0.0,
                 repetition_penalty: float | None = None, seed: int | None = None) -> list[str | Failure]:
        """Every chat's answer (str) or ``Failure``, in the order given; at most ``concurrency`` in flight."""
        if not chats:
            return []
        if repetition_penalty is not None and not self.takes_penalty():
            print(f"Note: {self.base_url} is a 'plain' server, so repetition_penalty={repetition_penalty} is not "
                  "sent; answers may differ from the local model's.")
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
            return list(pool.map(lambda chat: self.chat(chat, max_tokens, temperature, repetition_penalty, seed),
                                 chats))
