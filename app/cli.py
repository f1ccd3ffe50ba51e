"""`python -m app ...`: run the service, manage the database, and do the console API's work from a terminal.

Commands print JSON (one object per line) for anything an operator might pipe into another tool.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import runtime
from app.errors import SluiceError
from app.logging import configure_logging
from app.settings import Settings
from app.tenancy import services
from app.tenancy.schemas import ApiKeyOut, AppOut, WorkspaceOut
from db import embedded, migrate, urls

T = TypeVar("T")


def _settings() -> Settings:
    return runtime.resolve(Settings.from_env())


def _echo(obj: Any) -> None:
    click.echo(json.dumps(msgspec.to_builtins(obj)))


def _in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``fn`` in one transaction against the configured database, committing if it returns."""
    settings = _settings()
    assert settings.database_url

    async def run() -> T:
        engine = create_async_engine(urls.asyncpg(settings.database_url or ""))
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                result = await fn(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except SluiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None


@click.group()
def cli() -> None:
    """Sluice: a Dify-compatible backend for workflows that pause for people."""


# --- running -------------------------------------------------------------------------------------


@cli.command()
def api() -> None:
    """Run the HTTP API (SLUICE_HOST:SLUICE_PORT)."""
    import uvicorn

    from app.asgi import create_app

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


@cli.command()
@click.option(
    "--apis", type=click.IntRange(1, 32), default=1, help="API processes, on SLUICE_PORT and the next ports."
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, help="Worker processes.")
def up(apis: int, workers: int) -> None:
    """Embedded database (if DATABASE_URL is unset), migrations, then the API and a worker until Ctrl-C."""
    from app.supervisor import run_services

    settings = _settings()
    configure_logging(settings)
    sys.exit(run_services(settings, apis=apis, workers=workers))


# --- database ------------------------------------------------------------------------------------


@cli.command("migrate")
@click.argument("revision", default="head")
def migrate_cmd(revision: str) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    settings = _settings()
    migrate.upgrade(settings.database_url or "", revision)
    click.echo(f"database at {revision}")


@cli.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (``base`` removes everything)."""
    migrate.downgrade(_settings().database_url or "", revision)


@cli.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--autogenerate/--empty", default=True, help="Diff the models against the database.")
def revision(message: str, autogenerate: bool) -> None:
    """Create a new migration in migrations/versions (the database must be at head)."""
    with migrate.commands(_settings().database_url or "") as cmds:
        cmds.revision(message=message, autogenerate=autogenerate)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(args: tuple[str, ...]) -> None:
    """Open psql on Sluice's database (the bundled client when the system has none)."""
    url = urls.libpq(_settings().database_url or "")
    program = shutil.which("psql") or str(embedded.bin_dir() / "psql")
    os.execv(program, [program, url, *args])  # noqa: S606


@cli.command()
def down() -> None:
    """Stop the embedded PostgreSQL (no-op with DATABASE_URL)."""
    settings = Settings.from_env()
    if not settings.embedded:
        click.echo("DATABASE_URL is set: there is no embedded database to stop")
        return
    stopped = embedded.stop(settings.data_dir)
    click.echo(
        "embedded PostgreSQL stopped" if stopped else "no embedded PostgreSQL in " + str(settings.data_dir)
    )


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask.")
def reset(yes: bool) -> None:
    """Delete the embedded database and everything in SLUICE_DATA_DIR."""
    settings = Settings.from_env()
    if not settings.embedded:
        raise click.ClickException("DATABASE_URL is set: reset only deletes the embedded database")
    data_dir = settings.data_dir.resolve()
    if not yes:
        click.confirm(f"Delete {data_dir} and every workflow, form and dataset in it?", abort=True)
    embedded.stop(settings.data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    click.echo(f"deleted {data_dir}")


# --- tenancy -------------------------------------------------------------------------------------


@cli.group()
def workspace() -> None:
    """Workspaces."""


@workspace.command("create")
@click.argument("name")
def workspace_create(name: str) -> None:
    _echo(WorkspaceOut.of(_in_transaction(lambda s: services.create_workspace(s, name))))


@workspace.command("list")
def workspace_list() -> None:
    async def run(session: AsyncSession) -> list[WorkspaceOut]:
        await services.ensure_default_workspace(session)
        return [WorkspaceOut.of(w) for w in await services.list_workspaces(session)]

    for w in _in_transaction(run):
        _echo(w)


@cli.group("app")
def app_group() -> None:
    """Apps (workflow containers that app keys are bound to)."""


@app_group.command("create")
@click.argument("name")
@click.option("--mode", type=click.Choice(services.APP_MODES), default="workflow")
@click.option(
    "--workspace", "workspace_id", type=click.UUID, default=None, help="Default: the default workspace."
)
def app_create(name: str, mode: str, workspace_id: uuid.UUID | None) -> None:
    _echo(AppOut.of(_in_transaction(lambda s: services.create_app(s, name, mode, workspace_id))))


@app_group.command("list")
def app_list() -> None:
    apps, _ = _in_transaction(lambda s: services.list_apps(s, 1, 1000))
    for a in apps:
        _echo(AppOut.of(a))


@cli.group()
def key() -> None:
    """Service API keys: `app-` keys for one app, `dataset-` keys for a workspace."""


@key.command("create")
@click.option("--app", "app_id", type=click.UUID, default=None, help="Create an app key for this app.")
@click.option("--dataset", "dataset", is_flag=True, help="Create a dataset key.")
@click.option("--workspace", "workspace_id", type=click.UUID, default=None, help="Dataset key's workspace.")
def key_create(app_id: uuid.UUID | None, dataset: bool, workspace_id: uuid.UUID | None) -> None:
    """Create a key and print it (the secret is shown this once)."""
    if bool(app_id) == dataset:
        raise click.UsageError("give exactly one of --app ID or --dataset")
    key_type = "dataset" if dataset else "app"
    created = _in_transaction(
        lambda s: services.create_key(s, key_type, app_id=app_id, workspace_id=workspace_id)
    )
    _echo(ApiKeyOut.of(created.key, created.token))


@key.command("list")
@click.option("--app", "app_id", type=click.UUID, default=None)
@click.option("--dataset", is_flag=True)
def key_list(app_id: uuid.UUID | None, dataset: bool) -> None:
    """List live keys (without their secrets)."""
    key_type = "app" if app_id or not dataset else "dataset"
    for k in _in_transaction(lambda s: services.list_keys(s, key_type, app_id=app_id)):
        _echo(ApiKeyOut.of(k))


@key.command("revoke")
@click.argument("key_id", type=click.UUID)
def key_revoke(key_id: uuid.UUID) -> None:
    _in_transaction(lambda s: services.revoke_key(s, key_id))
    click.echo(f"revoked {key_id}")


@cli.command("dsl-report")
@click.argument(
    "folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default="../shared/dsl"
)
@click.option("--output", type=click.Path(path_type=Path), default=Path("docs/dsl-corpus.md"))
@click.option(
    "--runs",
    "runs_list",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/dsl-corpus-runs.toml"),
    help="Which test runs which file (or why it does not run).",
)
def dsl_report(folder: Path, output: Path, runs_list: Path) -> None:
    """Write which DSL files in FOLDER import, which run end to end, and why not (docs/dsl-corpus.md)."""
    from app.workflows import dsl_corpus

    try:
        files = dsl_corpus.survey(folder, dsl_corpus.read_runs_list(runs_list))
    except (ValueError, msgspec.DecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dsl_corpus.render(files))
    imported, running = sum(f.imports for f in files), sum(f.runs for f in files)
    click.echo(f"{output}: {imported} of {len(files)} import, {running} run")
