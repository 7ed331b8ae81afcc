# The tenant API image: gunicorn serving the Flask app, one tenant per container (set by env).
#   docker build -t finance-service:dev .
#   docker run ... finance-service:dev                              serve on port 8000
#   docker run ... finance-service:dev python -m service migrate    apply migrations, then exit

# Both stages start from the same base image, pinned by the digest of its multi-arch index as
# docker-library/repo-info records it (the 2026-09-01 build of 3.11.16, the newest Python 3.11 whose
# digest could be verified there); Dependabot moves tag and digest together (docs/security.md).

# Builder: the runtime dependencies of pyproject.toml in a virtual environment. Every dependency
# ships wheels, so no compiler is needed even here; the stage keeps pip's work out of the image.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS builder

WORKDIR /build
COPY pyproject.toml ./
# Only [project].dependencies: the dev extra (test and lint tools) never enters the image, and the
# service itself is copied as source below, so changing the code does not reinstall dependencies.
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt


FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS runtime

ARG VERSION=0.1.0
ARG REVISION=""
ARG SOURCE=""
ARG LICENSES="NOASSERTION"
LABEL org.opencontainers.image.title="finance-service" \
      org.opencontainers.image.description="Multi-tenant personal-finance JSON API: one isolated copy per tenant." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# A passwd entry for the numeric user below, so libraries that look the user up find one.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

# GUNICORN_WORKER_TMP_DIR: the worker heartbeat file goes to /dev/shm, a tmpfs, so the container
# runs with a read-only root filesystem (service/gunicorn.conf.py reads it). The workers' metrics
# files go there too (PROMETHEUS_MULTIPROC_DIR; the master creates and empties it at start) and
# the master serves their sum on METRICS_PORT (9102 by default).
# SERVICE_VERSION: what /health answers as the version (scripts/fleet status shows it).
ENV PATH="/opt/venv/bin:${PATH}" \
    SERVICE_VERSION="${VERSION}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GUNICORN_WORKER_TMP_DIR=/dev/shm \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/finance-metrics

# Owned by root and not writable by the app user; `python -m service ...` and gunicorn's
# `service:create_app()` import the package from this working directory.
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY service/ ./service/

USER 10001:10001
# The API, and the Prometheus metrics (never to be published with the API).
EXPOSE 8000 9102

# Liveness only: /health never touches the database. Slim images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "service/gunicorn.conf.py", "service:create_app()"]
