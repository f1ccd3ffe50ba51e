"""Where the shared DSL corpus (``../shared/dsl``, MIT) is, seen from this checkout.

The main checkout sits next to ``shared/``; a worktree sits deeper (``<root>/wt/<name>``), so the folder is
looked for beside the checkout and beside each of its parents. Tests that need the corpus skip without it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    """The first ``shared/dsl`` folder beside the checkout or one of its parents (None: not present)."""
    for folder in (ROOT, *ROOT.parents):
        candidate = folder.parent / "shared" / "dsl"
        if candidate.is_dir():
            return candidate
    return None


CORPUS = corpus_dir()
CORPUS_FILES = sorted(CORPUS.glob("*.yml")) if CORPUS else []
