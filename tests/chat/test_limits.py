"""Chat turns obey the hardening limits workflow runs obey: the run input caps (``MAX_VARIABLE_SIZE`` per input
and for the query, ``SLUICE_MAX_RUN_INPUTS_SIZE`` for all of them together: 400 ``input_too_large``, and no turn
is recorded), and the per-key cap on open event streams (``SLUICE_MAX_EVENT_STREAMS_PER_KEY``: a streaming turn
or a turn's event stream over it gets 429 ``too_many_streams`` before anything starts; a finished stream frees
its slot)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.chat.conftest import AppUnderTest, chat, events, import_app, names

PER_VARIABLE, TOTAL, STREAMS = 4000, 10_000, 2

ECHO = """
version: 0.1.5
kind: app
app: {name: Echo chat, mode: advanced-chat}
workflow:
  graph:
    nodes:
      - id: start
        data:
          type: start
          title: Start
          variables:
            - {variable: a, label: A, type: paragraph, required: false}
            - {variable: b, label: B, type: paragraph, required: false}
      - {id: answer, data: {type: answer, title: Answer, answer: "{{#sys.query#}}"}}
    edges:
      - {id: e1, source: start, target: answer}
"""


@pytest.fixture
async def limited(chat_settings: Settings, chat_worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = msgspec.structs.replace(
        chat_settings,
        max_variable_size=PER_VARIABLE,
        max_run_inputs_size=TOTAL,
        max_event_streams_per_key=STREAMS,
    )
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        yield client


async def count(engine: AsyncEngine, sql: str, app: AppUnderTest) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql), {"app": app.app_id}) or 0)


async def turns_of(engine: AsyncEngine, app: AppUnderTest) -> int:
    return await count(engine, "SELECT count(*) FROM messages WHERE app_id = :app", app)


async def streams_of(engine: AsyncEngine, app: AppUnderTest) -> int:
    return await count(
        engine,
        "SELECT count(*) FROM event_streams s JOIN api_keys k ON k.id = s.key_id WHERE k.app_id = :app",
        app,
    )


async def test_a_query_or_input_over_max_variable_size_is_refused(
    limited: AsyncTestClient[Litestar], chat_engine: AsyncEngine
) -> None:
    app = await import_app(limited, ECHO)
    for mode in ("blocking", "streaming"):
        big_query = await chat(limited, app, "q" * PER_VARIABLE, mode=mode)
        assert big_query.status_code == 400, big_query.text
        error = big_query.json()
        assert error["code"] == "input_too_large"
        assert error["status"] == 400
        assert error["message"].startswith("The query is")
        assert "MAX_VARIABLE_SIZE" in error["message"]
        big_input = await chat(limited, app, "hi", inputs={"a": "x" * PER_VARIABLE}, mode=mode)
        assert big_input.status_code == 400
        assert big_input.json()["code"] == "input_too_large"
        assert "inputs.a" in big_input.json()["message"]
    assert await turns_of(chat_engine, app) == 0
    assert await streams_of(chat_engine, app) == 0

    fits = await chat(limited, app, "q" * (PER_VARIABLE - 100), inputs={"a": "x" * (PER_VARIABLE - 100)})
    assert fits.status_code == 200, fits.text
    assert fits.json()["answer"] == "q" * (PER_VARIABLE - 100), fits.text


async def test_the_query_counts_in_the_inputs_total(
    limited: AsyncTestClient[Litestar], chat_engine: AsyncEngine
) -> None:
    app = await import_app(limited, ECHO)
    each = "x" * (PER_VARIABLE - 100)  # two inputs fit the total; the query on top of them does not
    inputs = {"a": each, "b": each}
    assert (await chat(limited, app, "short", inputs=inputs)).status_code == 200
    refused = await chat(limited, app, each, inputs=inputs, mode="streaming")
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "input_too_large", refused.text
    assert "SLUICE_MAX_RUN_INPUTS_SIZE" in refused.json()["message"]
    assert await turns_of(chat_engine, app) == 1


async def test_streaming_turns_and_turn_event_streams_hold_the_key_stream_cap(
    limited: AsyncTestClient[Litestar], chat_engine: AsyncEngine
) -> None:
    app = await import_app(limited, ECHO)
    first = await chat(limited, app, "first", mode="streaming")
    assert first.status_code == 200
    assert names(first.text)[-1] == "workflow_finished"
    assert await streams_of(chat_engine, app) == 0  # the finished stream gave its slot back
    run_id = events(first.text)[0]["workflow_run_id"]

    # Other streams of this key (in any process) hold every slot.
    async with chat_engine.begin() as conn:
        for _ in range(STREAMS):
            await conn.execute(
                text(
                    "INSERT INTO event_streams (id, key_id) SELECT :id, id FROM api_keys WHERE app_id = :app"
                ),
                {"id": uuid.uuid4(), "app": app.app_id},
            )
    refused = await chat(limited, app, "second", mode="streaming")
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_streams", refused.text
    assert await turns_of(chat_engine, app) == 1  # no turn started
    follow = await limited.get(f"/v1/workflow/{run_id}/events", params={"user": "alice"}, headers=app.headers)
    assert follow.status_code == 429, follow.text
    assert follow.json()["code"] == "too_many_streams", follow.text
    blocking = await chat(limited, app, "blocking turns hold no stream")
    assert blocking.status_code == 200, blocking.text

    async with chat_engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM event_streams WHERE key_id IN (SELECT id FROM api_keys WHERE app_id = :app)"),
            {"app": app.app_id},
        )
    again = await chat(limited, app, "third", mode="streaming")
    assert again.status_code == 200
    assert names(again.text)[-2:] == ["message_end", "workflow_finished"]
    replay = await limited.get(f"/v1/workflow/{run_id}/events", params={"user": "alice"}, headers=app.headers)
    assert replay.status_code == 200
    assert names(replay.text)[-1] == "workflow_finished"
    assert await streams_of(chat_engine, app) == 0


async def test_a_streaming_turn_refused_while_its_slot_is_taken_gives_the_slot_back(
    limited: AsyncTestClient[Litestar], chat_engine: AsyncEngine
) -> None:
    """The slot is taken alongside the turn's start (on a connection of its own): a turn refused meanwhile (here
    for its input size) releases it, however many times that happens."""
    app = await import_app(limited, ECHO)
    for _ in range(STREAMS + 2):
        refused = await chat(limited, app, "x" * (PER_VARIABLE + 1), mode="streaming")
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "input_too_large"
        assert await streams_of(chat_engine, app) == 0
    assert await turns_of(chat_engine, app) == 0
    accepted = await chat(limited, app, "fits", mode="streaming")
    assert accepted.status_code == 200, accepted.text
    assert names(accepted.text)[-1] == "workflow_finished"
