"""`python -m tests.perf.compat` (what `just compat` runs): each operation of Dify's published Service API
description, as Sluice serves it.

An operation is *served* when the app has a route for it (the app is built, not started: no database needed),
*differing* when served with differences named in docs/dify-api-differences.md (operation-specific entries; the
ones that apply to every operation are listed once), *refused by name* when its route answers a named 4xx on
purpose, and *not served* otherwise, with the reason. The share served counts served and differing operations.
When the last test session left ``.data/contract-seen.json`` (the conformance check's record), each operation also
shows the statuses the tests saw. Prints a table and writes docs/dify-api-coverage.md.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from litestar.routes import HTTPRoute

from app.asgi import create_app
from app.settings import Settings
from tests.support.dify_contract import Contract, Operation, Tolerated, document_path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "dify-api-coverage.md"
SEEN = ROOT / ".data" / "contract-seen.json"

#: Served routes that refuse on purpose, with the code they answer.
REFUSED = {
    "POST /datasets/pipeline/file-upload": "400 pipeline_not_supported: knowledge pipelines (plugin ingestion) do not exist in Sluice",
    "GET /datasets/{dataset_id}/pipeline/datasource-plugins": "400 pipeline_not_supported: no datasource plugins",
    "POST /datasets/{dataset_id}/pipeline/datasource/nodes/{node_id}/run": "400 pipeline_not_supported: no datasource plugins",
    "POST /datasets/{dataset_id}/pipeline/run": "400 pipeline_not_supported: no pipeline workflows",
}


def route_patterns(settings: Settings) -> list[tuple[str, re.Pattern[str]]]:
    app = create_app(settings, configure_logs=False)
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        regex = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(route.path))
        for method in route.methods:
            found.append((method, re.compile(regex + "/?")))
    return found


def sample_path(op: Operation) -> str:
    return "/v1" + re.sub(r"\{[^}]+\}", "0193e0a6-3c3f-7a51-8000-000000000001", op.template)


def is_served(op: Operation, routes: list[tuple[str, re.Pattern[str]]]) -> bool:
    path = sample_path(op)
    return any(method == op.method and pattern.fullmatch(path) for method, pattern in routes)


def differences(op: Operation, tolerated: list[Tolerated]) -> list[str]:
    from tests.support.dify_contract import Violation

    probe = Violation(op.name, 0, "", "", "")
    return [
        t.id
        for t in tolerated
        if t.operation != "**" and Tolerated(t.id, t.operation, "**", "**", t.reason).covers(probe)
    ]


def seen_statuses() -> dict[str, list[str]]:
    try:
        raw = json.loads(SEEN.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, list[str]] = defaultdict(list)
    for key in sorted(raw):
        name, _, status = key.rpartition(" ")
        out[name].append(status)
    return out


def main(argv: list[str]) -> int:
    if not document_path().exists():
        print(f"{document_path()} is absent (../shared not present): nothing to compare", file=sys.stderr)
        return 2
    contract = Contract.load()
    routes = route_patterns(Settings(database_url="postgresql://unused/none"))
    seen = seen_statuses()
    rows = []
    counts: dict[str, int] = defaultdict(int)
    for op in contract.operations:
        if op.name in REFUSED:
            state, reason = "refused", REFUSED[op.name]
        elif is_served(op, routes):
            named = differences(op, contract.tolerated)
            state, reason = ("differing", ", ".join(named)) if named else ("served", "")
        else:
            state = "not served"
            reason = "not built"
        counts[state] += 1
        rows.append((op.name, state, reason, ", ".join(seen.get(op.name, []))))
    total = len(rows)
    served = counts["served"] + counts["differing"]
    share = 100.0 * served / total
    global_entries = [t for t in contract.tolerated if t.operation == "**"]
    lines = [
        "# Dify Service API coverage",
        "",
        "Written by `just compat` (`tests/perf/compat.py`) from Dify's published description",
        "(`../shared/dify-openapi/openapi_service.json`, CC BY 4.0) and Sluice's routes. *differing*: served, with the",
        "named differences of docs/dify-api-differences.md; *tested*: the statuses the conformance check saw in the",
        "last test session (`.data/contract-seen.json`).",
        "",
        f"**{served} of {total} operations served ({share:.1f}%)**: {counts['served']} served, {counts['differing']} "
        f"differing, {counts['refused']} refused by name, {counts['not served']} not served.",
        "",
        "On every operation: " + "; ".join(f"`{t.id}` ({t.reason})" for t in global_entries),
        "",
        "| operation | state | reason | tested |",
        "|---|---|---|---|",
        *[f"| `{name}` | {state} | {reason} | {tested} |" for name, state, reason, tested in rows],
        "",
    ]
    REPORT.write_text("\n".join(lines))
    width = max(len(r[0]) for r in rows)
    for name, state, reason, tested in rows:
        print(f"{name:<{width}}  {state:<10}  {reason}{'  [tested: ' + tested + ']' if tested else ''}")
    print(
        f"\n{served} of {total} operations served ({share:.1f}%); report written to {REPORT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
