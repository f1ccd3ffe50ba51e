"""Workspaces, apps (as containers for keys) and API keys."""
