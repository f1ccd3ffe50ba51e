"""Dify's calling contract through the real sandbox: python3 and javascript, results, errors, named functions."""

from __future__ import annotations

import importlib.util

import pytest

from app.sandbox.client import Sandbox
from app.sandbox.errors import CodeExecutionFailed, FunctionFailed, ResultError, SandboxError


async def test_python3_calls_main_with_keyword_arguments(sandbox: Sandbox) -> None:
    code = "def main(arg1: str, arg2: str):\n    return {'result': arg1 + arg2, 'n': None}\n"
    assert await sandbox.run_code("python3", code, {"arg1": "a", "arg2": "b"}) == {"result": "ab", "n": None}


async def test_python3_corpus_style_imports(sandbox: Sandbox) -> None:
    code = (
        "import json, re, time, datetime, base64, logging, io, pathlib, os\n"
        "from zoneinfo import ZoneInfo\n"
        "def main(text: str):\n"
        "    logging.getLogger('x').warning('to stderr only')\n"
        "    data = json.loads(text)\n"
        "    day = datetime.datetime(2024, 5, 1, 12, tzinfo=ZoneInfo('Asia/Shanghai'))\n"
        "    return {'words': re.findall(r'\\w+', data['s']), 'day': day.isoformat(),\n"
        "            'b64': base64.b64encode(b'hi').decode(), 'now': time.time() > 0}\n"
    )
    result = await sandbox.run_code("python3", code, {"text": '{"s": "hello big world"}'})
    assert result == {
        "words": ["hello", "big", "world"],
        "day": "2024-05-01T12:00:00+08:00",
        "b64": "aGk=",
        "now": True,
    }


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="the code extra is not installed")
async def test_pandas_and_numpy_import_without_preloading(sandbox: Sandbox) -> None:
    code = (
        "import pandas as pd, numpy as np\n"
        "def main(rows):\n    df = pd.DataFrame(rows)\n"
        "    return {'total': int(df['n'].sum()), 'mean': float(np.mean(df['n']))}\n"
    )
    result = await sandbox.run_code("python3", code, {"rows": [{"n": 1}, {"n": 3}]}, timeout=30)
    assert result == {"total": 4, "mean": 2.0}


async def test_dify_error_texts(sandbox: Sandbox) -> None:
    with pytest.raises(CodeExecutionFailed) as raised:
        await sandbox.run_code("python3", "def main():\n    raise ValueError('bad input')\n", {})
    assert raised.value.message == (
        "process exited with code 1\nTraceback (most recent call last):\n"
        "  File \"<code>\", line 2, in main\n    raise ValueError('bad input')\nValueError: bad input\n"
    )
    assert raised.value.error_type == "CodeExecutionError"
    with pytest.raises(
        CodeExecutionFailed, match="TypeError: main\\(\\) got an unexpected keyword argument 'b'"
    ):
        await sandbox.run_code("python3", "def main(a):\n    return {}\n", {"a": 1, "b": 2})
    with pytest.raises(CodeExecutionFailed, match="NameError: name 'main' is not defined"):
        await sandbox.run_code("python3", "x = 1\n", {})
    with pytest.raises(CodeExecutionFailed, match="Object of type datetime is not JSON serializable"):
        await sandbox.run_code(
            "python3", "import datetime\ndef main():\n    return {'d': datetime.datetime.now()}\n", {}
        )
    with pytest.raises(CodeExecutionFailed, match=r"^process exited with code 3\n"):
        await sandbox.run_code("python3", "import sys\ndef main():\n    sys.exit(3)\n", {})
    with pytest.raises(ResultError, match="Failed to parse result"):
        await sandbox.run_code("python3", "import sys\ndef main():\n    sys.exit(0)\n", {})
    with pytest.raises(ResultError, match=r"^Result must be a dict, got list$") as shape:
        await sandbox.run_code("python3", "def main():\n    return [1]\n", {})
    assert shape.value.error_type == "WorkflowNodeError"
    with pytest.raises(CodeExecutionFailed, match="SyntaxError"):
        await sandbox.run_code("python3", "def main(:\n", {})
    with pytest.raises(SandboxError, match="Unsupported language jinja2"):
        await sandbox.run_code("jinja2", "{{ x }}", {})


async def test_json_round_trip_is_difys(sandbox: Sandbox) -> None:
    code = "def main():\n    return {1: (1, 2), 'nan': float('nan'), 'u': 'é'}\n"
    result = await sandbox.run_code("python3", code, {})
    assert result["1"] == [1, 2]
    assert result["u"] == "é"
    assert result["nan"] != result["nan"]


async def test_javascript_calls_main_with_one_object(sandbox: Sandbox) -> None:
    code = (
        "function main({arg1, arg2}) {\n  console.log('debug', {a: 1});\n"
        "  return {result: arg1 + arg2, kinds: [typeof require, typeof process, typeof fetch, typeof Buffer]}\n}\n"
    )
    result = await sandbox.run_code("javascript", code, {"arg1": "a", "arg2": "b"})
    assert result == {"result": "ab", "kinds": ["undefined"] * 4}


async def test_javascript_gap_is_as_documented(sandbox: Sandbox) -> None:
    """QuickJS, not Node: no timers or Intl; an async main gives a Promise, which serialises to {} (as in Dify)."""
    code = "function main() { return {t: typeof setTimeout, i: typeof Intl} }"
    assert await sandbox.run_code("javascript", code, {}) == {"t": "undefined", "i": "undefined"}
    assert await sandbox.run_code("javascript", "async function main() { return {a: 1} }", {}) == {}


async def test_javascript_errors(sandbox: Sandbox) -> None:
    with pytest.raises(CodeExecutionFailed) as raised:
        await sandbox.run_code("javascript", "function main() { null.x }", {})
    assert raised.value.message.startswith(
        "process exited with code 1\nTypeError: cannot read property 'x' of null"
    )
    with pytest.raises(ResultError, match="Failed to parse JSON response"):
        await sandbox.run_code("javascript", "function main() { }", {})
    with pytest.raises(ResultError, match="Result must be a dict, got int"):
        await sandbox.run_code("javascript", "function main() { return 1 }", {})


async def test_named_functions_pass_bytes_and_report_failures(sandbox: Sandbox) -> None:
    assert await sandbox.call("sandbox.echo", {"data": b"\x00\xff", "n": [1, None]}) == {
        "data": b"\x00\xff",
        "n": [1, None],
    }
    with pytest.raises(FunctionFailed, match="no sandbox function named 'nope'"):
        await sandbox.call("nope")
    with pytest.raises(FunctionFailed, match="TypeError") as raised:
        await sandbox.call("sandbox.selftest", {"unexpected": 1})
    assert raised.value.exception_type == "TypeError"


async def test_inputs_and_results_of_several_megabytes(sandbox: Sandbox) -> None:
    text = "ü" * 3_000_000
    result = await sandbox.run_code(
        "python3", "def main(t):\n    return {'t': t, 'n': len(t)}\n", {"t": text}
    )
    assert result == {"t": text, "n": 3_000_000}


async def test_inputs_travel_as_json_like_difys(sandbox: Sandbox) -> None:
    code = "def main(big, nan, items):\n    return {'big': big + 1, 'nan': nan != nan, 'n': len(items)}\n"
    result = await sandbox.run_code(
        "python3", code, {"big": 10**30, "nan": float("nan"), "items": [1, {"a": None}]}
    )
    assert result == {"big": 10**30 + 1, "nan": True, "n": 2}
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SandboxError, match="the inputs cannot be sent to the sandbox"):
        await sandbox.run_code("python3", "def main(d):\n    return {}\n", {"d": deep})
