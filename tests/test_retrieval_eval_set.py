"""The retrieval evaluation set (tests/perf/retrieval_eval) is well formed, and its metrics compute correctly."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from tests.perf.retrieval_eval import load_documents, load_queries, ndcg_at_k, recall_at_k

DOCS = load_documents()
QUERIES = load_queries()
DOC_IDS = {d["id"] for d in DOCS}


def test_documents() -> None:
    assert len(DOCS) >= 200
    ids = [d["id"] for d in DOCS]
    assert len(ids) == len(set(ids))
    for d in DOCS:
        assert re.fullmatch(r"d\d{3}", d["id"]), d["id"]
        assert d["title"].strip()
        assert d["topic"].strip()
        assert 250 <= len(d["text"]) <= 1000, d["id"]
    topics = Counter(d["topic"] for d in DOCS)
    assert len(topics) >= 20
    assert min(topics.values()) >= 8


def test_queries() -> None:
    assert len(QUERIES) >= 50
    ids = [q["id"] for q in QUERIES]
    assert len(ids) == len(set(ids))
    for q in QUERIES:
        assert q["query"].strip()
        assert q["style"] in {"paraphrase", "keyword", "mixed"}, q["id"]
        assert q["relevant"], q["id"]
        assert set(q["relevant"]) <= DOC_IDS, q["id"]
        assert set(q["relevant"].values()) <= {1, 2}, q["id"]
        assert 2 in q["relevant"].values(), q["id"]
    styles = Counter(q["style"] for q in QUERIES)
    assert styles["paraphrase"] >= 25
    assert styles["keyword"] >= 15
    assert styles["mixed"] >= 10
    multi = sum(len(q["relevant"]) >= 2 for q in QUERIES)
    assert 0.25 <= multi / len(QUERIES) <= 0.5


def test_keyword_query_terms_appear_verbatim_in_an_answer() -> None:
    texts = {d["id"]: d["text"].lower() for d in DOCS}
    for q in QUERIES:
        if q["style"] == "keyword":
            terms = q["query"].lower().split()
            answers = [doc_id for doc_id, grade in q["relevant"].items() if grade == 2]
            assert any(all(t in texts[doc_id] for t in terms) for doc_id in answers), q["id"]


def test_recall_at_k() -> None:
    relevant = {"d2": 2, "d4": 1}
    assert recall_at_k(["d1", "d2", "d3"], relevant, 3) == 0.5
    assert recall_at_k(["d1", "d2", "d3", "d4"], relevant, 3) == 0.5
    assert recall_at_k(["d1", "d2", "d3", "d4"], relevant, 4) == 1.0
    # a document hit through several segments counts once: d4 moves up to the second distinct position
    assert recall_at_k(["d2", "d2", "d4"], relevant, 2) == 1.0
    assert recall_at_k([], relevant, 5) == 0.0


def test_ndcg_at_k() -> None:
    relevant = {"d2": 2, "d4": 1}
    # DCG = (2**2-1)/log2(3); ideal = 3/log2(2) + 1/log2(3)
    expected = (3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["d1", "d2", "d3"], relevant, 3) == pytest.approx(expected)
    assert expected == pytest.approx(0.521296, abs=1e-6)
    assert ndcg_at_k(["d2", "d4", "d1"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d2", "d2", "d2", "d4"], relevant, 2) == pytest.approx(1.0)
    # grade order matters: the partially relevant document first scores lower than the ideal
    swapped = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["d4", "d2"], relevant, 2) == pytest.approx(swapped)
    assert ndcg_at_k(["d1", "d3"], relevant, 10) == 0.0
