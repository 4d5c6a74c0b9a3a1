"""Text generation with an instruct model: batched, greedy, cached on disk, and constrained choices.

The backend is a local transformers pipeline (``helpers.models.load_generator``) or an
OpenAI-compatible server (``helpers.endpoint``: set ``SCISCI_LLM_BASE_URL`` and ``SCISCI_LLM_MODEL``,
or pass an ``Endpoint``); every call prints which. Answers are cached by ``generator_key``, chat and
the settings that reach the model: a re-run is instant, a changed prompt is recomputed, a failed
request is asked again, an unreadable cache file is computed again (and says so).

    messages = [make_messages("Name three colours.", system="Answer briefly.")]
    generate(messages)                                              # -> ["Red, green, blue."]
    generate(messages, settings=GenerationSettings(max_new_tokens=20, do_sample=True, temperature=0.7))
    score_choices(messages, ["TRUE", "FALSE"])                      # -> a probability per choice
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.cache import cache_dir, content_hash, write_atomically
from helpers.endpoint import Endpoint, Failure

# --------------------------------------------------------------------------- messages and backends


def make_messages(user: str, system: str | None = None) -> list[dict]:
    """A chat as a list of ``{"role", "content"}`` dicts: an optional system message, then the user's."""
    if not isinstance(user, str) or not user.strip():
        raise ValueError("the user message is empty; write the question or instruction first")
    chat = [{"role": "system", "content": system}] if system else []
    return chat + [{"role": "user", "content": user}]


def _check_chats(messages_list) -> list[list[dict]]:
    """A list of chats; a single chat or a plain string is not accepted silently as many."""
    if isinstance(messages_list, (str, dict)) or (
        isinstance(messages_list, list) and messages_list and isinstance(messages_list[0], dict)
    ):
        raise ValueError("pass a list of chats, e.g. [make_messages('...')], not a single chat or string")
    chats = [make_messages(m) if isinstance(m, str) else m for m in messages_list]
    for i, chat in enumerate(chats):
        if not isinstance(chat, list) or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in chat):
            raise ValueError(f"chat {i} is not a list of {{'role', 'content'}} messages: {chat!r:.120}")
    return chats


def resolve_generator(generator=None):
    """What generates: a pipeline from ``load_generator``, a model name (loaded with it), an ``Endpoint``,
    or for None the endpoint of ``SCISCI_LLM_BASE_URL`` when it is set, else ``load_generator()``."""
    if generator is None and (endpoint := Endpoint.from_env()) is not None:
        return endpoint
    if generator is None or isinstance(generator, str):
        from helpers.models import load_generator

        return load_generator(generator)
    if isinstance(generator, Endpoint) or (hasattr(generator, "model") and hasattr(generator, "tokenizer")):
        return generator
    raise TypeError("generator must be a pipeline from load_generator, a model name, an Endpoint or None; "
                    f"got {type(generator).__name__}")


def generator_key(generator) -> str:
    """The one identity every generation cache uses for ``generator`` (resolved as ``generate`` does):
    ``Endpoint.key`` for a server, ``helpers.models.model_info(pipe).key`` for a local pipeline."""
    generator = resolve_generator(generator)
    if isinstance(generator, Endpoint):
        return generator.key
    from helpers.models import model_info

    return model_info(generator).key


def _backend(generator) -> tuple[str, str]:
    """(``generator_key``, description printed at each call) of a resolved generator."""
    if isinstance(generator, Endpoint):
        return generator.key, generator.describe()
    from helpers.models import model_info

    return generator_key(generator), f"{model_info(generator).name} (local transformers, {generator.model.device})"


def chat_prompts(messages_list, tokenizer) -> list[str]:
    """Chats rendered as prompt strings with the model's chat template, ending where the assistant speaks."""
    chats = _check_chats(messages_list)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer of {tokenizer.name_or_path!r} has no chat template; use an instruct model")
    return [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]


# --------------------------------------------------------------------------- the on-disk cache


def _cache_get(key: str, valid):
    """The cached output of ``key``, or None: missing, or unreadable (then one line names the file)."""
    path = cache_dir("generations") / f"{key}.json"
    if not path.exists():
        return None
    try:
        output = json.loads(path.read_text(encoding="utf-8"))["output"]
        problem = None if valid(output) else "an output of the wrong shape"
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:  # e.g. `null`, cut short, not JSON
        output, problem = None, f"{type(error).__name__}"
    if problem is None:
        return output
    print(f"The cache file {path} is unreadable ({problem}); computing it again replaces it.")
    return None


