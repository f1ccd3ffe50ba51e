"""The "splitting" stage of indexing: Dify's process rules, and the recursive character splitter they drive.

Like Dify's ``FixedRecursiveCharacterTextSplitter``, lengths are counted in characters (the API calls them
``max_tokens``). The text is first cut at the rule's separator, and every piece is a chunk of its own (pieces
are not merged across the separator: the separator is how a user says where segments end). A piece longer
than ``max_tokens`` is split recursively on ``"\\n\\n"``, ``"\\n"``, sentence ends and ``" "`` (a hard cut as the
last resort), and those sub-pieces are merged back up to ``max_tokens``, consecutive chunks sharing up to
``chunk_overlap`` characters of whole sub-pieces. No chunk is ever longer than ``max_tokens``. Chunks are
stripped; empty ones are dropped.

Modes (``ProcessRule.from_api``):

- ``automatic``: remove extra spaces, ``max_tokens`` 500, overlap 50. Reported as separator ``"\\n"`` (as
  Dify reports it) but, like Dify's automatic splitter, the whole text is split recursively and merged, so short
  lines share a chunk instead of each becoming a segment.
- ``custom``: the given pre-processing rules and segmentation.
- ``hierarchical``: parents by ``segmentation`` (``paragraph``) or the whole text as one parent
  (``full-doc``, whose ``segmentation`` is ignored); children by ``subchunk_segmentation`` from each parent.
  Dify only embeds the first 10,000 tokens of a full-doc parent's children; here every child is kept, so all
  of a long document stays searchable.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from app.knowledge.indexing.cleaning import PreProcessing

Mode = Literal["automatic", "custom", "hierarchical"]
ParentMode = Literal["paragraph", "full-doc"]

MODES: tuple[Mode, ...] = ("automatic", "custom", "hierarchical")
PARENT_MODES: tuple[ParentMode, ...] = ("paragraph", "full-doc")
MIN_MAX_TOKENS = 50
MAX_MAX_TOKENS = 4000
# Dify's pre-processing rule ids; remove_stopwords is accepted and ignored, as Dify does.
PRE_PROCESSING_RULE_IDS = ("remove_extra_spaces", "remove_urls_emails", "remove_stopwords")


class InvalidProcessRule(ValueError):
    """The process rule is invalid."""

    def __init__(self, message: str | None = None) -> None:
        self.message: str = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)


@dataclass(frozen=True)
class Segmentation:
    """How to cut text: ``separator`` as sent by the API (``"\\\\n"`` still escaped), lengths in characters."""

    separator: str = "\n"
    max_tokens: int = 500
    chunk_overlap: int = 50

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidProcessRule("max_tokens must be positive.")
        if not 0 <= self.chunk_overlap < self.max_tokens:
            raise InvalidProcessRule("chunk_overlap must be at least 0 and smaller than max_tokens.")

    def to_api(self) -> dict[str, Any]:
        return {
            "separator": self.separator,
            "max_tokens": self.max_tokens,
            "chunk_overlap": self.chunk_overlap,
        }


@dataclass(frozen=True)
class Chunk:
    """A segment's content; for hierarchical rules, also its child chunks (the only parts embedded)."""

    content: str
    children: tuple[str, ...] = ()


AUTOMATIC_SEGMENTATION = Segmentation(separator="\n", max_tokens=500, chunk_overlap=50)
PARENT_SEGMENTATION = Segmentation(separator="\n\n", max_tokens=500, chunk_overlap=0)
SUBCHUNK_SEGMENTATION = Segmentation(separator="\n", max_tokens=200, chunk_overlap=0)


