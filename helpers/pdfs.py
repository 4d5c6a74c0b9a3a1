"""Article PDFs: read page texts, cut them into passages, check quotes against the text (no model here).

    pages, status = read_articles(list_pdfs(folder))   # status: one row per file
    passages = split_passages(pages)                    # ~120-word windows, page kept
    find_quote("a sentence the model cited", pages[pages.file == name])
"""
from __future__ import annotations

import bisect
import numbers
import re
import unicodedata
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

import pandas as pd

from helpers.checks import require_columns
from helpers.text import ends_sentence

try:
    import pymupdf
except ImportError:  # PyMuPDF before 1.24 only ships the old module name
    import fitz as pymupdf

PAGE_COLUMNS = ["file", "page", "text"]
PASSAGE_COLUMNS = ["file", "page", "passage", "text"]
STATUS_COLUMNS = ["file", "status", "reason", "n_pages", "n_chars"]


class PdfError(ValueError):
    """A PDF that cannot be read; ``file`` is its name, ``reason`` says why in words."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def list_pdfs(folder: str | Path) -> list[Path]:
    """The ``.pdf`` files directly in ``folder`` (any case), sorted by name, without hidden ones (macOS ``._x.pdf``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".pdf" and not p.name.startswith("."))


def extract_pages(path: str | Path) -> pd.DataFrame:
    """Text of every page of one PDF: one row per page, ``file`` (name), ``page`` (1-based), ``text``.

    Text blocks (roughly paragraphs) are separated by a blank line; line breaks and hyphens are left as
    printed. Raises ``PdfError`` for a missing, empty, non-PDF, corrupted, encrypted or image-only file.
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise PdfError(name, f"file not found ({path})")
    if path.is_dir():
        raise PdfError(name, f"is a folder, not a PDF file ({path})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PdfError(name, f"cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise PdfError(name, "empty file (0 bytes)")
    # The PDF header may follow a little junk, but must sit in the first 1 KiB.
    if b"%PDF-" not in data[:1024]:
        raise PdfError(name, "not a PDF file (no %PDF- header); is it an HTML page or a renamed file?")

    # Opening from bytes (not from the path) guarantees MuPDF never writes to the source file.
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:
        raise PdfError(name, f"corrupted or truncated PDF; MuPDF cannot open it ({exc})") from None
    try:
        if doc.needs_pass:
            raise PdfError(name, "encrypted PDF; it needs a password to be read")
        if doc.page_count == 0:
            raise PdfError(name, "corrupted PDF: no pages found")
        texts = []
        for number, page in enumerate(doc, start=1):
            try:
                blocks = page.get_text("blocks")
            except Exception as exc:
                raise PdfError(name, f"corrupted PDF: page {number} cannot be read ({exc})") from None
            # Block tuples are (x0, y0, x1, y1, text, block_no, type); type 1 is an image.
            texts.append("\n\n".join(b[4].strip() for b in blocks if b[6] == 0 and b[4].strip()))
    finally:
        doc.close()

    if not any(t.strip() for t in texts):
        raise PdfError(name, "no text layer (image-only or scanned PDF); OCR would be needed")
    return pd.DataFrame({"file": name, "page": range(1, len(texts) + 1), "text": texts})


def read_articles(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read many PDFs (a list of files, or a folder), going on past the ones that fail.

    Returns ``(pages, status)``: ``pages`` as from ``extract_pages`` for the readable files; ``status`` one
    row per path: ``file``, ``status`` ("ok" or "unreadable"), ``reason`` ("" when ok), ``n_pages``, ``n_chars``.
    """
    if isinstance(paths, (str, Path)):
        paths = list_pdfs(paths) if Path(paths).is_dir() else [paths]
    frames, rows = [], []
    for path in paths:
        name = Path(path).name
        try:
            pages = extract_pages(path)
        except PdfError as exc:
            rows.append({"file": name, "status": "unreadable", "reason": exc.reason, "n_pages": 0, "n_chars": 0})
            continue
        frames.append(pages)
        rows.append({"file": name, "status": "ok", "reason": "", "n_pages": len(pages),
                     "n_chars": int(pages["text"].str.len().sum())})
    pages = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAGE_COLUMNS)
    status = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    return pages, status.astype({"n_pages": int, "n_chars": int})


_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
# A hyphen (or soft hyphen) that ends a line before a lower-case letter splits one word.
_LINE_HYPHEN = re.compile(r"(?<=\w)[-\u00ad\u2010][ \t]*\n\s*(?=[a-z])")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def clean_text(text: str) -> str:
    """Text with line-break hyphenation re-joined, ligatures spelled out and whitespace collapsed.

    ``"bibliomet-\\nric ﬁelds"`` -> ``"bibliometric fields"``. A hyphen before a lower-case letter on the next
    line is always removed, so ``science-\\nof-science`` loses its first one (PDF text cannot tell them apart).
    """
    text = _LINE_HYPHEN.sub("", text)
    text = _INVISIBLE.sub("", text)
    for ligature, letters in _LIGATURES.items():
        text = text.replace(ligature, letters)
    return " ".join(text.split())


def _words_and_breaks(text: str) -> tuple[list[str], list[bool]]:
    """Words of a page, and for each whether a sentence or paragraph ends after it."""
    words, breaks = [], []
    for paragraph in re.split(r"\n\s*\n", _LINE_HYPHEN.sub("", text)):
        para_words = clean_text(paragraph).split()
        for word in para_words:
            words.append(word)
            breaks.append(ends_sentence(word))
        if para_words:
            breaks[-1] = True
    return words, breaks


