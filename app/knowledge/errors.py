"""The knowledge API's domain errors, with Dify's codes (``controllers/service_api/dataset/error.py``)."""

from __future__ import annotations

from app.errors import Conflict, Forbidden, InvalidParam, SluiceError


class DatasetNameDuplicate(Conflict):
    """The dataset name already exists. Please modify your dataset name."""

    code = "dataset_name_duplicate"


class DatasetNameTaken(InvalidParam):
    """Dataset name already exists"""

    # A rename onto a taken name: Dify's update raises a plain ValueError there (400 invalid_param), while
    # creation answers 409 dataset_name_duplicate.


class DatasetInUse(Conflict):
    """The dataset is being used by some apps. Please remove the dataset from the apps before deleting it."""

    code = "dataset_in_use"


class NoFileUploaded(InvalidParam):
    """Please upload your file."""

    code = "no_file_uploaded"


class TooManyFiles(InvalidParam):
    """Only one file is allowed."""

    code = "too_many_files"


class FileTooLarge(SluiceError):
    """File size exceeded."""

    status, code = 413, "file_too_large"


class UnsupportedFileType(InvalidParam):
    """File type not allowed."""

    code = "unsupported_file_type"


class EmptyFile(InvalidParam):
    """The file is empty."""

    code = "empty_file"


class DocumentIndexing(InvalidParam):
    """The document is being processed and cannot be edited."""

    code = "document_indexing"


class DocumentAlreadyFinished(InvalidParam):
    """The document has been processed. Please refresh the page or go to the document details."""

    code = "document_already_finished"


class ArchivedDocumentImmutable(Forbidden):
    """The archived document is not editable."""

    code = "archived_document_immutable"


class InvalidMetadata(InvalidParam):
    """The metadata content is incorrect. Please check and verify."""

    code = "invalid_metadata"


class InvalidAction(InvalidParam):
    """Invalid action."""

    code = "invalid_action"


class ProviderNotInitialized(InvalidParam):
    """No valid embedding model is configured for this dataset."""

    code = "provider_not_initialize"


class EmbeddingModelNotAllowed(InvalidParam):
    """This embedding model is not offered here."""

    code = "embedding_model_not_allowed"
