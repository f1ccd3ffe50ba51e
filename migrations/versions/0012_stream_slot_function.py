"""stream slots: take one in a single statement (sluice_take_stream_slot)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 01:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The key's advisory lock serialises the count-then-insert of one key across processes. The function is VOLATILE,
# so its second statement takes a fresh snapshot after the lock is granted: it sees every slot committed before.
# Stale rows are dropped and not counted (a statement does not see its own deletes); the slot is inserted when
# the live ones leave room. Called on its own (autocommit), the lock is released when the call returns.
TAKE_STREAM_SLOT = """
CREATE FUNCTION sluice_take_stream_slot(new_slot uuid, api_key uuid, stale_seconds float8, cap integer)
RETURNS TABLE (live bigint, taken boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('event_streams:' || api_key::text, 0));
    RETURN QUERY
    WITH stale AS (
        DELETE FROM event_streams s
        WHERE s.key_id = api_key AND s.seen_at < now() - make_interval(secs => stale_seconds)),
    counted AS (
        SELECT count(*) AS n FROM event_streams s
        WHERE s.key_id = api_key AND s.seen_at >= now() - make_interval(secs => stale_seconds)),
    inserted AS (
        INSERT INTO event_streams (id, key_id) SELECT new_slot, api_key FROM counted WHERE counted.n < cap
        RETURNING id)
    SELECT (SELECT n FROM counted), EXISTS (SELECT 1 FROM inserted);
END
$$
"""


def upgrade() -> None:
    op.execute(TAKE_STREAM_SLOT)
    op.execute(
        "COMMENT ON FUNCTION sluice_take_stream_slot(uuid, uuid, float8, integer) IS "
        "'Takes an event stream slot of an API key when it holds fewer than cap live ones (app/workflows/streams.py)'"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION sluice_take_stream_slot(uuid, uuid, float8, integer)")
