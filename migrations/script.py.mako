"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import advanced_alchemy.types
import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

# Autogenerate spells pgvector's and advanced-alchemy's types with these prefixes.
sa.VECTOR = pgvector.sqlalchemy.VECTOR
sa.HALFVEC = pgvector.sqlalchemy.HALFVEC
sa.GUID = advanced_alchemy.types.GUID
sa.DateTimeUTC = advanced_alchemy.types.DateTimeUTC
sa.JsonB = advanced_alchemy.types.JsonB

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
