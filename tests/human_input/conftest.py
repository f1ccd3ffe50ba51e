"""Human-input tests run their workflows like the workflow tests do: the same module database, settings, worker
and client (the fixtures of tests/workflows/conftest.py)."""

from __future__ import annotations

from tests.workflows.conftest import llm_base_url, wf_client, wf_database, wf_engine, wf_settings, worker

__all__ = ["llm_base_url", "wf_client", "wf_database", "wf_engine", "wf_settings", "worker"]
