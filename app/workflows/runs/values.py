"""Large values stored once per run, referenced everywhere else.

A run's inputs, its variable pool, its node executions and its events all mention the same values: a 1 MB text
input is the start node's output, the next node's input, part of ``workflow_started`` and of ``node_finished``.
Writing it into each of those would store it a dozen times. Instead every top-level value (one variable of a
node's inputs, outputs or process data, one entry of the pool) whose JSON is at least ``INLINE_LIMIT`` bytes is
kept once in ``workflow_run_values`` under its SHA-256, and the places that mention it hold ``{"$value": hex}``.
:func:`hydrate` puts the values back when a run is loaded or its events are sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

#: Values whose JSON is shorter than this stay inline (a reference costs ~80 bytes).
INLINE_LIMIT = 16 * 1024
REF = "$value"


class Stash:
    """The large values of one run as a runner writes it: digest -> JSON bytes. Each distinct object is encoded
    once however often it is checkpointed, and each value is sent to the database once (``pending`` then
    ``written``)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.written: set[str] = set()
        self._seen: dict[int, tuple[Any, dict[str, str] | None]] = {}

    def pending(self) -> dict[str, bytes]:
        return {digest: data for digest, data in self.values.items() if digest not in self.written}

    def mark_written(self, digests: Iterable[str]) -> None:
        self.written.update(digests)

    def ref(self, value: Any) -> Any:
        """``value`` itself when small, else a reference to it (the value joins this stash)."""
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, str) and len(value) < INLINE_LIMIT // 4:
            return value  # even 4-byte characters stay under the limit
        cached = self._seen.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1] if cached[1] is not None else value
        encoded = msgspec.json.encode(value)
        reference = None
        if len(encoded) >= INLINE_LIMIT:
            digest = hashlib.sha256(encoded).hexdigest()
            self.values[digest] = encoded
            reference = {REF: digest}
        if isinstance(value, str):
            # Strings cannot change: remember the verdict (keeping the object alive, so that its id() is not
            # reused). Lists and dicts may be changed in place by a node, so they are looked at every time.
            self._seen[id(value)] = (value, reference)
        return reference if reference is not None else value

    def mapping(self, values: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A dict of variables with each large one referenced."""
        if values is None:
            return None
        return {key: self.ref(value) for key, value in values.items()}

    def pool(self, pool: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        return {node: self.mapping(variables) or {} for node, variables in pool.items()}


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REF), str)


def digests(obj: Any, found: set[str] | None = None, depth: int = 0) -> set[str]:
    """Every digest referenced in ``obj`` (references sit at most a few levels deep: events, pools)."""
    found = set() if found is None else found
    if is_ref(obj):
        found.add(obj[REF])
    elif isinstance(obj, dict) and depth < 4:
        for value in obj.values():
            digests(value, found, depth + 1)
    elif isinstance(obj, list) and depth < 4:
        for value in obj:
            digests(value, found, depth + 1)
    return found


def substitute(obj: Any, values: Mapping[str, Any], depth: int = 0) -> Any:
    """``obj`` with every reference replaced by its value (values missing from ``values`` stay references)."""
    if is_ref(obj):
        return values.get(obj[REF], obj)
    if isinstance(obj, dict) and depth < 4:
        return {key: substitute(value, values, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list) and depth < 4:
        return [substitute(value, values, depth + 1) for value in obj]
    return obj


def all_digests(objs: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for obj in objs:
        digests(obj, found)
    return found
