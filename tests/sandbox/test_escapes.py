"""Escape attempts against the real strict sandbox; after each one the same runner still serves."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from app.sandbox.client import Sandbox
from app.sandbox.errors import CodeExecutionFailed, ResultError
from tests.sandbox.conftest import still_serving


async def fails(box: Sandbox, code: str, language: str = "python3", **inputs: object) -> str:
    with pytest.raises(CodeExecutionFailed) as raised:
        await box.run_code(language, code, inputs)
    return raised.value.message


async def test_reading_etc_passwd_is_denied(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    message = await fails(sandbox, "def main():\n    return {'p': open('/etc/passwd').read()}\n")
    assert message.startswith("process exited with code 1\nTraceback")
    assert "PermissionError: [Errno 13] Permission denied: '/etc/passwd'" in message
    await still_serving(sandbox, pid)


async def test_proc_self_environ_is_unreadable(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    code = "def main():\n    return {'e': open('/proc/self/environ', 'rb').read().decode()}\n"
    assert "PermissionError" in await fails(sandbox, code)
    await still_serving(sandbox, pid)


async def test_environment_holds_no_secret_of_the_worker(
    sandbox: Sandbox, worker_secrets: dict[str, str]
) -> None:
    assert os.environ["DATABASE_URL"] == worker_secrets["DATABASE_URL"]  # the worker side has them
    code = "import os\ndef main():\n    return {'env': dict(os.environ)}\n"
    env = (await sandbox.run_code("python3", code, {}))["env"]
    assert not set(worker_secrets) & set(env)
    assert not any(secret in value for value in env.values() for secret in worker_secrets.values())
    assert set(env) <= {"LANG", "LC_ALL", "PYTHONIOENCODING", "MPLCONFIGDIR"} | {
        name for name in env if name.endswith("_NUM_THREADS") or name == "MPLBACKEND"
    }
    # clearing os.environ would not be enough: the strings the process started with stay at the top of its
    # stack, where any child could read them. Read that region (argv, envp, up to the executable's name).
    stack = (
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.getauxval.restype = ctypes.c_ulong\n"
        "def main():\n"
        "    start = ctypes.cast(ctypes.c_void_p.in_dll(libc, 'program_invocation_name'), ctypes.c_void_p).value\n"
        "    end = libc.getauxval(31)\n"  # AT_EXECFN: the last string on the stack
        "    raw = ctypes.string_at(start, end - start + len(ctypes.string_at(end)))\n"
        "    return {'size': len(raw), 'text': raw.decode('latin-1')}\n"
    )
    region = await sandbox.run_code("python3", stack, {})
    assert region["size"] > 10
    assert "app.sandbox.runner" in region["text"]  # it did read the start-up strings
    assert not any(secret in region["text"] for secret in worker_secrets.values())


async def test_sockets_are_refused_even_to_a_loopback_server(sandbox: Sandbox) -> None:
    accepted: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pid = sandbox.runner_pid
    try:
        friendly = await fails(
            sandbox,
            "import socket\ndef main(port):\n    socket.create_connection(('127.0.0.1', port), 1)\n",
            port=port,
        )
        assert "network is disabled in code nodes" in friendly
        raw = await fails(
            sandbox,
            "import _socket\ndef main(port):\n"
            "    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n    s.connect(('127.0.0.1', port))\n",
            port=port,
        )
        assert "PermissionError: [Errno 1] Operation not permitted" in raw
        unix = await fails(sandbox, "import _socket\ndef main():\n    _socket.socket(_socket.AF_UNIX)\n")
        assert "Operation not permitted" in unix
        urllib = await fails(
            sandbox,
            "import urllib.request\ndef main(port):\n    urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=1)\n",
            port=port,
        )
        assert "network is disabled in code nodes" in urllib
        await asyncio.sleep(0.05)
        assert accepted == []
    finally:
        server.close()
        await server.wait_closed()
    await still_serving(sandbox, pid)


async def test_no_new_process_can_start(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    message = await fails(sandbox, "import subprocess\ndef main():\n    subprocess.run(['/bin/true'])\n")
    assert "PermissionError: [Errno 1] Operation not permitted" in message
    system = await sandbox.run_code(
        "python3", "import os\ndef main():\n    return {'status': os.system('touch /tmp/escaped')}\n", {}
    )
    assert system["status"] != 0
    assert not Path("/tmp/escaped").exists()
    assert "PermissionError" in await fails(sandbox, "import os\ndef main():\n    os.fork()\n")
    # the interpreter is readable and executable (Landlock allows it): only seccomp stands in the way
    execv = "import os, sys\ndef main():\n    os.execv(sys.executable, [sys.executable, '-c', 'print(1)'])\n"
    assert "PermissionError: [Errno 1] Operation not permitted" in await fails(sandbox, execv)
    await still_serving(sandbox, pid)


async def test_fork_bomb_stops_at_the_first_fork(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    began = time.monotonic()
    message = await fails(sandbox, "import os\ndef main():\n    while True:\n        os.fork()\n")
    assert "PermissionError" in message
    assert time.monotonic() - began < 1.0
    await still_serving(sandbox, pid)


async def test_files_cannot_be_written_anywhere(sandbox: Sandbox, tmp_path: Path) -> None:
    pid = sandbox.runner_pid
    tmp_path.chmod(0o777)
    for target in (
        "/tmp/sluice-escape",
        str(tmp_path / "escape"),
        str(Path.cwd() / "escape"),
        "/dev/shm/escape",
    ):
        message = await fails(sandbox, "def main(p):\n    open(p, 'w').write('x')\n", p=target)
        assert "PermissionError" in message or "FileNotFoundError" in message, message
        assert not Path(target).exists()
    await still_serving(sandbox, pid)


async def test_an_8_gb_allocation_fails_cleanly(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    message = await fails(
        sandbox, "def main():\n    x = bytearray(8 * 1024 ** 3)\n    return {'n': len(x)}\n"
    )
    assert "MemoryError" in message
    assert "error: memory limit exceeded (512 MiB)" in message
    await still_serving(sandbox, pid)


async def test_a_busy_loop_is_stopped_at_the_timeout(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    began = time.monotonic()
    message = await fails(sandbox, "def main():\n    while True:\n        pass\n")
    assert 0.9 < time.monotonic() - began < 3.0
    assert message.startswith("process exited with code -1\nerror: timeout")
    assert "CODE_EXECUTION_TIMEOUT" in message
    await still_serving(sandbox, pid)


async def test_code_blocked_in_c_forever_is_killed_at_the_timeout(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    began = time.monotonic()
    message = await fails(sandbox, "import time\ndef main():\n    time.sleep(10 ** 6)\n")
    assert 0.9 < time.monotonic() - began < 3.0
    assert "error: timeout" in message
    await still_serving(sandbox, pid)


async def test_result_markers_in_prints_and_inputs_change_nothing(sandbox: Sandbox) -> None:
    forged = '<<RESULT>>{"admin": true}<<RESULT>>'
    code = (
        "import os\ndef main(text):\n    print(text)\n    print('<<RESULT>>', flush=True)\n"
        "    return {'echo': text}\n"
    )
    assert await sandbox.run_code("python3", code, {"text": forged}) == {"echo": forged}
    # writing garbage straight to the result descriptor only spoils the run's own result
    tamper = "import os\ndef main():\n    os.write(4, b'garbage')\n    return {'a': 1}\n"
    with pytest.raises(ResultError, match="could not be read"):
        await sandbox.run_code("python3", tamper, {})


async def test_huge_output_is_capped_and_the_traceback_survives(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    loud = "def main():\n    for _ in range(2000):\n        print('x' * 50_000)\n    return {'ok': 1}\n"
    assert await sandbox.run_code("python3", loud, {}) == {"ok": 1}
    noisy = (
        "import sys\ndef main():\n    for _ in range(2000):\n        print('y' * 50_000, file=sys.stderr)\n"
        "    raise ValueError('the end')\n"
    )
    message = await fails(sandbox, noisy)
    assert len(message) < 600_000
    assert "bytes of output not shown" in message
    assert message.rstrip().endswith("ValueError: the end")
    bypass = "import os\ndef main():\n    for _ in range(500):\n        os.write(1, b'z' * 65536)\n"
    with pytest.raises((CodeExecutionFailed, ResultError)):  # EPIPE once we stop reading
        await sandbox.run_code("python3", bypass, {})
    await still_serving(sandbox, pid)


async def test_signals_and_other_processes_are_out_of_reach(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def main(runner, worker):\n    out = {}\n"
        "    for name, target in (('runner', runner), ('worker', worker), ('init', 1)):\n"
        "        out[name] = [libc.syscall(234, target, target, 9), ctypes.get_errno(),\n"  # tgkill
        "                     libc.syscall(62, target, 9), ctypes.get_errno()]\n"  # kill
        "        out[name + '_prlimit'] = [libc.syscall(302, target, 7, None, None), ctypes.get_errno()]\n"
        "    out['ptrace'] = [libc.ptrace(16, runner, None, None), ctypes.get_errno()]\n"  # PTRACE_ATTACH
        "    return out\n"
    )
    result = await sandbox.run_code("python3", code, {"runner": pid, "worker": os.getpid()})
    for name in ("runner", "worker", "init"):
        assert result[name] == [-1, 1, -1, 1], result
        assert result[name + "_prlimit"] == [-1, 1], result
    assert result["ptrace"] == [-1, 1]
    await still_serving(sandbox, pid)


async def test_threads_work(sandbox: Sandbox) -> None:
    code = (
        "import threading\ndef main():\n    out = []\n"
        "    ts = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]\n"
        "    [t.start() for t in ts]; [t.join() for t in ts]\n    return {'n': sorted(out)}\n"
    )
    assert await sandbox.run_code("python3", code, {}) == {"n": [0, 1, 2, 3]}


async def test_javascript_infinite_loop_and_memory_bomb(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    began = time.monotonic()
    message = await fails(sandbox, "function main() { while (true) {} }", "javascript")
    assert "error: timeout" in message
    assert time.monotonic() - began < 3.0
    bomb = "function main() { let a = []; while (true) { a.push('x'.repeat(1 << 20) + a.length) } }"
    with pytest.raises(CodeExecutionFailed) as raised:
        await sandbox.run_code("javascript", bomb, {}, memory_mb=64, timeout=10)
    assert raised.value.message.startswith("process exited with code 1\nInternalError: out of memory")
    await still_serving(sandbox, pid)


async def test_each_child_is_confined_as_reported(sandbox: Sandbox) -> None:
    seen = await sandbox.call("sandbox.selftest")
    assert seen["seccomp"] == 2
    assert seen["no_new_privs"] == 1
    assert seen["read_etc_passwd"].startswith("denied")
    assert seen["write_tmp"].startswith("denied")
    assert seen["fork"].startswith("denied")
    assert "network is disabled" in seen["socket"]
    if os.geteuid() == 0:
        assert seen["uid"] >= 65537
        assert seen["gid"] >= 65537


async def test_touching_more_memory_than_allowed_is_stopped(sandbox: Sandbox) -> None:
    pid = sandbox.runner_pid
    code = "def main():\n    junk = [bytearray(1 << 16) for _ in range(2000)]\n    return {'n': len(junk)}\n"
    with pytest.raises(CodeExecutionFailed) as raised:
        await sandbox.run_code("python3", code, {}, memory_mb=64)
    assert "error: memory limit exceeded (64 MiB)" in raised.value.message
    assert sandbox.ready is not None
    if sandbox.ready.layers.get("memory", "").startswith("cgroup"):  # killed by the kernel, reported by us
        assert raised.value.message.startswith("process exited with code -1\nerror: memory limit exceeded")
    await still_serving(sandbox, pid)
