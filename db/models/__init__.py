"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from db.models.base import Base
from db.models.knowledge import Dataset
from db.models.tenancy import ApiKey, App, Workspace

__all__ = ["ApiKey", "App", "Base", "Dataset", "Workspace"]
