"""Tests of app/tenancy and the credentials: workspaces, apps, keys, the console API."""
