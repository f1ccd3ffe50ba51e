# Sluice development recipes. `just` lists them.
# Recipes use the project's virtualenv (.venv) when there is one, else the python on PATH.

python := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }

# List the recipes
default:
    @{{just_executable()}} --list --unsorted

# Create .venv and install Sluice with its dev tools (idempotent)
install:
    test -x .venv/bin/python || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'

# Embedded DB (if DATABASE_URL is unset), migrations, then API + worker until Ctrl-C
up:
    {{python}} -m app up

# Several APIs (ports SLUICE_PORT, +1, ...) and workers on one database, supervised like `up` (`just cluster 2 3`)
cluster APIS="2" WORKERS="3":
    {{python}} -m app up --apis {{APIS}} --workers {{WORKERS}}

# Run the HTTP API only
api:
    {{python}} -m app api

# Run a worker only (all queues, or e.g. `just worker --queue timers`)
worker *ARGS:
    {{python}} -m jobs worker {{ARGS}}

# Upgrade the database schema (default: head)
migrate REVISION="head":
    {{python}} -m app migrate {{REVISION}}

# Create a migration from the models (`just revision "add forms"`)
revision MESSAGE:
    {{python}} -m app revision -m "{{MESSAGE}}"

# Open psql on Sluice's database
psql *ARGS:
    {{python}} -m app psql {{ARGS}}

# Run the test suite (starts the embedded PostgreSQL itself)
test *ARGS:
    {{python}} -m pytest {{ARGS}}

# Run benchmarks under tests/perf (`just bench queue`; no name: all)
bench *NAMES:
    {{python}} -m tests.perf {{NAMES}}

# Which of Dify's documented Service API operations Sluice serves (writes docs/dify-api-coverage.md)
compat:
    {{python}} -m tests.perf.compat

# Lint and type-check
lint:
    {{python}} -m ruff check app jobs db migrations tests
    {{python}} -m ruff format --check app jobs db migrations tests
    {{python}} -m mypy

# Format the code
fmt:
    {{python}} -m ruff format app jobs db migrations tests
    {{python}} -m ruff check --fix app jobs db migrations tests

# Stop the embedded PostgreSQL
down:
    {{python}} -m app down

# Delete the embedded database and all data (asks first)
reset:
    {{python}} -m app reset
