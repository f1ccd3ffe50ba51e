"""`just bench code`: per-run overhead of the code sandbox, next to a bare ``python3 -c pass`` in the same run.

Through ``Sandbox`` (the worker's client, the real runner, a confined child per run): a trivial python3 and
javascript ``main`` one after another (p50/p99), 100 runs submitted at once (throughput, p50/p99, with the
default 4 workers; the queue is raised to 100 so that none is turned away), the same trivial run with the
corpus packages preloaded, and ``import pandas`` in a child without and with preloading. Memory: the peak RSS
(VmHWM) of the runner with and without preloads, the largest child, and this process (the worker's side).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.sandbox.client import Sandbox, SandboxConfig
from tests.perf.harness import Row, median, peak_rss_mb, percentile, report

SEQUENTIAL = 200
CONCURRENT = 100
BARE = 30
PRELOAD = ("numpy", "pandas", "matplotlib", "jieba", "json_repair")
TRIVIAL_PY = "def main(a):\n    return {'b': a + 1}\n"
TRIVIAL_JS = "function main({a}) { return {b: a + 1} }"
PANDAS = "import pandas as pd\ndef main(a):\n    return {'n': int(pd.Series([a, a]).sum())}\n"


def bare_python() -> list[float]:
    out = []
    for _ in range(BARE):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out.append((time.perf_counter() - began) * 1000)
    return out


async def sequential(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1000)
    return out


async def concurrent(box: Sandbox, count: int) -> tuple[float, list[float]]:
    async def one() -> float:
        began = time.perf_counter()
        await box.run_code("python3", TRIVIAL_PY, {"a": 1})
        return (time.perf_counter() - began) * 1000

    began = time.perf_counter()
    latencies = await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - began), list(latencies)


def latency_row(name: str, values: list[float], note: str = "") -> Row:
    return Row(name, f"{median(values):.2f} / {percentile(values, 99):.2f}", "ms", note)


async def measure() -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    bare = bare_python()
    rows.append(latency_row("bare `python3 -c pass` p50 / p99", bare, f"{BARE} runs"))
    config = SandboxConfig(max_queue=CONCURRENT)
    child_rss: list[float] = []
    async with Sandbox(config) as box:
        assert box.refused is None and box.ready is not None, box.describe()
        rows.append(Row("sandbox level", box.describe()[:90]))

        async def python() -> None:
            assert await box.run_code("python3", TRIVIAL_PY, {"a": 1}) == {"b": 2}

        async def javascript() -> None:
            assert await box.run_code("javascript", TRIVIAL_JS, {"a": 1}) == {"b": 2}

        await sequential(python, 20)  # warm-up
        py = await sequential(python, SEQUENTIAL)
        js = await sequential(javascript, SEQUENTIAL)
        rate, together = await concurrent(box, CONCURRENT)
        cold_pandas = await sequential(lambda: box.run_code("python3", PANDAS, {"a": 1}, timeout=60), 5)
        runner_pid = box.runner_pid
        runner_rss = peak_rss_mb(runner_pid) if runner_pid else float("nan")
        from app.sandbox.protocol import CodeRequest

        for _ in range(5):
            execution = await box.execute(CodeRequest(language="python3", code=TRIVIAL_PY, inputs={"a": 1}))
            child_rss.append(execution.exited.max_rss_mb)
    rows += [
        latency_row("python3 trivial run p50 / p99", py, f"{SEQUENTIAL} runs, one at a time"),
        latency_row("javascript trivial run p50 / p99", js, f"{SEQUENTIAL} runs, one at a time"),
        Row(f"{CONCURRENT} concurrent python3 runs", round(rate, 1), "runs/s", "4 workers"),
        latency_row(f"{CONCURRENT} concurrent p50 / p99", together, "submit -> result"),
        latency_row("import pandas in a child p50 / p99", cold_pandas, "not preloaded"),
        Row("python3 p50 / bare python3 p50", round(median(py) / median(bare), 3), "x"),
    ]
    async with Sandbox(SandboxConfig(preload=PRELOAD)) as heavy:
        assert heavy.ready is not None and not heavy.ready.preload_errors, heavy.ready
        await sequential(lambda: heavy.run_code("python3", TRIVIAL_PY, {"a": 1}), 10)
        heavy_py = await sequential(lambda: heavy.run_code("python3", TRIVIAL_PY, {"a": 1}), 100)
        warm_pandas = await sequential(lambda: heavy.run_code("python3", PANDAS, {"a": 1}), 20)
        heavy_pid = heavy.runner_pid
        heavy_rss = peak_rss_mb(heavy_pid) if heavy_pid else float("nan")
    rows += [
        latency_row("python3 trivial run, corpus preloaded, p50 / p99", heavy_py, "100 runs"),
        latency_row("pandas run, pandas preloaded, p50 / p99", warm_pandas, "20 runs"),
        Row("peak RSS runner (default)", round(runner_rss, 1), "MiB"),
        Row("peak RSS runner (preload: " + ",".join(PRELOAD) + ")", round(heavy_rss, 1), "MiB"),
        Row("peak RSS child (trivial run, default runner)", round(max(child_rss), 1), "MiB", "ru_maxrss"),
        Row("peak RSS this process (the worker side)", round(peak_rss_mb(os.getpid()), 1), "MiB"),
    ]
    return rows, {"sequential": SEQUENTIAL, "concurrent": CONCURRENT, "preload": PRELOAD}


def main(args: list[str]) -> dict[str, Any]:
    rows, meta = asyncio.run(measure())
    report("code", rows, meta)
    return {"rows": rows}


if __name__ == "__main__":
    main([])
