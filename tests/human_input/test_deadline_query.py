"""The query that finds due deadlines bounds the deadline index with the clock, so its cost does not grow with
the number of waiting forms (a volatile ``clock_timestamp()`` in the condition made it walk all of them)."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.human_input.services import DUE_FORMS


async def test_due_forms_are_found_through_an_index_bound_not_a_filter(engine: AsyncEngine) -> None:
    async with engine.connect() as conn, conn.begin():
        # a nearly empty table: make the planner show how it would use the index
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        explained = await conn.scalar(
            text("EXPLAIN (FORMAT JSON) " + DUE_FORMS.text),
            {"limit": 500},
        )
    plan = json.dumps(explained)
    assert "human_input_forms_waiting_deadline" in plan
    assert '"Index Cond": "(deadline <= (InitPlan' in plan
    assert "Filter" not in plan or "clock_timestamp" not in plan.split("Filter", 1)[1]
