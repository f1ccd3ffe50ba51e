"""Unit tests of the knowledge text pipeline (extract, clean, split, keywords)."""
