"""Conversations, messages, feedback, variables and end users through HTTP — and another user sees none of it."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chat.naming import NAME_PROMPT
from tests.chat.conftest import chat, import_app
from tests.support.fake_openai import FakeOpenAI

APP = """
version: 0.1.5
kind: app
app: {name: Notes, mode: advanced-chat}
workflow:
  conversation_variables:
    - {id: 11111111-8b5d-4ad1-9f43-0e8f1d2c4b11, name: count, value_type: number, value: 0, selector: [conversation, count]}
    - {id: 22222222-8b5d-4ad1-9f43-0e8f1d2c4b11, name: flag, value_type: boolean, value: false, selector: [conversation, flag]}
    - {id: 33333333-8b5d-4ad1-9f43-0e8f1d2c4b11, name: profile, value_type: object, value: {a: 1}, selector: [conversation, profile]}
    - {id: 44444444-8b5d-4ad1-9f43-0e8f1d2c4b11, name: tags, value_type: "array[string]", value: [x], selector: [conversation, tags]}
    - {id: 55555555-8b5d-4ad1-9f43-0e8f1d2c4b11, name: note, value_type: string, value: hi, selector: [conversation, note]}
  features:
    suggested_questions_after_answer: {enabled: true}
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: llm
        data:
          type: llm
          title: LLM
          model: {provider: openai, name: fake-chat, mode: chat, completion_params: {}}
          prompt_template: [{role: user, text: "{{#sys.query#}} count={{#conversation.count#}} note={{#conversation.note#}}"}]
      - id: answer
        data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: answer}
