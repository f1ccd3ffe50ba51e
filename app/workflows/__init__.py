"""Workflow apps: DSL import/export, runs, the run event stream, and the pure graph engine (``engine/``)."""
