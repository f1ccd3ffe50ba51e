"""`python -m app up` as a new user runs it: a fresh data dir, no DATABASE_URL and no secrets in the
environment. Human input works end to end, and a worker killed with `kill -9` is replaced while the API keeps
answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import ROOT, free_port, stop, wait_until

APPROVAL = """
version: 0.5.0
kind: app
app: {name: Approval, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: doc, type: text-input, required: true}]}
      - id: ask
        data:
          type: human-input
          title: Approve?
          form_content: "Review {{#start.doc#}}: {{#$output.comment#}}"
          inputs: [{type: paragraph, output_variable_name: comment}]
          user_actions: [{id: approve, title: Approve}]
      - id: done
        data: {type: end, title: Done, outputs: [{variable: comment, value_selector: [ask, comment]}]}
    edges:
      - {id: e1, source: start, target: ask}
      - {id: e2, source: ask, target: done, sourceHandle: approve}
"""

ASK_MODEL = """
version: 0.5.0
kind: app
app: {name: Ask, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: q, type: text-input, required: true}]}
      - id: llm
        data:
          type: llm
          title: Model
          model: {provider: openai, name: m, mode: chat}
          prompt_template: [{role: user, text: "{{#start.q#}}"}]
      - id: done
        data: {type: end, title: Done, outputs: [{variable: text, value_selector: [llm, text]}]}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: done}
"""


class FreshUp:
    """`up` in a new data dir with an environment holding neither DATABASE_URL nor any Sluice secret."""

    def __init__(self, data_dir: Path, llm_base_url: str) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "up.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "SLUICE_SECRET_KEY", "SLUICE_ADMIN_TOKEN")
        }
        env.update(
            SLUICE_DATA_DIR=str(data_dir),
            SLUICE_PORT=str(self.port),
            LOG_FORMAT="json",
            OPENAI_API_BASE=llm_base_url,
            SLUICE_WORKER_POLL_SECONDS="0.1",
            # A killed worker's jobs are retried once its heartbeat (every 10 s) is this old.
            SLUICE_STALLED_JOB_SECONDS="11",
        )
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "up"],
            env=env,
            cwd=ROOT,
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"`up` exited:\n{self.log_path.read_text()[-4000:]}")
        try:
            return httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {(self.data_dir / 'admin-token').read_text().strip()}"}

    def app_key(self, yaml_text: str) -> dict[str, str]:
        imported = httpx.post(
            self.base_url + "/console/api/apps/imports",
            json={"mode": "yaml-content", "yaml_content": yaml_text},
            headers=self.admin(),
        )
        assert imported.status_code == 200, imported.text
        app_id = imported.json()["app_id"]
        key = httpx.post(f"{self.base_url}/console/api/apps/{app_id}/api-keys", headers=self.admin())
        return {"Authorization": f"Bearer {key.json()['token']}"}

    def worker_pids(self) -> list[int]:
        pids = []
        for child in psutil.Process(self.proc.pid).children():
            try:
                if "jobs" in child.cmdline() and "worker" in child.cmdline():
                    pids.append(child.pid)
            except psutil.Error:  # exited meanwhile, or a zombie not yet reaped
                continue
        return pids

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        stop(self.proc)
        subprocess.run(
            [sys.executable, "-m", "app", "down"], env=self.env, cwd=ROOT, capture_output=True, timeout=60
        )


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fresh_up(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI) -> Iterator[FreshUp]:
    service = FreshUp(tmp_path_factory.mktemp("fresh") / "data", fake_llm.base_url)
    try:
        wait_until(service.ready, timeout=120, interval=0.25)
        yield service
    finally:
        service.stop()


def wait_run(service: FreshUp, headers: dict[str, str], run_id: str, timeout: float = 60) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = httpx.get(f"{service.base_url}/v1/workflows/run/{run_id}", headers=headers).json()
        return run if run["status"] not in ("running", "paused") else None

    return wait_until(finished, timeout=timeout, interval=0.1)  # type: ignore[return-value]


def test_human_input_works_on_a_fresh_up(fresh_up: FreshUp) -> None:
    ready = httpx.get(fresh_up.base_url + "/readyz").json()
    assert ready["checks"]["human_input"]["ok"] is True
    started = next(line for line in fresh_up.logs() if line["event"] == "services_started")
    assert started["embedded"] is True
    assert started["human_input"] == "ready"

    headers = fresh_up.app_key(APPROVAL)
    paused = httpx.post(
        fresh_up.base_url + "/v1/workflows/run",
        json={"inputs": {"doc": "the plan"}, "response_mode": "blocking", "user": "u"},
        headers=headers,
        timeout=60,
    ).json()["data"]
    assert paused["status"] == "paused", paused
    token = paused["paused_nodes"][0]["pause_type"]["form_token"]
    details = httpx.get(f"{fresh_up.base_url}/v1/workflows/run/{paused['id']}/pause-details", headers=headers)
    assert details.status_code == 200
    assert details.json()["paused_nodes"][0]["pause_type"]["form_token"] == token
    submitted = httpx.post(
        f"{fresh_up.base_url}/api/form/human_input/{token}",
        json={"inputs": {"comment": "ok"}, "action": "approve"},
    )
    assert submitted.status_code == 200, submitted.text
    run = wait_run(fresh_up, headers, paused["id"])
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"comment": "ok"}
    assert token not in fresh_up.log_path.read_text()  # access logs name the route, never the token


def test_a_killed_worker_is_replaced_and_the_api_keeps_answering(
    fresh_up: FreshUp, fake_llm: FakeOpenAI
) -> None:
    headers = fresh_up.app_key(ASK_MODEL)
    [doomed] = fresh_up.worker_pids()
    # A run is inside its model call when the worker dies: the call hangs until after the kill.
    fake_llm.requests.clear()
    fake_llm.queue_reply("slow", delay=4.0)
    with httpx.stream(
        "POST",
        fresh_up.base_url + "/v1/workflows/run",
        json={"inputs": {"q": "hello"}, "response_mode": "streaming", "user": "u"},
        headers=headers,
        timeout=5,
    ) as stream:
        first = next(line for line in stream.iter_lines() if line.startswith("data: "))
    run_id = json.loads(first[6:])["workflow_run_id"]
    wait_until(lambda: len(fake_llm.requests) > 0, timeout=20)

    answers: list[int] = []

    def keep_asking() -> None:
        for _ in range(200):
            try:
                answers.append(
                    httpx.get(fresh_up.base_url + "/v1/info", headers=headers, timeout=5).status_code
                )
            except httpx.HTTPError:
                answers.append(0)
            time.sleep(0.01)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    os.kill(doomed, signal.SIGKILL)
    replacement = wait_until(lambda: [p for p in fresh_up.worker_pids() if p != doomed], timeout=20)
    asker.join()
    assert answers.count(200) == 200, answers  # the API never stopped answering

    run = wait_run(fresh_up, headers, run_id, timeout=90)
    assert run["status"] == "succeeded", run
    assert len(fake_llm.requests) == 2  # the new worker made the interrupted model call again
    events = [line["event"] for line in fresh_up.logs()]
    assert "child_exited" in events
    assert "child_restarted" in events
    assert replacement
    assert fresh_up.proc.poll() is None
