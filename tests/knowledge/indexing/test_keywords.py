"""extract_keywords(): frequency-ranked, stop-word-free, deterministic."""

from __future__ import annotations

from app.knowledge.indexing.keywords import extract_keywords


def test_ranked_by_frequency_then_first_occurrence() -> None:
    text = "Postgres stores vectors. Vectors need an index; the index is HNSW. Postgres Postgres."
    assert extract_keywords(text) == ["postgres", "vectors", "index", "stores", "need", "hnsw"]


def test_stopwords_and_short_tokens_dropped() -> None:
    assert extract_keywords("It is a cat and I am the dog, isn't it? x y z") == ["cat", "dog"]


def test_numbers_need_three_digits() -> None:
    assert extract_keywords("Step 1 of 12: released in 2024, port 8080, v2") == [
        "step",
        "released",
        "2024",
        "port",
        "8080",
        "v2",
    ]


def test_unicode_words() -> None:
    assert extract_keywords("Über Straße straße, 数据库 数据库 café") == ["straße", "数据库", "über", "café"]


def test_limit() -> None:
    text = "alpha beta gamma delta alpha beta alpha"
    assert extract_keywords(text, limit=2) == ["alpha", "beta"]
    assert extract_keywords(text, limit=0) == []


def test_empty_and_stopword_only() -> None:
    assert extract_keywords("") == []
    assert extract_keywords("the and of to a") == []


def test_deterministic_for_queries() -> None:
    query = "How do I reset my password?"
    assert extract_keywords(query) == extract_keywords(query) == ["reset", "password"]
