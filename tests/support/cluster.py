"""Several API and worker processes on one database, a PostgreSQL of their own that can be stopped and started,
and the checks that every run ended exactly once — for the fault tests and the soak benchmark."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg

from db import embedded, urls
from tests.support.processes import ROOT, free_port, spawn, stop, wait_until


class Cluster:
    """``apis`` API processes and ``workers`` workers (``tests.support.worker`` by default: it also
    knows the test-only node types), all on ``database_url``, each logging to its own file in ``logs``."""

    def __init__(
        self,
        database_url: str,
        logs: Path,
        *,
        apis: int = 2,
        workers: int = 3,
        env: Mapping[str, str] | None = None,
        worker_module: str = "tests.support.worker",
    ) -> None:
        self.database_url, self.logs, self.worker_module = database_url, logs, worker_module
        logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            "DATABASE_URL": database_url,
            "SLUICE_ADMIN_TOKEN": "cluster-admin",
            "SLUICE_SECRET_KEY": "cluster-secret-key-0123456789abcdef",
            "SLUICE_WORKER_POLL_SECONDS": "0.2",
            "LOG_FORMAT": "json",
            **(env or {}),
        }
        self.api_ports = [free_port() for _ in range(apis)]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.api_ports]
        self.apis = [self._api(port) for port in self.api_ports]
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(workers):
            self.start_worker(f"worker-{i}")

    def _api(self, port: int) -> subprocess.Popen[bytes]:
        return spawn(
            ["-m", "app", "api"], {**self.env, "SLUICE_PORT": str(port)}, self.logs / f"api-{port}.log"
        )

    def start_worker(self, name: str) -> None:
        args = ["-m", "jobs", "worker"] if self.worker_module == "jobs" else ["-m", self.worker_module]
        self.workers[name] = spawn(args, self.env, self.logs / f"{name}.log")

    def kill_worker(self, name: str) -> None:
        """``kill -9``: no shutdown, its running jobs stay ``doing`` until the stalled-job recovery retries them."""
        proc = self.workers.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            for proc in [*self.apis, *self.workers.values()]:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"a process exited early (code {proc.returncode}); logs in {self.logs}"
                    )
            try:
                return all(httpx.get(u + "/readyz", timeout=5).status_code == 200 for u in self.urls)
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.3)

    def alive(self) -> dict[str, bool]:
        procs = {f"api-{p}": a for p, a in zip(self.api_ports, self.apis, strict=True)} | self.workers
        return {name: proc.poll() is None for name, proc in procs.items()}

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for proc in [*self.apis, *self.workers.values()]:
            stop(proc)


class OwnPostgres:
    """An embedded PostgreSQL in a data dir of its own (under the project's ``.data``), so a test can stop and
    start it without touching the server every other test uses. Started as root, it runs as ``pgserver``, and
    ``pg_ctl`` must run as that user too (STACK-NOTES "Embedded PostgreSQL as root")."""

    def __init__(self) -> None:
        base = Path(os.environ.get("SLUICE_DATA_DIR") or ROOT / ".data").resolve()
        self.data_dir = base / f"faults-{uuid.uuid4().hex[:8]}"
        self.url = embedded.ensure_running(self.data_dir, "sluice")
        self.pgdata = embedded.pgdata(self.data_dir)

    def _pg_ctl(self, *args: str) -> None:
        command = [str(embedded.bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args]
        owner = pwd.getpwuid(self.pgdata.stat().st_uid).pw_name
        if os.geteuid() == 0 and owner != "root":
            command = ["runuser", "-u", owner, "--", *command]
        # No pipe for the postmaster's output: it keeps it open and a reader would wait forever.
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-o", f'-h "" -k {self.pgdata}')

    def accepts(self) -> bool:
        try:
            with psycopg.connect(urls.libpq(self.url), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def close(self) -> None:
        try:
            if not self.accepts():
                self.start()
            embedded.stop(self.data_dir)
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run_report(database_url: str, app_ids: list[str] | None = None) -> dict[str, Any]:
    """What the database says about every run (of ``app_ids``, or all): how many are still active, which ended
    more or less than once, which have a node event doubled or a gap in their event sequence."""
    where = "WHERE r.app_id = ANY(%(apps)s::uuid[])" if app_ids else ""
    with psycopg.connect(urls.libpq(database_url)) as conn:
        statuses = dict(
            conn.execute(
                f"SELECT status, count(*) FROM workflow_runs r {where} GROUP BY status", {"apps": app_ids}
            ).fetchall()
        )
        finished_not_once = conn.execute(
            f"""
            SELECT r.id, r.status, (SELECT count(*) FROM workflow_run_events e
                                     WHERE e.run_id = r.id AND e.event = 'workflow_finished') AS n
            FROM workflow_runs r {where}
            """,
            {"apps": app_ids},
        ).fetchall()
        ended_wrong = [
            (str(row[0]), row[1], row[2])
            for row in finished_not_once
            if (row[1] in ("running", "paused") and row[2] != 0)
            or (row[1] not in ("running", "paused") and row[2] != 1)
        ]
        # A node that paused has two node_finished events under one execution id (paused, then its result):
        # that is the lifecycle, not a double. Doubled is a second node_started, or a second final node_finished.
        doubled = conn.execute(
            f"""
            SELECT e.run_id, e.event, e.data->>'id', count(*) FROM workflow_run_events e
            JOIN workflow_runs r ON r.id = e.run_id
            {where} {"AND" if where else "WHERE"} e.event IN ('node_started', 'node_finished')
              AND coalesce(e.data->>'status', '') <> 'paused'
            GROUP BY 1, 2, 3 HAVING count(*) > 1
            """,
            {"apps": app_ids},
        ).fetchall()
        gaps = conn.execute(
            f"""
            SELECT r.id FROM workflow_runs r
            LEFT JOIN LATERAL (SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi
                               FROM workflow_run_events e WHERE e.run_id = r.id) s ON true
            {where}
            {"AND" if where else "WHERE"} r.purged_at IS NULL
              AND (s.n <> r.last_event_seq OR s.lo <> 1 OR s.hi <> r.last_event_seq)
            """,
            {"apps": app_ids},
        ).fetchall()
    return {
        "statuses": statuses,
        "active": statuses.get("running", 0) + statuses.get("paused", 0),
        "ended_not_once": ended_wrong,
        "doubled_node_events": [(str(r[0]), r[1], r[2], r[3]) for r in doubled],
        "sequence_gaps": [str(r[0]) for r in gaps],
    }
