"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from db.models.annotations import Annotation, AnnotationReplyJob, AnnotationSetting
from db.models.base import Base
from db.models.chat import (
    Conversation,
    ConversationVariable,
    EndUser,
    Message,
    MessageFeedback,
    MessageFile,
)
from db.models.human_input import HumanInputDelivery, HumanInputForm, HumanInputRecipient
from db.models.knowledge import (
    ChildChunk,
    Dataset,
    DatasetMetadata,
    Document,
    Segment,
    Tag,
    UploadFile,
    embedding_cache,
    embedding_spaces,
    tag_bindings,
)
from db.models.shared_state import event_streams, store_entries
from db.models.tenancy import ApiKey, App, Workspace
from db.models.workflows import (
    Workflow,
    WorkflowNodeExecution,
    WorkflowRun,
    workflow_pauses,
    workflow_run_events,
    workflow_run_values,
)

__all__ = [
    "Annotation",
    "AnnotationReplyJob",
    "AnnotationSetting",
    "ApiKey",
    "App",
    "Base",
    "ChildChunk",
    "Conversation",
    "ConversationVariable",
    "Dataset",
    "DatasetMetadata",
    "Document",
    "EndUser",
    "HumanInputDelivery",
    "HumanInputForm",
    "HumanInputRecipient",
    "Message",
    "MessageFeedback",
    "MessageFile",
    "Segment",
    "Tag",
    "UploadFile",
    "Workflow",
    "WorkflowNodeExecution",
    "WorkflowRun",
    "Workspace",
    "embedding_cache",
    "embedding_spaces",
    "event_streams",
    "store_entries",
    "tag_bindings",
    "workflow_pauses",
    "workflow_run_events",
    "workflow_run_values",
]
