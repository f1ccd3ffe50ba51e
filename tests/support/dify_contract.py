"""Dify's published Service API description as a checker: which documented operation a response answers, and
where its body departs from the schema the document gives for that status.

The document (``../shared/dify-openapi/openapi_service.json``, CC BY 4.0, LangGenius) is OpenAPI 3.0.1; its
schemas are turned into JSON Schema 2020-12 for ``jsonschema``: ``nullable`` adds ``null``, ``oneOf`` is read
as ``anyOf`` (the document's alternatives carry no required keys, see its NOTICE), references point into the
converted document. Error statuses documented only by examples are checked against the ``{code, message,
status}`` shape those examples share. A status the operation does not document is a violation, except 401,
which the document's security scheme promises for every request.

Where Dify's behaviour and its document disagree, Sluice follows the behaviour; each such difference is named in
``docs/dify-api-differences.md`` (the YAML block there), and :meth:`Contract.check` drops what it tolerates.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parents[2]
DOC_URI = "urn:dify:service-api"
DIFFERENCES = ROOT / "docs" / "dify-api-differences.md"
#: The Service API's base path (Dify's server URL ends in /v1).
BASE = "/v1"

ERROR_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "status"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "status": {"type": "integer"}},
}

#: Streaming operations: the document types their ``text/event-stream`` body as a string and names the event
#: union in prose; these are those unions (each event's ``data`` is checked against the member its ``event``
#: names through the union's discriminator).
STREAM_EVENTS = {
    "POST /workflows/run": "ChunkWorkflowEvent",
    "POST /workflows/{workflow_id}/run": "ChunkWorkflowEvent",
    "GET /workflow/{workflow_run_id}/events": "ChunkWorkflowEvent",
    "POST /chat-messages": "ChunkChatEvent",
    "POST /completion-messages": "ChunkCompletionEvent",
}


def shared_dir() -> Path:
    """The shared reference folder: ``SLUICE_SHARED_DIR``, else ``../shared`` beside the checkout."""
    return Path(os.environ.get("SLUICE_SHARED_DIR") or ROOT.parent / "shared")


def document_path() -> Path:
    return shared_dir() / "dify-openapi" / "openapi_service.json"


def to_json_schema(node: Any) -> Any:
    """One OpenAPI 3.0 schema as JSON Schema 2020-12."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
            out[key] = DOC_URI + value
        elif key == "oneOf":
            out["anyOf"] = to_json_schema(value)
        elif key in ("nullable", "example", "discriminator", "xml", "externalDocs") or key.startswith("x-"):
            continue
        elif key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    pattern: re.Pattern[str]
    literal_segments: int

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class Violation:
    operation: str
    status: int
    where: str
    expected: str
    got: str
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.operation} -> {self.status}: at {self.where}: expected {self.expected}, got {self.got}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Tolerated:
    """One difference from the document that Sluice keeps on purpose (from docs/dify-api-differences.md)."""

    id: str
    operation: str
    status: str
    where: str
    reason: str
    #: A further event union this operation's stream carries (Dify's behaviour beyond its document): events it
    #: names are checked against it rather than refused.
    events: str | None = None

    def covers(self, violation: Violation) -> bool:
        return (
            _glob(self.operation, violation.operation)
            and _glob(self.status, str(violation.status))
            and _glob(self.where, _wildcard_indices(violation.where))
        )


def _glob_regex(pattern: str) -> str:
    """``**`` matches anything, ``(a|b)`` either alternative; everything else is literal."""
    out = []
    for part in re.split(r"(\*\*|\([^()]*\))", pattern):
        if part == "**":
            out.append(".*")
        elif part.startswith("(") and part.endswith(")"):
            out.append("(?:" + "|".join(_glob_regex(alt) for alt in part[1:-1].split("|")) + ")")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _glob(pattern: str, value: str) -> bool:
    return re.fullmatch(_glob_regex(pattern), value) is not None