def _cache_lookup(keys: list[str], cache: bool, doing: str, valid) -> tuple[list, list[int]]:
    """The cached output of each key (None: missing) and the positions left to compute; prints how many.

    ``valid(output)``: whether a cached output has the right shape (else it is computed again).
    """
    found = [_cache_get(k, valid) if cache else None for k in keys]
    todo = [i for i, out in enumerate(found) if out is None]
    print(f"{doing}: {len(keys) - len(todo)} from the cache, {len(todo)} to compute.")
    return found, todo


def _cache_put(key: str, record: dict) -> None:
    text = json.dumps(record, ensure_ascii=False)
    write_atomically(cache_dir("generations") / f"{key}.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationSettings:
    """How ``generate`` decodes: greedy by default; ``do_sample=True`` samples at ``temperature`` from ``seed``.

    ``max_new_tokens``: the most tokens an answer gets. ``repetition_penalty`` (e.g. 1.3) divides the scores of
    tokens already in the chat, so a small model stops repeating one phrase; decoding stays deterministic.
    ``batch_size``: chats per forward pass of a local model, greedy only (a sampled chat runs alone, from its
    own seed, so its answer depends only on the chat, the seed and these settings); never part of a cache key.
    """

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float | None = None  # required > 0 when do_sample
    seed: int = 0
    repetition_penalty: float | None = None
    batch_size: int = 8  # local batching only; never part of a cache key

    def __post_init__(self):
        def whole(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        def positive(value) -> bool:
            number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            return number and math.isfinite(value) and value > 0

        for name in ("max_new_tokens", "batch_size"):
            if not whole(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number >= 1; got {getattr(self, name)!r}")
        if not whole(self.seed):
            raise ValueError(f"seed must be a whole number; got {self.seed!r}")
        if not isinstance(self.do_sample, (bool, np.bool_)):
            raise ValueError(f"do_sample must be True or False; got {self.do_sample!r}")
        if self.do_sample and not positive(self.temperature):
            raise ValueError("sampling needs a temperature > 0, e.g. GenerationSettings(do_sample=True, "
                             f"temperature=0.7); got temperature={self.temperature!r}")
        if not self.do_sample and self.temperature is not None:
            raise ValueError(f"temperature={self.temperature!r} applies only when sampling: add do_sample=True, "
                             "or leave temperature out for greedy decoding")
        if self.repetition_penalty is not None and not positive(self.repetition_penalty):
            raise ValueError(f"repetition_penalty must be a number > 0 (1 is none, e.g. 1.2) or None; "
                             f"got {self.repetition_penalty!r}")


def _sent_settings(generator, settings: GenerationSettings) -> dict:
    """The settings that reach the model, exactly: what a cache key and a cached record hold.

    For an endpoint, the request's fields besides model and messages (a 'plain' server gets no penalty).
    """
    if isinstance(generator, Endpoint):
        return generator.request_options(*_endpoint_arguments(settings))
    sent = {"max_new_tokens": int(settings.max_new_tokens), "do_sample": bool(settings.do_sample)}
    if settings.do_sample:
        sent.update(temperature=float(settings.temperature), seed=int(settings.seed))
    if settings.repetition_penalty is not None:
        sent["repetition_penalty"] = float(settings.repetition_penalty)
    return sent


def _endpoint_arguments(settings: GenerationSettings) -> tuple:
    """(max_tokens, temperature, repetition_penalty, seed) for ``Endpoint.complete``: temperature 0 is greedy."""
    if settings.do_sample:
        return settings.max_new_tokens, settings.temperature, settings.repetition_penalty, settings.seed
    return settings.max_new_tokens, 0.0, settings.repetition_penalty, None


def _batches(lengths: list[int], batch_size: int, min_fill: float = 0.8) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, to cut padding.

    A batch closes at ``batch_size`` items or at an item shorter than ``min_fill`` times its longest:
    one long outlier would otherwise make every row of its batch pay for its length.
    """
    batches = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if batches and len(batches[-1]) < batch_size and lengths[i] >= min_fill * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _left_pad(rows: list[list[int]], pad_id: int):
    """Token id lists -> (input_ids, attention_mask, position_ids) tensors, padded on the left."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def _generate_local(prompts_text: list[str], pipe, settings: GenerationSettings) -> list[str]:
    import torch
    from transformers import GenerationConfig

    model, tokenizer = pipe.model, pipe.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Chat templates write their own special tokens (e.g. BOS), so none are added here.
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts_text]
    limit = getattr(model.config, "max_position_embeddings", None)
    max_new_tokens, do_sample = settings.max_new_tokens, settings.do_sample
    for i, ids in enumerate(encoded):
        if limit and len(ids) + max_new_tokens > limit:
            raise ValueError(f"prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} it exceeds "
                             f"the model's context of {limit} tokens. Shorten it.")
    # An explicit config, so a model's own sampling defaults (e.g. Llama's temperature) don't apply.
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=settings.temperature if do_sample else None, top_p=None, top_k=None,
        repetition_penalty=settings.repetition_penalty,
        pad_token_id=pad_id, eos_token_id=model.generation_config.eos_token_id,
        bos_token_id=model.generation_config.bos_token_id,
    )
    # Greedy rows don't depend on their batch-mates; sampled ones would (one random stream, padding), so each
    # sampled chat runs alone from its own seed: its answer is the same alone or among others, as its cache key says.
    batches = [[i] for i in range(len(encoded))] if do_sample else _batches([len(e) for e in encoded],
                                                                             settings.batch_size)
    outputs = [""] * len(encoded)
    for batch in batches:
        if do_sample:
            torch.manual_seed(settings.seed)
        ids, mask, _ = _left_pad([encoded[i] for i in batch], pad_id)
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 generation_config=config)
        new_tokens = out[:, ids.shape[1]:]
        for i, row in zip(batch, new_tokens):
            outputs[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return outputs


def generate(chats, generator=None, settings: GenerationSettings = GenerationSettings(), cache: bool = True,
             errors: str = "raise") -> list:
    """The model's answer (str) to each chat (from ``make_messages``; a string is one user message), in order.

    ``settings``: how to decode (``GenerationSettings``: greedy, 128 new tokens by default). Locally, chats
    of similar length go to the model in batches; an endpoint gets them concurrently. ``cache=False``
    recomputes and stores nothing. A request that fails at an endpoint raises a RuntimeError once every
    other answer is in and cached; with ``errors="mark"`` its place holds a ``Failure`` (``.reason``)
    instead, asked again next run.
    """
    chats = _check_chats(chats)
    if not isinstance(settings, GenerationSettings):
        raise TypeError(f"settings must be a GenerationSettings, e.g. GenerationSettings(max_new_tokens=64); "
                        f"got {type(settings).__name__}")
    if errors not in ("raise", "mark"):
        raise ValueError(f"errors must be 'raise' or 'mark'; got {errors!r}")
    if not chats:
        return []
    generator = resolve_generator(generator)
    key, description = _backend(generator)
    sent = _sent_settings(generator, settings)
    keys = [content_hash(key, chat, sent) for chat in chats]
    outputs, todo = _cache_lookup(keys, cache, f"Generating {len(chats)} answer(s) with {description}",
                                  valid=lambda output: isinstance(output, str))
    if todo:
        if isinstance(generator, Endpoint):  # the one place where an endpoint and a local model part ways
            new = generator.complete([chats[i] for i in todo], *_endpoint_arguments(settings))
        else:
            new = _generate_local(chat_prompts([chats[i] for i in todo], generator.tokenizer), generator, settings)
        for i, text in zip(todo, new):
            outputs[i] = text
            if cache and not isinstance(text, Failure):
                _cache_put(keys[i], {"generator": key, "messages": chats[i], "settings": sent, "output": text})
        failed = [out for out in outputs if isinstance(out, Failure)]
        if failed:
            message = (f"{len(failed)} of {len(chats)} request(s) to {description} failed; the others are "
                       f"cached, so a re-run asks only for these. First reason: {failed[0].reason}")
            if errors == "raise":
                raise RuntimeError(message)
            print(message)
    return outputs


# --------------------------------------------------------------------------- constrained choice


def _choice_logprobs_local(prompt_ids: list[list[int]], choice_ids: list[list[int]], pipe,
                           batch_size: int) -> np.ndarray:
    """Log-probability ``(n_prompts, n_choices)`` of each choice's tokens following each prompt.

    Each prompt runs once; its key/value cache serves every choice (cropped back after each), so
    scoring k choices costs little more than one.
    """
    import torch
    from transformers import DynamicCache

    model, tokenizer = pipe.model, pipe.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = np.zeros((len(prompt_ids), len(choice_ids)))
    for batch in _batches([len(p) for p in prompt_ids], batch_size):
        ids, mask, positions = _left_pad([prompt_ids[i] for i in batch], pad_id)
        ids, mask, positions = ids.to(model.device), mask.to(model.device), positions.to(model.device)
        with torch.inference_mode():
            past = DynamicCache(config=model.config)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                        past_key_values=past, use_cache=True, logits_to_keep=1)
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            last_position = positions[:, -1:]
            for j, choice in enumerate(choice_ids):
                total = first[:, choice[0]].clone()
                if len(choice) > 1:
                    rest = torch.tensor(choice[:-1], device=model.device).repeat(len(batch), 1)
                    steps = torch.arange(1, len(choice), device=model.device)
                    out = model(input_ids=rest,
                                attention_mask=torch.cat([mask, torch.ones_like(rest)], dim=1),
                                position_ids=last_position + steps, past_key_values=past, use_cache=True)
                    logp = torch.log_softmax(out.logits.float(), dim=-1)
                    targets = torch.tensor(choice[1:], device=model.device).repeat(len(batch), 1)
                    total += logp.gather(2, targets.unsqueeze(-1)).squeeze(-1).sum(dim=1)
                    past.crop(-(len(choice) - 1))  # drop this choice's tokens; the prompt stays cached
                scores[batch, j] = total.cpu().numpy()
    return scores


