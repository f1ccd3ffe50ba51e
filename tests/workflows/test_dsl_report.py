"""`python -m app dsl-report` on a folder of its own: imports, runs (from the runs list) and why not, per file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from app.cli import cli

GREETER = """
version: 0.1.5
kind: app
app: {name: Greeter, mode: MODE}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: end
        data: {type: END, title: End, outputs: []}
    edges:
      - {id: e1, source: start, target: end}
"""


def corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a_runs.yml").write_text(GREETER.replace("MODE", "workflow").replace("END", "end"))
    (folder / "b_stuck.yml").write_text(GREETER.replace("MODE", "workflow").replace("END", "end"))
    (folder / "c_chat.yml").write_text(GREETER.replace("MODE", "advanced-chat").replace("END", "answer"))
    (folder / "d_tool.yml").write_text(GREETER.replace("MODE", "workflow").replace("END", "tool"))
    return folder


def test_the_report_says_per_file_whether_it_imports_and_runs(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "dsl")
    runs = tmp_path / "runs.toml"
    runs.write_text(
        '[files."a_runs.yml"]\nruns = "tests/x.py::test_a"\nnote = "a | note"\n\n'
        '[files."b_stuck.yml"]\nwhy_not = "waits for a feature"\n'
    )
    output = tmp_path / "out" / "report.md"
    result = CliRunner().invoke(
        cli, ["dsl-report", str(folder), "--output", str(output), "--runs", str(runs)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{output}: 3 of 4 import, 1 run"
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ") and ".yml" in line]
    assert rows == [
        "| a_runs.yml | workflow | yes | yes: `tests/x.py::test_a` | a \\| note |",
        "| b_stuck.yml | workflow | yes | no: waits for a feature |  |",
        "| c_chat.yml | advanced-chat | yes | not covered by a run test yet |  |",
        "| d_tool.yml | workflow | no: unsupported node types: tool (1 node) | no: does not import |  |",
    ]
    assert "3 of 4 import; the others are refused" in output.read_text()
    assert (
        "1 run end to end in tests (1 of the 2 workflow-mode files that import, 0 of the 1 advanced-chat ones)"
    ) in output.read_text()


def test_a_runs_list_entry_needs_exactly_one_of_runs_and_why_not(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "dsl")
    output = tmp_path / "report.md"
    for entry in ('runs = "tests/x.py::test_a"\nwhy_not = "both"', 'note = "neither"', 'runz = "typo"'):
        runs = tmp_path / "runs.toml"
        runs.write_text(f'[files."a_runs.yml"]\n{entry}\n')
        result = CliRunner().invoke(
            cli, ["dsl-report", str(folder), "--output", str(output), "--runs", str(runs)]
        )
        assert result.exit_code == 1, result.output
        assert "Error:" in result.output, result.output
        assert not output.exists()
