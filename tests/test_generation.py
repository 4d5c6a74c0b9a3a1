"""Generation: theme parsing, batched greedy generation, the cache, constrained choices, the endpoint backend."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from helpers import generation
from helpers.generation import GenerationSettings, chat_prompts, generate, make_messages, score_choices
from helpers.llm_labels import LabelSettings, label_clusters


def test_messages_and_chat_prompts(generator):
    chat = make_messages("Name a colour.", system="Answer briefly.")
    assert [m["role"] for m in chat] == ["system", "user"]
    (text,) = chat_prompts([chat], generator.tokenizer)
    assert "Name a colour." in text and "Answer briefly." in text
    assert text.rstrip().endswith("assistant")  # ends where the assistant starts to speak
    with pytest.raises(ValueError, match="list of chats"):
        chat_prompts(chat, generator.tokenizer)  # one chat, not a list of chats
    with pytest.raises(ValueError, match="empty"):
        make_messages("  ")


# --------------------------------------------------------------------------- batched generation and the cache


def test_left_pad():
    ids, mask, positions = generation._left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions[1, -1].item() == 0 and positions[0, -1].item() == 2


PROMPTS = ["Name two colours.", "What is the capital of Italy? Answer in one word.",
           "Write one short sentence about citations in science.", "Count from one to five."]


def test_batched_greedy_equals_one_by_one_and_left_pads(generator, monkeypatch):
    calls = []
    original = generator.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs["attention_mask"].clone())
        return original(*args, **kwargs)

    monkeypatch.setattr(generator.model, "generate", spy)
    chats = [make_messages(p) for p in PROMPTS]
    batched = generate(chats, generator, GenerationSettings(max_new_tokens=12, batch_size=4), cache=False)
    assert len(calls) == 1  # one generate call for the whole batch
    mask = calls[0]
    assert mask[:, -1].all() and not mask[:, 0].all()  # real tokens at the right: padding on the left
    one_by_one = generate(chats, generator, GenerationSettings(max_new_tokens=12, batch_size=1), cache=False)
    assert len(calls) == 1 + len(PROMPTS)
    assert batched == one_by_one
    assert all(isinstance(a, str) and a for a in batched)


class _NoModel:
    """Stands in for a generator whose model must not be used (a cache hit needs none)."""

    def __init__(self, name):
        self.name_or_path, self.device, self.dtype = name, "cpu", "float32"
        self.tokenizer = self
        self.model = self

    def __getattr__(self, attr):
        raise AssertionError(f"the model was used ({attr}) although the answer should come from the cache")


def test_cache_serves_repeats_and_recomputes_changes(generator, monkeypatch, tmp_path):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    chats = [make_messages("Name two colours.")]
    eight = GenerationSettings(max_new_tokens=8)
    first = generate(chats, generator, eight)
    assert len(list((tmp_path / "generations").glob("*.json"))) == 1
    stand_in = _NoModel(generator.tokenizer.name_or_path)  # read as the same model
    assert generate(chats, stand_in, eight) == first  # served without the model
    with pytest.raises(AssertionError, match="model was used"):
        generate([make_messages("Name three colours.")], stand_in, eight)  # changed prompt
    with pytest.raises(AssertionError, match="model was used"):
        generate(chats, stand_in, GenerationSettings(max_new_tokens=9))  # changed setting
    with pytest.raises(AssertionError, match="model was used"):
        generate(chats, _NoModel("another/model"), eight)  # another model
    # The batch size is how the work is split, not what is computed: not part of the key.
    assert generate(chats, stand_in, GenerationSettings(max_new_tokens=8, batch_size=1)) == first


def test_generation_settings_say_what_is_wrong():
    for bad, message in [(dict(max_new_tokens=0), "max_new_tokens must be a whole number >= 1"),
                         (dict(max_new_tokens=2.5), "max_new_tokens"),
                         (dict(batch_size=0), "batch_size"),
                         (dict(do_sample=True), "sampling needs a temperature > 0"),
                         (dict(do_sample=True, temperature=0), "sampling needs a temperature > 0"),
                         (dict(do_sample=True, temperature=float("nan")), "sampling needs a temperature > 0"),
                         (dict(temperature=0.7), "applies only when sampling"),
                         (dict(repetition_penalty=0), "repetition_penalty must be a number > 0"),
                         (dict(seed=1.5), "seed must be a whole number"),
                         (dict(do_sample="yes", temperature=0.7), "do_sample must be True or False")]:
        with pytest.raises(ValueError, match=message):
            GenerationSettings(**bad)
    with pytest.raises(TypeError, match="settings must be a GenerationSettings"):
        generate([make_messages("hi")], settings=64)


def test_a_sampled_answer_is_the_same_alone_and_in_a_batch(generator, monkeypatch, tmp_path):
    """Item 6 of issue 17: a sampled answer depends only on (chat, seed, settings), so its cache key is sound."""
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=1.0, seed=7, batch_size=4)
    chats = [make_messages(p) for p in PROMPTS[:2]]
    alone = generate(chats[1:], generator, settings, cache=False)
    batched = generate(chats, generator, settings)  # second in a batch of two, after another chat; cached
    assert batched[1:] == alone
    records = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "generations").glob("*.json")]
    cached = {json.dumps(r["messages"]): r["output"] for r in records}
    assert [cached[json.dumps(chats[1])]] == alone  # what the cache says the chat gives, it gives alone
    assert generate(chats[1:], generator, settings) == alone  # and from the cache


# --------------------------------------------------------------------------- constrained choice


# Questions the packaged 135M model gets right (checked by hand). It does NOT reliably
# answer yes/no questions: "Is Paris in France? Answer TRUE or FALSE." gets FALSE,
# which is why the extraction pipeline does not rely on its judgement alone.
EASY = [
    ("What is the capital of France? Answer with one word.", ["Berlin", "Paris"], "Paris"),
    ("What is the capital of France? Answer with one word.", ["Paris", "Berlin"], "Paris"),
    ("What is the opposite of hot? Answer with one word.", ["Tall", "Cold"], "Cold"),
]


def test_score_choices_normalised_and_prefers_the_obvious_answer(generator):
    for question, choices, expected in EASY:
        scores = score_choices([make_messages(question)], choices, generator, cache=False)
        assert list(scores.columns) == choices + ["choice", "mass"]
        assert np.isclose(scores[choices].sum(axis=1).iloc[0], 1.0)
        assert 0 < scores["mass"].iloc[0] <= 1
        assert scores["choice"].iloc[0] == expected
        assert scores[expected].iloc[0] > 0.9


def test_score_choices_batched_equals_single_and_full_forward(generator):
    import torch

    chats = [make_messages(q) for q in ("Is Paris in France? Answer TRUE or FALSE.", "Is the sun cold?",
                                        "Is water wet? Reply TRUE, FALSE or UNCLEAR.")]
    choices = ["TRUE", "FALSE", "UNCLEAR"]  # choices of several tokens use the cached prompt
    batched = score_choices(chats, choices, generator, batch_size=3, cache=False)
    single = score_choices(chats, choices, generator, batch_size=1, cache=False)
    assert np.allclose(batched[choices], single[choices], atol=1e-4)
    # Reference: the log-probability of prompt + choice computed in one plain forward pass.
    tok, model = generator.tokenizer, generator.model
    prompt = chat_prompts(chats[:1], tok)[0]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    logps = []
    for choice in choices:
        choice_ids = tok(choice, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([prompt_ids + choice_ids])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        logps.append(sum(logp[len(prompt_ids) - 1 + i, t].item() for i, t in enumerate(choice_ids)))
    reference = np.exp(np.array(logps) - max(logps))
    assert np.allclose(batched.loc[0, choices].to_numpy(dtype=float), reference / reference.sum(), atol=1e-4)


def test_score_choices_recomputes_a_cached_row_of_the_wrong_shape(generator, monkeypatch, tmp_path, capsys):
    """Item 10 of issue 17: a cached row that does not fit the choices is computed again, naming the file."""
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    chats, choices = [make_messages("What is the opposite of hot? Answer with one word.")], ["Tall", "Cold"]
    first = score_choices(chats, choices, generator)
    (path,) = (tmp_path / "generations").glob("*.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**record, "output": record["output"][:1]}), encoding="utf-8")
    capsys.readouterr()
    again = score_choices(chats, choices, generator)
    assert f"The cache file {path} is unreadable" in capsys.readouterr().out
    assert np.allclose(again[choices], first[choices])
    assert len(json.loads(path.read_text(encoding="utf-8"))["output"]) == 2  # replaced


def test_score_choices_rejects_bad_choices(generator):
    with pytest.raises(ValueError, match="two distinct"):
        score_choices([make_messages("x?")], ["TRUE"], generator)
    with pytest.raises(ValueError, match="two distinct"):
        score_choices([make_messages("x?")], ["TRUE", "TRUE"], generator)


# --------------------------------------------------------------------------- the OpenAI-compatible backend


class _FakeChatServer:
    """An OpenAI-compatible /chat/completions on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self, reply):
        self.requests, self.reply = [], reply
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, payload = server.reply(body)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text):
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}}]}


