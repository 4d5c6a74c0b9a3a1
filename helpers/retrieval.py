"""Search abstracts and PDF passages, and answer questions from what was found.

Search is hybrid by default: the cosine of sentence embeddings (good at paraphrases) fused with
Okapi BM25 (exact words: acronyms, method names) by reciprocal-rank fusion. ``build_index`` computes
all that does not depend on the query once. The dense step is exact search (one matrix-vector
product), fine for thousands of records; for millions a vector index (e.g. FAISS) would replace it.

    abstracts = build_index(corpus[corpus.has_abstract])
    search(abstracts, "BERTopic", k=5)               # method="hybrid" | "dense" | "lexical"
    passages = build_index(label_passages(split_passages(pages), corpus))
    everything = combine_indexes(abstract=abstracts, passage=passages)
    answer(everything, "How is disruption measured?")  # cited answer with numbered sources, or "nothing relevant"
"""
from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from helpers import generation
from helpers.checks import require_columns
from helpers.data import doi_from_filename
from helpers.embeddings import check_texts, embed_texts
from helpers.models import DEFAULT_EMBEDDER, load_query_embedder, model_info
from helpers.prompts import RAG_CANNOT_ANSWER, RAG_PROMPT, ChatPrompt
from helpers.text import bm25_scores, bm25_weights, join_on_doi, split_sentences

METHODS = ("dense", "lexical", "hybrid")
RRF_K = 60  # reciprocal-rank fusion constant: 1 / (60 + rank) from each list
QUERY_CACHE_SIZE = 4096  # query vectors remembered per session (1.5 KiB each)
FUSION_DEPTH = 30  # hits of each method that enter the fusion; deeper lists let many weak matches outvote a top hit
# Lowest cosine for a hit to count as relevant in `answer`: on the course's abstracts + passages (all-MiniLM-L6-v2),
# the best hit of the 10 off-topic queries in retrieval_queries.csv scored 0.11-0.31, of the 30 on-topic ones
# 0.35-0.84 (short acronym queries such as "the COM-B model" lowest); 0.33 lies between.
MIN_SCORE = 0.33
ANSWER_TOKENS = 200  # the most an answer may be: 2 to 4 sentences with their citations
QUERIES_CSV = Path(__file__).with_name("retrieval_queries.csv")
# Columns of a record that search results show, in this order, when the records have them.
HIT_COLUMNS = ["source", "title", "year", "doi", "file", "page"]
# What `answer` says, without asking the model, when no hit reaches the threshold, or none shares a word.
NOTHING_FOUND = ("Nothing relevant found: the best match has cosine {best:.2f}, below the threshold "
                 "{min_score:.2f}. No answer was generated; rephrase the question or search other sources.")
NO_SHARED_WORD = ("Nothing relevant found: no record shares a word with the question. No answer was generated; "
                  "rephrase the question or search with method='hybrid'.")
SOURCE_WORDS = 150  # words of each source the model is given

@dataclass(frozen=True, repr=False)
class SearchIndex:
    """What ``search`` needs, computed once by ``build_index``.

    records: the rows (index 0..n-1); embeddings: float32 ``(n, dim)``, L2-normalised; term_weights: BM25 weights
    ``(n, n_terms)``, CSC so a term's column is one slice; vocabulary: term -> column; model: the queries' embedder.
    """

    records: pd.DataFrame
    embeddings: np.ndarray
    term_weights: sparse.csc_matrix
    vocabulary: dict
    model: object
    text_column: str

    def __repr__(self) -> str:
        return (f"SearchIndex({len(self.records)} records, {self.embeddings.shape[1]}-d embeddings from {_model_key(self.model)}, "
                f"{len(self.vocabulary)} BM25 terms)")


def _model_key(model) -> str:
    return model if isinstance(model, str) else model_info(model).key


def build_index(records: pd.DataFrame, text_column: str = "text", embeddings: np.ndarray | None = None,
                model=DEFAULT_EMBEDDER) -> SearchIndex:
    """A search index over ``records[text_column]`` (all columns kept): embeddings and BM25 weights, computed once.

    ``embeddings``: float32 ``(n, dim)``, rows L2-normalised, else ``embed_texts`` (cached: notebook 2's are
    reused); ``model`` must be the one they came from, as queries are embedded with it.
    """
    require_columns(records, [text_column], "records")
    if records.empty:
        raise ValueError("records is empty: there is nothing to search")
    records = records.reset_index(drop=True)
    texts = check_texts(records[text_column])
    if embeddings is None:
        embeddings = embed_texts(texts, model)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(records):
        raise ValueError(f"embeddings must have one row per record: shape {embeddings.shape} for {len(records)} records")
    if not np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-3):
        raise ValueError("embeddings must be L2-normalised (as embed_texts returns them); "
                         "divide each row by its norm first")
    term_weights, vocabulary = bm25_weights(texts)
    return SearchIndex(records, np.ascontiguousarray(embeddings), term_weights, vocabulary, model, text_column)


