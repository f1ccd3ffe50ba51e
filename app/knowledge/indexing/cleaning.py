"""The "cleaning" stage of indexing: Dify's pre-processing rules applied to extracted text.

Behaviour follows Dify's ``CleanProcessor``: invalid symbols are always removed; ``remove_extra_spaces`` and
``remove_urls_emails`` are opt-in. Differences, on purpose: line endings are normalised to ``\\n`` (Dify keeps
``\\r``), Dify's accidental removal of the characters ``ï ¿ ¾`` is not copied, a markdown link keeps its text
(``[docs](https://x)`` becomes ``docs``, Dify leaves ``[docs]()``), and a URL's trailing punctuation stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PreProcessing:
    """Dify's ``pre_processing_rules`` as flags."""

    remove_extra_spaces: bool = False
    remove_urls_emails: bool = False


# Every pattern is linear in the text's length. Python's ``re`` backtracks, so a pattern that can start a match
# anywhere inside a long run it then scans to the run's end (``[^\]]*``, ``[\w.]+@``, `` +\n``) costs O(n^2) on
# 60,000 ``[`` or a long word without ``@``. Two cures, used below: a scan may not cross the character that
# starts another match (``[^\[\]\n]*`` stops at the next ``[``), or a lookbehind lets a match start only where a
# run starts (``(?<![...])``); possessive quantifiers (``++``) stop backtracking into a run.

# C0 controls except \t and \n (\v and \f become line breaks first), DEL, C1 controls, and U+FFFE.
_INVALID_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffe]")
_LINE_BREAKS = re.compile(r"\r\n?|[\v\f]")
_SPECIAL_TOKEN_START = re.compile(r"<\|+")
_SPECIAL_TOKEN_END = re.compile(r"(?<!\|)\|++>")

_HORIZONTAL_SPACE = re.compile(r"[\t\x20\u00a0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000]+")
_TRAILING_SPACE = re.compile(r"(?<! ) ++\n")
_BLANK_LINES = re.compile(r"\n{3,}")

_MARKDOWN_IMAGE = re.compile(r"!\[[^\[\]\n]*\]\([^()\[\]\s]+(?:\s+\"[^\"\n]*\")?\)")
_MARKDOWN_LINK = re.compile(
    r"\[([^\[\]\n]*)\]\(\s*(?:https?://|mailto:)[^()\[\]\s]*(?:\s+\"[^\"\n]*\")?\s*\)"
)
_AUTOLINK = re.compile(r"<(?:https?://|mailto:)[^<>\s]*>")
# A URL runs to whitespace or a bracket, and does not take trailing sentence punctuation with it.
_URL = re.compile(r"https?://[^\s<>()\[\]{}\"']*[^\s<>()\[\]{}\"'.,;:!?]")
_EMAIL = re.compile(r"(?:mailto:)?(?<![A-Za-z0-9_.+-])[A-Za-z0-9_.+-]++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)+")
# \x00 cannot survive the invalid-symbol step, so it can delimit placeholders safely.
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")


def clean(text: str, rules: PreProcessing) -> str:
    """The text with invalid symbols removed and the enabled rules applied (URLs/emails before spaces)."""
    text = remove_invalid_symbols(text)
    if rules.remove_urls_emails:
        text = remove_urls_emails(text)
    if rules.remove_extra_spaces:
        text = remove_extra_spaces(text)
    return text


def remove_invalid_symbols(text: str) -> str:
    """Always applied: control characters removed, ``<|``/``|>`` (model special-token markers) defused.

    ``<||`` becomes ``<`` in one go (Dify needs a pass per bar), so cleaning twice changes nothing.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVALID_CHARS.sub("", text)
    return _SPECIAL_TOKEN_END.sub(">", _SPECIAL_TOKEN_START.sub("<", text))


def remove_extra_spaces(text: str) -> str:
    """Runs of horizontal whitespace become one space, lines lose trailing spaces, 3+ newlines become 2."""
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text)


def remove_urls_emails(text: str) -> str:
    """Remove URLs and email addresses; markdown images keep their URL, markdown links keep their text."""
    images: list[str] = []

    def hide_image(match: re.Match[str]) -> str:
        images.append(match.group(0))
        return f"\x00{len(images) - 1}\x00"

    text = _MARKDOWN_IMAGE.sub(hide_image, text)
    text = _MARKDOWN_LINK.sub(lambda match: match.group(1), text)
    text = _AUTOLINK.sub("", text)
    text = _URL.sub("", text)
    text = _EMAIL.sub("", text)
    return _PLACEHOLDER.sub(lambda match: images[int(match.group(1))], text)
