# The service image: `ingest run` by default (embedded Redis + SQLite under /data).
# In compose the same image runs the daemon and the workers against a real Redis.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INGEST_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ./ingest
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 ingest \
    && mkdir -p /data && chown ingest /data

USER ingest
VOLUME ["/data"]
# The HTTP API (docs/api.md) listens on 127.0.0.1:8080 unless INGEST_LISTEN says
# otherwise; to publish it, set INGEST_LISTEN=0.0.0.0:8080 and INGEST_API_TOKEN.
EXPOSE 8080
# SIGTERM lets running jobs finish and stops the embedded Redis cleanly.
STOPSIGNAL SIGTERM
CMD ["ingest", "run"]
