"""Outbound HTTP to URLs a tenant controls (a DSL, an input, a request), through one SSRF guard.

``client.GuardedClient`` is the only way such a URL is fetched: it checks scheme, name, port and every
resolved address against ``policy.NetPolicy``, pins the connection to the vetted addresses
(``transport.PinnedBackend``), follows redirects itself re-checking every hop, and stops reading a body at a
byte cap counted after decompression (``decoding``). ``node_port.HttpNodePort`` is the workflow engine's
``http`` port on top of it. Operator-configured endpoints (``OPENAI_API_BASE``...) do not use it.
"""
