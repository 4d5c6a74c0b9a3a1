from types import SimpleNamespace

import pytest
import torch

from helpers import models


def test_cpu_gets_float32_and_mps_float16():
    assert models.get_dtype("cpu") == torch.float32
    assert models.get_dtype("mps") == torch.float16
    if not torch.cuda.is_available():
        assert models.get_device() in {"cpu", "mps"}


@pytest.mark.parametrize("capability, expected, qwen_expected", [
    ((7, 5), torch.float16, torch.float32),   # T4: bf16 only emulated; Qwen2 overflows in fp16
    ((7, 0), torch.float16, torch.float32),   # V100
    ((8, 0), torch.bfloat16, torch.bfloat16),  # A100
    ((8, 9), torch.bfloat16, torch.bfloat16),  # L4
    ((9, 0), torch.bfloat16, torch.bfloat16),  # H100
])
def test_gpu_dtype_follows_compute_capability(monkeypatch, capability, expected, qwen_expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 reports, emulation included
    assert models.get_dtype("cuda") == expected
    assert models.get_dtype("cuda", models.COURSE_GENERATOR) == expected
    assert models.get_dtype("cuda", models.OPEN_GPU_GENERATOR) == qwen_expected


@pytest.fixture
def online_with_token(monkeypatch):
    """The hub 'reachable' with a token set; loading records what would be loaded instead of loading it."""
    monkeypatch.setattr(models, "hub_online", lambda: True)
    monkeypatch.setenv("HF_TOKEN", "hf_no_access_yet")
    monkeypatch.setattr(models, "_load_pipeline", lambda name, device: (name, device))


def _refuse(error_class, status):
    """A stand-in for ``huggingface_hub.auth_check`` that answers like the hub refusing access."""
    def auth_check(repo_id, token=None, **_):
        # Duck-typed: huggingface_hub 1.x answers with httpx responses, 2.x with httpx2's.
        response = SimpleNamespace(status_code=status, headers={}, request=None)
        raise error_class(f"{status} Client Error: access to model {repo_id} is restricted", response=response)
    return auth_check


def test_gated_model_without_access_falls_back_to_the_open_model(online_with_token, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    monkeypatch.setattr(huggingface_hub, "auth_check", _refuse(GatedRepoError, 403))
    assert models.choose_generator("cuda") == models.COURSE_GENERATOR  # a token suggests the course model...
    assert models.load_generator(device="cuda") == (models.OPEN_GPU_GENERATOR, "cuda")  # ...access decides
    out = capsys.readouterr().out
    assert "no access to the gated meta-llama/Llama-3.2-1B-Instruct" in out and models.OPEN_GPU_GENERATOR in out
    with pytest.raises(RuntimeError, match="no access to the gated"):
        models.load_generator(models.COURSE_GENERATOR, device="cuda", fallback=False)


def test_refused_token_falls_back_and_says_why(online_with_token, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setattr(huggingface_hub, "auth_check", _refuse(HfHubHTTPError, 401))
    assert models.load_generator(models.COURSE_GENERATOR, device="cuda") == (models.OPEN_GPU_GENERATOR, "cuda")
    assert "HTTP 401" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="HTTP 401.*HF_TOKEN"):  # the open model itself refused: nothing to fall back to
        models.load_generator(models.OPEN_CPU_GENERATOR, device="cpu")


def test_granted_access_loads_the_course_model(online_with_token, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "auth_check", lambda repo_id, token=None, **_: None)
    assert models.load_generator(device="cuda") == (models.COURSE_GENERATOR, "cuda")


def test_token_comes_from_environment(monkeypatch):
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_value")
    assert models.hf_token() == "hf_test_value"
    monkeypatch.delenv("HF_TOKEN")
    assert models.hf_token() is None


def test_offline_choice_is_the_packaged_generator():
    assert models.hub_online() is False  # conftest sets HF_HUB_OFFLINE=1
    assert models.choose_generator("cpu") == models.PACKAGED_GENERATOR
    assert models.choose_generator("cuda") == models.PACKAGED_GENERATOR


def test_names_resolve_to_packaged_copies():
    assert (models.packaged_path(models.DEFAULT_EMBEDDER) / "model.safetensors").is_file()
    assert (models.packaged_path("all-MiniLM-L6-v2") / "config.json").is_file()  # sentence-transformers' own alias
    assert (models.packaged_path(models.PACKAGED_GENERATOR) / models.SMOLLM2_GGUF).is_file()
    assert models.packaged_path("openai-community/gpt2") is None
    # Only the exact hub names: another owner's model, another spelling or a path ending alike is not the copy.
    for name in ("my-org/all-MiniLM-L6-v2", "someone/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct",
                 "/models/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2/"):
        assert models.packaged_path(name) is None, name


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """No hub model cached on this machine, whatever ~/.cache/huggingface holds (offline, a cached model would load)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))


def test_packaged_generator_answers_a_chat_prompt(generator):
    info = models.model_info(generator)
    assert info.name == models.PACKAGED_GENERATOR and info.backend == "torch"
    assert info.source.startswith("packaged copy") and models.DEQUANTISED_SMOLLM2 in info.source
    assert str(info).startswith(f"Model: {models.PACKAGED_GENERATOR} | from: packaged copy")
    messages = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name one journal that publishes bibliometrics research."},
    ]
    reply = generator(messages, max_new_tokens=20, do_sample=False)[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and reply["content"].strip()


def test_second_load_uses_the_dequantised_cache(generator, capsys):
    models._load_pipeline.cache_clear()
    again = models.load_generator()
    assert models.model_info(again).name == models.PACKAGED_GENERATOR
    assert "Dequantising" not in capsys.readouterr().out
    assert torch.equal(again.model.lm_head.weight, generator.model.lm_head.weight)


def test_unreachable_model_falls_back_loudly_or_raises(empty_hub_cache, capsys):
    pipe = models.load_generator("openai-community/gpt2")
    assert pipe is models.load_generator()  # the packaged model already loaded is reused
    assert "'openai-community/gpt2' can't be loaded" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="not installed locally"):
        models.load_generator("openai-community/gpt2", fallback=False)
    with pytest.raises(RuntimeError, match="all-mpnet-base-v2"):
        models.load_embedder("sentence-transformers/all-mpnet-base-v2")


def test_a_pipeline_built_directly_is_named_like_a_loaded_one(generator, empty_hub_cache):
    from transformers import pipeline

    location = models.model_location(models.PACKAGED_GENERATOR)
    assert location.endswith(models.DEQUANTISED_SMOLLM2)
    pipe = pipeline("text-generation", model=location)
    assert models.model_info(pipe).name == models.model_info(generator).name == models.PACKAGED_GENERATOR
    assert models.model_location("openai-community/gpt2", fallback=models.PACKAGED_GENERATOR) == location


def test_embedder_info_names_the_packaged_copy_and_backend(embedder):
    from sentence_transformers import SentenceTransformer

    info = models.model_info(embedder)
    assert (info.name, info.backend, info.device, info.dtype) == (models.DEFAULT_EMBEDDER, "torch", "cpu", "float32")
    assert info.revision == models.folder_fingerprint(models.packaged_path(models.DEFAULT_EMBEDDER))
    direct = SentenceTransformer(models.model_location(models.DEFAULT_EMBEDDER))
    assert models.model_info(direct).key == info.key == f"{models.DEFAULT_EMBEDDER}@{info.revision}|torch|float32|cpu"
    onnx = models.model_info(models.load_embedder(backend="onnx"))
    assert (onnx.name, onnx.checkpoint, onnx.key) == (models.DEFAULT_EMBEDDER, info.checkpoint,
                                                      f"{info.checkpoint}|onnx|float32|cpu")
    assert str(onnx).endswith("dtype: float32 (ONNX Runtime)")


def test_models_does_not_import_the_modules_that_use_it():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(models))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("helpers.")} - {"helpers.cache", "helpers.hub", "helpers.onnx_backend"}


def test_hub_module_stays_free_of_torch():
    import subprocess
    import sys

    code = ("import sys, helpers.hub as h; h.folder_fingerprint(h.packaged_path(h.DEFAULT_EMBEDDER)); "
            "h.hub_revision('my-org/model'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
