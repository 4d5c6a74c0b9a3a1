"""Text operations several stages share, each in one place: BM25 tokens and weights, sentences, a record's text, DOIs.

    tokenize("The CD-index of SciBERT")     # ["cd-index", "cd", "index", "scibert"]
    bm25_weights(texts)                     # (n_texts, n_terms) CSC matrix and the vocabulary
    split_sentences("We used e.g. Scopus. Then ...")  # "e.g." does not end a sentence
    record_text(titles, abstracts)          # "Title. Abstract", the text a record is embedded as
    doi_key("https://doi.org/10.1/ABC")     # "10.1/abc", for joins on DOI
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import sparse

# --------------------------------------------------------------------------- tokens and BM25

# Function words that carry no topic; kept short on purpose (no "system", "model", ...).
STOP_WORDS = frozenset("""
a about after all also an and any are as at be been but by can could did do does for from had has
have how however if in into is it its may more most no not of on or our over such than that the
their them then there these they this those through to under using was we were what when where
which while who why will with within would
""".split())
# A token is a run of letters/digits, possibly joined by hyphens (h-index, COVID-19, Node2Vec).
_TOKEN = re.compile(r"\w+(?:-\w+)*")
_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-"})  # typographic hyphens, as PDFs print them
BM25_K1 = 1.5  # how quickly repeats of a word stop adding to its score
BM25_B = 0.75  # how much a long text is penalised for its length


def tokenize(text: str) -> list[str]:
    """Lower-case BM25 tokens, without stop words and single characters; a hyphenated name also gives its parts,
    for a query that spells it apart: ``"The CD-index of SciBERT"`` -> ``["cd-index", "cd", "index", "scibert"]``."""
    tokens = []
    for match in _TOKEN.finditer(text.lower().translate(_HYPHENS)):
        word = match.group()
        parts = word.split("-")
        for token in [word] + (parts if len(parts) > 1 else []):
            if len(token) > 1 and token not in STOP_WORDS:
                tokens.append(token)
    return tokens


def bm25_weights(texts: list[str], k1: float = BM25_K1, b: float = BM25_B) -> tuple[sparse.csc_matrix, dict]:
    """Okapi BM25 weight of every term in every text: ``(n_texts, n_terms)`` CSC matrix and the vocabulary.

    weight = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean length)),
    idf = log(1 + (N - df + 0.5) / (df + 0.5)) (Robertson & Zaragoza 2009). A query's BM25 score for a
    text is the sum of the weights of the query's terms in that text (``bm25_scores``).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(analyzer=tokenize)
    try:
        counts = vectorizer.fit_transform(texts).tocsr().astype(np.float32)
    except ValueError:  # no text has a single token
        return sparse.csc_matrix((len(texts), 0), dtype=np.float32), {}
    n_texts = counts.shape[0]
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
    doc_freq = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n_texts - doc_freq + 0.5) / (doc_freq + 0.5)).astype(np.float32)
    rows = np.repeat(np.arange(n_texts), np.diff(counts.indptr))
    tf = counts.data
    counts.data = idf[counts.indices] * tf * (k1 + 1) / (tf + norm[rows])
    vocabulary = {term: int(col) for term, col in vectorizer.vocabulary_.items()}
    return counts.tocsc(), vocabulary


def bm25_scores(weights: sparse.csc_matrix, vocabulary: dict, query: str) -> np.ndarray:
    """BM25 score ``(n_texts,)`` of every text for ``query`` (0 where no query term occurs)."""
    scores = np.zeros(weights.shape[0], dtype=np.float32)
    for term in set(tokenize(query)):
        col = vocabulary.get(term)
        if col is not None:
            start, end = weights.indptr[col], weights.indptr[col + 1]
            scores[weights.indices[start:end]] += weights.data[start:end]
    return scores


# --------------------------------------------------------------------------- sentences

# Words with a full stop that do not end a sentence.
ABBREVIATIONS = frozenset({"e.g.", "i.e.", "al.", "fig.", "figs.", "eq.", "eqs.", "vs.", "cf.", "no.", "vol.",
                           "pp.", "p.", "ch.", "sec.", "etc.", "approx.", "resp.", "dr.", "prof."})
_SENTENCE_END = re.compile(r"[.!?][\"')\]\u201d\u2019]*$")


def ends_sentence(word: str) -> bool:
    """Whether a sentence ends after ``word``: it ends in . ! or ? (closing quotes or brackets allowed),
    and is neither a known abbreviation ("e.g.", "et al.") nor an initial ("J.")."""
    if not _SENTENCE_END.search(word):
        return False
    bare = word.lower().lstrip("(\"'\u201c\u2018")
    return bare not in ABBREVIATIONS and not re.fullmatch(r"[a-z]\.", bare)


def split_sentences(text: str, min_words: int = 6, max_words: int = 60) -> list[str]:
    """Sentences of ``text`` with ``min_words`` to ``max_words`` words (fragments and run-ons left out).

    A sentence ends after a word for which ``ends_sentence`` holds and before a word that starts with a
    capital letter, a digit, a bracket or a quote.
    """
    words = (text or "").split()
    sentences, start = [], 0
    for i, word in enumerate(words):
        last = i == len(words) - 1
        if last or (ends_sentence(word) and re.match(r"[A-Z0-9(\"\u201c]", words[i + 1])):
            sentences.append(words[start:i + 1])
            start = i + 1
    return [" ".join(s) for s in sentences if min_words <= len(s) <= max_words]


# --------------------------------------------------------------------------- records and DOIs


def record_text(titles: pd.Series, abstracts: pd.Series) -> pd.Series:
    """The text a record is embedded and searched as: ``"Title. Abstract"`` (no second full stop after a
    title that ends in . ? or !), or the title alone where the abstract is empty or missing."""
    titles = titles.fillna("").astype(str).str.strip()
    abstracts = abstracts.fillna("").astype(str).str.strip()
    joiner = titles.str.endswith((".", "?", "!")).map({True: " ", False: ". "})
    return (titles + joiner + abstracts).where(abstracts != "", titles)


_DOI_PREFIX = re.compile(r"^\s*(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", flags=re.IGNORECASE)


def clean_doi(doi) -> str | None:
    """A DOI as exports should hold it: without ``https://doi.org/``, ``doi:`` and spaces, case kept; None when missing."""
    if not isinstance(doi, str) or not doi.strip():
        return None
    return _DOI_PREFIX.sub("", doi).strip() or None


def doi_key(doi) -> str | None:
    """A DOI as a join key: ``clean_doi`` in lower case (DOIs are case-insensitive); None when missing."""
    cleaned = clean_doi(doi)
    return cleaned.lower() if cleaned else None


def join_on_doi(frame: pd.DataFrame, records: pd.DataFrame, columns: list[str], doi: pd.Series | None = None):
    """``frame`` with ``columns`` of the record in ``records`` that has the same DOI (``doi_key``; NaN where
    none has), the first such record where several have. ``doi``: the DOIs of ``frame``'s rows (default:
    its ``doi`` column)."""
    keys = (frame["doi"] if doi is None else doi).map(doi_key)
    known = records.assign(_key=records["doi"].map(doi_key)).dropna(subset=["_key"]).drop_duplicates("_key")
    known = known.set_index("_key")
    out = frame.drop(columns=[c for c in columns if c in frame.columns])
    for column in columns:
        out[column] = keys.map(known[column]).to_numpy()
    return out
