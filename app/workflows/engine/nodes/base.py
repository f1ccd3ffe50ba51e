"""What every node type shares: its config (incl. error strategy and retries), its context and its result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from app.workflows.engine.errors import NodeConfigError
from app.workflows.engine.graph import DEFAULT_HANDLE, NodeSpec
from app.workflows.engine.variables import VariablePool

if TYPE_CHECKING:  # the port Protocols of the node modules, which import this one
    from app.workflows.engine.nodes.code import CodePort
    from app.workflows.engine.nodes.document_extractor import DocumentsPort
    from app.workflows.engine.nodes.http_request import HttpPort
    from app.workflows.engine.nodes.knowledge_retrieval import RetrieverPort
    from app.workflows.engine.nodes.llm_common import HistoryPort
    from app.workflows.engine.nodes.template_transform import TemplatesPort

FAIL_BRANCH = "fail-branch"


class NodeResult(msgspec.Struct, kw_only=True):
    """What a node produced. ``pause`` set means: stop here until the runner resolves the pause."""

    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    process_data: dict[str, Any] = msgspec.field(default_factory=dict)
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    edge_source_handle: str = DEFAULT_HANDLE
    tokens: int = 0
    pause: dict[str, Any] | None = None


class LLMUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ToolCall(msgspec.Struct):
    """A function call the model asked for; ``arguments`` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str = ""


class LLMReply(msgspec.Struct):
    text: str
    usage: LLMUsage
    finish_reason: str | None = None
    model: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)


class LLMPort(Protocol):
    """Chat completions against an OpenAI-compatible endpoint; ``on_chunk`` receives streamed text.

    ``tools`` (OpenAI ``{type: function, function: {name, description, parameters}}`` definitions) and
    ``tool_choice`` are sent as given; the calls the model makes come back in ``LLMReply.tool_calls``.
    ``stream=False`` asks for one whole completion (Dify invokes some nodes without streaming). Once the
    request is sent, an implementation calls ``engine.asking.request_sent()`` (the run's checkpoint waits for it).
    """

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        on_chunk: Callable[[str], Awaitable[None]] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        stream: bool = True,
    ) -> LLMReply: ...

    def supports_tool_calls(self, model: str) -> bool:
        """Whether ``model`` (the DSL's name) can be offered tools (Dify: the ``tool-call`` model feature)."""
        ...


class FilePort(Protocol):
    """Files as nodes see them: Dify's file dicts (``dify_model_identity: __dify__file__``) in the pool."""

    async def save(self, run: RunInfo, *, filename: str, mime_type: str, content: bytes) -> dict[str, Any]:
        """Store bytes a node produced (an http-request response, later a tool's output) as a file of the
        run's app; returns its file dict."""
        ...

    async def read(self, run: RunInfo, file: Mapping[str, Any], *, max_bytes: int) -> bytes:
        """The bytes of a file dict from the pool (an upload, a node's file, or a remote URL fetched through
        the guarded client); more than ``max_bytes`` is an error."""
        ...


class Ports(msgspec.Struct, kw_only=True):
    """The engine's only ways out: everything that does I/O is given to it. Each port's Protocol lives with
    the node type that uses it (``LLMPort`` and ``FilePort`` here, the others in their node modules)."""

    llm: LLMPort | None = None
    retriever: RetrieverPort | None = None  # knowledge_retrieval
    #: the code node's sandbox
    code: CodePort | None = None
    #: the guarded HTTP client for user-supplied URLs (http_request)
    http: HttpPort | None = None
    files: FilePort | None = None
    #: document parsing in a confined child (document_extractor)
    documents: DocumentsPort | None = None
    #: the conversation's earlier turns (llm_common)
    history: HistoryPort | None = None
    #: Jinja2 rendering in a confined child (template_transform, llm)
    templates: TemplatesPort | None = None


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    app_id: str
    workflow_id: str
    user_id: str
    mode: str = "workflow"


