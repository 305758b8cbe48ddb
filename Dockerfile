# syntax=docker/dockerfile:1
# The tierwise gateway for a multi-replica deployment: the wheel is built in one stage
# and installed with the `postgres` and `otel` extras into a virtualenv, which the slim
# runtime stage copies and runs as an unprivileged user. Mount a config at
# /etc/tierwise/gateway.yaml (see deploy/gateway.yaml) and pass its env: secrets.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of tierwise and of every dependency, then an install from those alone, so the
# virtualenv holds exactly the tierwise built here.
RUN python -m pip wheel --wheel-dir /dist ".[postgres,otel]" \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /dist "tierwise[postgres,otel]"

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" tierwise \
    && useradd --system --uid "${UID}" --gid tierwise --create-home \
       --home-dir /home/tierwise --shell /usr/sbin/nologin tierwise
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TIERWISE_CONFIG=/etc/tierwise/gateway.yaml \
    TIERWISE_HOME=/home/tierwise/.cache/tierwise \
    TIERWISE_HEALTH_URL=http://127.0.0.1:8080/ready
USER 10001:10001
WORKDIR /home/tierwise
EXPOSE 8080
# `tierwise serve` is PID 1 (exec form): on SIGTERM it stops accepting connections,
# lets the requests in flight finish, flushes the request log and exits.
STOPSIGNAL SIGTERM
# Python's standard library only: the image needs no curl. /ready answers 503 until the
# gateway can serve; any non-2xx answer or connection error makes the probe fail.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['TIERWISE_HEALTH_URL'], timeout=3)"]
ENTRYPOINT ["tierwise"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
