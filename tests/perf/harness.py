"""What every benchmark shares: a database of its own, real processes, peak RSS, a table and a results file."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from db import embedded, migrate, urls
from tests.support.processes import ROOT, free_port, spawn, stop, wait_until

RESULTS_DIR = ROOT / "tests" / "perf" / "results"


class Row(msgspec.Struct):
    metric: str
    value: float | int | str
    unit: str = ""
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def bench_database() -> Iterator[str]:
    server = (
        urls.with_database(os.environ["DATABASE_URL"], "postgres")
        if os.environ.get("DATABASE_URL")
        else embedded.ensure_running(Path(os.environ.get("SLUICE_DATA_DIR") or ROOT / ".data"), "postgres")
    )
    name = f"sluice_bench_{int(time.time())}"
    embedded.create_database(server, name)
    url = urls.with_database(server, name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        embedded.drop_database(server, name)


class Processes:
    """API and worker processes started for a benchmark, so their peak memory can be reported."""

    def __init__(self, database_url: str, root: Path = ROOT) -> None:
        self.database_url = database_url
        #: the checkout whose code the processes run
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "SLUICE_PORT": str(self.port),
            "SLUICE_ADMIN_TOKEN": "bench-admin",
            "LOG_LEVEL": "WARNING",
            **extra,
        }

    def start_api(self) -> None:
        import httpx

        self.procs["api"] = spawn(["-m", "app", "api"], self.env(), self.logs / "api.log", self.root)

        def healthy() -> bool:
            try:
                return httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=30, interval=0.1)

    def start_worker(self, name: str = "worker", *args: str, **env: str) -> None:
        self.procs[name] = spawn(
            ["-m", "jobs", "worker", *args], self.env(**env), self.logs / f"{name}.log", self.root
        )

    def stop_worker(self, name: str) -> float:
        """Stop one worker and return its peak RSS (MiB)."""
        proc = self.procs.pop(name)
        rss = peak_rss_mb(proc.pid)
        stop(proc)
        self.stopped_rss[name] = rss
        return rss

    stopped_rss: dict[str, float] = {}

    def memory_rows(self) -> list[Row]:
        rows = [
            Row(f"peak RSS {name}", round(peak_rss_mb(p.pid), 1), "MiB") for name, p in self.procs.items()
        ]
        rows += [Row(f"peak RSS {name}", round(rss, 1), "MiB") for name, rss in self.stopped_rss.items()]
        return rows

    def close(self) -> None:
        for proc in self.procs.values():
            stop(proc)


def report(name: str, rows: list[Row], meta: dict[str, Any]) -> Path:
    width = max(len(r.metric) for r in rows)
    print(f"\n== bench {name} ==")
    for r in rows:
        value = f"{r.value:,.2f}" if isinstance(r.value, float) else str(r.value)
        print(f"  {r.metric:<{width}}  {value:>12} {r.unit:<8} {r.note}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    payload = {
        "bench": name,
        "at": stamp,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **meta,
        "rows": msgspec.to_builtins(rows),
    }
    path.write_text(json.dumps(payload, indent=2))
    (RESULTS_DIR / f"{name}-latest.json").write_text(json.dumps(payload, indent=2))
    print(f"  results: {path.relative_to(ROOT)}")
    return path


P = TypeVar("P", bound=Processes)


def run_with_processes(
    measure: Callable[[P], Coroutine[Any, Any, list[Row]]],
    processes: Callable[[str], P],
    *,
    worker: bool = True,
) -> list[Row]:
    """The frame of every benchmark: a database of its own, the real API (and a worker), ``measure``, then the
    processes' peak RSS read before they stop."""
    with bench_database() as database_url:
        procs = processes(database_url)
        try:
            procs.start_api()
            if worker:
                procs.start_worker("worker")
                time.sleep(2)  # let it connect and LISTEN
            rows = asyncio.run(measure(procs))
            rows += procs.memory_rows()
        finally:
            procs.close()
    return rows
