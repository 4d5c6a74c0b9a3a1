"""An OpenAI-compatible chat endpoint (vLLM, ``transformers serve``, Ollama, a hosted router) as one object.

``Endpoint.from_env()`` reads it from the environment, so the notebooks run unchanged against a server::

    SCISCI_LLM_BASE_URL=http://127.0.0.1:8000/v1   # the server's address, up to /v1
    SCISCI_LLM_MODEL=Qwen/Qwen2.5-1.5B-Instruct     # the model it serves
    SCISCI_LLM_API_KEY=...                          # optional (else HF_TOKEN)
    SCISCI_LLM_SERVER=vllm                          # or transformers, plain: how the repetition penalty is sent
    SCISCI_LLM_CONCURRENCY=8  SCISCI_LLM_TIMEOUT=120  SCISCI_LLM_RETRIES=3

``Endpoint.complete`` sends many chats at once, retries transient errors with exponential backoff, and
returns each answer in order: the text, or a ``Failure`` naming the reason, never a lost record.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
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


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible ``/chat/completions`` endpoint and how to talk to it.

    ``concurrency``: requests in flight at once; ``timeout``: seconds per request; ``retries``: further
    attempts after a 429 / 5xx / timeout / refused connection, ``backoff`` x 2^attempt seconds apart (at most
    30, or the server's ``Retry-After``). ``server``: how a repetition penalty is sent (``SERVERS``).
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
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"the endpoint address must start with http:// or https://; got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.model:
            raise ValueError("the endpoint needs the name of the model it serves")
        if self.server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}; got {self.server!r}")
        if self.concurrency < 1 or self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError("concurrency >= 1, timeout > 0, retries >= 0 and backoff >= 0 are required; got "
                             f"{self.concurrency}, {self.timeout}, {self.retries}, {self.backoff}")

    @classmethod
    def from_env(cls) -> Endpoint | None:
        """The endpoint named by ``SCISCI_LLM_BASE_URL`` and friends, or None when it is not set."""
        base = os.environ.get(ENV_BASE_URL, "").strip()
        if not base:
            return None
        model = os.environ.get(ENV_MODEL, "").strip()
        if not model:
            raise RuntimeError(f"{ENV_BASE_URL} is set ({base}) but {ENV_MODEL} is not; "
                               "set it to the model the endpoint serves")
        from helpers.hub import hf_token

        def number(name, kind, default):
            value = os.environ.get(name, "").strip()
            try:
                return kind(value) if value else default
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None

        return cls(base, model, token=os.environ.get(ENV_API_KEY) or hf_token(),
                   server=os.environ.get(ENV_SERVER, "vllm").strip() or "vllm",
                   concurrency=number(ENV_CONCURRENCY, int, 4), timeout=number(ENV_TIMEOUT, float, 120.0),
                   retries=number(ENV_RETRIES, int, 3))

    @property
    def name(self) -> str:
        """What answers are cached under: the served model (a moved server keeps its cache)."""
        return f"openai-endpoint|{self.model}"

    def describe(self) -> str:
        return (f"{self.model} via the OpenAI-compatible endpoint {self.base_url} "
                f"(up to {self.concurrency} requests at once)")

    def takes_penalty(self) -> bool:
        """Whether a repetition penalty reaches the model (see ``SERVERS``)."""
        return self.server != "plain"

    def request_body(self, chat: list[dict], max_tokens: int, temperature: float = 0.0,
                     repetition_penalty: float | None = None, seed: int | None = None) -> dict:
        """The JSON body of one chat completion; temperature 0 is greedy decoding."""
        body = {"model": self.model, "messages": chat, "max_tokens": int(max_tokens), "temperature": float(temperature)}
        if repetition_penalty is not None and self.server == "vllm":
            body["repetition_penalty"] = float(repetition_penalty)
        elif repetition_penalty is not None and self.server == "transformers":
            body["frequency_penalty"] = float(repetition_penalty) - 1.0
        if seed is not None:
            body["seed"] = int(seed)
        return body

    def _post(self, body: dict) -> str:
        """One request: the answer's text; raises _Retryable or RuntimeError with the reason."""
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            detail = " ".join(exc.read().decode("utf-8", errors="replace").split())[:200]
            message = f"HTTP {exc.code} ({exc.reason}) from {url}: {detail}"
            if exc.code in RETRY_STATUS:
                raise _Retryable(message, exc.headers.get("Retry-After")) from None
            raise RuntimeError(message) from None
        except OSError as exc:  # URLError, or TimeoutError while reading
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise _Retryable(f"no answer from {url} within {self.timeout:g} s (timeout)") from None
            raise _Retryable(f"cannot reach {url}: {reason}. Is the server running, and is {ENV_BASE_URL} right?") from None
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(f"{url} returned something that is not an OpenAI-style chat completion: "
                               f"{payload[:200]!r}") from None
        if not isinstance(content, str):
            raise RuntimeError(f"{url} returned no text content: {payload[:200]!r}")
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