"""


async def get(client: AsyncTestClient[Litestar], app: Any, path: str, **params: Any) -> Any:
    return await client.get(path, params=params, headers=app.headers)


async def test_conversations_list_page_rename_and_delete(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, APP)
    ids = []
    for i in range(3):
        body = (await chat(client, app, f"question {i}", auto_generate_name=False)).json()
        ids.append(body["conversation_id"])
    await chat(client, app, "again", conversation_id=ids[0])  # the first becomes the most recently active

    listed = (await get(client, app, "/v1/conversations", user="alice", limit=2)).json()
    assert [c["id"] for c in listed["data"]] == [ids[0], ids[2]]
    assert listed["has_more"] is True
    rest = (await get(client, app, "/v1/conversations", user="alice", limit=2, last_id=ids[2])).json()
    assert [c["id"] for c in rest["data"]] == [ids[1]]
    assert rest["has_more"] is False
    oldest = (await get(client, app, "/v1/conversations", user="alice", sort_by="created_at")).json()
    assert [c["id"] for c in oldest["data"]] == ids
    assert oldest["data"][0]["name"] == "question 0"
    assert oldest["data"][0]["status"] == "normal"
    assert (await get(client, app, "/v1/conversations", user="alice", sort_by="name")).status_code == 400
    # Dify's SDK sends its unset arguments as empty values (``?last_id=&limit=&pinned=``): the defaults
    sdk_style = (
        await get(client, app, "/v1/conversations", user="alice", last_id="", limit="", pinned="")
    ).json()
    assert sdk_style["limit"] == 20
    assert len(sdk_style["data"]) == 3
    for bad in ("0", "101", "x"):
        refused = await get(client, app, "/v1/conversations", user="alice", limit=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["code"] == "invalid_param", bad
    unknown = await get(client, app, "/v1/conversations", user="alice", last_id=str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Last Conversation Not Exists."
    assert (await get(client, app, "/v1/conversations", user="nobody")).json()["data"] == []

    renamed = await client.post(
        f"/v1/conversations/{ids[1]}/name", json={"name": "  Tides  ", "user": "alice"}, headers=app.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Tides"
    blank = await client.post(
        f"/v1/conversations/{ids[1]}/name", json={"name": " ", "user": "alice"}, headers=app.headers
    )
    assert blank.status_code == 400
    assert blank.json()["message"] == "name is required when auto_generate is false"
    fake_llm.add_rule(
        "question 1", '{"Language Type": "English", "Your Reasoning": "r", "Your Output": "Asking one"}'
    )
    generated = await client.post(
        f"/v1/conversations/{ids[1]}/name", json={"auto_generate": True, "user": "alice"}, headers=app.headers
    )
    assert generated.status_code == 200, generated.text
    assert generated.json()["name"] == "Asking one", generated.text
    fake_llm.queue_error(500, "no")
    fallback = await client.post(
        f"/v1/conversations/{ids[1]}/name", json={"auto_generate": True, "user": "alice"}, headers=app.headers
    )
    assert fallback.status_code == 200
    assert fallback.json()["name"] == "question 1"

    deleted = await client.request(
        "DELETE", f"/v1/conversations/{ids[1]}", json={"user": "alice"}, headers=app.headers
    )
    assert deleted.status_code == 204
    assert deleted.content == b""
    again = await client.request(
        "DELETE", f"/v1/conversations/{ids[1]}", json={"user": "alice"}, headers=app.headers
    )
    assert again.status_code == 404
    assert again.json()["message"] == "Conversation Not Exists."
    gone = await get(client, app, "/v1/messages", conversation_id=ids[1], user="alice")
    assert gone.status_code == 404


async def test_a_new_conversation_gets_a_generated_name(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, APP)
    fake_llm.add_rule("User Input: Where do eels go", '{"Your Output": "🐟 Eel migration"}')
    body = (await chat(client, app, "Where do eels go in winter, and why so far?")).json()
    assert body["conversation_id"]
    first = (await get(client, app, "/v1/conversations", user="alice")).json()["data"][0]
    assert first["name"] in ("Where do eels go in …", "🐟 Eel migration")
    for _ in range(100):
        first = (await get(client, app, "/v1/conversations", user="alice")).json()["data"][0]
        if first["name"] == "🐟 Eel migration":
            break
        await asyncio.sleep(0.1)
    assert first["name"] == "🐟 Eel migration"


async def test_a_name_its_owner_set_is_kept_from_the_naming_job(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, APP)
    fake_llm.add_rule("User Input: Which fish climb", '{"Your Output": "🐟 Climbing fish"}')
    conversation = (await chat(client, app, "Which fish climb waterfalls?")).json()["conversation_id"]
    renamed = await client.post(
        f"/v1/conversations/{conversation}/name", json={"name": "Mine", "user": "alice"}, headers=app.headers
    )
    assert renamed.status_code == 200
    for _ in range(100):  # until the naming job has asked the model (it runs about a second after the turn)
        if len(fake_llm.bodies()) > len(fake_llm.bodies(unless=NAME_PROMPT)):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # and committed what it would write
    names = [c["name"] for c in (await get(client, app, "/v1/conversations", user="alice")).json()["data"]]
    assert names == ["Mine"]


async def test_messages_scroll_up_feedback_and_suggestions(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, APP)
    conversation = None
    message_ids = []
    for i in range(5):
        body = (
            await chat(client, app, f"m{i}", conversation_id=conversation, auto_generate_name=False)
        ).json()
        conversation = body["conversation_id"]
        message_ids.append(body["message_id"])
    newest = (
        await get(client, app, "/v1/messages", conversation_id=conversation, user="alice", limit=2)
    ).json()
    assert [m["query"] for m in newest["data"]] == ["m3", "m4"]
    assert newest["has_more"] is True
    older = (
        await get(
            client,
            app,
            "/v1/messages",
            conversation_id=conversation,
            user="alice",
            limit=2,
            first_id=newest["data"][0]["id"],
        )
    ).json()
    assert [m["query"] for m in older["data"]] == ["m1", "m2"]
    assert older["has_more"] is True
    oldest = (
        await get(
            client,
            app,
            "/v1/messages",
            conversation_id=conversation,
            user="alice",
            limit=2,
            first_id=older["data"][0]["id"],
        )
    ).json()
    assert [m["query"] for m in oldest["data"]] == ["m0"]
    assert oldest["has_more"] is False
    item = oldest["data"][0]
    assert item["parent_message_id"] == "00000000-0000-0000-0000-000000000000"
    assert item["agent_thoughts"] == []
    assert item["feedback"] is None
    assert item["status"] == "normal"
    assert item["answer"].startswith("echo: m0")
    empty = (await get(client, app, "/v1/messages", conversation_id="", user="alice")).json()
    assert empty == {"limit": 20, "has_more": False, "data": []}
    bad_first = await get(
        client, app, "/v1/messages", conversation_id=conversation, user="alice", first_id=str(uuid.uuid4())
    )
    assert bad_first.status_code == 404
    assert bad_first.json()["message"] == "First Message Not Exists."

    target = message_ids[0]
    withdraw_none = await client.post(
        f"/v1/messages/{target}/feedbacks", json={"rating": None, "user": "alice"}, headers=app.headers
    )
    assert withdraw_none.status_code == 400
    assert withdraw_none.json()["message"] == "rating cannot be None when feedback not exists"
    liked = await client.post(
        f"/v1/messages/{target}/feedbacks",
        json={"rating": "like", "content": "good", "user": "alice"},
        headers=app.headers,
    )
    assert liked.status_code == 200
    assert liked.json() == {"result": "success"}
    disliked = await client.post(
        f"/v1/messages/{target}/feedbacks", json={"rating": "dislike", "user": "alice"}, headers=app.headers
    )
    assert disliked.status_code == 200
    listed = (
        await get(client, app, "/v1/messages", conversation_id=conversation, user="alice", limit=5)
    ).json()
    assert listed["data"][0]["feedback"] == {"rating": "dislike"}
    feedbacks = (await get(client, app, "/v1/app/feedbacks")).json()["data"]
    assert len(feedbacks) == 1
    assert feedbacks[0]["rating"] == "dislike"
    assert feedbacks[0]["from_source"] == "user"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$", feedbacks[0]["created_at"])
    assert (await get(client, app, "/v1/app/feedbacks", limit=102)).status_code == 400
    assert (await get(client, app, "/v1/app/feedbacks", limit=101)).status_code == 200
    withdrawn = await client.post(
        f"/v1/messages/{target}/feedbacks", json={"rating": None, "user": "alice"}, headers=app.headers
    )
    assert withdrawn.status_code == 200
    assert (await get(client, app, "/v1/app/feedbacks")).json()["data"] == []

    fake_llm.add_rule("Predict the three questions", 'Sure: ["Why?", "How?", "When?"]', where="any")
    suggested = await get(client, app, f"/v1/messages/{message_ids[-1]}/suggested", user="alice")
    assert suggested.status_code == 200
    assert suggested.json() == {
        "result": "success",
        "data": ["Why?", "How?", "When?"],
    }
    prompt = fake_llm.bodies(unless=NAME_PROMPT)[-1]["messages"][0]["content"]
    assert "Human: m4" in prompt
    assert "Human: m1" not in prompt  # the last three turns
    fake_llm.queue_reply("no list here")
    assert (await get(client, app, f"/v1/messages/{message_ids[-1]}/suggested", user="alice")).json()[
        "data"
    ] == []
    off = await import_app(
        client, APP.replace("suggested_questions_after_answer: {enabled: true}", "opening_statement: hi")
    )
    off_message = (await chat(client, off, "q")).json()["message_id"]
    disabled = await get(client, off, f"/v1/messages/{off_message}/suggested", user="alice")
    assert disabled.status_code == 400
    assert disabled.json() == {
        "code": "bad_request",
        "message": "Suggested Questions Is Disabled.",
        "status": 400,
    }
    assert (
        await get(client, app, f"/v1/messages/{message_ids[-1]}/suggested")
    ).status_code == 400  # user required


async def test_conversation_variables_list_filter_and_set(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, APP)
    conversation = (await chat(client, app, "hello")).json()["conversation_id"]
    listed = (await get(client, app, f"/v1/conversations/{conversation}/variables", user="alice")).json()
    assert [(v["name"], v["value"], v["value_type"]) for v in listed["data"]] == [
        ("count", "0", "number"),
        ("flag", "False", "boolean"),
        ("profile", "{'a': 1}", "object"),
        ("tags", "['x']", "array[string]"),
        ("note", "hi", "string"),
    ]
    assert listed["data"][0]["id"] == "11111111-8b5d-4ad1-9f43-0e8f1d2c4b11"
    page = (
        await get(client, app, f"/v1/conversations/{conversation}/variables", user="alice", limit=2)
    ).json()
    assert [v["name"] for v in page["data"]] == ["count", "flag"]
    assert page["has_more"] is True
    after = (
        await get(
            client,
            app,
            f"/v1/conversations/{conversation}/variables",
            user="alice",
            last_id=page["data"][-1]["id"],
        )
    ).json()
    assert [v["name"] for v in after["data"]] == ["profile", "tags", "note"]
    found = (
        await get(
            client, app, f"/v1/conversations/{conversation}/variables", user="alice", variable_name="AG"
        )
    ).json()
    assert [v["name"] for v in found["data"]] == ["flag", "tags"]
    for bad in ("a b", "x';--", "xp_cmd"):
        response = await get(
            client, app, f"/v1/conversations/{conversation}/variables", user="alice", variable_name=bad
        )
        assert response.status_code == 400, bad

    async def put(variable: str, value: Any) -> Any:
        return await client.put(
            f"/v1/conversations/{conversation}/variables/{variable}",
            json={"value": value, "user": "alice"},
            headers=app.headers,
        )

    ok = await put("11111111-8b5d-4ad1-9f43-0e8f1d2c4b11", 41.5)
    assert ok.status_code == 200
    assert ok.json()["value"] == "41.5"
    assert ok.json()["name"] == "count"
    for variable, value, message in [
        ("11111111-8b5d-4ad1-9f43-0e8f1d2c4b11", True, "expects number, but got boolean type"),
        ("11111111-8b5d-4ad1-9f43-0e8f1d2c4b11", "7", "expects number, but got string type"),
        ("22222222-8b5d-4ad1-9f43-0e8f1d2c4b11", 1, "expects boolean, but got integer type"),
        ("33333333-8b5d-4ad1-9f43-0e8f1d2c4b11", [1], "expects object, but got array[number] type"),
        ("44444444-8b5d-4ad1-9f43-0e8f1d2c4b11", ["a", 2], "expects array[string], but got array[any] type"),
    ]:
        refused = await put(variable, value)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "bad_request", refused.text
        assert message in refused.json()["message"]
    assert (await put("44444444-8b5d-4ad1-9f43-0e8f1d2c4b11", ["a", "b"])).json()["value"] == "['a', 'b']"
    assert (await put("55555555-8b5d-4ad1-9f43-0e8f1d2c4b11", "changed")).status_code == 200
    missing = await put(str(uuid.uuid4()), 1)
    assert missing.status_code == 404
    assert missing.json()["message"] == "Conversation Variable Not Exists."
    no_value = await client.put(
        f"/v1/conversations/{conversation}/variables/11111111-8b5d-4ad1-9f43-0e8f1d2c4b11",
        json={"user": "alice"},
        headers=app.headers,
    )
    assert no_value.status_code == 400
    # the next turn sees the values set through the API
    await chat(client, app, "next", conversation_id=conversation)
    assert (
        fake_llm.bodies(unless=NAME_PROMPT)[-1]["messages"][-1]["content"] == "next count=41.5 note=changed"
    )


async def test_another_user_finds_nothing(client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(client, APP)
    body = (await chat(client, app, "mine")).json()
    conversation, message = body["conversation_id"], body["message_id"]
    variable = "11111111-8b5d-4ad1-9f43-0e8f1d2c4b11"
    for user in ("mallory", None):
        params = {"user": user} if user else {}
        json_user = {"user": user} if user else {}
        responses = [
            await get(client, app, "/v1/messages", conversation_id=conversation, **params),
            await get(client, app, f"/v1/conversations/{conversation}/variables", **params),
            await client.put(
                f"/v1/conversations/{conversation}/variables/{variable}",
                json={"value": 1, **json_user},
                headers=app.headers,
            ),
            await client.post(
                f"/v1/conversations/{conversation}/name", json={"name": "x", **json_user}, headers=app.headers
            ),
            await client.request(
                "DELETE", f"/v1/conversations/{conversation}", json=json_user, headers=app.headers
            ),
            await chat(client, app, "sneak", user=user or "DEFAULT-USER", conversation_id=conversation),
        ]
        if user:
            responses += [
                await client.post(
                    f"/v1/messages/{message}/feedbacks",
                    json={"rating": "like", "user": user},
                    headers=app.headers,
                ),
                await get(client, app, f"/v1/messages/{message}/suggested", user=user),
                await get(client, app, f"/v1/workflow/{body['task_id']}/events", user=user),
            ]
        for response in responses:
            assert response.status_code == 404, (response.request.url, response.text)
        assert (await get(client, app, "/v1/conversations", **params)).json()["data"] == []
    # and the owner still has everything
    assert (
        await get(client, app, "/v1/messages", conversation_id=conversation, user="alice")
    ).status_code == 200
    other_app = await import_app(client, APP)
    assert (
        await get(client, other_app, "/v1/messages", conversation_id=conversation, user="alice")
    ).status_code == 404


async def test_end_users(client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(client, APP)
    await chat(client, app, "hi", user="zoe")
    created_by = (
        await client.get(
            f"/v1/workflow/{(await chat(client, app, 'x', user='zoe')).json()['task_id']}/events",
            params={"user": "zoe"},
            headers=app.headers,
        )
    ).text
    end_user_id = re.search(r'"created_by": \{"id": "([0-9a-f-]+)", "user": "zoe"\}', created_by)
    assert end_user_id, created_by[-500:]
    found = await client.get(f"/v1/end-users/{end_user_id.group(1)}", headers=app.headers)
    assert found.status_code == 200, found.text
    detail = found.json()
    assert detail["session_id"] == "zoe"
    assert detail["external_user_id"] == "zoe"
    assert detail["is_anonymous"] is False
    assert detail["app_id"] == app.app_id
    assert detail["type"] == "service_api"
    missing = await client.get(f"/v1/end-users/{uuid.uuid4()}", headers=app.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "end_user_not_found"
    other = await import_app(client, APP)
    assert (
        await client.get(f"/v1/end-users/{end_user_id.group(1)}", headers=other.headers)
    ).status_code == 404
