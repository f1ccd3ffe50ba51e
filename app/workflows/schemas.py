"""Request and response bodies of the workflow Service API and the DSL console API (Dify's shapes)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

import msgspec

from app.schemas import NO_NUL
from app.workflows.runs.pauses import PausedNode

User = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
#: Longest DSL document the console API imports, in characters.
MAX_DSL_LENGTH = 10 * 1024 * 1024
Yaml = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DSL_LENGTH)]


class RunRequest(msgspec.Struct, kw_only=True):
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    response_mode: Literal["blocking", "streaming"] = "streaming"
    user: User = "anonymous"
    files: list[dict[str, Any]] | None = None


class StopRequest(msgspec.Struct, kw_only=True):
    user: User | None = None


class RunData(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    total_steps: int
    total_tokens: int
    created_at: int | None
    finished_at: int | None
    elapsed_time: float
    paused_nodes: list[PausedNode] | None = None


class PauseDetails(msgspec.Struct):
    paused_at: int | None
    paused_nodes: list[PausedNode]


class RunDetail(msgspec.Struct, kw_only=True):
    """``GET /workflows/run/{id}``: as :class:`RunData`, but ``inputs`` is the JSON text Dify stores and returns
    (``WorkflowRun.inputs`` is a text column), null when the run had none."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    inputs: str | None
    outputs: dict[str, Any]
    error: str | None
    total_steps: int
    total_tokens: int
    created_at: int | None
    finished_at: int | None
    elapsed_time: float
    paused_nodes: list[PausedNode] | None = None

    @classmethod
    def of(cls, data: RunData) -> RunDetail:
        fields = msgspec.structs.asdict(data)
        fields["inputs"] = (
            json.dumps(data.inputs) if data.inputs else None
        )  # Dify's json.dumps, ASCII escapes
        return cls(**fields)


class BlockingRunResult(msgspec.Struct):
    workflow_run_id: uuid.UUID
    task_id: uuid.UUID
    data: RunData


class LogRun(msgspec.Struct):
    id: uuid.UUID
    version: str
    status: str
    error: str | None
    elapsed_time: float
    total_tokens: int
    total_steps: int
    created_at: int | None
    finished_at: int | None
    exceptions_count: int


class EndUser(msgspec.Struct):
    id: str
    type: str
    is_anonymous: bool
    session_id: str


class LogEntry(msgspec.Struct):
    id: uuid.UUID
    workflow_run: LogRun
    created_from: str
    created_by_role: str
    created_by_account: None
    created_by_end_user: EndUser
    created_at: int | None


class DslImport(msgspec.Struct, kw_only=True):
    mode: Literal["yaml-content"] = "yaml-content"
    yaml_content: Yaml
    workspace_id: uuid.UUID | None = None


class ImportResult(msgspec.Struct):
    id: uuid.UUID
    status: str
    app_id: uuid.UUID
    app_mode: str


class DslPublish(msgspec.Struct, kw_only=True):
    yaml_content: Yaml


class WorkflowVersion(msgspec.Struct):
    id: uuid.UUID
    app_id: uuid.UUID
    version: int
    created_at: int | None


class DslExport(msgspec.Struct):
    data: str


class Parameters(msgspec.Struct, kw_only=True):
    opening_statement: str = ""
    suggested_questions: list[str] = msgspec.field(default_factory=list)
    suggested_questions_after_answer: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"enabled": False}
    )
    speech_to_text: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    text_to_speech: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    retriever_resource: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    annotation_reply: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    more_like_this: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    sensitive_word_avoidance: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    file_upload: dict[str, Any] = msgspec.field(default_factory=lambda: {"enabled": False})
    system_parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    user_input_form: list[dict[str, Any]] = msgspec.field(default_factory=list)
