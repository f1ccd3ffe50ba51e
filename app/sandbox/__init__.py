"""Confined child processes for untrusted work: code-node code, templates with logic, document parsing.

One mechanism: a runner process (``python -m app.sandbox.runner``, the "zygote") started by the worker with an
empty environment pre-imports an allowlist of modules, then forks one child per request and confines it
(namespaces, rlimits, Landlock, no_new_privs, seccomp) before the child runs user code or an allowlisted named
function. The worker talks to the runner through :class:`app.sandbox.client.Sandbox`.

Nothing is re-exported here on purpose: the runner imports this package, and it must stay small (no settings, no
Litestar, no database driver in the zygote's memory).
"""
