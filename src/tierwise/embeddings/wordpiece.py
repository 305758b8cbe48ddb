"""BERT's uncased WordPiece tokenizer in pure Python (no `tokenizers` library).

Follows the `BertNormalizer` (clean text, space around CJK ideographs, strip accents,
lowercase), the `BertPreTokenizer` (split on whitespace, isolate punctuation) and
greedy longest-match WordPiece with `##` continuations, as in the `tokenizer.json` of
all-MiniLM-L6-v2. Whitespace-separated chunks are cached, so repeated words cost one
dict lookup.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence

MAX_WORD_CHARS = 100
CACHE_LIMIT = 200_000
ASCII_PUNCTUATION = frozenset(string.punctuation)
# Cc characters other than tab, newline and carriage return: dropped by the normaliser.
_ASCII_CLEAN = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    if char.isascii():
        return char in ASCII_PUNCTUATION
    return unicodedata.category(char).startswith("P")


def _clean_char(char: str) -> str:
    """One character after cleaning and CJK spacing ('' when dropped)."""
    if char in "\t\n\r" or unicodedata.category(char) == "Zs":
        return " "
    if char in "\x00\ufffd" or unicodedata.category(char).startswith("C"):
        return ""
    return f" {char} " if _is_cjk(ord(char)) else char


def normalize(text: str) -> str:
    """The text as the BERT normaliser leaves it (lowercased, accents stripped)."""
    if text.isascii():
        return text.translate(_ASCII_CLEAN).lower()
    cleaned = "".join(_clean_char(c) for c in text)
    decomposed = unicodedata.normalize("NFD", cleaned)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def split_punctuation(chunk: str) -> list[str]:
    """A whitespace-free chunk cut into words and single punctuation characters."""
    words: list[str] = []
    start = 0
    for i, char in enumerate(chunk):
        if _is_punctuation(char):
            if start < i:
                words.append(chunk[start:i])
            words.append(char)
            start = i + 1
    if start < len(chunk):
        words.append(chunk[start:])
    return words


class WordPiece:
    """Token ids of texts under a WordPiece vocabulary (a list, id = position)."""

    def __init__(self, vocabulary: Sequence[str], unknown: str = "[UNK]") -> None:
        self._ids = {token: i for i, token in enumerate(vocabulary)}
        self.unknown_id = self._ids[unknown]
        self._chunks: dict[str, tuple[int, ...]] = {}

    def token_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def encode(self, text: str, limit: int | None = None) -> list[int]:
        """The ids of `text`'s word pieces (no special tokens), at most `limit` of them."""
        ids: list[int] = []
        for chunk in normalize(text).split():
            pieces = self._chunks.get(chunk)
            if pieces is None:
                pieces = self._encode_chunk(chunk)
            ids.extend(pieces)
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        pieces = tuple(i for word in split_punctuation(chunk) for i in self._encode_word(word))
        if len(self._chunks) >= CACHE_LIMIT:
            self._chunks.clear()
        self._chunks[chunk] = pieces
        return pieces

    def _encode_word(self, word: str) -> list[int]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unknown_id]
        out: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                found = self._ids.get(piece)
                if found is not None:
                    out.append(found)
                    break
                end -= 1
            else:
                return [self.unknown_id]
            start = end
        return out
