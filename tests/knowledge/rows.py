"""Workspaces and datasets the knowledge tests insert as rows (one ``make_dataset`` for every knowledge test).

Every argument that decides how a dataset indexes is given by the caller: no default technique, and a
``high_quality`` dataset names its embedding provider and model.
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
    provider: str | None = None,
    model: str | None = None,
    doc_form: str = "text_model",
) -> Dataset:
    """A dataset of the workspace (committed). ``provider`` and ``model`` are its embedding model: required
    for ``high_quality``, refused for ``economy``."""
    if (technique == "high_quality") != (provider is not None and model is not None):
        raise ValueError(f"{technique} dataset with embedding provider {provider!r} and model {model!r}")
    dataset = Dataset(
        workspace_id=workspace_id,
        name=f"ds-{uuid.uuid4().hex[:8]}",
        indexing_technique=technique,
        embedding_model_provider=provider,
        embedding_model=model,
        doc_form=doc_form,
    )
    session.add(dataset)
    await session.commit()
    return dataset
