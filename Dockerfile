# syntax=docker/dockerfile:1
#
# wpk as a container image: the `wpk` command, with `wpk serve` (the sidecar API and agent) as
# the default. docs/operations.md says how to run, secure, scrape and upgrade it.
#
#   docker build -t wpk:0.1.0 .
#   docker run --rm -p 4000:4000 -v "$PWD/token:/var/run/secrets/wpk/token:ro" wpk:0.1.0
#
# Two stages. The builder downloads every dependency as a wheel checked against the hashes of
# the lock (requirements/run.txt) and builds wpk's own wheel. The final stage installs exactly
# those wheels, again with --require-hashes and without network access, into a slim Python; it
# has no compiler, no build tools and no package caches, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements/run.txt requirements/run.txt
# Binary wheels only: nothing is compiled, so what is installed is what the lock's hashes name.
RUN pip download --require-hashes --only-binary=:all: --no-deps \
        --dest /wheels -r requirements/run.txt \
 && pip install --no-index --find-links=/wheels --require-hashes -r requirements/run.txt

COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY adapters/ adapters/
COPY sidecar/ sidecar/
COPY wpk-schemas/ wpk-schemas/
# The build backend (setuptools, wheel) comes from the lock too, hence --no-build-isolation.
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels .

# -- final ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="wpk" \
      org.opencontainers.image.description="Declarative workflow engine for SRE runbook packages; wpk serve is its sidecar API" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/wpk \
    XDG_STATE_HOME=/var/lib \
    XDG_CACHE_HOME=/var/cache

# A fixed, unprivileged UID/GID (Kubernetes' runAsNonRoot can check a numeric USER), and the
# directories wpk writes: the state (the default SQLite store is $XDG_STATE_HOME/wpk/wpk.db,
# i.e. /var/lib/wpk/wpk.db) and the compiled-package cache ($XDG_CACHE_HOME/wpk).
RUN groupadd --system --gid 10001 wpk \
 && useradd --system --uid 10001 --gid wpk --home-dir /home/wpk --create-home \
        --shell /usr/sbin/nologin wpk \
 && install -d -o wpk -g wpk -m 0750 /var/lib/wpk /var/cache/wpk

COPY requirements/run.txt /tmp/run.txt
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --require-hashes -r /tmp/run.txt \
 && pip install --no-index --no-deps /wheels/wpk-*.whl \
 && pip check \
 && rm /tmp/run.txt \
 && wpk --help > /dev/null

VOLUME ["/var/lib/wpk"]
EXPOSE 4000
USER 10001:10001
WORKDIR /home/wpk

# No curl in a slim image: ask /health with the Python that is there (no token needed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/health', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["wpk"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4000", "--token-file", "/var/run/secrets/wpk/token"]
