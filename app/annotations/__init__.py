"""Annotations (Dify's "annotation reply"): stored question/answer pairs of an app that can answer a chat query
without running the flow. ``services.match_annotation`` is the entry point for the chat turn."""
