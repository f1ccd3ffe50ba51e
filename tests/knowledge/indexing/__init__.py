"""Tests of app/knowledge/indexing: extract, cleaning, splitting, keywords, and the indexing job end to end."""
