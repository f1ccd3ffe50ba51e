"""Tests of app/knowledge/retrieval: search over indexed segments and the retrieve API."""