def _windows(breaks: list[bool], max_words: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) word spans of at most ``max_words``, ending at a break where one is in reach."""
    n, spans, start = len(breaks), [], 0
    # A window cut at a sentence end must still be at least half full and move forward.
    shortest = max(overlap + 1, max_words // 2)
    while start < n:
        end = min(start + max_words, n)
        if end < n:
            for j in range(end, start + shortest - 1, -1):
                if breaks[j - 1]:
                    end = j
                    break
        spans.append((start, end))
        if end == n:
            break
        start = end - overlap
    return spans


def split_passages(pages: pd.DataFrame, max_words: int = 120, overlap: int = 20,
                   min_words: int = 5) -> pd.DataFrame:
    """Cut page texts (cleaned with ``clean_text``) into overlapping passages that keep their page number.

    Each page is cut into windows of at most ``max_words`` words, ending at a sentence or paragraph end in
    the window's second half where there is one; consecutive windows share ``overlap`` words. Passages under
    ``min_words`` words (page numbers, running heads) are dropped. Columns: ``file``, ``page``, ``passage``
    (0-based within each file), ``text``.
    """
    if not (isinstance(max_words, numbers.Integral) and isinstance(overlap, numbers.Integral)
            and max_words > overlap >= 0):
        raise ValueError(f"need whole numbers with max_words > overlap >= 0; got max_words={max_words}, overlap={overlap}")
    require_columns(pages, PAGE_COLUMNS, "pages", "pass the frame from extract_pages or read_articles")
    rows, counter = [], {}
    for file, page, text in pages[PAGE_COLUMNS].itertuples(index=False):
        words, breaks = _words_and_breaks(text if isinstance(text, str) else "")
        for start, end in _windows(breaks, max_words, overlap):
            if end - start < min_words:
                continue
            number = counter.get(file, 0)
            counter[file] = number + 1
            rows.append({"file": file, "page": int(page), "passage": number, "text": " ".join(words[start:end])})
    return pd.DataFrame(rows, columns=PASSAGE_COLUMNS).astype({"page": int, "passage": int})


_QUOTE_MARKS = set("\"'`´")


@lru_cache(maxsize=None)
def _fold_char(ch: str) -> str:
    """What one character counts as when comparing quotes ("" for ignored characters)."""
    category = unicodedata.category(ch)
    # Spaces, dashes, quote marks, soft hyphens and accents are ignored, so line breaks,
    # hyphenation and typographic variants of quotes and dashes cannot block a match.
    if ch.isspace() or ch in _QUOTE_MARKS or ch == "\u2212" or category in ("Pd", "Pi", "Pf", "Cf", "Mn"):
        return ""
    if category.startswith("L"):  # letters only, so footnote digits like ¹ stay as they are
        ch = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return ch.casefold()


def _fold(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each folded character, its index in ``text``."""
    parts, where = [], []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        if folded:
            parts.append(folded)
            where.extend([i] * len(folded))
    return "".join(parts), where


def find_quote(quote: str, pages: pd.DataFrame, min_chars: int = 20) -> dict:
    """Whether ``quote`` occurs word for word in one article's ``pages`` (from ``extract_pages``), across pages too.

    Case, accents, ligatures, spaces, line breaks, hyphens, dashes and quote marks are ignored; then the
    quote must be an exact substring (a trimmed sentence passes, a paraphrase does not). Under ``min_chars``
    such characters it is never found: too short to be evidence. Returns ``{"found": bool, "page": the
    match's first page or None, "match": the article's text that matched, whitespace collapsed, or ""}``.
    """
    require_columns(pages, PAGE_COLUMNS, "pages", "pass the frame from extract_pages")
    if pages["file"].nunique() > 1:
        raise ValueError(f"pages holds {pages['file'].nunique()} files; pass one file's pages, "
                         "e.g. pages[pages.file == name]")
    not_found = {"found": False, "page": None, "match": ""}
    needle, _ = _fold(quote if isinstance(quote, str) else "")
    if len(needle) < min_chars:
        return not_found

    pages = pages.sort_values("page")
    texts = [t if isinstance(t, str) else "" for t in pages["text"]]
    full = "\n".join(texts)
    starts = list(accumulate((len(t) + 1 for t in texts[:-1]), initial=0))  # where each page starts in full
    haystack, where = _fold(full)
    at = haystack.find(needle)
    if at < 0:
        return not_found
    first, last = where[at], where[at + len(needle) - 1]
    page = int(pages["page"].iloc[bisect.bisect_right(starts, first) - 1])
    return {"found": True, "page": page, "match": " ".join(full[first:last + 1].split())}


def truncate_words(text: str, max_words: int) -> tuple[str, bool]:
    """First ``max_words`` words of ``text``, as written (line breaks intact), and whether anything was cut."""
    if not isinstance(max_words, numbers.Integral) or max_words < 1:
        raise ValueError(f"max_words must be a whole number >= 1; got {max_words!r}")
    for count, word in enumerate(re.finditer(r"\S+", text), start=1):
        if count == max_words:
            rest = text[word.end():]
            return (text[:word.end()], True) if rest.strip() else (text, False)
    return text, False
