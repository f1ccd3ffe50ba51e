"""What can go wrong reading a document, as the user sees it (the indexing job records ``message`` as the
document's error)."""

from __future__ import annotations


class ExtractError(Exception):
    """The file could not be read."""

    def __init__(self, message: str | None = None) -> None:
        self.message: str = message or (type(self).__doc__ or "The file could not be read.").strip()
        super().__init__(self.message)


class UnsupportedFileType(ExtractError):
    """This file type is not supported."""


class UnreadableFile(ExtractError):
    """The file could not be read."""


class TooLarge(ExtractError):
    """The document is too large to index."""
