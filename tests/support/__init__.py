"""Helpers the tests share: live processes, free ports, polling."""