def label_passages(passages: pd.DataFrame, corpus: pd.DataFrame) -> pd.DataFrame:
    """Passages (from ``split_passages``) with the ``doi`` (from the file name), ``title`` and ``year``
    of their article (from the corpus record with that DOI, any case; NaN when there is none)."""
    require_columns(passages, ["file", "page", "text"], "passages", "pass the frame from split_passages")
    require_columns(corpus, ["doi", "title", "year"], "corpus", "pass the frame from load_corpus")
    out = passages.drop(columns=[c for c in ("doi", "title", "year") if c in passages.columns])
    out = join_on_doi(out.assign(doi=out["file"].map(doi_from_filename)), corpus, ["title", "year"])
    out = out[["title", "year", "doi", *passages.columns.drop(["doi", "title", "year"], errors="ignore")]]
    out["year"] = out["year"].astype("Int64")
    return out.reset_index(drop=True)


def combine_indexes(**indexes: SearchIndex) -> SearchIndex:
    """One index over the records of several from the same embedder, e.g. ``combine_indexes(abstract=a, passage=p)``.

    A ``source`` column names where each record came from; embeddings are reused, BM25 recomputed over all.
    """
    if not indexes:
        raise ValueError("pass at least one index, e.g. combine_indexes(abstract=a, passage=p)")
    first = next(iter(indexes.values()))
    models = {_model_key(ix.model) for ix in indexes.values()}
    if len(models) > 1:
        raise ValueError(f"the indexes were embedded with different models ({', '.join(sorted(models))}); "
                         "their similarities are not comparable")
    frames = []
    for name, ix in indexes.items():
        frame = ix.records.drop(columns=["text"]) if ix.text_column != "text" and "text" in ix.records else ix.records
        frames.append(frame.rename(columns={ix.text_column: "text"}).assign(source=name))
    records = pd.concat(frames, ignore_index=True)
    embeddings = np.vstack([ix.embeddings for ix in indexes.values()])
    return build_index(records, "text", embeddings=embeddings, model=first.model)


def _check_query(query, k) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"the query is empty; write what you are looking for (got {query!r})")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a whole number >= 1 (the number of results); got {k!r}")


def embed_query(index: SearchIndex, query: str) -> np.ndarray:
    """The query's embedding ``(dim,)`` with the index's model (``load_query_embedder``), float32, read-only;
    remembered for the session, as notebooks ask the same query with several methods."""
    return _query_vector(index.model, query)


@functools.lru_cache(maxsize=QUERY_CACHE_SIZE)
def _query_vector(model, query: str) -> np.ndarray:
    vector = embed_texts([query], load_query_embedder(model), cache=False, show_progress=False)[0]
    vector.setflags(write=False)  # one array is handed out for every repeat of the query
    return vector


def lexical_scores(index: SearchIndex, query: str) -> np.ndarray:
    """BM25 score ``(n,)`` of every record for the query (0 where no query term occurs)."""
    return bm25_scores(index.term_weights, index.vocabulary, query)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # installed with scikit-learn

    return ThreadpoolController()


def dense_scores(index: SearchIndex, query_vector: np.ndarray) -> np.ndarray:
    """Cosine ``(n,)`` of every record with the query vector (exact search: one matrix-vector product)."""
    # On one BLAS thread: waking several threads for one product costs more than it saves
    # (up to 20 ms instead of 0.2 ms on a busy 2-core machine).
    with _blas_controller().limit(limits=1, user_api="blas"):
        return index.embeddings @ np.asarray(query_vector, dtype=np.float32)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest scores, best first (ties: lower position first)."""
    ids = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return ids[np.lexsort((ids, -scores[ids]))]


def _ranks(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each record in ``ids`` among all records: 1 + how many score higher."""
    return 1 + (scores[None, :] > scores[ids, None]).sum(axis=1)


