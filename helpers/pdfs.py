"""Article PDFs: read page texts, cut them into passages, check quotes against the text (no model here).

    pages, status = read_articles(list_pdfs(folder))   # status: one row per file
    passages = split_passages(pages)                    # ~120-word windows, page kept
    find_quote("a sentence the model cited", pages[pages.file == article_id])

Every table keys an article by its id in the ``file`` column (``article_ids``): its file name, or, where two
files read together share a name, the shortest end of their paths that tells them apart (``a/paper.pdf``).
"""
from __future__ import annotations

import bisect
import numbers
import os
import re
import unicodedata
from collections import Counter
from functools import cache
from itertools import accumulate
from pathlib import Path, PurePosixPath

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
    """A PDF that cannot be read; ``file`` is its article id (its name), ``reason`` says why in words."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def list_pdfs(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The ``.pdf`` files in ``folder`` (any case; in its sub-folders too when ``recursive``), sorted by path,
    without hidden ones (macOS ``._x.pdf``) and without anything inside hidden folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() == ".pdf"
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


_EMPTY = "empty file (0 bytes)"
_NOT_PDF = "not a PDF file (no %PDF- header); is it an HTML page or a renamed file?"
_DAMAGED = ("damaged PDF: it does not end with the %%EOF marker, so it is truncated (an interrupted download or "
            "copy?) or corrupted; get the file again")


def pdf_damage(data: bytes) -> str | None:
    """Why ``data`` is not a whole PDF file, judged by its structure alone, or None when it looks whole.

    A PDF starts with a ``%PDF-`` header (the first 1 KiB may hold a little junk before it) and ends with an
    ``%%EOF`` marker after its cross-reference table: a download or copy cut short has lost that end.
    """
    if not data:
        return _EMPTY
    if b"%PDF-" not in data[:1024]:
        return _NOT_PDF
    return _DAMAGED if b"%%EOF" not in data[-1024:] else None


def extract_pages(path: str | Path, article_id: str | None = None) -> pd.DataFrame:
    """Text of every page of one PDF: one row per page, ``file`` (``article_id``, default the file name),
    ``page`` (1-based), ``text``.

    Text blocks (roughly paragraphs) are separated by a blank line; line breaks and hyphens are left as
    printed. Raises ``PdfError`` for a missing, empty, non-PDF, damaged (truncated or corrupted), encrypted or
    image-only file.
    """
    path = Path(path)
    name = article_id or path.name
    if not path.exists():
        raise PdfError(name, f"file not found ({path})")
    if path.is_dir():
        raise PdfError(name, f"is a folder, not a PDF file ({path})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PdfError(name, f"cannot read the file ({exc.strerror or exc})") from None
    damage = pdf_damage(data)
    if damage in (_EMPTY, _NOT_PDF):
        raise PdfError(name, damage)

    # Opening from bytes (not from the path) guarantees MuPDF never writes to the source file.
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:
        raise PdfError(name, damage or f"corrupted PDF; MuPDF cannot open it ({exc})") from None
    try:
        if doc.needs_pass:
            raise PdfError(name, "encrypted PDF; it needs a password to be read")
        # MuPDF rebuilds what it finds of a file without its end, so it may open with pages or text missing
        # and no sign of it (or look like a scan without text): refused, with the reason.
        if damage and (doc.is_repaired or doc.page_count == 0):
            raise PdfError(name, damage)
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


def article_ids(paths) -> list[str]:
    """One id per path (``paths`` distinct): the file name where no other path has it, else the shortest end
    of the path that no other path shares, e.g. ``a/paper.pdf`` and ``b/paper.pdf``. Always ``/``-separated."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    names = Counter(p[-1] for p in parts)
    ids = []
    for mine in parts:
        others = [p for p in parts if p is not mine and p[-1] == mine[-1]] if names[mine[-1]] > 1 else []
        k = 1
        while k < len(mine) and any(p[-k:] == mine[-k:] for p in others):
            k += 1
        ids.append(PurePosixPath(*mine[-k:]).as_posix())
    return ids


def read_articles(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read many PDFs (a list of files, or a folder's PDFs, not its sub-folders'), going on past those that fail.

    Returns ``(pages, status)``: ``pages`` as from ``extract_pages`` for the readable files; ``status`` one
    row per file: ``file``, ``status`` ("ok" or "unreadable"), ``reason`` ("" when ok), ``n_pages``, ``n_chars``.
    ``file`` is the article's id (``article_ids``), the key of every later table. A file named twice (the
    same path, or a link to it) is read once. An empty folder or list is an error, not an empty table.
    """
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        paths = _folder_pdfs(Path(paths))
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no PDF given: the list of articles is empty")
    seen, unique = set(), []
    for path in map(Path, paths):
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    if len(unique) < len(paths):
        print(f"{len(paths) - len(unique)} path(s) named a file already in the list; each file is read once.")
    frames, rows = [], []
    for path, article_id in zip(unique, article_ids(unique)):
        try:
            pages = extract_pages(path, article_id)
        except PdfError as exc:
            rows.append({"file": article_id, "status": "unreadable", "reason": exc.reason, "n_pages": 0, "n_chars": 0})
            continue
        frames.append(pages)
        rows.append({"file": article_id, "status": "ok", "reason": "", "n_pages": len(pages),
                     "n_chars": int(pages["text"].str.len().sum())})
    pages = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAGE_COLUMNS)
    status = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    return pages, status.astype({"n_pages": int, "n_chars": int})


def _folder_pdfs(folder: Path) -> list[Path]:
    """``list_pdfs(folder)``, or a ValueError that says what the folder holds instead."""
    pdfs = list_pdfs(folder)
    if not pdfs:
        deeper = len(list_pdfs(folder, recursive=True))
        where = (f"; its sub-folders hold {deeper}: read them with read_articles(list_pdfs(folder, recursive=True))"
                 if deeper else "")
        raise ValueError(f"no PDF files in {folder}{where}")
    return pdfs


_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
# A hyphen (or soft hyphen) that ends a line before a lower-case letter splits one word.
_LINE_HYPHEN = re.compile(r"(?<=\w)[-\u00ad\u2010][ \t]*\n\s*(?=[a-z])")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def clean_text(text: str) -> str:
    r"""Text with line-break hyphenation re-joined, ligatures spelled out and whitespace collapsed.

    ``"bibliomet-\nric ﬁelds"`` -> ``"bibliometric fields"``. A hyphen before a lower-case letter on the next
    line is always removed, so ``science-\nof-science`` loses its first one (PDF text cannot tell them apart).
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


@cache
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
    if len(pages["file"].unique()) > 1:
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
