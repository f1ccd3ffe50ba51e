"""Workspaces and datasets the knowledge tests insert as rows (one ``make_dataset`` for every knowledge test).

The caller always says which technique a dataset indexes with (no default), and which workspace it belongs to.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Dataset, Workspace


async def make_workspace(session: AsyncSession) -> uuid.UUID:
    """A new workspace (committed): a dataset of its own, away from every tenant's."""
    workspace = Workspace(name=f"kb-{uuid.uuid4().hex[:6]}")
    session.add(workspace)
    await session.commit()
    return workspace.id


async def make_dataset(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    technique: str,
    embedding: tuple[str, str] = ("local", "static-64"),
    doc_form: str = "text_model",
) -> Dataset:
    """A dataset of the workspace (committed). ``embedding`` is the (provider, model) of a ``high_quality``
    dataset; an ``economy`` dataset has none."""
    high = technique == "high_quality"
    provider, model = embedding
    dataset = Dataset(
        workspace_id=workspace_id,
        name=f"ds-{uuid.uuid4().hex[:8]}",
        indexing_technique=technique,
        embedding_model_provider=provider if high else None,
        embedding_model=model if high else None,
        doc_form=doc_form,
    )
    session.add(dataset)
    await session.commit()
    return dataset
