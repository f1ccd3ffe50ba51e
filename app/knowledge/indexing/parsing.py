"""The parsing stages of indexing as sandbox functions: ``knowledge.extract``, ``knowledge.clean``,
``knowledge.split``. Each runs in a fresh confined child (``app.knowledge.indexing.confined`` calls them), so a hostile
file can stall or bloat only that child, which the sandbox kills at its time or memory limit.

Plain data in and out (msgpack across the process boundary): ``{"text": ...}`` or ``{"error": message}``.
``split`` does not send the chunks' text back: every chunk is a substring of the text the worker already holds,
so it answers with ``[start, end]`` offsets (or the text itself in the unlikely case a chunk is not found), and
with each chunk's keywords (counting words costs time in proportion to the text: the child pays it, not the
worker's event loop).
"""

from __future__ import annotations

from typing import Any

from app.knowledge.indexing.cleaning import PreProcessing, clean
from app.knowledge.indexing.extract import ExtractError, ParseLimits, extract_text
from app.knowledge.indexing.keywords import extract_keywords
from app.knowledge.indexing.splitting import InvalidProcessRule, ProcessRule, split_document
from app.sandbox.functions import sandboxed

EXTRACT, CLEAN, SPLIT = "knowledge.extract", "knowledge.clean", "knowledge.split"

#: a chunk as ``split`` returns it: ``[start, end]`` into the cleaned text, or the text itself
Span = list[int] | str


@sandboxed(EXTRACT)
def extract_or_error(filename: str, data: bytes, limits: dict[str, int]) -> dict[str, Any]:
    try:
        return {"text": extract_text(filename, data, ParseLimits(**limits))}
    except ExtractError as error:
        return {"error": error.message}
    except RecursionError:
        return {"error": "The file is nested too deeply to be read."}
    except MemoryError:
        return {"error": "The file needs too much memory to be read (SLUICE_INDEXING_MEMORY_MB)."}


@sandboxed(CLEAN)
def clean_text(text: str, remove_extra_spaces: bool, remove_urls_emails: bool) -> dict[str, Any]:
    return {"text": clean(text, PreProcessing(remove_extra_spaces, remove_urls_emails))}


@sandboxed(SPLIT)
def split_to_spans(text: str, process_rule: dict[str, Any]) -> dict[str, Any]:
    """``{"chunks": [[span, keywords, [[span, keywords], ...]], ...]}`` (children only for hierarchical rules)."""
    try:
        rule = ProcessRule.from_api(process_rule.get("mode", "automatic"), process_rule.get("rules"))
    except InvalidProcessRule as error:
        return {"error": error.message}
    finder = _Finder(text)
    chunks = []
    for chunk in split_document(text, rule):
        span = finder.find(chunk.content)
        children = []
        child_finder = _Finder(text, start=finder.cursor)  # children lie inside their parent
        for child in chunk.children:
            children.append([child_finder.find(child), extract_keywords(child)])
        chunks.append([span, extract_keywords(chunk.content), children])
    return {"chunks": chunks}


class _Finder:
    """Finds consecutive substrings of ``text`` left to right (chunks overlap, so the search restarts at the
    previous chunk's start, not its end)."""

    def __init__(self, text: str, start: int = 0) -> None:
        self.text, self.cursor = text, start

    def find(self, part: str) -> Span:
        position = self.text.find(part, self.cursor)
        if position < 0:
            position = self.text.find(part)
        if position < 0:
            return part
        self.cursor = position
        return [position, position + len(part)]


def resolve(text: str, span: Any) -> str:
    """The chunk text a ``split`` span stands for."""
    if isinstance(span, str):
        return span
    start, end = span
    return text[start:end]
