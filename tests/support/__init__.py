"""Helpers the tests share: live processes, free ports, polling, fake servers, test-only node types and tasks.

Nothing here is named ``test_*``: these modules hold no tests (the tests of these helpers are in
tests/support_tests/)."""
