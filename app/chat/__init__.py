"""Chat apps (Dify's advanced-chat, "Chatflow"): conversations, messages, feedback and the chat stream, on top of
workflow runs (``app/workflows``)."""
