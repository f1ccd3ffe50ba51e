"""Tests of app/knowledge/segments: the segments and child chunks API."""
