"""Process rules from Dify's JSON, and the recursive character splitter they drive."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from app.knowledge.indexing.cleaning import PreProcessing
from app.knowledge.indexing.splitting import (
    Chunk,
    InvalidProcessRule,
    ProcessRule,
    Segmentation,
    split_document,
    split_text,
)

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def prose(seed: int, paragraphs: int = 12) -> str:
    """Paragraphs of sentences of random words, reproducibly."""
    rng = random.Random(seed)
    result = []
    for _ in range(paragraphs):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25))).capitalize() + rng.choice(".!?")
            for _ in range(rng.randint(1, 8))
        ]
        result.append(" ".join(sentences))
    return "\n\n".join(result)


def custom(segmentation: dict[str, Any], **rules: Any) -> ProcessRule:
    return ProcessRule.from_api("custom", {"segmentation": segmentation, **rules})


# -- split_text ------------------------------------------------------------------------------------------------


def test_each_separator_piece_is_its_own_chunk() -> None:
    text = "First paragraph.\n\nSecond paragraph.\n\n\n\nThird."
    assert split_text(text, Segmentation("\n\n", 100, 10)) == [
        "First paragraph.",
        "Second paragraph.",
        "Third.",
    ]


def test_escaped_separator_from_json_is_unescaped() -> None:
    text = "one\ntwo\n\nthree"
    assert split_text(text, Segmentation("\\n\\n", 100, 0)) == ["one\ntwo", "three"]
    assert split_text(text, Segmentation("\\n", 100, 0)) == ["one", "two", "three"]


def test_custom_separator() -> None:
    text = "Q: a?\nA: b.\n***\nQ: c?\nA: d.\n***\n"
    assert split_text(text, Segmentation("***", 100, 0)) == ["Q: a?\nA: b.", "Q: c?\nA: d."]


def test_empty_separator_means_whole_text() -> None:
    assert split_text("a\n\nb", Segmentation("", 100, 0)) == ["a\n\nb"]


def test_empty_and_blank_input() -> None:
    assert split_text("", Segmentation()) == []
    assert split_text(" \n\n \n ", Segmentation("\n", 100, 0)) == []


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("size", "overlap"), [(50, 0), (60, 20), (120, 50), (500, 50)])
def test_no_chunk_is_longer_than_max(seed: int, size: int, overlap: int) -> None:
    text = prose(seed)
    chunks = split_text(text, Segmentation("\n\n", size, overlap))
    assert chunks
    assert all(0 < len(chunk) <= size for chunk in chunks)
    assert all(chunk == chunk.strip() for chunk in chunks)
    # nothing is lost: every word of the text appears, in order, across the chunks
    assert set(" ".join(chunks).split()) == set(text.split())


def test_long_paragraph_splits_at_sentences_and_merges_them() -> None:
    text = "One two three four. Five six seven eight. Nine ten eleven twelve. Thirteen fourteen."
    assert split_text(text, Segmentation("\n\n", 50, 0)) == [
        "One two three four. Five six seven eight.",
        "Nine ten eleven twelve. Thirteen fourteen.",
    ]


def test_cjk_sentences() -> None:
    text = "这是第一句话。这是第二句话。这是第三句话。"
    assert split_text(text, Segmentation("\n", 14, 0)) == ["这是第一句话。这是第二句话。", "这是第三句话。"]


def test_long_paragraph_splits_at_lines_before_sentences() -> None:
    text = "line one. still one\nline two\nline three"
    assert split_text(text, Segmentation("\n\n", 20, 0)) == ["line one. still one", "line two\nline three"]


def test_overlap_repeats_whole_trailing_pieces() -> None:
    text = " ".join(f"w{index:02d}" for index in range(30))  # 30 words of 3 characters
    chunks = split_text(text, Segmentation("\n\n", 20, 8))
    assert len(chunks) > 1
    assert all(len(chunk) <= 20 for chunk in chunks)
    for previous, current in itertools.pairwise(chunks):
        tail = previous.split()[-2:]
        assert current.split()[:2] == tail  # "wNN wNN " is 8 characters: two words carried over
    assert chunks[0] == "w00 w01 w02 w03 w04"
    assert chunks[1] == "w03 w04 w05 w06 w07"


def test_no_overlap() -> None:
    text = " ".join(f"w{index:02d}" for index in range(10))
    assert split_text(text, Segmentation("\n", 20, 0)) == ["w00 w01 w02 w03 w04", "w05 w06 w07 w08 w09"]


def test_pieces_do_not_overlap_across_the_separator() -> None:
    assert split_text("aaa bbb\nccc ddd", Segmentation("\n", 50, 40)) == ["aaa bbb", "ccc ddd"]


def test_hard_cut_for_text_without_separators() -> None:
    text = "x" * 120
    chunks = split_text(text, Segmentation("\n", 50, 10))
    assert chunks == ["x" * 50, "x" * 50, "x" * 40]
    token = "".join(chr(ord("a") + index % 26) for index in range(120))
    cut = split_text(token, Segmentation("\n", 50, 10))
    assert [len(chunk) for chunk in cut] == [50, 50, 40]
    assert cut[1].startswith(cut[0][-10:])


def test_piece_exactly_max_is_kept_whole() -> None:
    assert split_text("y" * 50 + "\n" + "z" * 50, Segmentation("\n", 50, 0)) == ["y" * 50, "z" * 50]


def test_segmentation_rejects_bad_overlap() -> None:
    with pytest.raises(InvalidProcessRule):
        Segmentation("\n", 50, 50)
    with pytest.raises(InvalidProcessRule):
        Segmentation("\n", 50, -1)
    with pytest.raises(InvalidProcessRule):
        Segmentation("\n", 0, 0)


# -- ProcessRule.from_api --------------------------------------------------------------------------------------


def test_automatic_defaults() -> None:
    rule = ProcessRule.from_api("automatic", None)
    assert rule == ProcessRule()
    assert rule.pre_processing == PreProcessing(remove_extra_spaces=True, remove_urls_emails=False)
    assert rule.segmentation == Segmentation("\n", 500, 50)
    assert rule.to_api() == {
        "mode": "automatic",
        "rules": {
            "pre_processing_rules": [
                {"id": "remove_extra_spaces", "enabled": True},
                {"id": "remove_urls_emails", "enabled": False},
            ],
            "segmentation": {"separator": "\n", "max_tokens": 500, "chunk_overlap": 50},
        },
    }


def test_automatic_ignores_given_rules() -> None:
    assert ProcessRule.from_api("automatic", {"segmentation": {"max_tokens": 7}}) == ProcessRule()


def test_automatic_merges_short_lines_up_to_500() -> None:
    lines = [f"Line number {index} of the handbook." for index in range(40)]
    chunks = split_document("\n".join(lines), ProcessRule())
    assert len(chunks) > 1
    assert all(len(chunk.content) <= 500 and not chunk.children for chunk in chunks)
    assert chunks[0].content.startswith("Line number 0 of the handbook.\nLine number 1")
    # overlap: the next chunk starts with the last line(s) of the previous one
    assert chunks[0].content.splitlines()[-1] == chunks[1].content.splitlines()[0]
    assert split_document("short text", ProcessRule()) == [Chunk("short text")]


def test_custom_rule() -> None:
    rule = custom(
        {"separator": "\\n\\n", "max_tokens": 1000, "chunk_overlap": 100},
        pre_processing_rules=[
            {"id": "remove_extra_spaces", "enabled": False},
            {"id": "remove_urls_emails", "enabled": True},
            {"id": "remove_stopwords", "enabled": True},
        ],
    )
    assert rule.mode == "custom"
    assert rule.pre_processing == PreProcessing(remove_extra_spaces=False, remove_urls_emails=True)
    assert rule.segmentation == Segmentation("\\n\\n", 1000, 100)
    assert rule.to_api()["rules"]["segmentation"] == {
        "separator": "\\n\\n",
        "max_tokens": 1000,
        "chunk_overlap": 100,
    }
    assert "parent_mode" not in rule.to_api()["rules"]
    assert split_document("a\n\nb", rule) == [Chunk("a"), Chunk("b")]


def test_custom_defaults_like_dify() -> None:
    rule = custom({"max_tokens": 50})
    assert rule.segmentation == Segmentation("\n", 50, 0)
    assert rule.pre_processing == PreProcessing(remove_extra_spaces=False, remove_urls_emails=False)


@pytest.mark.parametrize(
    ("mode", "rules", "message"),
    [
        ("fancy", None, "mode is invalid"),
        ("custom", None, "rules is required"),
        ("custom", {}, "segmentation is required"),
        ("custom", {"segmentation": "big"}, "segmentation is invalid"),
        ("custom", {"segmentation": {"separator": "\n"}}, "max_tokens is required"),
        ("custom", {"segmentation": {"max_tokens": 49}}, "between 50 and 4000"),
        ("custom", {"segmentation": {"max_tokens": 4001}}, "between 50 and 4000"),
        ("custom", {"segmentation": {"max_tokens": "500"}}, "max_tokens is invalid"),
        ("custom", {"segmentation": {"max_tokens": True}}, "max_tokens is invalid"),
        ("custom", {"segmentation": {"max_tokens": 100, "chunk_overlap": 100}}, "chunk_overlap is invalid"),
        ("custom", {"segmentation": {"max_tokens": 100, "chunk_overlap": -1}}, "chunk_overlap is invalid"),
        ("custom", {"segmentation": {"max_tokens": 100, "separator": 5}}, "separator is invalid"),
        ("custom", {"segmentation": {"max_tokens": 100}, "pre_processing_rules": {}}, "must be a list"),
        (
            "custom",
            {"segmentation": {"max_tokens": 100}, "pre_processing_rules": [{"id": "x"}]},
            "id is invalid",
        ),
        (
            "custom",
            {"segmentation": {"max_tokens": 100}, "pre_processing_rules": [{"id": "remove_urls_emails"}]},
            "enabled is invalid",
        ),
        ("hierarchical", {"parent_mode": "chapter"}, "parent_mode is invalid"),
        ("hierarchical", {"subchunk_segmentation": {"max_tokens": 10}}, "subchunk_segmentation max_tokens"),
    ],
)
def test_invalid_rules(mode: str, rules: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(InvalidProcessRule, match=message) as caught:
        ProcessRule.from_api(mode, rules)
    assert isinstance(caught.value, ValueError)
    assert message in caught.value.message


def test_hierarchical_defaults() -> None:
    rule = ProcessRule.from_api("hierarchical", {})
    assert rule.parent_mode == "paragraph"
    assert rule.segmentation == Segmentation("\n\n", 500, 0)
    assert rule.subchunk_segmentation == Segmentation("\n", 200, 0)
    assert rule.to_api()["rules"] == {
        "pre_processing_rules": [
            {"id": "remove_extra_spaces", "enabled": False},
            {"id": "remove_urls_emails", "enabled": False},
        ],
        "segmentation": {"separator": "\n\n", "max_tokens": 500, "chunk_overlap": 0},
        "parent_mode": "paragraph",
        "subchunk_segmentation": {"separator": "\n", "max_tokens": 200, "chunk_overlap": 0},
    }


def test_to_api_round_trips() -> None:
    rules = {
        "pre_processing_rules": [
            {"id": "remove_extra_spaces", "enabled": True},
            {"id": "remove_urls_emails", "enabled": True},
        ],
        "segmentation": {"separator": "###", "max_tokens": 800, "chunk_overlap": 30},
        "parent_mode": "paragraph",
        "subchunk_segmentation": {"separator": "\\n", "max_tokens": 120, "chunk_overlap": 10},
    }
    rule = ProcessRule.from_api("hierarchical", rules)
    assert rule.to_api() == {"mode": "hierarchical", "rules": rules}
    assert ProcessRule.from_api("hierarchical", rule.to_api()["rules"]) == rule


# -- split_document: hierarchical --------------------------------------------------------------------------------


def test_hierarchical_paragraph_parents_with_children() -> None:
    rule = ProcessRule.from_api(
        "hierarchical",
        {
            "parent_mode": "paragraph",
            "segmentation": {"separator": "\\n\\n", "max_tokens": 500},
            "subchunk_segmentation": {"separator": "\\n", "max_tokens": 50},
        },
    )
    text = "Install\nRun the installer.\nWait.\n\nConfigure\nEdit the file.\n\n\n\n"
    assert split_document(text, rule) == [
        Chunk("Install\nRun the installer.\nWait.", ("Install", "Run the installer.", "Wait.")),
        Chunk("Configure\nEdit the file.", ("Configure", "Edit the file.")),
    ]


def test_hierarchical_children_respect_their_max() -> None:
    rule = ProcessRule.from_api(
        "hierarchical",
        {
            "segmentation": {"max_tokens": 400},
            "subchunk_segmentation": {"max_tokens": 60, "chunk_overlap": 15},
        },
    )
    chunks = split_document(prose(3), rule)
    assert chunks
    for chunk in chunks:
        assert len(chunk.content) <= 400
        assert chunk.children
        assert all(len(child) <= 60 for child in chunk.children)
        assert set(" ".join(chunk.children).split()) == set(chunk.content.split())


def test_hierarchical_full_doc_is_one_parent() -> None:
    rule = ProcessRule.from_api(
        "hierarchical",
        {
            "parent_mode": "full-doc",
            "segmentation": {"max_tokens": None},
            "subchunk_segmentation": {"max_tokens": 50},
        },
    )
    assert rule.parent_mode == "full-doc"
    text = "  " + prose(5, paragraphs=30) + "\n"
    [parent] = split_document(text, rule)
    assert parent.content == text.strip()
    assert len(parent.content) > 4000  # the parent is never cut
    assert all(len(child) <= 50 for child in parent.children)
    assert set(" ".join(parent.children).split()) == set(text.split())


def test_hierarchical_full_doc_of_empty_text() -> None:
    assert split_document(" \n ", ProcessRule.from_api("hierarchical", {"parent_mode": "full-doc"})) == []