def search(index: SearchIndex, query: str, k: int = 10, method: str = "hybrid") -> pd.DataFrame:
    """The ``k`` records that best match ``query``, best first (lexical: only records sharing a word, maybe fewer).

    ``method``: "dense" (cosine), "lexical" (BM25) or "hybrid" (sum of 1 / (60 + rank) over the top
    ``max(k, FUSION_DEPTH)`` of each). Columns: ``rank``, ``score`` (the method's), ``dense_rank``,
    ``dense_score`` (the cosine whatever the method: use it for thresholds), ``lexical_rank`` (<NA>: no
    query word occurs), ``lexical_score``, the record's title, year, doi, source, file, page where it has
    them, ``text`` and ``record`` (its row in ``index.records``).
    """
    _check_query(query, k)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return _search(index, query, embed_query(index, query), k, method)


def _search(index: SearchIndex, query: str, query_vector: np.ndarray, k: int, method: str) -> pd.DataFrame:
    cosines = dense_scores(index, query_vector)
    bm25 = lexical_scores(index, query)
    n_candidates = max(k, FUSION_DEPTH)
    if method == "dense":
        ids = _top(cosines, k)
        scores = cosines[ids]
    else:
        matching = np.flatnonzero(bm25 > 0)
        lexical_ids = matching[_top(bm25[matching], n_candidates)]
        if method == "lexical":
            ids = lexical_ids[:k]
            scores = bm25[ids]
        else:
            dense_ids = _top(cosines, n_candidates)
            fused = np.zeros(len(cosines))
            fused[dense_ids] += 1 / (RRF_K + np.arange(1, len(dense_ids) + 1))
            fused[lexical_ids] += 1 / (RRF_K + np.arange(1, len(lexical_ids) + 1))
            pool = np.union1d(dense_ids, lexical_ids)
            # Ties in fused score (common: rank r in one list only) go to the higher cosine.
            ids = pool[np.lexsort((-cosines[pool], -fused[pool]))][:k]
            scores = fused[ids]
    lexical_rank = pd.array(_ranks(bm25, ids), dtype="Int64")
    lexical_rank[bm25[ids] <= 0] = pd.NA
    columns = {
        "rank": np.arange(1, len(ids) + 1),
        "score": scores.astype(float),
        "dense_rank": _ranks(cosines, ids),
        "dense_score": cosines[ids].astype(float),
        "lexical_rank": lexical_rank,
        "lexical_score": bm25[ids].astype(float),
    }
    records = index.records
    for column in HIT_COLUMNS:
        if column in records.columns:
            columns[column] = records[column].array[ids]
    columns["text"] = records[index.text_column].array[ids]
    columns["record"] = ids
    return pd.DataFrame(columns)


def compare_methods(index: SearchIndex, query: str, k: int = 5, column: str = "title") -> pd.DataFrame:
    """The top ``k`` ``column`` values (e.g. titles) of dense, lexical and hybrid search side by side."""
    _check_query(query, k)
    vector = embed_query(index, query)
    table = {}
    for method in METHODS:
        hits = _search(index, query, vector, k, method)
        table[method] = list(hits[column].astype(str)) + [""] * (k - len(hits))
    return pd.DataFrame(table, index=pd.RangeIndex(1, k + 1, name="rank"))


# --------------------------------------------------------------------------- evaluation


def load_queries(path=QUERIES_CSV) -> pd.DataFrame:
    """The query set: ``query``, ``kind``, and the ``doi`` and ``title`` of the record that answers it.

    ``kind``: "lexical" (an exact acronym or method name), "paraphrase", "question" or "off_topic"
    (nothing answers it: no doi or title).
    """
    return pd.read_csv(path, dtype=str, keep_default_na=False).replace("", pd.NA)


def _targets(index: SearchIndex, queries: pd.DataFrame) -> list[np.ndarray]:
    """For each query, the set of record ids that count as its answer (same DOI, else same title)."""
    records = index.records
    doi = records["doi"].str.lower() if "doi" in records else pd.Series(pd.NA, index=records.index)
    title = records["title"].str.strip().str.lower() if "title" in records else pd.Series(pd.NA, index=records.index)
    targets = []
    for row in queries.itertuples(index=False):
        want_doi, want_title = getattr(row, "doi", None), getattr(row, "title", None)
        if isinstance(want_doi, str) and want_doi.strip():
            targets.append(np.flatnonzero(doi == want_doi.strip().lower()))
        elif isinstance(want_title, str) and want_title.strip():
            targets.append(np.flatnonzero(title == want_title.strip().lower()))
        else:  # e.g. an off-topic query: no record answers it
            targets.append(np.array([], dtype=int))
    return targets


