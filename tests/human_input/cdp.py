"""Driving the system's headless Chromium over the Chrome DevTools Protocol (no browser download, no driver).

Just enough for page tests: open a URL, wait for a condition, type into a field, click like a person (mouse
events at the element's centre), read text and take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1000,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class CDPError(Exception):
    """The browser answered a command with an error."""


class Browser:
    """One headless Chromium process with a fresh profile, driven through its first page target."""

    def __init__(self, profile_dir: Path, log_path: Path) -> None:
        self._ids = itertools.count(1)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its renderer and utility processes share the group we end in close()
        )
        port = self._devtools_port(profile_dir / "DevToolsActivePort", log_path)
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"]
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        )
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _devtools_port(self, port_file: Path, log_path: Path, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited early:\n{log_path.read_text()[-3000:]}")
            if port_file.exists():
                lines = port_file.read_text().splitlines()
                if len(lines) >= 2:
                    return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events arriving meanwhile are dropped."""
        command_id = next(self._ids)
        self.ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == command_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result") or {}

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll a JavaScript expression until it is truthy (navigation in between is fine)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(CDPError):
                last = self.evaluate(expression)
                if last:
                    return last
            time.sleep(0.1)
        raise TimeoutError(f"{expression} still {last!r} after {timeout} s")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def text(self) -> str:
        return str(self.evaluate("document.body.innerText"))

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field, select what is in it, and type over it."""
        self.evaluate(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        box = self.evaluate(
            f"(e => {{ e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
            f" return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1
            )

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # helpers left behind by the browser process
        self._log.close()
