"""Corpus files with http-request nodes and file inputs: Text_to_Card_Iteration.yml, File_read.yml, runLLMCode.yml.

Their http-request nodes reach a loopback server (the ``target`` fixture) instead of the URLs in the DSLs."""

from __future__ import annotations

import json
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.support.http_target import HttpTarget, Received, Reply
from tests.workflows.conftest import import_app
from tests.workflows.corpus.conftest import (
    corpus_text,
    finished_nodes,
    needs_corpus,
    outcome,
    run_blocking,
    run_streaming,
    runs_corpus_file,
    system_message,
    upload,
)

pytestmark = needs_corpus

# --- Text_to_Card_Iteration.yml: template -> http-request (JSON body, api key) -> parameter-extractor -> end ----

CARD_URL = "https://cdn.imgrender.example/cards/ada-2024.png"


def imgrender(request: Received) -> Reply:
    """What api.imgrender.cn answers to ``POST /open/v1/pics``: the rendered picture's URL."""
    return Reply(
        200,
        [("Content-Type", "application/json")],
        json.dumps({"code": 0, "message": "success", "data": {"url": CARD_URL, "width": 300}}).encode(),
    )


@runs_corpus_file("Text_to_Card_Iteration.yml")
async def test_text_to_card(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, target: HttpTarget
) -> None:
    target.route("/open/v1/pics", imgrender)
    # The extractor (prompt mode) reads the HTTP body inside <text></text>: answer with the URL found there.
    llm.add_rule(f'"url": "{CARD_URL}"', tool_calls=[{"arguments": {"image_url": CARD_URL}}])
    # The DSL posts to an internet service: send it to the loopback target instead.
    text = corpus_text("Text_to_Card_Iteration.yml")
    assert "url: https://api.imgrender.cn/open/v1/pics" in text
    app = await import_app(wf_client, text.replace("https://api.imgrender.cn", target.url("")))
    inputs = {"author": "Ada", "body_text": "数据即是力量"}

    data = await run_blocking(wf_client, app, inputs)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"image_url": CARD_URL}
    (sent,) = target.requests
    assert (sent.method, sent.path) == ("POST", "/open/v1/pics")
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("X-API-Key") == "282856915996906898.lqe1hPL1OpFHfNAoMc1PdOToeximcTrw"
    card = json.loads(sent.body)
    assert (card["width"], card["height"]) == (300, 800)
    assert [t["text"] for t in card["texts"]] == ["Ada", "数据即是力量"]
    (extract,) = llm.bodies(CHAT_PATH)
    assert extract["model"] == "doubao"
    assert "tools" not in extract  # reasoning_mode: prompt
    assert "提取URL的值" in system_message(extract)

    events = await run_streaming(wf_client, app, inputs)
    nodes = finished_nodes(events)
    assert nodes["HTTP Request"]["outputs"]["status_code"] == 200
    assert json.loads(nodes["HTTP Request"]["outputs"]["body"])["data"]["url"] == CARD_URL
    assert nodes["Parameter Extractor"]["outputs"]["image_url"] == CARD_URL
    assert nodes["Parameter Extractor"]["outputs"]["__is_success"] == 1
    assert outcome(events)["outputs"] == {"image_url": CARD_URL}


# --- File_read.yml and runLLMCode.yml: a CSV upload, code nodes that look for it under /upload_files ----

CSV = b"name,age\nAda,36\nAlan,41\n"
# The DSLs' first code node searches /upload_files for a file of the upload's size: a folder that a custom Dify
# deployment mounted into its sandbox. Neither Dify's sandbox nor Sluice's has it (Sluice will not expose stored
# uploads to tenant code), so the node returns "None" and pandas, asked to read "None", fails inside the DSL's own
# try/except: the run succeeds with that message as its data sample, in Dify as here.
NO_CSV = "错误: [Errno 2] No such file or directory: 'None'"


def file_input(upload_id: str) -> dict[str, Any]:
    return {"type": "document", "transfer_method": "local_file", "upload_file_id": upload_id}


@runs_corpus_file("File_read.yml")
async def test_file_read(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("File_read.yml"))
    upload_id = await upload(wf_client, app, "people.csv", CSV)

    data = await run_blocking(wf_client, app, {"File": file_input(upload_id)})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": NO_CSV}

    events = await run_streaming(wf_client, app, {"File": file_input(upload_id)})
    nodes = finished_nodes(events)
    start = nodes["开始"]["outputs"]["File"]
    assert (start["filename"], start["size"], start["type"]) == ("people.csv", len(CSV), "document")
    assert nodes["获取文件路径"]["inputs"] == {"filesize": len(CSV)}  # the file dict's size, as selected
    assert nodes["获取文件路径"]["outputs"] == {"file_path": "None"}
    assert nodes["读取csv"]["inputs"] == {"file_path": "None"}
    assert outcome(events)["outputs"] == {"output": NO_CSV}


AVERAGE_CODE = "import pandas as pd\ndf = pd.read_csv('people.csv')\nprint(f\"平均年龄: {df['age'].mean()}\")"
STDOUT = "平均年龄: 38.5\n"


def dify_sandbox(request: Received) -> Reply:
    """What dify-sandbox answers to ``POST /v1/sandbox/run`` (its output is canned: nothing runs here)."""
    body = {"code": 0, "message": "success", "data": {"error": "", "stdout": STDOUT}}
    return Reply(200, [("Content-Type", "application/json")], json.dumps(body, ensure_ascii=False).encode())


@runs_corpus_file("runLLMCode.yml")
async def test_run_llm_code(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, target: HttpTarget
) -> None:
    target.route("/v1/sandbox/run", dify_sandbox)
    llm.add_rule(
        "<UserMessage>\n算出平均年龄\n</UserMessage>", f"好的，代码如下：\n```python\n{AVERAGE_CODE}\n```\n"
    )
    # The DSL calls a dify-sandbox container by its compose host name: send it to the loopback target instead.
    text = corpus_text("runLLMCode.yml")
    assert "url: http://sandbox:8194/v1/sandbox/run" in text
    app = await import_app(wf_client, text.replace("http://sandbox:8194", target.url("")))
    upload_id = await upload(wf_client, app, "people.csv", CSV)
    inputs = {"File": file_input(upload_id), "query": "算出平均年龄"}

    data = await run_blocking(wf_client, app, inputs)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": STDOUT}
    (ask,) = llm.bodies(CHAT_PATH)
    assert ask["model"] == "deepseek-coder"
    prompt = ask["messages"][1]["content"]
    assert "3、csv的数据路径为：None\n" in prompt
    assert f"<DataSample>{NO_CSV}</DataSample>" in prompt
    (sent,) = target.requests
    assert sent.header("X-Api-Key") == "dify-sandbox"
    # the code block, cut out of the answer and JSON-quoted by a code node, spliced into the JSON body
    assert json.loads(sent.body) == {"code": AVERAGE_CODE, "language": "python3"}

    events = await run_streaming(wf_client, app, inputs)
    nodes = finished_nodes(events)
    assert nodes["提取LLM中都代码"]["outputs"] == {"code": json.dumps(AVERAGE_CODE)}
    assert json.loads(nodes["sandbox 执行代码"]["outputs"]["body"])["data"]["stdout"] == STDOUT
    assert nodes["提取输出内容"]["outputs"] == {"result": STDOUT}
    assert outcome(events)["outputs"] == {"output": STDOUT}
