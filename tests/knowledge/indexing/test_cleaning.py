"""clean(): Dify's always-on invalid-symbol removal and the two optional pre-processing rules."""

from __future__ import annotations

import pytest

from app.knowledge.indexing.cleaning import PreProcessing, clean

NONE = PreProcessing(remove_extra_spaces=False, remove_urls_emails=False)
SPACES = PreProcessing(remove_extra_spaces=True, remove_urls_emails=False)
URLS = PreProcessing(remove_extra_spaces=False, remove_urls_emails=True)
BOTH = PreProcessing(remove_extra_spaces=True, remove_urls_emails=True)


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("<|endoftext|>", "<endoftext>"),
        ("a <||> b", "a <> b"),
        ("nul\x00 bell\x07 esc\x1b del\x7f c1\x85 nonchar\ufffe", "nul bell esc del c1 nonchar"),
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        ("windows\r\nmac\rpage\fbreak\vtab", "windows\nmac\npage\nbreak\ntab"),
        ("unicode stays: é ï ¿ ¾ 中文", "unicode stays: é ï ¿ ¾ 中文"),
    ],
)
def test_invalid_symbols_always_removed(raw: str, cleaned: str) -> None:
    assert clean(raw, NONE) == cleaned


def test_no_rules_keeps_spacing_and_urls() -> None:
    text = "a   b\n\n\n\nc https://example.com me@example.com"
    assert clean(text, NONE) == text


def test_remove_extra_spaces() -> None:
    text = "a  \t b\u00a0\u00a0c\u3000d\u2003e   \nline\n\n\n\n\nnext  \n \n \nlast"
    assert clean(text, SPACES) == "a b c d e\nline\n\nnext\n\nlast"


def test_remove_extra_spaces_keeps_single_blank_line() -> None:
    assert clean("para one\n\npara two", SPACES) == "para one\n\npara two"


def test_remove_emails() -> None:
    assert clean("Write to first.last+tag@mail.example.co.uk today.", URLS) == "Write to  today."


def test_remove_urls_keeps_trailing_punctuation() -> None:
    text = "See https://example.com/docs?a=1&b=2#x, or http://foo.org/path. Done"
    assert clean(text, URLS) == "See , or . Done"


def test_markdown_image_url_is_kept() -> None:
    text = "![diagram](https://cdn.example.com/a.png) and https://tracker.example.com/x"
    assert clean(text, URLS) == "![diagram](https://cdn.example.com/a.png) and "


def test_markdown_link_keeps_its_text() -> None:
    text = 'Read [the docs](https://docs.example.com/start "Title") or [mail us](mailto:hi@example.com).'
    assert clean(text, URLS) == "Read the docs or mail us."


def test_autolinks_are_removed_whole() -> None:
    assert clean("Home: <https://example.com>.", URLS) == "Home: ."


def test_both_rules_tidy_the_gaps_left_by_urls() -> None:
    text = "Contact   me@example.com   or https://example.com   now\n\n\n\nthanks"
    assert clean(text, BOTH) == "Contact or now\n\nthanks"


def test_cleaning_twice_changes_nothing() -> None:
    text = "x <|||> y\r\n\n\n\n  z  https://a.b/c [t](https://u.v) ![i](http://img/i.png) a@b.cd"
    once = clean(text, BOTH)
    assert clean(once, BOTH) == once
