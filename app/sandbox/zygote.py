"""Preparing the runner's memory before any fork: a constant environment and the pre-imported modules.

Everything imported here is in every child already (no file access needed to use it); heavy optional packages
(pandas, numpy, matplotlib, jieba...) are imported only when named in ``CODE_SANDBOX_PRELOAD``, so the default
runner stays small. Some packages need a writable directory once (matplotlib's font cache, jieba's dictionary
cache): their warm-ups run here, where writing is still allowed, so that children never need to write.
"""

from __future__ import annotations

import importlib
import mimetypes
import os
import resource
import shutil
import tempfile
from pathlib import Path

from app.sandbox.functions import MODULES

#: modules every child finds already imported (spec 10.4.1 and the shared DSL corpus)
ALLOWLIST = (
    "json", "re", "math", "datetime", "time", "base64", "hashlib", "hmac", "random", "string", "collections",
    "itertools", "functools", "decimal", "fractions", "statistics", "uuid", "urllib.parse", "html", "textwrap",
    "unicodedata", "zoneinfo", "csv", "io", "copy", "typing", "dataclasses", "enum", "logging", "operator",
    "pathlib", "os", "socket", "traceback", "linecache", "struct", "bisect", "heapq", "pprint", "secrets",
)  # fmt: skip

#: the runner's whole environment: constants, nothing inherited
ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def vm_mb() -> float:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize() / (1024 * 1024)


def _warm_matplotlib() -> None:
    """Resolve matplotlib's config/cache directory (it insists on a writable one) and build its font list
    here, where writing is allowed: children inherit both and never need to write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager
    import matplotlib.pyplot


def _warm_jieba() -> None:
    """Load jieba's dictionary once (about a second) instead of in every child."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


#: extra start-up work for preloaded packages that would otherwise need a writable directory per run
WARM_UPS = {"matplotlib": _warm_matplotlib, "jieba": _warm_jieba}
SCRATCH_PREFIX = "sluice-sandbox-"


def _scratch_directory() -> str:
    """The runner's private directory (/tmp/sluice-sandbox-<pid>): caches of preloaded packages. Children can
    neither read nor write it; ``tempfile.gettempdir()`` names it so that libraries asking for a temporary
    directory get an answer (and a PermissionError when they try to write) instead of a crash."""
    base = tempfile.gettempdir()
    for stale in Path(base).glob(f"{SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(SCRATCH_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    path = Path(base) / f"{SCRATCH_PREFIX}{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(path)
    return str(path)


def prepare(preload: list[str]) -> tuple[list[str], dict[str, str]]:
    """Environment and pre-imports; returns what was preloaded and what failed to import."""
    os.environ.clear()
    os.environ.update(ENVIRONMENT)
    scratch = _scratch_directory()
    os.environ["MPLCONFIGDIR"] = os.path.join(scratch, "matplotlib")
    errors: dict[str, str] = {}
    loaded: list[str] = []
    for name in (*ALLOWLIST, *MODULES, *preload):
        try:
            importlib.import_module(name)
            if name in WARM_UPS:
                WARM_UPS[name]()
            loaded.append(name)
        except Exception as exc:  # a missing optional package is reported, not fatal
            errors[name] = f"{type(exc).__name__}: {exc}"
    # The MIME table is read from /etc/mime.types on first use, which a child may not read: read it here once.
    mimetypes.init()
    try:
        import _quickjs  # noqa: F401 - javascript
    except ImportError as exc:
        errors["_quickjs"] = f"ImportError: {exc} (javascript code nodes will fail)"
    return [n for n in loaded if n in preload], errors


def remove_scratch() -> None:
    if tempfile.tempdir and Path(tempfile.tempdir).name.startswith(SCRATCH_PREFIX):
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
