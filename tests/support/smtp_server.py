"""A real SMTP server on a free loopback port (aiosmtpd), collecting what it accepts.

``refuse`` makes it answer ``451`` to the next messages for an address, to show retries.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """The aiosmtpd handler: every accepted message, parsed; refusals counted per recipient address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._refusals: dict[str, int] = {}
        self.refused: list[str] = []

    def refuse(self, address: str, times: int = 1) -> None:
        with self._lock:
            self._refusals[address] = times

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self._messages if m["To"] == address]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            for address in envelope.rcpt_tos:
                if self._refusals.get(address, 0) > 0:
                    self._refusals[address] -= 1
                    self.refused.append(address)
                    return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self._messages.append(message)
        return "250 OK"


class SMTPServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