class NodeContext:
    def __init__(
        self,
        spec: NodeSpec,
        pool: VariablePool,
        ports: Ports,
        run: RunInfo,
        stream: Callable[[str, list[str]], Awaitable[None]],
    ) -> None:
        self.spec, self.pool, self.ports, self.run = spec, pool, ports, run
        self._stream = stream

    async def stream(self, text: str, selector: list[str]) -> None:
        """Send a piece of output text to listeners (``text_chunk`` events) while the node runs."""
        await self._stream(text, selector)


class RetryConfig(msgspec.Struct):
    """``retry_config``; DSL files spell ``enabled`` as ``retry_enabled`` (both are read)."""

    enabled: bool = False
    max_retries: int = 0
    retry_interval: int = 0  # milliseconds, as in Dify


class Node:
    """A node type. Subclasses set ``type``, parse ``data`` in ``configure`` and implement ``run``."""

    type: ClassVar[str] = ""
    #: handles this node may choose besides ``source`` (if-else cases, human-input actions...)
    branching: ClassVar[bool] = False
    #: True when running the node waits on the outside world (a port: model, retriever, sandbox, HTTP, a
    #: person). The runner checkpoints around such nodes; nodes without I/O run and commit together. The engine
    #: reads it per node, so a type may decide per node (template-transform: a property set in ``configure``).
    performs_io: ClassVar[bool] = False
    #: Its I/O only asks (a model, the knowledge base) and changes nothing outside Sluice: the checkpoint before
    #: it commits while its request goes out, and what it answers is used only once that checkpoint is durable.
    #: Nodes whose I/O acts on the world (HTTP, code, tools, a person) are asked only after the commit.
    only_asks: ClassVar[bool] = False
    #: Produces no node events (container start nodes; containers report through their own events).
    silent: ClassVar[bool] = False

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.title = spec.title
        data = spec.data
        self.error_strategy: str | None = data.get("error_strategy") or None
        if self.error_strategy not in (None, FAIL_BRANCH, "default-value"):
            raise NodeConfigError(spec.id, f"unknown error_strategy {self.error_strategy!r}")
        self.default_values: dict[str, Any] = {}
        for item in data.get("default_value") or []:
            if isinstance(item, Mapping) and "key" in item:
                self.default_values[str(item["key"])] = item.get("value")
        raw_retry = data.get("retry_config")
        retry_config = dict(raw_retry) if isinstance(raw_retry, Mapping) else raw_retry or {}
        if isinstance(retry_config, dict) and "retry_enabled" in retry_config:  # Dify's DSL spelling
            retry_config.setdefault("enabled", retry_config.pop("retry_enabled"))
        try:
            self.retry = msgspec.convert(retry_config, RetryConfig, strict=False)
        except msgspec.ValidationError as exc:
            raise NodeConfigError(spec.id, f"retry_config: {exc}") from None
        self.configure(data)

    def configure(self, data: Mapping[str, Any]) -> None:
        """Validate and keep the node's configuration; raise NodeConfigError with a clear message."""

    def conversation_writes(self) -> set[str]:
        """The conversation variables this node writes (an assigner's targets); none for most nodes."""
        return set()

    def fail(self, message: str) -> NodeConfigError:
        return NodeConfigError(self.id, message)

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NotImplementedError


def selector(value: Any) -> list[str] | None:
    """A DSL value selector (list of strings), or None when absent/empty."""
    if isinstance(value, list | tuple) and value and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return None


def convert(data: Mapping[str, Any], kind: type[Any], node: Node) -> Any:
    """Parse a node's DSL data into a msgspec Struct, naming the node on failure."""
    try:
        return msgspec.convert(dict(data), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise node.fail(str(exc)) from None


class ContainerNode(Node):
    """An iteration or loop: runs its sub-graph (``engine.containers``), round after round.

    It waits on the outside world when a node inside it does (the engine then checkpoints around it); the
    builder tells it so after every node is built (``inner_io``)."""

    silent: ClassVar[bool] = True
    performs_io: bool = False  # type: ignore[misc]  # per instance: what its inner nodes do
    start_node_id: str = ""

    def inner_io(self, performs_io: bool) -> None:
        self.performs_io = performs_io


class ContainerStartNode(Node):
    """``iteration-start`` / ``loop-start``: does nothing, reports nothing."""

    silent: ClassVar[bool] = True

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult()
