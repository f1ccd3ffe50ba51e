"""The graph engine: pure, no database and no HTTP. A runner gives it a graph, a state snapshot and ports
(the LLM client, a clock), and is told about every step through a listener; see ``engine.core``."""
