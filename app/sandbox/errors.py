"""What the sandbox client raises. Messages follow Dify's code executor where Dify has one; ``error_type`` is
what a code node reports (Dify files every sandbox failure under ``CodeExecutionError``)."""

from __future__ import annotations

from app.errors import SluiceError


class SandboxError(SluiceError):
    """The code could not be run."""

    status, code = 500, "code_execution_error"
    error_type = "CodeExecutionError"


class SandboxUnavailable(SandboxError):
    """Code execution service is unavailable"""

    status, code = 503, "sandbox_unavailable"


class SandboxCrashed(SandboxUnavailable):
    """The code sandbox stopped while running this code; it is restarted for the next run."""


class SandboxBusy(SandboxError):
    """Too many requests"""

    status, code = 429, "too_many_requests"


class CodeExecutionFailed(SandboxError):
    """The code failed (the message is Dify's: "process exited with code N", then the error and stderr)."""

    status, code = 400, "code_execution_failed"


class ResultError(SandboxError):
    """The code's result could not be used (not JSON, not an object). Dify raises a plain ValueError here,
    which its engine reports as an unexpected node error."""

    status, code = 400, "invalid_code_result"
    error_type = "WorkflowNodeError"


class FunctionFailed(SandboxError):
    """A sandboxed function raised (the message is ``Type: message``)."""

    status, code = 400, "sandbox_function_failed"

    def __init__(self, message: str, exception_type: str = "") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class FunctionTimedOut(SandboxError):
    """A sandboxed function ran out of time (its child was killed)."""

    status, code = 400, "sandbox_function_timeout"


class FunctionOutOfMemory(SandboxError):
    """A sandboxed function ran out of memory (its child was killed)."""

    status, code = 400, "sandbox_function_out_of_memory"
