"""The ``fake_openai`` fixture: a fresh fake OpenAI-compatible server per test, on a free loopback port.

Use it by importing it into the test module::

    from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401

and then ask for ``fake_openai`` in a test's arguments. (The fixture function has its own name so that
the argument does not shadow an import, which ruff would report as F811.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(name="fake_openai")
def fake_openai_fixture() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
