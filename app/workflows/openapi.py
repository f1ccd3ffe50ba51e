"""OpenAPI details Litestar cannot infer: which routes answer with Server-Sent Events."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.openapi.spec.enums import OpenAPIType

#: (path, method): the run endpoints answer JSON (blocking) or SSE (streaming); the events route only SSE.
STREAMS = {
    ("/v1/workflows/run", "post"),
    ("/v1/workflows/{workflow_id}/run", "post"),
    ("/v1/workflow/{run_id}/events", "get"),
}

SSE = OpenAPIMediaType(
    schema=Schema(
        type=OpenAPIType.OBJECT,
        description="One Server-Sent Event: `id` is the event's sequence number, `data` a JSON object with `event`.",
        properties={
            "id": Schema(type=OpenAPIType.STRING),
            "event": Schema(type=OpenAPIType.STRING),
            "data": Schema(type=OpenAPIType.STRING, content_media_type="application/json"),
        },
    )
)


def document_streams(app: Litestar) -> None:
    """Add ``text/event-stream`` to the 200 response of every streaming route in the served document."""
    schema = app.openapi_schema
    for path, method in STREAMS:
        item = (schema.paths or {}).get(path)
        operation = getattr(item, method, None) if item else None
        response = (operation.responses or {}).get("200") if operation else None
        if isinstance(response, OpenAPIResponse):
            content = dict(response.content or {})
            content["text/event-stream"] = SSE
            if method == "get":
                content.pop("application/json", None)
            response.content = content
