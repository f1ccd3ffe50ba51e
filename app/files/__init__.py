"""Files of workflow apps: uploads through the Service API, previews and signed links, file references in run
requests (``files`` and ``file``/``file-list`` inputs), the engine's file and document ports.

Bytes live in PostgreSQL (``upload_files.content``, shared with the knowledge base's uploads); see the README's
"Files" section for the rules.
"""
