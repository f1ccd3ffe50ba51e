"""Console API (admin token): apps from Dify DSL — import, export, publish a new version."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.schemas import unix
from app.workflows import services
from app.workflows.schemas import DslExport, DslImport, DslPublish, ImportResult, WorkflowVersion


class DslController(Controller):
    path = "/console/api/apps"
    tags = ["console"]

    @post("/imports", status_code=200, responses=responses(400, 401, 404))
    async def import_dsl(self, db_session: AsyncSession, data: DslImport) -> ImportResult:
        """Create an app from a Dify DSL YAML (workflow or advanced-chat) and publish it as version 1."""
        app = await services.import_app(db_session, data.yaml_content, data.workspace_id)
        return ImportResult(id=uuid.uuid4(), status="completed", app_id=app.id, app_mode=app.mode)

    @get("/{app_id:uuid}/export", responses=responses(401, 404))
    async def export_dsl(self, db_session: AsyncSession, app_id: uuid.UUID) -> DslExport:
        """The published workflow as Dify DSL YAML (imports back to the same graph)."""
        return DslExport(data=await services.export_app(db_session, app_id))

    @post("/{app_id:uuid}/workflows/publish", status_code=200, responses=responses(400, 401, 404))
    async def publish(self, db_session: AsyncSession, app_id: uuid.UUID, data: DslPublish) -> WorkflowVersion:
        """Publish a new version of the app's workflow from DSL YAML; new runs use it."""
        workflow = await services.publish(db_session, app_id, data.yaml_content)
        return WorkflowVersion(
            id=workflow.id,
            app_id=workflow.app_id,
            version=workflow.version,
            created_at=unix(workflow.created_at),
        )
