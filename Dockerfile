# deposit-sentinel worker image. Checked by hadolint in `make test`; no Docker engine runs
# on the build machines, so the image itself is built by CI/CD elsewhere.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SENTINEL_METRICS_HOST=0.0.0.0 \
    SENTINEL_RULES=/app/rules \
    SENTINEL_DATA_DIR=/tmp/sentinel

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sentinel
COPY rules ./rules

USER 10001
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2)"]
ENTRYPOINT ["sentinel"]
CMD ["worker"]
