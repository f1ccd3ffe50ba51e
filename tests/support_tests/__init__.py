"""Tests of the test helpers in tests/support/ (the Dify contract check, the fake OpenAI server): the rest of the
suite relies on them behaving as documented."""
