"""Database layer: models, engines, the embedded server, migrations and the in-transaction job helper."""
