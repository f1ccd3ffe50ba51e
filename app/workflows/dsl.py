"""Dify DSL documents: parse and check one for import, and write one back out for export.

A document is refused with a message that names the problem: YAML errors with their line, unsupported DSL
versions or app modes, a missing start node, edges to unknown nodes, cycles, node types Sluice does not run yet
(all of them listed), and invalid node configuration (the node named).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec
import yaml

from app.errors import SluiceError
from app.workflows import completion_dsl
from app.workflows.engine.errors import GraphError
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes import NODE_TYPES, build_node

MAX_DSL_BYTES = 10 * 1024 * 1024
MAX_DSL_DEPTH = 64
SUPPORTED_MODES = ("workflow", "advanced-chat", "completion")
#: DSL versions 0.1.x .. 0.5.x (what Dify 0.6 .. 1.13 write).
_VERSION = re.compile(r"^0\.([1-5])\.\d+$")


class InvalidDsl(SluiceError):
    """The DSL document cannot be imported."""

    status, code = 400, "invalid_dsl"


class ParsedDsl(msgspec.Struct, frozen=True):
    doc: dict[str, Any]
    name: str
    mode: str
    description: str
    graph: dict[str, Any]


class _DslLoader(yaml.SafeLoader):
    """YAML as Dify exports it: plain data. Anchors and aliases (a 500-byte "billion laughs" file expands to
    gigabytes on export), explicit tags and nesting deeper than ``MAX_DSL_DEPTH`` are refused while composing,
    before anything is built."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&, *) are not allowed in a DSL", event.start_mark
            )
        if getattr(event, "tag", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"explicit tags ({event.tag}) are not allowed in a DSL", event.start_mark
            )
        self.depth += 1
        try:
            if self.depth > MAX_DSL_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DSL_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load(yaml_content: str) -> dict[str, Any]:
    """The document as plain data (size, YAML and shape checked; nothing about the app or graph yet)."""
    if len(yaml_content.encode()) > MAX_DSL_BYTES:
        raise InvalidDsl(f"the DSL is larger than {MAX_DSL_BYTES // (1024 * 1024)} MiB")
    try:
        doc = yaml.load(yaml_content, Loader=_DslLoader)  # noqa: S506 - a SafeLoader, stricter still
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidDsl(f"invalid YAML{where}: {problem}") from None
    if not isinstance(doc, dict):
        raise InvalidDsl("the DSL must be a YAML mapping with `app` and `workflow`")
    return doc


def parse(yaml_content: str) -> ParsedDsl:
    doc = load(yaml_content)
    version = str(doc.get("version") or "")
    if not _VERSION.match(version):
        raise InvalidDsl(f"unsupported DSL version {version or '(missing)'!r}; supported: 0.1.x to 0.5.x")
    if doc.get("kind", "app") != "app":
        raise InvalidDsl(f"unsupported DSL kind {doc.get('kind')!r}; only `app` documents can be imported")
    app = doc.get("app")
    if not isinstance(app, Mapping):
        raise InvalidDsl("missing `app` section")
    mode = str(app.get("mode") or "")
    if mode not in SUPPORTED_MODES:
        raise InvalidDsl(
            f"unsupported app mode {mode or '(missing)'!r}; supported: {', '.join(SUPPORTED_MODES)}"
        )
    if mode == "completion":  # no workflow: the graph its model config amounts to
        doc = completion_dsl.as_workflow(doc)
    workflow = doc.get("workflow")
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("graph"), Mapping):
        raise InvalidDsl("missing `workflow.graph` section")
    graph = dict(workflow["graph"])
    check_graph(graph)
    return ParsedDsl(
        doc=doc,
        name=str(app.get("name") or "Untitled"),
        mode=mode,
        description=str(app.get("description") or ""),
        graph=graph,
    )


def check_graph(graph: Mapping[str, Any]) -> Graph:
    """Everything about a graph that can be known before running it; InvalidDsl otherwise."""
    try:
        parsed = Graph.from_dsl(graph)
    except GraphError as exc:
        raise InvalidDsl(str(exc)) from None
    every = parsed.all_nodes()
    unsupported = Counter(n.type for n in every.values() if n.type not in NODE_TYPES)
    if unsupported:
        listed = ", ".join(
            f"{kind} ({count} node{'s' if count > 1 else ''})" for kind, count in sorted(unsupported.items())
        )
        raise InvalidDsl(f"unsupported node types: {listed}")
    try:
        parsed.start_node()
        parsed.check_acyclic()
        for spec in every.values():
            build_node(spec)
    except GraphError as exc:
        raise InvalidDsl(str(exc)) from None
    _no_pause_inside_containers(parsed)
    return parsed


def _no_pause_inside_containers(graph: Graph) -> None:
    """A human-input node inside an iteration or loop is refused: a round cannot wait for a person (Dify does not
    offer it either)."""
    for container, sub in graph.subgraphs.items():
        pausing = sorted(n.id for n in sub.all_nodes().values() if n.type == "human-input")
        if pausing:
            raise InvalidDsl(
                f"human-input nodes cannot be inside an iteration or loop ({', '.join(pausing)} in {container})"
            )


def environment(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``env`` and ``conversation`` variable pools a run starts with."""
    workflow = doc.get("workflow") or {}
    pools: dict[str, dict[str, Any]] = {"env": {}, "conversation": {}}
    for key, pool in (("environment_variables", "env"), ("conversation_variables", "conversation")):
        for var in workflow.get(key) or []:
            if isinstance(var, Mapping) and var.get("name"):
                pools[pool][str(var["name"])] = var.get("value")
    return pools


def export(doc: Mapping[str, Any], name: str, description: str) -> str:
    """The stored document as YAML, with the app's current name and description."""
    out = dict(doc)
    out["app"] = {**dict(doc.get("app") or {}), "name": name, "description": description}
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True)
