"""The files API's domain errors, with Dify's codes and messages (``controllers/common/errors.py``,
``controllers/service_api/app/error.py``)."""

from __future__ import annotations

from app.errors import Forbidden, InvalidParam, NotFound, SluiceError
from app.knowledge.errors import FileTooLarge, NoFileUploaded, TooManyFiles

__all__ = [
    "FileAccessDenied",
    "FileNotFound",
    "FileTooLarge",
    "FilenameInvalid",
    "FilenameMissing",
    "NoFileUploaded",
    "SigningKeyMissing",
    "TooManyFiles",
    "UnsupportedFileType",
]


class UnsupportedFileType(SluiceError):
    """File type not allowed."""

    status, code = 415, "unsupported_file_type"


class FilenameMissing(InvalidParam):
    """The specified filename does not exist."""

    code = "filename_not_exists_error"


class FilenameInvalid(InvalidParam):
    """Filename contains invalid characters"""


class FileNotFound(NotFound):
    """The requested file was not found."""

    code = "file_not_found"


class FileAccessDenied(Forbidden):
    """Access to the requested file is denied."""

    code = "file_access_denied"


class SigningKeyMissing(SluiceError):
    """SLUICE_SECRET_KEY is not set: file links cannot be signed or checked."""

    status, code = 503, "secret_key_missing"
