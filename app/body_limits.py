"""How large a request body each group of routes accepts (Litestar's ``request_max_body_size`` per router).

A body over the limit is refused with 413 ``request_entity_too_large`` before it is read into memory (Litestar
checks ``Content-Length`` first and counts the bytes of a chunked body as they arrive):

* JSON routes (datasets, metadata, tags, retrieval, forms, keys...): ``SLUICE_MAX_REQUEST_BODY_SIZE`` (1 MiB).
* Run routes: the run inputs' cap (``SLUICE_MAX_RUN_INPUTS_SIZE``) and room for the rest of the request; each
  input is also held to ``MAX_VARIABLE_SIZE`` when the run starts (``app/workflows/services.py``).
* The DSL console routes: the longest DSL document (10 M characters), JSON-escaped.
* Document and segment routes: a document's text may be as large as an upload (``UPLOAD_FILE_SIZE_LIMIT``).
* Upload routes read their multipart body themselves against per-type limits (``request_max_body_size=None``
  on those handlers, which overrides the router's).
"""

from __future__ import annotations

from app.knowledge.documents import uploads
from app.settings import Settings
from app.workflows.schemas import MAX_DSL_LENGTH

#: Room for what a run request carries besides its inputs (user, response mode, file mappings).
RUN_REQUEST_OVERHEAD = 64 * 1024


def json_routes(settings: Settings) -> int:
    return settings.max_request_body_size


def run_routes(settings: Settings) -> int:
    return max(settings.max_request_body_size, settings.max_run_inputs_size + RUN_REQUEST_OVERHEAD)


def dsl_routes(settings: Settings) -> int:
    # YAML text inside JSON: escaping newlines and quotes can double its size.
    return max(settings.max_request_body_size, 2 * MAX_DSL_LENGTH + RUN_REQUEST_OVERHEAD)


def document_routes(settings: Settings) -> int:
    return max(settings.max_request_body_size, uploads.request_body_limit(settings))
