"""Tests of app/knowledge/documents: the documents API and file downloads."""
