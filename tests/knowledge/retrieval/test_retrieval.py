"""Retrieval over indexed documents: each search method, fusion, top_k, thresholds, metadata filters, parents."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval.model import parse_retrieval_model
from app.knowledge.retrieval.services import Hit, Retriever
from app.settings import Settings
from db.models import Dataset
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.rows import make_dataset, make_workspace

pytestmark = pytest.mark.usefixtures("kb_worker")

FACTS = {
    "tires.txt": "Inflate road bike tires to about 80 psi; check the pressure weekly with a floor pump.",
    "chain.txt": "Measure chain wear with a checker tool and replace the chain at 0.5 percent stretch.",
    "bread.txt": "Sourdough starter needs feeding with flour and water every day at room temperature.",
    "oven.txt": "Bake the loaf in a preheated Dutch oven at 250 C for twenty minutes with the lid on.",
    "error.txt": "The deadlock error SQLSTATE 40P01 means two transactions waited on each other.",
}
META = {
    "tires.txt": {"topic": "bike", "year": 2021, "author": "Ada Lovelace"},
    "chain.txt": {"topic": "bike", "year": 2023, "author": "Alan Turing"},
    "bread.txt": {"topic": "baking", "year": 2019, "author": "Grace Hopper"},
    "oven.txt": {"topic": "baking", "year": 2024},
    "error.txt": {"topic": "databases", "year": 2022, "author": "Edgar Codd"},
}


@pytest.fixture(scope="module")
async def corpus(kb_engine, kb_settings: Settings) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    sessions = async_sessionmaker(kb_engine, expire_on_commit=False)
    async with sessions() as session:
        dataset = await make_dataset(
            session,
            await make_workspace(session),
            technique="high_quality",
            embedding=("openai", "fake-retrieval"),
        )
    async with sessions() as session:
        economy = await make_dataset(session, await make_workspace(session), technique="economy")
    for name, text in FACTS.items():
        for ds in (dataset, economy):
            doc = await add_document(sessions, ds, text, name=name, metadata=META[name])
            assert (await wait_for_status(sessions, doc.id)).indexing_status == "completed"
    return {"dataset": dataset, "economy": economy}


async def search(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, dataset: Dataset, query: str, **model: Any
) -> list[Hit]:
    retriever = Retriever(Embedders(settings))
    async with sessions() as session, session.begin():
        return await retriever.retrieve(session, [dataset], query, parse_retrieval_model(model))


def names(hits: list[Hit]) -> list[str]:
    return [h.document.name for h in hits]


async def test_semantic_search_finds_the_same_text_first(kb_sessions, kb_settings, corpus) -> None:
    hits = await search(kb_sessions, kb_settings, corpus["dataset"], FACTS["chain.txt"], top_k=3)
    assert names(hits)[0] == "chain.txt"
    assert len(hits) == 3
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(0 <= h.score <= 1 for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.score)


async def test_full_text_search_stems_and_ranks(kb_sessions, kb_settings, corpus) -> None:
    hits = await search(
        kb_sessions,
        kb_settings,
        corpus["dataset"],
        "how often to feed a starter",
        search_method="full_text_search",
    )
    assert names(hits)[0] == "bread.txt"
    assert all(0 < h.score < 1 for h in hits)
    code = await search(
        kb_sessions, kb_settings, corpus["dataset"], "40P01", search_method="full_text_search"
    )
    assert names(code) == ["error.txt"]
    nothing = await search(
        kb_sessions, kb_settings, corpus["dataset"], "the of and", search_method="full_text_search"
    )
    assert nothing == []


async def test_hybrid_search_fuses_both_lists(kb_sessions, kb_settings, corpus) -> None:
    rrf = await search(
        kb_sessions, kb_settings, corpus["dataset"], FACTS["oven.txt"], search_method="hybrid_search", top_k=2
    )
    assert names(rrf)[0] == "oven.txt"
    assert rrf[0].score == pytest.approx(1.0)  # first in both lists
    weighted = await search(
        kb_sessions,
        kb_settings,
        corpus["dataset"],
        "SQLSTATE deadlock",
        search_method="hybrid_search",
        reranking_mode="weighted_score",
        weights={"vector_setting": {"vector_weight": 0.0}, "keyword_setting": {"keyword_weight": 1.0}},
    )
    assert names(weighted)[0] == "error.txt"


async def test_keyword_search_and_economy_datasets(kb_sessions, kb_settings, corpus) -> None:
    hits = await search(
        kb_sessions, kb_settings, corpus["economy"], "chain checker", search_method="keyword_search"
    )
    assert names(hits)[0] == "chain.txt"
    assert hits[0].score == 1.0
    # an economy dataset has no vectors: a semantic request searches its keywords instead
    semantic = await search(kb_sessions, kb_settings, corpus["economy"], "dutch oven loaf")
    assert names(semantic)[0] == "oven.txt"


async def test_top_k_and_score_threshold(kb_sessions, kb_settings, corpus) -> None:
    hits = await search(kb_sessions, kb_settings, corpus["dataset"], FACTS["tires.txt"], top_k=5)
    assert len(hits) == 5
    strict = await search(
        kb_sessions,
        kb_settings,
        corpus["dataset"],
        FACTS["tires.txt"],
        top_k=5,
        score_threshold_enabled=True,
        score_threshold=0.99,
    )
    assert names(strict) == ["tires.txt"]
    # a threshold without score_threshold_enabled is ignored, like Dify
    ignored = await search(
        kb_sessions, kb_settings, corpus["dataset"], FACTS["tires.txt"], score_threshold=0.99
    )
    assert len(ignored) == 4


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([{"name": "topic", "comparison_operator": "is", "value": "bike"}], {"tires.txt", "chain.txt"}),
        (
            [{"name": "topic", "comparison_operator": "is not", "value": "bike"}],
            {"bread.txt", "oven.txt", "error.txt"},
        ),
        ([{"name": "author", "comparison_operator": "contains", "value": "ra"}], {"bread.txt"}),
        (
            [{"name": "author", "comparison_operator": "not contains", "value": "Codd"}],
            {"tires.txt", "chain.txt", "bread.txt", "oven.txt"},
        ),
        ([{"name": "author", "comparison_operator": "start with", "value": "Ala"}], {"chain.txt"}),
        ([{"name": "author", "comparison_operator": "end with", "value": "ace"}], {"tires.txt"}),
        ([{"name": "author", "comparison_operator": "empty"}], {"oven.txt"}),
        (
            [{"name": "author", "comparison_operator": "not empty"}],
            {"tires.txt", "chain.txt", "bread.txt", "error.txt"},
        ),
        ([{"name": "year", "comparison_operator": ">", "value": 2022}], {"chain.txt", "oven.txt"}),
        (
            [{"name": "year", "comparison_operator": "≥", "value": "2022"}],
            {"chain.txt", "oven.txt", "error.txt"},
        ),
        ([{"name": "year", "comparison_operator": "<", "value": 2020}], {"bread.txt"}),
        ([{"name": "year", "comparison_operator": "≤", "value": 2019}], {"bread.txt"}),
        ([{"name": "year", "comparison_operator": "=", "value": 2021}], {"tires.txt"}),
        ([{"name": "year", "comparison_operator": "before", "value": 2021}], {"bread.txt"}),
        ([{"name": "year", "comparison_operator": "after", "value": 2023}], {"oven.txt"}),
        (
            [{"name": "topic", "comparison_operator": "in", "value": ["baking", "databases"]}],
            {"bread.txt", "oven.txt", "error.txt"},
        ),
        (
            [{"name": "topic", "comparison_operator": "not in", "value": "baking, databases"}],
            {"tires.txt", "chain.txt"},
        ),
        # a number compared with a string field never matches (and never fails)
        ([{"name": "topic", "comparison_operator": ">", "value": 1}], set()),
        # SQL in a value or a name is only ever a parameter
        (
            [
                {
                    "name": "topic'; DROP TABLE segments; --",
                    "comparison_operator": "is",
                    "value": "x' OR '1'='1",
                }
            ],
            set(),
        ),
    ],
)
async def test_metadata_filters(kb_sessions, kb_settings, corpus, conditions, expected) -> None:
    hits = await search(
        kb_sessions,
        kb_settings,
        corpus["dataset"],
        "anything",
        top_k=10,
        metadata_filtering_conditions={"logical_operator": "and", "conditions": conditions},
    )
    assert set(names(hits)) == expected


async def test_metadata_or(kb_sessions, kb_settings, corpus) -> None:
    hits = await search(
        kb_sessions,
        kb_settings,
        corpus["dataset"],
        "anything",
        top_k=10,
        metadata_filtering_conditions={
            "logical_operator": "or",
            "conditions": [
                {"name": "year", "comparison_operator": "=", "value": 2019},
                {"name": "topic", "comparison_operator": "is", "value": "databases"},
            ],
        },
    )
    assert set(names(hits)) == {"bread.txt", "error.txt"}


async def test_hierarchical_hit_returns_parent_with_matching_children(
    kb_sessions, kb_session, kb_workspace, kb_settings
) -> None:
    dataset = await make_dataset(
        kb_session,
        kb_workspace,
        technique="high_quality",
        embedding=("openai", "fake-parent"),
        doc_form="hierarchical_model",
    )
    sections = [
        "Brakes section.\nRim brakes need pads aligned to the rim.\nDisc brakes need clean rotors.",
        "Gears section.\nIndex the derailleur with the barrel adjuster.\nLubricate the chain after rain.",
    ]
    rule = {
        "mode": "hierarchical",
        "rules": {
            "parent_mode": "paragraph",
            "segmentation": {"separator": "\\n\\n", "max_tokens": 500},
            "subchunk_segmentation": {"separator": "\\n", "max_tokens": 200},
        },
    }
    doc = await add_document(kb_sessions, dataset, "\n\n".join(sections), process_rule=rule)
    assert (await wait_for_status(kb_sessions, doc.id)).indexing_status == "completed"
    hits = await search(
        kb_sessions, kb_settings, dataset, "Index the derailleur with the barrel adjuster.", top_k=1
    )
    assert len(hits) == 1
    assert hits[0].segment.content == sections[1]
    assert hits[0].child_chunks[0][0].content == "Index the derailleur with the barrel adjuster."
    assert hits[0].score == pytest.approx(hits[0].child_chunks[0][1])
