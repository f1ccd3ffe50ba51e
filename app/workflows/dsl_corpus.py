"""The DSL corpus report (``docs/dsl-corpus.md``): for each Dify DSL of a folder, whether it imports, whether it
runs end to end, and why not.

Importing is decided here, by the importer itself (:func:`app.workflows.dsl.parse`). Running is a fact about the
test suite, not something the service can find out alone: it comes from a small TOML list
(``docs/dsl-corpus-runs.toml``) naming, per file, the test that runs it (``runs``) or the reason it does not
(``why_not``), plus an optional ``note``. The tests named there check the list; this module only reads files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from app.workflows import dsl


class RunEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One file of the runs list: the test that runs it, or why it does not run (exactly one of the two)."""

    runs: str | None = None
    why_not: str | None = None
    note: str | None = None


class RunsList(msgspec.Struct, forbid_unknown_fields=True):
    files: dict[str, RunEntry] = msgspec.field(default_factory=dict)


class CorpusFile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    mode: str
    refusal: str | None  # None: it imports
    run: RunEntry | None  # None: the runs list does not name it

    @property
    def imports(self) -> bool:
        return self.refusal is None

    @property
    def runs(self) -> bool:
        return self.imports and self.run is not None and bool(self.run.runs)


def read_runs_list(path: Path) -> RunsList:
    """The runs list; a file that says both or neither of ``runs`` and ``why_not`` is an error."""
    listed = msgspec.toml.decode(path.read_bytes(), type=RunsList) if path.exists() else RunsList()
    for name, entry in listed.files.items():
        if bool(entry.runs) == bool(entry.why_not):
            raise ValueError(f"{path}: {name} needs exactly one of `runs` and `why_not`")
    return listed


def survey(folder: Path, runs: RunsList) -> list[CorpusFile]:
    """Every ``*.yml`` of ``folder``, by name, with the importer's verdict and its entry in the runs list."""
    files = []
    for path in sorted(folder.glob("*.yml")):
        text = path.read_text()
        refusal = None
        try:
            dsl.parse(text)
        except dsl.InvalidDsl as exc:
            refusal = exc.message
        files.append(
            CorpusFile(name=path.name, mode=_mode(text), refusal=refusal, run=runs.files.get(path.name))
        )
    return files


def _mode(text: str) -> str:
    try:
        app = dsl.load(text).get("app")
    except dsl.InvalidDsl:
        return ""
    return str(app.get("mode") or "") if isinstance(app, Mapping) else ""


def _run_cell(file: CorpusFile) -> str:
    if not file.imports:
        return "no: does not import"
    if file.run is None:
        return "not covered by a run test yet"
    if file.run.runs:
        return f"yes: `{file.run.runs}`"
    return f"no: {file.run.why_not}"


def render(files: list[CorpusFile]) -> str:
    """The report as Markdown (stable: the same corpus and list give the same text)."""
    imported = [f for f in files if f.imports]
    running = [f for f in files if f.runs]
    workflows = [f for f in imported if f.mode == "workflow"]
    chats = [f for f in imported if f.mode == "advanced-chat"]
    lines = [
        "# The DSL corpus",
        "",
        f"Each file of `../shared/dsl/` imported with `POST /console/api/apps/imports`: {len(imported)} of"
        f" {len(files)} import; the others are refused with 400 `invalid_dsl` and the reason below."
        f" {len(running)} run end to end in tests ({sum(f.runs for f in workflows)} of the {len(workflows)}"
        f" workflow-mode files that import, {sum(f.runs for f in chats)} of the {len(chats)} advanced-chat"
        " ones): imported unchanged unless the note says otherwise, run by a real worker against the fake"
        " OpenAI-compatible server (workflow-mode files through `POST /v1/workflows/run`, advanced-chat ones"
        " answering chat messages through `POST /v1/chat-messages`; blocking and streaming), with the outputs"
        " checked against what the graph makes of its canned answers.",
        "",
        "Regenerate with `python -m app dsl-report` (it reads `docs/dsl-corpus-runs.toml`, the list of which"
        " test runs which file); `tests/workflows/test_dsl_import.py` checks this file is current and"
        " `tests/workflows/corpus/test_runs_list.py` checks the list.",
        "",
        "| file | mode | imports | runs | note |",
        "|---|---|---|---|---|",
    ]
    for f in files:
        note = (f.run.note if f.run else None) or ""
        imports = "yes" if f.imports else f"no: {f.refusal}"
        cells = (f.name, f.mode, imports, _run_cell(f), note)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*lines, ""])