def target_ranks(index: SearchIndex, queries: pd.DataFrame, methods=METHODS, depth: int = FUSION_DEPTH) -> pd.DataFrame:
    """``queries`` (``query``, and ``doi`` or ``title`` of the answer) with the answer's rank under each method.

    A rank is <NA> when the answer is not in the top ``depth``. Queries without an answer (off-topic) or
    whose answer is not in the index are left out, and a message counts them.
    """
    require_columns(queries, ["query"], "queries", "pass load_queries() or a frame like it")
    if not {"doi", "title"} & set(queries.columns):
        raise ValueError("queries needs a 'doi' or 'title' column naming the record that answers each query")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    queries = queries.reset_index(drop=True)
    for q in queries["query"]:
        _check_query(q, depth)
    targets = _targets(index, queries)
    found = np.array([len(t) > 0 for t in targets])
    if not found.all():
        print(f"{(~found).sum()} of {len(queries)} queries left out: they name no record (off-topic) "
              "or their record is not in the index.")
    queries, targets = queries[found].reset_index(drop=True), [t for t in targets if len(t)]
    if queries.empty:
        raise ValueError("none of the queries' answers is among the index's records; check the doi/title columns")
    vectors = embed_texts(list(queries["query"]), index.model)
    ranks = {m: [] for m in methods}
    for query, vector, target in zip(queries["query"], vectors, targets):
        for method in methods:
            hits = _search(index, query, vector, depth, method)["record"].to_numpy()
            where = np.flatnonzero(np.isin(hits, target))
            ranks[method].append(int(where[0]) + 1 if len(where) else pd.NA)
    for method in methods:
        queries[method] = pd.array(ranks[method], dtype="Int64")
    return queries


def recall_at_k(index: SearchIndex, queries: pd.DataFrame, ks=(1, 10), methods=METHODS) -> pd.DataFrame:
    """Recall@k per method (rows): the share of queries whose answer is in the top k; columns ``recall@k``
    for each k, and ``n_queries``."""
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in ks):
        raise ValueError(f"ks must be whole numbers >= 1; got {ks!r}")
    ranks = target_ranks(index, queries, methods, depth=max(ks))
    table = {f"recall@{k}": [float((ranks[m].fillna(k + 1) <= k).mean()) for m in methods] for k in ks}
    table["n_queries"] = len(ranks)
    return pd.DataFrame(table, index=pd.Index(list(methods), name="method"))


# --------------------------------------------------------------------------- answers


def _source_text(row) -> str:
    """What the model is given of a source's text: its first ``SOURCE_WORDS`` words."""
    return " ".join(str(getattr(row, "text", "")).split()[:SOURCE_WORDS])


def format_sources(sources: pd.DataFrame) -> str:
    """Numbered sources for a prompt: ``[1] Title (year), p. 3: text``, each text cut to ``SOURCE_WORDS`` words."""
    lines = []
    for row in sources.itertuples(index=False):
        title, file = getattr(row, "title", None), getattr(row, "file", None)
        where = title if isinstance(title, str) and title else file if isinstance(file, str) else "untitled"
        if pd.notna(year := getattr(row, "year", None)):
            where += f" ({year})"
        if pd.notna(page := getattr(row, "page", None)):
            where += f", p. {int(page)}"
        cut = len(str(getattr(row, "text", "")).split()) > SOURCE_WORDS
        lines.append(f"[{row.number}] {where}: {_source_text(row)}{' [...]' if cut else ''}")
    return "\n\n".join(lines)


def _print_sources(sources: pd.DataFrame) -> None:
    for row in sources.itertuples(index=False):
        title = getattr(row, "title", None)
        title = title if isinstance(title, str) and title else "untitled"
        bits = [f"[{row.number}]", title if len(title) <= 90 else title[:87] + "..."]
        if pd.notna(getattr(row, "year", None)):
            bits.append(f"({row.year})")
        if isinstance(getattr(row, "doi", None), str):
            bits.append(f"doi:{row.doi}")
        if isinstance(getattr(row, "file", None), str):
            bits.append(f"{row.file} p. {row.page}")
        bits.append(f"cosine {row.dense_score:.2f}")
        print("  " + " ".join(bits))