def _wildcard_indices(where: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", where)


def load_tolerated(path: Path = DIFFERENCES) -> list[Tolerated]:
    """The YAML block of the differences document (between its ``allowlist`` markers)."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r"<!-- allowlist -->\s*```yaml\n(.*?)```", text, re.S)
    if not match:
        raise ValueError(f"{path}: no ```yaml block after <!-- allowlist -->")
    entries = yaml.safe_load(match.group(1)) or []
    return [
        Tolerated(
            id=e["id"],
            operation=e["operation"],
            status=str(e.get("status", "**")),
            where=e.get("where", "**"),
            reason=e["reason"],
            events=e.get("events"),
        )
        for e in entries
    ]


def json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _expected(error: ValidationError) -> str:
    if error.validator == "type":
        return f"type {error.validator_value}"
    if error.validator == "required":
        return f"required keys {error.validator_value}"
    if error.validator == "enum":
        return f"one of {error.validator_value}"
    if error.validator == "anyOf":
        return "one of the documented alternatives"
    return f"{error.validator} {_describe(error.validator_value)}"


def _got(error: ValidationError) -> str:
    if error.validator == "required":
        missing = [
            k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance
        ]
        return f"missing {missing}"
    return _describe(error.instance)


def _leaf_errors(error: ValidationError) -> Iterator[ValidationError]:
    """For anyOf failures, the errors of the alternative that got furthest (what a reader needs to see)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        best = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.absolute_schema_path)))
        if len(best.absolute_path) > len(error.absolute_path):
            yield from _leaf_errors(best)
            return
    yield error


