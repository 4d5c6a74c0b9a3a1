"""Cluster labels and PDF questions through a real ``transformers serve`` process, against the local pipeline.

The server runs the packaged SmolLM2-135M-Instruct (the dequantised folder
``load_generator`` keeps) on the CPU, on a free loopback port, started once for
this module and always stopped. Adds about 4 minutes on the shared 2-core CPU
(measured under a load of about 8): ~12 s to start the server, the rest is
generation, which the server does one request at a time (the local pipeline
batches).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="transformers serve needs its serving extras (requirements-dev.txt)")
pytest.importorskip("uvicorn", reason="transformers serve needs its serving extras (requirements-dev.txt)")

from helpers import prompts  # noqa: E402
from helpers.cache import cache_dir  # noqa: E402
from helpers.endpoint import Endpoint  # noqa: E402
from helpers.extraction import ANSWERS, UNPARSEABLE, EvidenceSettings, ask_articles  # noqa: E402
from helpers.generation import GenerationSettings, _first_choice_in, generate  # noqa: E402
from helpers.llm_labels import LabelSettings, label_clusters  # noqa: E402
from scale.serve import packaged_model_folder, transformers_server  # noqa: E402


@pytest.fixture(scope="module")
def served(generator, tmp_path_factory):
    """An Endpoint for a live ``transformers serve`` of the packaged SmolLM2 (and the server's log path)."""
    folder = packaged_model_folder()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with transformers_server(folder, device="cpu", start_timeout=240, log_path=log) as url:
        assert url.startswith("http://127.0.0.1:")  # loopback only
        yield Endpoint(url, str(folder), server="transformers", concurrency=4, timeout=300, retries=1)


def test_label_clusters_through_the_server_equal_the_local_pipeline(served, generator, demo_corpus):
    themes = sorted(demo_corpus["theme"].unique())[:3]
    records = demo_corpus[demo_corpus["theme"].isin(themes)].reset_index(drop=True)
    clusters = records["theme"].map({k: i for i, k in enumerate(themes)}).to_numpy()
    settings = LabelSettings(n_titles=5, seed=0)
    local = label_clusters(records, clusters, generator, settings=settings, cache=False)
    remote = label_clusters(records, clusters, served, settings=settings, cache=False)
    # Same chats, greedy decoding, the course's repetition penalty (sent as frequency_penalty = 0.2, which
    # transformers serve turns into repetition_penalty = 1.2): the same text, token for token.
    assert remote["error"].isna().all()
    assert remote["answer"].tolist() == local["answer"].tolist()
    assert remote["label"].tolist() == local["label"].tolist()


def _pdfs_from_demo_records(corpus, folder, n=2):
    import pymupdf

    folder.mkdir()
    for i, record in enumerate(corpus.drop_duplicates("theme").head(n).itertuples()):
        doc = pymupdf.open()
        doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 520, 770), f"{record.title}. {record.abstract}",
                                      fontsize=10)
        doc.save(folder / f"record_{i}.pdf")
        doc.close()
    return folder


def test_ask_articles_through_the_server(served, generator, demo_corpus, tmp_path, monkeypatch):
    """What is the same and what differs, exactly.

    Same: reading, passages, retrieval and evidence (no LLM), and the model's
    greedy text for every chat, token for token. Differs by design: the local
    pipeline chooses TRUE/FALSE/UNCLEAR by the model's probabilities of each
    choice (``score_choices``), which an OpenAI-compatible server does not give
    (``transformers serve`` ignores ``logprobs``); through a server the answer is
    the first allowed choice in the generated text (16 tokens), else UNPARSEABLE.
    """
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path / "cache"))
    folder = _pdfs_from_demo_records(demo_corpus, tmp_path / "pdfs")
    # Asked as one's own question (the course's wording): no course judge, whose fitting would send the
    # 87 tuning abstracts through the server too; this test is about the two answers.
    ask = dict(question=prompts.QUESTIONS["bibliometric"], settings=EvidenceSettings(passage_words=60))
    remote = ask_articles(folder, generator=served, **ask)
    local = ask_articles(folder, generator=generator, **ask)
    same = ["file", "question", "status", "evidence_score", "quote", "page", "verified"]
    pd.testing.assert_frame_equal(remote[same], local[same])
    assert (remote["status"] == "ok").all() and len(remote) == 2

    # The server's answers are in the shared generation cache, with the exact chats it was sent.
    stored = [json.loads(p.read_text()) for p in cache_dir("generations").glob("*.json")]
    stored = [s for s in stored if s["generator"] == served.key]
    assert len(stored) == 2
    again = generate([s["messages"] for s in stored], generator, GenerationSettings(max_new_tokens=16), cache=False)
    assert again == [s["output"] for s in stored]  # the local model writes the same greedy text
    parsed = {_first_choice_in(s["output"], ANSWERS) or UNPARSEABLE for s in stored}
    assert set(remote["answer"]) <= parsed


def _print_vllm(**env):
    """``python -m scale.serve --print-vllm`` run from the repository's root, as the README says: its output."""
    environ = {k: v for k, v in os.environ.items() if k != "SCISCI_LLM_API_KEY"} | env
    done = subprocess.run([sys.executable, "-m", "scale.serve", "--print-vllm", "--port", "8123"], env=environ,
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_print_vllm_gives_the_server_a_key_and_says_why():
    """Item 2 of issue 17: vLLM on 0.0.0.0 without a key answers anyone on the network."""
    given = _print_vllm(SCISCI_LLM_API_KEY="course-key-123")
    command = given.splitlines()[0]
    assert command.startswith("vllm serve ") and "--host 0.0.0.0 --port 8123" in command
    assert command.endswith("--api-key course-key-123")
    assert "answers anyone on the network" in given and "SSH" in given
    keys = [re.search(r"--api-key (\S+)$", _print_vllm().splitlines()[0]).group(1) for _ in range(2)]
    assert keys[0] != keys[1] and min(len(k) for k in keys) >= 32  # a new random key each time
