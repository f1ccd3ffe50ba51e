"""Declarative base: UUIDv7 primary keys and timezone-aware ``created_at``/``updated_at`` on every table."""

from advanced_alchemy.base import UUIDv7AuditBase


class Base(UUIDv7AuditBase):
    __abstract__ = True