@dataclass(frozen=True)
class ProcessRule:
    """A validated Dify ``process_rule``; build it with :meth:`from_api`."""

    mode: Mode = "automatic"
    pre_processing: PreProcessing = field(default_factory=lambda: PreProcessing(remove_extra_spaces=True))
    segmentation: Segmentation = AUTOMATIC_SEGMENTATION
    parent_mode: ParentMode | None = None
    subchunk_segmentation: Segmentation | None = None

    @classmethod
    def from_api(cls, mode: str, rules: dict[str, Any] | None) -> ProcessRule:
        """Validate ``process_rule.mode`` and ``process_rule.rules``; raises InvalidProcessRule."""
        if mode not in MODES:
            raise InvalidProcessRule(f"Process rule mode is invalid, must be one of: {', '.join(MODES)}.")
        if mode == "automatic":
            return cls()
        if not isinstance(rules, dict):
            raise InvalidProcessRule(f"Process rule rules is required in {mode} mode.")
        pre_processing = _pre_processing(rules.get("pre_processing_rules"))
        if mode == "custom":
            segmentation = _segmentation(rules.get("segmentation"), "segmentation", None)
            return cls("custom", pre_processing, segmentation)
        parent_mode = rules.get("parent_mode") or "paragraph"
        if parent_mode not in PARENT_MODES:
            raise InvalidProcessRule("Process rule parent_mode is invalid, must be paragraph or full-doc.")
        if parent_mode == "full-doc":
            segmentation = PARENT_SEGMENTATION
        else:
            segmentation = _segmentation(rules.get("segmentation"), "segmentation", PARENT_SEGMENTATION)
        subchunks = _segmentation(
            rules.get("subchunk_segmentation"), "subchunk_segmentation", SUBCHUNK_SEGMENTATION
        )
        return cls("hierarchical", pre_processing, segmentation, cast(ParentMode, parent_mode), subchunks)

    def to_api(self) -> dict[str, Any]:
        """Dify's ``{mode, rules: {pre_processing_rules, segmentation, parent_mode?, subchunk_segmentation?}}``."""
        rules: dict[str, Any] = {
            "pre_processing_rules": [
                {"id": "remove_extra_spaces", "enabled": self.pre_processing.remove_extra_spaces},
                {"id": "remove_urls_emails", "enabled": self.pre_processing.remove_urls_emails},
            ],
            "segmentation": self.segmentation.to_api(),
        }
        if self.mode == "hierarchical":
            rules["parent_mode"] = self.parent_mode
            rules["subchunk_segmentation"] = (self.subchunk_segmentation or SUBCHUNK_SEGMENTATION).to_api()
        return {"mode": self.mode, "rules": rules}


def _pre_processing(raw: object) -> PreProcessing:
    if raw is None:
        return PreProcessing()
    if not isinstance(raw, list):
        raise InvalidProcessRule("Process rule pre_processing_rules is invalid, must be a list.")
    enabled: dict[str, bool] = {}
    for rule in raw:
        if not isinstance(rule, dict) or rule.get("id") not in PRE_PROCESSING_RULE_IDS:
            raise InvalidProcessRule(
                "Process rule pre_processing_rules id is invalid, must be remove_extra_spaces or remove_urls_emails."
            )
        if not isinstance(rule.get("enabled"), bool):
            raise InvalidProcessRule(
                "Process rule pre_processing_rules enabled is invalid, must be a boolean."
            )
        enabled[rule["id"]] = rule["enabled"]
    return PreProcessing(
        remove_extra_spaces=enabled.get("remove_extra_spaces", False),
        remove_urls_emails=enabled.get("remove_urls_emails", False),
    )


def _segmentation(raw: object, name: str, default: Segmentation | None) -> Segmentation:
    """Parse one segmentation object; with no ``default`` it and its max_tokens are required (as in Dify)."""
    if raw is None:
        if default is None:
            raise InvalidProcessRule(f"Process rule {name} is required.")
        return default
    if not isinstance(raw, dict):
        raise InvalidProcessRule(f"Process rule {name} is invalid, must be an object.")
    separator = raw.get("separator")
    if separator is None:
        separator = default.separator if default else "\n"
    if not isinstance(separator, str):
        raise InvalidProcessRule(f"Process rule {name} separator is invalid, must be a string.")
    max_tokens = raw.get("max_tokens")
    if max_tokens is None:
        if default is None:
            raise InvalidProcessRule(f"Process rule {name} max_tokens is required.")
        max_tokens = default.max_tokens
    if not _is_int(max_tokens) or not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        raise InvalidProcessRule(
            f"Process rule {name} max_tokens is invalid, must be an integer between {MIN_MAX_TOKENS} "
            f"and {MAX_MAX_TOKENS}."
        )
    overlap = raw.get("chunk_overlap")
    if overlap is None:
        overlap = default.chunk_overlap if default else 0
    if not _is_int(overlap) or not 0 <= overlap < max_tokens:
        raise InvalidProcessRule(
            f"Process rule {name} chunk_overlap is invalid, must be an integer from 0 to less than max_tokens."
        )
    return Segmentation(separator, max_tokens, overlap)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- splitting -------------------------------------------------------------------------------------------------


