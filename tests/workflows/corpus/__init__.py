"""The shared DSL corpus (../shared/dsl) run end to end; see conftest.py."""
