"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from db.models.base import Base
from db.models.human_input import HumanInputDelivery, HumanInputForm, HumanInputRecipient
from db.models.knowledge import Dataset
from db.models.tenancy import ApiKey, App, Workspace
from db.models.workflows import (
    Workflow,
    WorkflowNodeExecution,
    WorkflowRun,
    workflow_pauses,
    workflow_run_events,
)

__all__ = [
    "ApiKey",
    "App",
    "Base",
    "Dataset",
    "HumanInputDelivery",
    "HumanInputForm",
    "HumanInputRecipient",
    "Workflow",
    "WorkflowNodeExecution",
    "WorkflowRun",
    "Workspace",
    "workflow_pauses",
    "workflow_run_events",
]
