"""One identity per model (``ModelInfo.key``): two real model folders, a folder named like the packaged
copy, another owner's model of the same name and the hub cache are never confused, online or offline.

The second models are the packaged MiniLM copied into temporary folders, one copy with its weights
perturbed. Tests run offline (conftest sets ``HF_HUB_OFFLINE=1``) with their own course cache.
"""
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import hub, models
from helpers.embeddings import embed_texts

TEXTS = ["Citation counts follow a heavy-tailed distribution.", "Peer review delays publication.",
         "Co-authorship networks grow by preferential attachment."]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _perturb(folder, seed: int) -> None:
    """Add small Gaussian noise to every float weight of the model in ``folder``."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    weights = load_file(path)
    noise = torch.Generator().manual_seed(seed)
    save_file({k: v + 0.02 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v
               for k, v in weights.items()}, path, metadata={"format": "pt"})


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """A course cache of this module's own: its entries can be counted, and no other test's are reused."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCISCI_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``a/model``: the packaged MiniLM's files; ``b/model``: the same, weights perturbed;
    ``elsewhere/all-MiniLM-L6-v2``: b's files in a folder named like the packaged model."""
    root = tmp_path_factory.mktemp("models")
    packaged = hub.packaged_path(models.DEFAULT_EMBEDDER)
    a, b, alike = root / "a" / "model", root / "b" / "model", root / "elsewhere" / "all-MiniLM-L6-v2"
    shutil.copytree(packaged, a)
    shutil.copytree(packaged, b)
    _perturb(b, seed=0)
    shutil.copytree(b, alike)
    return SimpleNamespace(root=root, a=a, b=b, alike=alike)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; ``add(name, folder)`` puts ``folder`` in it as the snapshot ``COMMIT`` of ``name``."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def add(name: str, folder) -> None:
        repo = tmp_path / "hub" / f"models--{name.replace('/', '--')}"
        snapshot = repo / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for file in folder.iterdir():  # the hub cache links its snapshots' files to blobs likewise
            (snapshot / file.name).symlink_to(file)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)

    return SimpleNamespace(add=add)


def _embedding_files():
    from helpers.cache import cache_dir

    return set(cache_dir("embeddings").glob("*.npy"))


def test_two_folders_named_model_give_their_own_vectors_and_cache_entries(folders, monkeypatch):
    from sentence_transformers import SentenceTransformer

    before = _embedding_files()
    a, b = embed_texts(TEXTS, str(folders.a)), embed_texts(TEXTS, str(folders.b))
    assert len(_embedding_files() - before) == 2  # one entry each
    assert not np.allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(b, SentenceTransformer(str(folders.b), device="cpu").encode(
        TEXTS, normalize_embeddings=True), atol=1e-5)  # b's own weights, not a's
    info_a, info_b = models.embedder_info(str(folders.a)), models.embedder_info(str(folders.b))
    assert (info_a.name, info_b.name) == (str(folders.a.resolve()), str(folders.b.resolve()))
    assert info_a.revision != info_b.revision and info_a.key != info_b.key
    # A re-run by name is answered from the cache without loading either model.
    monkeypatch.setattr("helpers.embeddings.load_embedder", lambda *a, **k: pytest.fail("loaded a model"))
    np.testing.assert_array_equal(embed_texts(TEXTS, str(folders.b)), b)
    np.testing.assert_array_equal(embed_texts(TEXTS, str(folders.a)), a)


def test_onnx_exports_of_two_folders_named_model_are_kept_apart(folders):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from helpers.onnx_backend import export_folder

    onnx_a = models.load_embedder(str(folders.a), backend="onnx")
    onnx_b = models.load_embedder(str(folders.b), backend="onnx")
    info_a, info_b = models.model_info(onnx_a), models.model_info(onnx_b)
    assert info_a.backend == info_b.backend == "onnx" and info_a.key != info_b.key
    assert export_folder(info_a.checkpoint, "onnx") != export_folder(info_b.checkpoint, "onnx")
    assert (export_folder(info_b.checkpoint, "onnx") / "model.onnx").is_file()
    vectors_a, vectors_b = embed_texts(TEXTS, onnx_a, cache=False), embed_texts(TEXTS, onnx_b, cache=False)
    np.testing.assert_allclose(vectors_a, embed_texts(TEXTS, str(folders.a)), atol=1e-4)
    np.testing.assert_allclose(vectors_b, embed_texts(TEXTS, str(folders.b)), atol=1e-4)
    assert not np.allclose(vectors_a, vectors_b, atol=1e-3)
    assert models.embedder_info(str(folders.b), "onnx").key == info_b.key  # known by name, without loading


def test_folder_named_like_the_packaged_model_is_loaded_as_itself(folders, embedder, monkeypatch, capsys):
    alike = models.load_embedder(str(folders.alike))
    info = models.model_info(alike)
    assert (info.name, info.source) == (str(folders.alike.resolve()), "local folder")
    packaged = embed_texts(TEXTS, embedder, cache=False)
    assert not np.allclose(embed_texts(TEXTS, alike, cache=False), packaged, atol=1e-3)
    # A folder of that bare name in the working directory wins over the bare-name alias of the packaged copy.
    monkeypatch.chdir(folders.alike.parent)
    assert models.model_location("all-MiniLM-L6-v2") == str(folders.alike.resolve())
    assert models.embedder_info("all-MiniLM-L6-v2").name == str(folders.alike.resolve())
    assert "instead" not in capsys.readouterr().out