@dataclass
class Contract:
    """The loaded document: operation lookup and response validation."""

    document: dict[str, Any]
    tolerated: list[Tolerated] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None = None) -> Contract:
        path = path or document_path()
        return cls(json.loads(path.read_text(encoding="utf-8")), load_tolerated())

    @cached_property
    def converted(self) -> dict[str, Any]:
        schemas = self.document["components"]["schemas"]
        return {"components": {"schemas": {name: to_json_schema(s) for name, s in schemas.items()}}}

    @cached_property
    def registry(self) -> Registry[Any]:
        resource = Resource.from_contents(self.converted, default_specification=DRAFT202012)
        return Registry().with_resource(DOC_URI, resource)

    @cached_property
    def operations(self) -> list[Operation]:
        found = []
        for template, item in self.document["paths"].items():
            for method, spec in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                segments = template.strip("/").split("/")
                regex = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
                found.append(
                    Operation(
                        method=method.upper(),
                        template=template,
                        spec=spec,
                        pattern=re.compile(f"{re.escape(BASE)}/{regex}/?"),
                        literal_segments=sum(not s.startswith("{") for s in segments),
                    )
                )
        return found

    def operation(self, method: str, path: str) -> Operation | None:
        """The documented operation a request is for; literal segments win over templates (``/datasets/tags``)."""
        matches = [op for op in self.operations if op.method == method.upper() and op.pattern.fullmatch(path)]
        return max(matches, key=lambda op: op.literal_segments, default=None)

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry)

    def _schema_errors(
        self, schema: dict[str, Any], body: Any, op: Operation, status: int
    ) -> list[Violation]:
        found = []
        for error in self.validator(schema).iter_errors(body):
            for leaf in _leaf_errors(error):
                found.append(
                    Violation(op.name, status, json_path(leaf.absolute_path), _expected(leaf), _got(leaf))
                )
        return found

    def check(
        self, method: str, path: str, status: int, content_type: str, body: bytes
    ) -> tuple[Operation | None, list[Violation]]:
        """The violations of one response (tolerated differences removed)."""
        op = self.operation(method, path)
        if op is None:
            return None, []
        violations = [v for v in self._check(op, status, content_type, body) if not self._tolerates(v)]
        return op, violations

    def _tolerates(self, violation: Violation) -> bool:
        return any(t.covers(violation) for t in self.tolerated)

    def _check(self, op: Operation, status: int, content_type: str, body: bytes) -> list[Violation]:
        responses = op.spec.get("responses") or {}
        documented = (
            responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        )
        if documented is None:
            if status == 401:
                return self._check_json(op, status, ERROR_SHAPE, body)
            return [Violation(op.name, status, "status", f"one of {sorted(responses)}", str(status))]
        content: dict[str, Any] = documented.get("content") or {}
        if not content:
            if body.strip() and status != 204:
                return []  # the document says nothing about the body
            return []
        media = content_type.split(";")[0].strip().lower()
        if media == "text/event-stream" and media in content:
            return self._check_stream(op, status, body)
        if media not in content:
            if "application/json" in content or media in ("application/json", "text/event-stream"):
                return [
                    Violation(op.name, status, "content-type", f"one of {sorted(content)}", media or "none")
                ]
            return []  # a file download: the document names the type it expects loosely
        if media != "application/json":
            return []
        schema = content[media].get("schema")
        if schema is None:
            schema = self._example_shape(content[media])
            if schema is None:
                return []
        else:
            schema = to_json_schema(schema)
        return self._check_json(op, status, schema, body)

    @staticmethod
    def _example_shape(media: dict[str, Any]) -> dict[str, Any] | None:
        values = [e.get("value") for e in (media.get("examples") or {}).values()]
        if values and all(isinstance(v, dict) and {"code", "message", "status"} <= v.keys() for v in values):
            return ERROR_SHAPE
        return None

    def _check_json(self, op: Operation, status: int, schema: dict[str, Any], body: bytes) -> list[Violation]:
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            return [Violation(op.name, status, "body", "JSON", _describe(body[:80].decode(errors="replace")))]
        found = self._schema_errors(schema, parsed, op, status)
        if schema is ERROR_SHAPE and isinstance(parsed, dict) and parsed.get("status") not in (None, status):
            found.append(Violation(op.name, status, "$.status", str(status), _describe(parsed.get("status"))))
        return found

    def stream_unions(self, op: Operation, status: int) -> list[str]:
        """The event unions a stream of this operation may carry: the documented one first, then any a tolerated
        difference adds (``events:``)."""
        documented = STREAM_EVENTS.get(op.name)
        if documented is None:
            return []
        extra = [
            t.events
            for t in self.tolerated
            if t.events and _glob(t.operation, op.name) and _glob(t.status, str(status))
        ]
        return [documented, *extra]

    def _check_stream(self, op: Operation, status: int, body: bytes) -> list[Violation]:
        unions = self.stream_unions(op, status)
        if not unions:
            return []
        found = []
        for number, data in enumerate(sse_data(body)):
            event = data.get("event") if isinstance(data, dict) else None
            union = next((u for u in unions if event in self._mapping(u)), unions[0])
            found.extend(self.check_event(op, status, union, data, number))
        return found

    def _mapping(self, union: str) -> dict[str, str]:
        spec = self.document["components"]["schemas"][union]
        mapping: dict[str, str] = (spec.get("discriminator") or {}).get("mapping") or {}
        return mapping

    def check_event(self, op: Operation, status: int, union: str, data: Any, number: int) -> list[Violation]:
        mapping = self._mapping(union)
        event = data.get("event") if isinstance(data, dict) else None
        target = mapping.get(event) if isinstance(event, str) else None
        schema = {"$ref": DOC_URI + target} if target else {"$ref": f"{DOC_URI}#/components/schemas/{union}"}
        found = []
        for v in self._schema_errors(schema, data, op, status):
            where = v.where.replace("$", f"$event[{event}]", 1)
            found.append(Violation(v.operation, v.status, where, v.expected, v.got, f"SSE event #{number}"))
        return found


def sse_data(body: bytes) -> Iterator[Any]:
    """The decoded ``data:`` payload of each Server-Sent Event in a body (undecodable ones are yielded as text)."""
    for block in body.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        lines = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if not lines:
            continue
        text = "\n".join(lines)
        try:
            yield json.loads(text)
        except ValueError:
            yield text