def _first_choice_in(text: str, choices: list[str]) -> str | None:
    """The allowed choice that appears first in ``text`` as a whole word (any case), or None."""
    found = []
    for choice in choices:
        match = re.search(rf"(?<!\w){re.escape(choice)}(?!\w)", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), -len(choice), choice))
    return min(found)[2] if found else None


def _is_row_of(output, n: int) -> bool:
    """Whether a cached ``output`` is a row of ``n`` numbers (a log-probability per choice)."""
    return isinstance(output, list) and len(output) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in output)


def score_choices(messages_list, choices: list[str], generator=None, prefix: str = "",
                  batch_size: int = 8, cache: bool = True, errors: str = "raise") -> pd.DataFrame:
    """A constrained choice: how likely the model is to answer each chat with each of ``choices``.

    Locally, each choice's log-probability as the chat's continuation (after the assistant's ``prefix``),
    normalised over the choices. One row per chat: a probability column per choice (rows sum to 1),
    ``choice`` (the most probable) and ``mass`` (the total probability of any allowed choice: low means
    the model would rather write something else). An endpoint has no log-probabilities: the first
    allowed choice in its generated answer gets probability 1 (none: NaN). Failures as in ``generate``;
    with ``errors="mark"`` an ``error`` column holds the reason (or None) and a failed row is NaN.
    """
    from scipy.special import logsumexp, softmax

    chats = _check_chats(messages_list)
    choices = list(choices)
    if len(choices) < 2 or len(set(choices)) != len(choices) or not all(isinstance(c, str) and c for c in choices):
        raise ValueError(f"need at least two distinct, non-empty choices; got {choices!r}")
    generator = resolve_generator(generator)
    columns = choices + ["choice", "mass"] + (["error"] if errors == "mark" else [])
    if not chats:
        return pd.DataFrame(columns=columns)
    if isinstance(generator, Endpoint):  # no log-probabilities: parse the generated answer
        answers = generate(chats, generator, GenerationSettings(max_new_tokens=16), cache=cache, errors=errors)
        rows = []
        for answer in answers:
            failed = isinstance(answer, Failure)
            picked = None if failed else _first_choice_in(answer, choices)
            probs = [float(c == picked) if picked else np.nan for c in choices]
            rows.append(probs + [picked, np.nan] + ([answer.reason if failed else None] if errors == "mark" else []))
        return pd.DataFrame(rows, columns=columns)

    key, description = _backend(generator)
    keys = [content_hash(key, chat, {"choices": choices, "prefix": prefix, "kind": "score_choices"}) for chat in chats]
    doing = f"Scoring {len(choices)} choices for {len(chats)} chat(s) with {description}"
    logprobs, todo = _cache_lookup(keys, cache, doing, valid=lambda output: _is_row_of(output, len(choices)))
    if todo:
        tokenizer = generator.tokenizer
        texts = chat_prompts([chats[i] for i in todo], tokenizer)
        prompt_ids = [tokenizer(t + prefix, add_special_tokens=False)["input_ids"] for t in texts]
        choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        computed = _choice_logprobs_local(prompt_ids, choice_ids, generator, batch_size)
        for i, row in zip(todo, computed):
            logprobs[i] = [float(x) for x in row]
            if cache:
                _cache_put(keys[i], {"generator": key, "messages": chats[i], "choices": choices,
                                     "prefix": prefix, "output": logprobs[i]})
    logprobs = np.array(logprobs, dtype=float)
    probs = softmax(logprobs, axis=1)
    frame = pd.DataFrame(probs, columns=choices)
    frame["choice"] = [choices[j] for j in probs.argmax(axis=1)]
    frame["mass"] = np.exp(logsumexp(logprobs, axis=1))
    if errors == "mark":
        frame["error"] = None  # a local model raises instead of failing a row
    return frame
