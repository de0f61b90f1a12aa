# The service image: `ingest run` by default (embedded Redis + SQLite under /data).
# In compose the same image runs the daemon and the workers against a real Redis.
#
#   make image        builds it here, on a Debian base made without a registry (image/)
#   podman build --format docker -t ingest .     with the official Python image
#
# It installs exactly the locked versions (requirements/service.txt, with hashes),
# then the package itself without dependencies: what the test suite ran on.
ARG BASE=python:3.11-slim

# --- build: a venv holding the locked dependencies and the package --------------
FROM ${BASE} AS build
# pip trusts the CA bundle mounted read-only at build time (image/common.sh), if any;
# nothing of it stays in the image.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv --without-pip /opt/ingest
COPY requirements/service.txt /src/requirements/service.txt
RUN if [ ! -f "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && python -m pip --python /opt/ingest/bin/python install --quiet --no-deps --require-hashes \
       -r /src/requirements/service.txt
COPY pyproject.toml README.md /src/
COPY ingest /src/ingest
COPY workers /src/workers
# pip compiles the bytecode here, as the image's user could not at run time: 35 MB that
# halve the imports of every process (worker starts, `ingest` commands): docs/deployment.md.
RUN if [ ! -f "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && python -m pip --python /opt/ingest/bin/python install --quiet --no-deps /src

# --- the image: the venv alone, no source beside it -------------------------------
# The source stays in the build stage: a copy of ingest/ in the working directory
# would be what `python -m ingest` (how `ingest run` starts its workers) imports.
FROM ${BASE}
COPY --from=build /opt/ingest /opt/ingest
ENV PATH=/opt/ingest/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INGEST_DATA_DIR=/data
RUN useradd --create-home --uid 1000 --user-group ingest \
    && mkdir -p /data && chown ingest:ingest /data
USER ingest
WORKDIR /home/ingest
VOLUME ["/data"]
# The HTTP API (docs/api.md) listens on 127.0.0.1:8080 unless INGEST_LISTEN says
# otherwise; to publish it, set INGEST_LISTEN=0.0.0.0:8080 and INGEST_API_TOKEN.
EXPOSE 8080
# /healthz is public (no token) and answers while Redis or the store is down: it says
# the process lives. The probe follows INGEST_LISTEN's port, on loopback (so a listen
# address of 0.0.0.0 or 127.0.0.1). Podman keeps a HEALTHCHECK only with --format docker.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = (os.environ.get('INGEST_LISTEN') or ':8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
# SIGTERM lets running jobs finish and stops the embedded Redis cleanly.
STOPSIGNAL SIGTERM
CMD ["ingest", "run"]
