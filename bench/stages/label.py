"""Stage ``label``: LLM cluster labels, one ``pipeline`` call per cluster against batched ``label_clusters``."""
from __future__ import annotations

from bench.common import SEED, Stage, course_embeddings, device_and_threads, peak_mib, timed
from bench.tables import measured_when, num, ratio, same_answers, variant_table


def variants(device: str) -> list[str]:
    """The per-cluster loop, then ``label_clusters`` in batches of 8 (and of 32 on a GPU)."""
    return ["baseline", "batched:8"] + (["batched:32"] if device == "cuda" else [])


def _clustered_records(k: int):
    """The course records with an abstract and their ``k`` KMeans clusters of the course embeddings."""
    from sklearn.cluster import KMeans

    from helpers.data import load_corpus

    corpus = load_corpus("course")
    df = corpus[corpus["has_abstract"]].reset_index(drop=True)
    return df, KMeans(k, n_init=4, random_state=SEED).fit_predict(course_embeddings())


def job(variant: str, n: int | None, max_new_tokens: int = 32) -> dict:
    """Label ``n`` clusters with the packaged generator: one ``pipeline`` call per cluster, or batched ``label_clusters``.

    Both send the same chats (``cluster_label_messages``: system prompt, worked
    examples, 10 sampled titles) and decode greedily for ``max_new_tokens`` with
    the course's repetition penalty, so their answers can be compared.
    ``batched:K`` with K other than 8 (label_clusters' batches) calls ``generate``
    on the same chats with batches of K.
    """
    from helpers.generation import generate
    from helpers.llm_labels import LabelSettings, cluster_label_messages, label_clusters, sample_titles
    from helpers.models import load_generator, model_info

    df, clusters = _clustered_records(n or 8)
    settings = LabelSettings(max_new_tokens=max_new_tokens)  # 10 titles, seed 0, the course's penalty
    titles = {c: df["title"][clusters == c].tolist() for c in sorted(set(clusters.tolist()))}
    chats = [cluster_label_messages(sample_titles(t, settings.n_titles, settings.seed, settings.title_words))
             for t in titles.values()]
    pipe = load_generator()
    info = {**device_and_threads(), "model": model_info(pipe).name, "max_new_tokens": max_new_tokens}
    if variant == "baseline":
        def run():
            answers = []
            for chat in chats:
                out = pipe(chat, max_new_tokens=max_new_tokens, do_sample=False,
                           repetition_penalty=settings.repetition_penalty)
                answers.append(out[0]["generated_text"][-1]["content"].strip())
            return answers

        settings_text = (f"pipe(chat, max_new_tokens={max_new_tokens}, do_sample=False, "
                         f"repetition_penalty={settings.repetition_penalty}), one call per cluster")
    else:
        batch_size = int(variant.partition(":")[2] or 8)

        def run():
            if batch_size == 8:
                return label_clusters(df, clusters, pipe, settings=settings, cache=False)["answer"].tolist()
            return generate(chats, pipe, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            repetition_penalty=settings.repetition_penalty, cache=False)

        settings_text = (f"{'label_clusters' if batch_size == 8 else 'generate'}(batch_size={batch_size}, greedy, "
                         "same penalty), left-padded batches")
    answers, wall, cpu = timed(run)
    tokens = sum(len(pipe.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    return {"n": len(titles), "seconds": wall, "cpu_seconds": cpu, "new_tokens": tokens,
            "tokens_per_s": tokens / wall, "answers": answers, "settings": settings_text, "peak_mib": peak_mib(),
            **info}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The labelling table (tokens/s, answers equal to the baseline's) and the speed target of each variant."""
    v = st["variants"]
    base = v.get("baseline", {})
    lines = [f"## LLM cluster labels ({base.get('n', '?')} clusters, {base.get('model', '?')}, greedy, "
             f"at most {base.get('max_new_tokens', '?')} new tokens)", "", measured_when(st), ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("new tokens", lambda r: str(r.get("new_tokens", "-"))),
            ("wall s", lambda r: num(r.get("seconds"))), ("tokens/s", lambda r: num(r.get("tokens_per_s"))),
            ("ratio", lambda r: ratio(r.get("tokens_per_s"), base.get("tokens_per_s"))),
            ("same answers as baseline", lambda r: same_answers(r, base)),
            ("peak MiB", lambda r: num(r.get("peak_mib"), 0))]
    lines += variant_table(st, cols) + [""]
    targets = []
    for name, r in v.items():
        if name != "baseline" and "tokens_per_s" in r and base.get("tokens_per_s"):
            speedup = r["tokens_per_s"] / base["tokens_per_s"]
            same = sum(a == b for a, b in zip(r["answers"], base["answers"]))
            need = 5 if r.get("device") == "cuda" else 1.5
            targets.append((f"Labeling `{name}` >= {need}x baseline tokens/s, same greedy outputs",
                            f"{speedup:.2f}x, {same}/{len(base['answers'])} identical",
                            speedup >= need and same == len(base["answers"])))
    return lines, targets


STAGE = Stage("label", job=job, variants=variants, report=report, quick_size=3)
