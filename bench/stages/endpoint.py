"""Stage ``endpoint`` (the scaling path, run when named): cluster labels through a live ``transformers serve``."""
from __future__ import annotations

from bench.common import BENCH_TMP, SEED, Stage, device_and_threads, peak_mib, timed
from bench.tables import measured_when, num, ratio, same_answers, variant_table


def variants(device: str) -> list[str]:
    """The in-process pipeline, then the server at concurrency 1, 4 and 8."""
    return ["local", "conc:1", "conc:4", "conc:8"]


def job(variant: str, n: int | None) -> dict:
    """Cluster-label prompts through a live ``transformers serve`` at concurrency K (``conc:K``), or ``local`` batches.

    The chats are ``label_clusters``' (system prompt, worked examples, 10 sampled
    titles of a random group of course records; greedy, 32 new tokens, the
    course's repetition penalty). The server runs the packaged SmolLM2 on the
    CPU, started by this job and warmed with one request first; the time is
    of the requests only.
    """
    import numpy as np

    from helpers.data import load_corpus
    from helpers.endpoint import Endpoint
    from helpers.llm_labels import LabelSettings, label_clusters
    from helpers.models import load_generator
    from scale.serve import packaged_model_folder, transformers_server

    k = n or 8
    corpus = load_corpus("course")
    groups = np.random.default_rng(SEED).integers(0, k, len(corpus))
    info = device_and_threads()

    def run(generator):
        table = label_clusters(corpus, groups, generator, settings=LabelSettings(max_new_tokens=32), cache=False)
        return table["answer"].tolist(), table["error"].notna().sum()

    if variant == "local":
        pipe = load_generator()
        (answers, failed), wall, cpu = timed(run, pipe)
        settings = "label_clusters(generator=local pipeline), left-padded batches of 8, in this process"
    else:
        concurrency = int(variant.partition(":")[2])
        folder = packaged_model_folder()
        with transformers_server(folder, device="cpu", log_path=BENCH_TMP / f"serve-{concurrency}.log") as url:
            endpoint = Endpoint(url, str(folder), server="transformers", concurrency=concurrency, timeout=600, retries=1)
            first = groups == 0  # warm-up: another sample of one group
            label_clusters(corpus[first], groups[first], endpoint, settings=LabelSettings(seed=1), cache=False)
            (answers, failed), wall, cpu = timed(run, endpoint)
        settings = f"label_clusters(generator=Endpoint(transformers serve, concurrency={concurrency}))"
        cpu = None  # generation runs in the server's process
    n_groups = len(set(groups.tolist()))
    return {"n": n_groups, "seconds": wall, "cpu_seconds": cpu, "prompts_per_s": n_groups / wall,
            "failed": int(failed), "answers": answers, "settings": settings, "peak_mib": peak_mib(), **info}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The table of prompts/s against the local pipeline and against concurrency 1."""
    v = st["variants"]
    base = v.get("local", {})
    first = v.get("conc:1", {})
    lines = [f"## LLM work through an OpenAI-compatible server ({base.get('n', '?')} cluster-label prompts, "
             "packaged SmolLM2-135M on the CPU, greedy, 32 new tokens)", "",
             measured_when(st) + " `conc:K` sends the prompts to a live `transformers serve` (scale/serve.py) with "
             "at most K requests in flight; `local` is `label_clusters` on the in-process pipeline.", ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("prompts/s", lambda r: num(r.get("prompts_per_s"), 3)),
            ("wall s", lambda r: num(r.get("seconds"))),
            ("ratio to local", lambda r: ratio(r.get("prompts_per_s"), base.get("prompts_per_s"))),
            ("ratio to concurrency 1", lambda r: ratio(r.get("prompts_per_s"), first.get("prompts_per_s"))),
            ("same answers as local", lambda r: same_answers(r, base)),
            ("failed", lambda r: str(r.get("failed", "-")))]
    return lines + variant_table(st, cols) + [""], []


STAGE = Stage("endpoint", job=job, variants=variants, report=report, quick_size=3)
