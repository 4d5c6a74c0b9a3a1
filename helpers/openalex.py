"""Works for a query from OpenAlex, through pyalex: paged with a cursor, saved as JSON Lines, read back on a re-run.

Since February 2026 the API wants a free key (openalex.org/settings/api): without one a day has 100 credits,
with one 100,000; each page of up to 200 works costs a credit (pyalex's README, "Rate limits and
authentication"). The key comes from the ``OPENALEX_API_KEY`` environment variable or Colab secret only.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from helpers.cache import content_hash, outputs_dir
from helpers.formats import parser

FREE_LIMIT = ("Without an API key OpenAlex allows 100 credits a day, one per page of up to 200 works "
              "(about 20,000 works); a free key (openalex.org/settings/api) gives 100,000. Put it in the "
              "OPENALEX_API_KEY environment variable, or in Colab's secrets (the key icon) under that name.")
PER_PAGE = 200  # the most OpenAlex gives per request
MAX_TRIES = 6
MAX_WAIT_S = 60.0
TIMEOUT_S = 60.0


def openalex_api_key() -> str | None:
    """The OpenAlex key from ``OPENALEX_API_KEY`` or Colab's secrets; never from code."""
    key = os.environ.get("OPENALEX_API_KEY")
    if key or "google.colab" not in sys.modules:
        return key or None
    try:
        from google.colab import userdata

        return userdata.get("OPENALEX_API_KEY")
    except Exception:  # noqa: BLE001 - Colab raises its own errors: secret not set, access not granted
        return None


def fetch_openalex(search: str | None = None, filter: dict | None = None, n_max: int = 1000,
                   path: str | Path | None = None) -> Path:
    """Path of a JSON Lines file with up to ``n_max`` OpenAlex works for ``search`` and ``filter``; read with
    ``load_corpus(path)``.

    ``filter``: pyalex's filters, e.g. ``{"publication_year": ">2015", "type": "article"}``. The works are
    written to ``path`` (default: ``outputs/openalex/`` under a name made of the query) only when complete;
    a re-run with the file there reads nothing from the API. Rate limits (429) and server errors are retried
    after the wait the server asks for (else 1, 2, 4, ... s), ``MAX_TRIES`` times.
    """
    if not search and not filter:
        raise ValueError("give a search (e.g. search='science of science') or a filter, or OpenAlex returns everything")
    if not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max must be a positive whole number of works, got {n_max!r}")
    path = Path(path) if path else _default_path(search, filter, n_max)
    if path.is_file():
        print(f"Read from {path} (fetched earlier; delete the file to ask OpenAlex again).")
        return path
    pyalex = parser("pyalex", "pyalex")
    query = pyalex.Works()
    if search:
        query = query.search(search)
    if filter:
        query = query.filter(**filter)
    # pyalex 0.21 builds every URL for https://api.openalex.org whatever config.openalex_url says, and mounts
    # its retries on https only; so the address is swapped here and the paging and retries are done below.
    url = re.sub(r"^https://api\.openalex\.org", pyalex.config.openalex_url.rstrip("/"), query.url)
    key = openalex_api_key()
    if key is None:
        print(f"No OpenAlex API key found. {FREE_LIMIT}")
    auth = pyalex.api.OpenAlexAuth(pyalex.api.AlexConfig({**pyalex.config, "api_key": key}))
    works = _fetch_pages(url, auth, n_max)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text("".join(json.dumps(work, ensure_ascii=False) + "\n" for work in works), encoding="utf-8")
    partial.replace(path)
    print(f"Saved {len(works):,} works to {path}.")
    return path


def _default_path(search, filter, n_max) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", str(search or "filtered").lower()).strip("-")[:40] or "works"
    return outputs_dir() / "openalex" / f"{slug}-{content_hash(search, filter, n_max)[:10]}.jsonl"


def _fetch_pages(url: str, auth, n_max: int) -> list[dict]:
    """Up to ``n_max`` works of ``url``, page after page with OpenAlex's cursor, with a progress bar."""
    import requests
    from tqdm.auto import tqdm

    works, cursor, separator = [], "*", "&" if "?" in url else "?"
    with requests.Session() as session, tqdm(total=n_max, unit=" works", desc="OpenAlex") as bar:
        while cursor and len(works) < n_max:
            page = _get_page(session, f"{url}{separator}per-page={min(PER_PAGE, n_max)}&cursor={cursor}", auth)
            results = page.get("results") or []
            works += results[: n_max - len(works)]
            bar.total = min(n_max, (page.get("meta") or {}).get("count") or n_max)
            bar.update(len(works) - bar.n)
            cursor = (page.get("meta") or {}).get("next_cursor") if results else None
    return works


def _get_page(session, url: str, auth) -> dict:
    """One page as JSON: 429 and 5xx answers and lost connections are retried politely; credits spent is an error."""
    import requests

    problem = ""
    for attempt in range(MAX_TRIES):
        try:
            response = session.get(url, auth=auth, timeout=TIMEOUT_S)
        except requests.RequestException as error:
            response, problem = None, f"no answer ({type(error).__name__})"
        else:
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError:
                    raise RuntimeError(f"OpenAlex answered {url} with something that is not JSON.") from None
            # A 429 with no credits left is not worth retrying until midnight UTC (pyalex issue #100).
            if response.status_code == 429 and response.headers.get("X-RateLimit-Remaining") == "0":
                raise RuntimeError(f"OpenAlex: today's credits are used up (429). {FREE_LIMIT}")
            if response.status_code in (401, 403):
                raise RuntimeError(f"OpenAlex refused the request ({response.status_code}): check OPENALEX_API_KEY.")
            if response.status_code != 429 and response.status_code < 500:
                raise RuntimeError(f"OpenAlex answered {response.status_code} to {url}: {response.text[:300]}")
            problem = f"HTTP {response.status_code}"
        if attempt < MAX_TRIES - 1:
            time.sleep(_wait_s(response, attempt))
    raise RuntimeError(f"OpenAlex gave no page after {MAX_TRIES} tries ({problem}); try again later.")


def _wait_s(response, attempt: int) -> float:
    """The server's Retry-After (seconds), else 1, 2, 4, ... s; at most ``MAX_WAIT_S``."""
    retry_after = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(MAX_WAIT_S, max(0.0, float(retry_after)))
    except (TypeError, ValueError):
        return min(MAX_WAIT_S, 2.0 ** attempt)
