# One image for everything Python in Hub: the four subgraphs, the Celery workers and the
# migrations. compose.yaml picks what a container runs with its `command`.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    PATH=/opt/venv/bin:$PATH

# The same uv as scripts/_bootstrap.sh, so the lock file is read the same way.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# Dependencies before code: editing a subgraph does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev
COPY subgraphs ./subgraphs

RUN useradd --system --uid 10001 --no-create-home hub
USER hub

EXPOSE 8001 8002 8003 8004
CMD ["python", "-m", "subgraphs.identity"]
