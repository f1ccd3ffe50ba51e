"""Speech: ``/v1/audio-to-text`` and ``/v1/text-to-audio`` through an OpenAI-compatible endpoint's audio routes."""