def split_document(text: str, rule: ProcessRule) -> list[Chunk]:
    """Segments (with child chunks for hierarchical rules) of already cleaned text.

    Clean first with ``cleaning.clean(text, rule.pre_processing)``: splitting does not clean.
    """
    if rule.mode == "automatic":
        return [Chunk(content) for content in split_text(text, _AUTOMATIC_SPLIT)]
    if rule.mode == "custom":
        return [Chunk(content) for content in split_text(text, rule.segmentation)]
    children = rule.subchunk_segmentation or SUBCHUNK_SEGMENTATION
    if rule.parent_mode == "full-doc":
        parents = [text.strip()] if text.strip() else []
    else:
        parents = split_text(text, rule.segmentation)
    return [Chunk(parent, tuple(split_text(parent, children))) for parent in parents]


# Automatic mode: no fixed separator, everything merged up to 500 with overlap 50 (Dify's automatic splitter).
_AUTOMATIC_SPLIT = Segmentation("", AUTOMATIC_SEGMENTATION.max_tokens, AUTOMATIC_SEGMENTATION.chunk_overlap)

# Recursive levels, coarsest first. Pieces keep their separator at the end, so joining pieces gives back the text.
# Sentence ends: CJK full stop, fullwidth ! and ?, or ASCII . ! ? followed by a space.
_SENTENCE_END = re.compile(r"(?<=[。\uff01\uff1f])|(?<=[.!?] )")
_LEVELS: tuple[str | re.Pattern[str], ...] = ("\n\n", "\n", _SENTENCE_END, " ")


def split_text(text: str, seg: Segmentation) -> list[str]:
    """Chunks of ``text`` (stripped, none empty, none longer than ``seg.max_tokens``)."""
    separator = seg.separator.replace("\\n", "\n")
    pieces = text.split(separator) if separator else [text]
    chunks: list[str] = []
    for piece in pieces:
        if len(piece.strip()) <= seg.max_tokens:
            chunks.append(piece)
        else:
            chunks.extend(_split_recursively(piece, _LEVELS, seg.max_tokens, seg.chunk_overlap))
    return [chunk.strip() for chunk in chunks if chunk.strip()]


def _split_recursively(
    text: str, levels: tuple[str | re.Pattern[str], ...], size: int, overlap: int
) -> list[str]:
    for index, level in enumerate(levels):
        pieces = _split_keeping_separator(text, level)
        if len(pieces) > 1:
            finer = levels[index + 1 :]
            break
    else:
        return _hard_cut(text, size, overlap)
    chunks: list[str] = []
    small: list[str] = []
    for piece in pieces:
        if len(piece.strip()) <= size:
            small.append(piece)
            continue
        chunks.extend(_merge(small, size, overlap))
        small = []
        chunks.extend(_split_recursively(piece, finer, size, overlap))
    chunks.extend(_merge(small, size, overlap))
    return chunks


def _split_keeping_separator(text: str, level: str | re.Pattern[str]) -> list[str]:
    if isinstance(level, re.Pattern):
        return [piece for piece in level.split(text) if piece]
    parts = text.split(level)
    pieces = [part + level for part in parts[:-1]]
    if parts[-1]:
        pieces.append(parts[-1])
    return pieces


def _merge(pieces: list[str], size: int, overlap: int) -> list[str]:
    """Join consecutive pieces up to ``size``; a new chunk starts with the last whole pieces (at most
    ``overlap`` characters) of the previous one. A chunk that would hold only overlap and blanks is skipped."""
    chunks: list[str] = []
    current: deque[str] = deque()
    total = 0
    fresh = False  # does `current` hold new (non-overlap, non-blank) text?
    for piece in pieces:
        length = len(piece)
        if current and total + length > size:
            if fresh:
                chunks.append("".join(current))
            while current and (total > overlap or total + length > size):
                total -= len(current.popleft())
            fresh = False
        current.append(piece)
        total += length
        fresh = fresh or bool(piece.strip())
    if current and fresh:
        chunks.append("".join(current))
    return chunks


def _hard_cut(text: str, size: int, overlap: int) -> list[str]:
    """Windows of ``size`` characters, each starting ``overlap`` characters before the previous one ended."""
    text = text.strip()
    windows: list[str] = []
    start = 0
    while True:
        windows.append(text[start : start + size])
        if start + size >= len(text):
            return windows
        start += size - overlap