def test_another_owners_model_of_the_same_name_is_not_the_packaged_copy(folders, embedder, hub_cache):
    name = "my-org/all-MiniLM-L6-v2"
    assert hub.packaged_path(name) is None and hub.packaged_path("SmolLM2-135M-Instruct") is None
    with pytest.raises(RuntimeError, match="my-org/all-MiniLM-L6-v2' is not installed locally"):
        models.load_embedder(name)  # offline, not cached: an error, never the packaged copy
    hub_cache.add(name, folders.b)  # now in the hub cache, with b's weights
    predicted = models.embedder_info(name)
    loaded = models.model_info(models.load_embedder(name))
    assert (loaded.name, loaded.source, loaded.revision) == (name, "Hugging Face hub", COMMIT)
    assert predicted.key == loaded.key == f"{name}@{COMMIT}|torch|float32|cpu"
    vectors = embed_texts(TEXTS, name)
    np.testing.assert_allclose(vectors, embed_texts(TEXTS, str(folders.b)), atol=1e-6)
    assert not np.allclose(vectors, embed_texts(TEXTS, embedder, cache=False), atol=1e-3)


def test_identity_differs_by_backend_dtype_and_device(embedder):
    torch_cpu = models.embedder_info(models.DEFAULT_EMBEDDER)
    assert torch_cpu.key == models.model_info(embedder).key  # a name resolves to the loaded model's identity
    assert torch_cpu.key.startswith(f"{models.DEFAULT_EMBEDDER}@sha256:") and torch_cpu.key.endswith("|torch|float32|cpu")
    infos = [torch_cpu, models.embedder_info(models.DEFAULT_EMBEDDER, "onnx"),
             models.embedder_info(models.DEFAULT_EMBEDDER, "onnx-int8"),
             models.embedder_info(models.DEFAULT_EMBEDDER, device="cuda")]
    assert len({i.key for i in infos}) == 4 and len({i.checkpoint for i in infos}) == 1
    assert (infos[3].dtype, infos[3].key.split("|")[-1]) == ("float16", "cuda")
    half = models.model_info(embedder.__class__(models.model_location(models.DEFAULT_EMBEDDER), device="cpu").half())
    assert half.checkpoint == torch_cpu.checkpoint and half.dtype == "float16" and half.key != torch_cpu.key
    assert str(torch_cpu) == (f"Model: {models.DEFAULT_EMBEDDER} | from: {torch_cpu.source} | device: cpu | dtype: float32")


def test_fingerprint_reads_each_weight_file_once_and_sees_any_change(folders, tmp_path, monkeypatch):
    packaged = hub.packaged_path(models.DEFAULT_EMBEDDER)
    assert hub.folder_fingerprint(folders.a) == hub.folder_fingerprint(packaged)  # same bytes, same fingerprint
    cold = [hub.folder_fingerprint(f) for f in (folders.a, folders.b, folders.alike)]
    assert cold[0] != cold[1] == cold[2]  # b and alike hold the same bytes
    # Warm, even in a new session (memory cleared), the weights are not read again: the disk cache answers.
    def open_small_files_only(path, *args, **kwargs):
        assert not path.endswith("model.safetensors"), f"read {path} again"
        return open(path, *args, **kwargs)

    hub._file_digest.cache_clear()
    monkeypatch.setattr(hub, "open", open_small_files_only, raising=False)
    assert [hub.folder_fingerprint(f) for f in (folders.a, folders.b, folders.alike)] == cold
    monkeypatch.undo()
    # Changed bytes of the same size with the old modification time restored are still seen.
    copy = shutil.copytree(folders.a, tmp_path / "copy")
    before, weights = hub.folder_fingerprint(copy), copy / "model.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))

    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns and weights.stat().st_size == stat.st_size
    assert hub.folder_fingerprint(copy) != before


def test_local_generator_folder_loads_as_itself_offline(embedder, tmp_path, capsys):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "tiny-chat-model"
    tokenizer = AutoTokenizer.from_pretrained(hub.packaged_path(models.DEFAULT_EMBEDDER))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    pipe = models.load_generator(str(folder), device="cpu", fallback=False)
    info = models.model_info(pipe)
    assert (info.name, info.source) == (str(folder.resolve()), "local folder")
    assert info.key == f"{folder.resolve()}@{hub.folder_fingerprint(folder)}|torch|float32|cpu"
    assert "instead" not in capsys.readouterr().out
    assert pipe("citation", max_new_tokens=3, do_sample=False)[0]["generated_text"].startswith("citation")


def test_a_path_with_no_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model folder at"):
        models.load_embedder(str(tmp_path / "missing" / "model"))
    with pytest.raises(FileNotFoundError, match="No model folder at"):
        models.load_generator(str(tmp_path / "missing"), fallback=True)  # a typo in a path is not swapped


def test_hub_online_retries_a_failed_probe_after_a_minute(monkeypatch):
    clock, probes = [1000.0], []

    def connect(address, timeout):
        probes.append(address)
        if len(probes) == 1:
            raise OSError("network is unreachable")
        return SimpleNamespace(close=lambda: None)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "_online", False)
    monkeypatch.setattr(hub, "_last_failed_probe", None)
    monkeypatch.setattr(hub, "monotonic", lambda: clock[0])
    monkeypatch.setattr(hub.socket, "create_connection", connect)
    assert hub.hub_online() is False and len(probes) == 1
    clock[0] += 30
    assert hub.hub_online() is False and len(probes) == 1  # within the minute: not probed again
    clock[0] += hub.PROBE_RETRY_SECONDS
    assert hub.hub_online() is True and len(probes) == 2  # a minute later: probed, and now reachable
    clock[0] += 3600
    assert hub.hub_online() is True and len(probes) == 2  # a success is kept for the session