@pytest.fixture
def endpoint_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SCISCI_CACHE", str(tmp_path))
    monkeypatch.setenv("SCISCI_LLM_MODEL", "fake/model-7b")
    monkeypatch.setenv("SCISCI_LLM_API_KEY", "secret-token")
    monkeypatch.setenv("SCISCI_LLM_RETRIES", "0")  # retries and backoff: tests/test_endpoint.py

    def use(url):
        monkeypatch.setenv("SCISCI_LLM_BASE_URL", url)

    return use


def test_endpoint_returns_content_and_sends_model_and_token(endpoint_env, capsys):
    def reply(body):
        return _completion(f"echo: {body['messages'][-1]['content']}")

    with _FakeChatServer(reply) as server:
        endpoint_env(server.url)
        twenty = GenerationSettings(max_new_tokens=20)
        answers = generate([make_messages("hello", system="be brief"), make_messages("bye")], settings=twenty)
        assert answers == ["echo: hello", "echo: bye"]
        # Sent concurrently: either chat may arrive first.
        request = next(r for r in server.requests if r["body"]["messages"][-1]["content"] == "hello")
        assert request["path"] == "/v1/chat/completions"
        assert request["auth"] == "Bearer secret-token"
        assert request["body"]["model"] == "fake/model-7b"
        assert request["body"]["max_tokens"] == 20 and request["body"]["temperature"] == 0.0
        assert request["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert "fake/model-7b" in capsys.readouterr().out  # says which backend answered
        # A repeat comes from the cache: the server sees no new request.
        assert generate([make_messages("hello", system="be brief")], settings=twenty) == ["echo: hello"]
        assert len(server.requests) == 2


@pytest.mark.parametrize("reply, message", [
    (lambda body: (500, {"error": "model overloaded"}), "HTTP 500"),
    (lambda body: (200, "<html>not json</html>"), "not an OpenAI-style"),
    (lambda body: (200, {"choices": []}), "not an OpenAI-style"),
])
def test_endpoint_errors_are_clear(endpoint_env, reply, message):
    with _FakeChatServer(reply) as server:
        endpoint_env(server.url)
        with pytest.raises(RuntimeError, match=message):
            generate([make_messages("hello")], cache=False)


def test_endpoint_unreachable_and_missing_model(endpoint_env, monkeypatch):
    endpoint_env("http://127.0.0.1:9/v1")  # nothing listens on the discard port
    with pytest.raises(RuntimeError, match="cannot reach"):
        generate([make_messages("hello")], cache=False)
    monkeypatch.delenv("SCISCI_LLM_MODEL")
    with pytest.raises(RuntimeError, match="SCISCI_LLM_MODEL"):
        generate([make_messages("hello")], cache=False)


def test_endpoint_score_choices_parses_the_generated_answer(endpoint_env):
    answers = {"a": "TRUE, because it says so.", "b": "I think the answer is false.", "c": "Hard to say."}
    with _FakeChatServer(lambda body: _completion(answers[body["messages"][-1]["content"]])) as server:
        endpoint_env(server.url)
        scores = score_choices([make_messages(k) for k in "abc"], ["TRUE", "FALSE", "UNCLEAR"], cache=False)
    assert scores["choice"].tolist()[:2] == ["TRUE", "FALSE"]
    assert scores["choice"].isna().iloc[2] and scores.loc[2, ["TRUE", "FALSE"]].isna().all()
    assert scores.loc[0, "TRUE"] == 1.0


# --------------------------------------------------------------------------- labelling clusters


def test_label_clusters_marks_unparseable_and_skips_noise(endpoint_env, clustered_titles):
    def reply(body):
        text = body["messages"][-1]["content"]
        return _completion("gender; careers; mentoring" if "Women" in text else "Sorry, I cannot help with that.")

    titles = {-1: ["Noise paper"], 0: ["Women in science", "Women deans", "Women and grants"],
              1: ["Citation counts", "Impact factors", "h-index drift"]}
    with _FakeChatServer(reply) as server:
        endpoint_env(server.url)
        table = label_clusters(*clustered_titles(titles), settings=LabelSettings(n_titles=2, seed=0))
    assert table["cluster"].tolist() == [0, 1]  # noise left out
    assert table.loc[0, "terms"] == ["gender", "careers", "mentoring"] and table.loc[0, "parsed"]
    assert table.loc[0, "label"] == "gender; careers; mentoring" and (table["method"] == "LLM").all()
    assert not table.loc[1, "parsed"] and table.loc[1, "terms"] == []
    assert table.loc[1, "label"].startswith("UNPARSEABLE: Sorry")
    assert (table["n_titles"] == 2).all()
    # The worked examples precede the cluster's own titles in the chat.
    chat = server.requests[0]["body"]["messages"]
    assert chat[0]["role"] == "system" and [m["role"] for m in chat[1:3]] == ["user", "assistant"]


def test_label_clusters_real_model_on_demo_corpus(generator, demo_corpus):
    themes = sorted(demo_corpus["theme"].unique())
    clusters = demo_corpus["theme"].map({k: i for i, k in enumerate(themes)}).to_numpy()
    table = label_clusters(demo_corpus, clusters, generator, settings=LabelSettings(n_titles=6, seed=0))
    assert len(table) == len(themes)
    for row in table.itertuples():
        assert row.answer  # the raw answer is always kept
        if row.parsed:
            assert 3 <= len(row.terms) <= 5 and row.label == "; ".join(row.terms)
        else:
            assert row.terms == [] and row.label.startswith("UNPARSEABLE")