_CITATION = re.compile(r"\[(\d+(?:\s*[,;-]\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """The source numbers an answer cites, in order of first citation: ``"... [2][1, 3] ... [2]"`` -> ``[2, 1, 3]``
    (``[1-3]`` counts as 1, 2, 3)."""
    found = []
    for group in _CITATION.findall(text or ""):
        for part in re.split(r"\s*[,;]\s*", group):
            low, _, high = part.partition("-")
            found += range(int(low), int(high or low) + 1) if int(high or low) - int(low) < 20 else [int(low)]
    return list(dict.fromkeys(found))


def extractive_answer(sources: pd.DataFrame, question: str, model=DEFAULT_EMBEDDER, n_sentences: int = 3) -> str:
    """An answer made of the sources' own sentences: the ``n_sentences`` most similar to ``question`` (cosine of
    ``model``'s embeddings), each followed by its source's ``[n]`` and kept only where it occurs word for word in
    the text the model was given (``format_sources``' cut)."""
    candidates = [(row.number, sentence) for row in sources.itertuples(index=False)
                  for sentence in split_sentences(_source_text(row), min_words=5)]
    candidates = [(n, s) for n, s in candidates if s in _source_text(sources.loc[sources["number"] == n].iloc[0])]
    if not candidates:
        return RAG_CANNOT_ANSWER
    similarity = embed_texts([s for _, s in candidates], model, cache=False) @ embed_texts([question], model, cache=False)[0]
    best = sorted(np.argsort(-similarity, kind="stable")[:n_sentences])  # in the sources' order
    return " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in best)


def answer(index: SearchIndex, question: str, generator=None, k: int = 4, min_score: float = MIN_SCORE,
           method: str = "hybrid", prompt: ChatPrompt = RAG_PROMPT, verbose: bool = True) -> dict:
    """Answer ``question`` from the ``k`` best records of ``index``, citing them as [1], [2], ...

    Hits with a cosine below ``min_score`` are dropped; when none is left the model is not asked and the answer
    says so. Otherwise the numbered sources and the question fill ``prompt`` and ``generate`` writes the answer
    (greedy, cached). The ``[n]`` it cites are checked against the sources; when it cites none that exists,
    the answer is ``extractive_answer``'s instead (the sources' own sentences, each with its number).
    Prints the answer, which kind it is and the sources; returns ``{"question", "answer", "kind"``
    ("generated", "extractive", "refused" or "nothing relevant"), ``"citations"`` (the valid numbers cited),
    ``"generated"`` (the model's text, or None), ``"sources"`` (the hits, numbered), ``"relevant"``}``.
    """
    prompt.require("sources", "question")
    hits = search(index, question, k=k, method=method)
    sources = hits[hits["dense_score"] >= min_score].reset_index(drop=True)
    sources.insert(0, "number", np.arange(1, len(sources) + 1))
    generated, citations = None, []
    if sources.empty:
        kind = "nothing relevant"
        text = (NOTHING_FOUND.format(best=hits["dense_score"].max(), min_score=min_score) if len(hits)
                else NO_SHARED_WORD)
    else:
        chat = prompt.messages(sources=format_sources(sources), question=question.strip())
        settings = generation.GenerationSettings(max_new_tokens=ANSWER_TOKENS)
        generated = generation.generate([chat], generator, settings)[0]
        citations = [n for n in cited_numbers(generated) if 1 <= n <= len(sources)]
        if citations or RAG_CANNOT_ANSWER in generated:
            kind, text = ("generated" if citations else "refused"), generated
        else:
            kind, text = "extractive", extractive_answer(sources, question, index.model)
            citations = cited_numbers(text)
    if verbose:
        _print_answer(question, text, kind, generated, citations, sources)
    return {"question": question, "answer": text, "kind": kind, "citations": citations, "generated": generated,
            "sources": sources, "relevant": not sources.empty}


def _print_answer(question, text, kind, generated, citations, sources) -> None:
    cited = ", ".join(f"[{n}]" for n in citations) or "none"
    heading = {"generated": f"written by the model; citations: {cited}",
               "refused": "the model found no answer in the sources; citations: none",
               "extractive": f"extractive: the model cited no source, so these are the sources' own sentences most "
                             f"similar to the question, each found in its source; citations: {cited}",
               "nothing relevant": "no source passed the threshold: the model was not asked"}[kind]
    print(f"Question: {question.strip()}\n\nAnswer ({heading}):\n{text}")
    if kind == "extractive":
        print(f"\n(The model wrote, without citing: {' '.join(generated.split())[:300]})")
    if not sources.empty:
        print("\nSources:")
        _print_sources(sources)
