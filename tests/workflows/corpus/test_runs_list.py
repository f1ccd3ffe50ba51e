"""docs/dsl-corpus-runs.toml (read by ``python -m app dsl-report``) against the run tests that it names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from app.workflows import dsl, dsl_corpus
from tests.support.corpus import CORPUS, ROOT
from tests.workflows.corpus import test_chatflows, test_document_chat, test_http_and_files, test_llm_and_code
from tests.workflows.corpus.conftest import needs_corpus

RUNS_LIST = ROOT / "docs" / "dsl-corpus-runs.toml"
pytestmark = needs_corpus
MODULES = (test_llm_and_code, test_http_and_files, test_document_chat, test_chatflows)


def test_runs_list_names_the_tests_that_run_each_file() -> None:
    """Each `runs` names an existing test; the tests of this package marked ``@runs_corpus_file(name)`` are
    exactly the ones the list names for ``name``; every workflow-mode and advanced-chat corpus file that imports
    is listed."""
    assert CORPUS is not None
    listed = dsl_corpus.read_runs_list(RUNS_LIST).files
    marked = {
        fn.corpus_file: f"{Path(inspect.getfile(module)).relative_to(ROOT)}::{name}"
        for module in MODULES
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if hasattr(fn, "corpus_file")
    }
    named_here = {
        file: entry.runs
        for file, entry in listed.items()
        if entry.runs and entry.runs.startswith("tests/workflows/corpus/")
    }
    assert named_here == marked
    for file, entry in listed.items():
        assert (CORPUS / file).exists(), f"{file} is not in the corpus"
        if entry.runs:  # a test elsewhere (the chat tests, say): at least the function must exist
            path, _, name = entry.runs.partition("::")
            source = (ROOT / path).read_text()
            assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), f"{entry.runs} not found"
    for path in sorted(CORPUS.glob("*.yml")):
        try:
            parsed = dsl.parse(path.read_text())
        except dsl.InvalidDsl:
            continue
        if parsed.mode in ("workflow", "advanced-chat"):
            assert path.name in listed, f"{path.name} imports, but the runs list does not say whether it runs"
