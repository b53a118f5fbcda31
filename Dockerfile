# sre-agent image: `docker build -t sre-agent:0.1.0 .`
# Runs as UID 10001 with a read-only root filesystem: the only writes go to /data (the
# SQLite database, a volume) and /tmp (an emptyDir in deploy/). Prompts ship inside the
# package (sre_agent/_prompts); mount your own and set SRE_AGENT_PROMPTS_DIR to override.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sre_agent ./sre_agent
COPY tools ./tools
COPY prompts ./prompts
# The same steps tests/integration/test_deploy.py runs in a clean virtualenv.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/*.whl

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SRE_AGENT_DATABASE_URL=sqlite:////data/sre-agent.db
RUN groupadd --system --gid 10001 sre-agent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin sre-agent \
    && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
CMD ["sre-agent", "serve", "--host", "0.0.0.0", "--port", "8080"]
