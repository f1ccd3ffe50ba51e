"""Tests of app/knowledge/tags: dataset tags and their bindings."""
