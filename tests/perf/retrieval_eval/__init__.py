"""Labelled retrieval evaluation set (documents, graded queries) and the document-level metrics.

See README.md in this folder. Rankings passed to the metrics are document ids, best first; a document that
appears more than once (several of its segments were hit) counts once, at its first position.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENTS_PATH = HERE / "documents.jsonl"
QUERIES_PATH = HERE / "queries.jsonl"


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_documents() -> list[dict]:
    """Every document: ``{"id", "topic", "title", "text"}``."""
    return _read_jsonl(DOCUMENTS_PATH)


def load_queries() -> list[dict]:
    """Every query: ``{"id", "query", "style", "relevant": {doc_id: grade}}`` (grade 2 or 1)."""
    return _read_jsonl(QUERIES_PATH)


def _dedupe(ranked_doc_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ranked_doc_ids))


def recall_at_k(ranked_doc_ids: list[str], relevant: dict[str, int], k: int) -> float:
    """Fraction of the relevant documents (any grade > 0) found among the first k distinct documents."""
    wanted = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    if not wanted or k <= 0:
        return 0.0
    top = _dedupe(ranked_doc_ids)[:k]
    return len(wanted.intersection(top)) / len(wanted)


def _dcg(grades: Iterable[int]) -> float:
    return sum((2**grade - 1) / math.log2(rank + 2) for rank, grade in enumerate(grades))


def ndcg_at_k(ranked_doc_ids: list[str], relevant: dict[str, int], k: int) -> float:
    """nDCG@k with gain 2**grade - 1 and a log2(rank + 1) discount; the ideal ranking comes from the labels."""
    if k <= 0:
        return 0.0
    ideal = _dcg(sorted((g for g in relevant.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    top = _dedupe(ranked_doc_ids)[:k]
    return _dcg(relevant.get(doc_id, 0) for doc_id in top) / ideal
