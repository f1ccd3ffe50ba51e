"""What the entry points (``app/asgi.py``, ``jobs/worker.py``) plug into the run lifecycle: pause kinds and end
hooks.

The workflows package defines the pause-kind protocol and never names a kind; the features that own a kind
are listed here, once, for both processes.
"""

from __future__ import annotations

from collections.abc import Callable

from app.chat.turn_end import ChatTurnEnds
from app.human_input.pauses import HumanInputPauses
from app.settings import Settings
from app.workflows.runs.pauses import EndHook, Extensions, PauseKind

#: Each pause kind, as the factory that builds it from the settings (tests add test-only kinds here).
KIND_FACTORIES: list[Callable[[Settings], PauseKind]] = [HumanInputPauses]
#: Each end hook, as the factory that builds it from the settings.
END_HOOK_FACTORIES: list[Callable[[Settings], EndHook]] = [ChatTurnEnds]


def extensions(settings: Settings) -> Extensions:
    return Extensions(
        [factory(settings) for factory in KIND_FACTORIES],
        [factory(settings) for factory in END_HOOK_FACTORIES],
    )
