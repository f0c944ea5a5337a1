# Space Ops: the bot in HTTP mode on $PORT (default 3000). Build: docker build -t space-ops .
# Other modes use the same image: `python -m bot worker` (the alert poller alone), `python -m bot socket`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini is PID 1: it hands SIGTERM to the bot (a Python PID 1 would ignore it) and reaps children.
# DL3008 (pin apt versions) is ignored: the base image's Debian release is the pin, and Debian drops a
# package's old version from its mirror when it publishes a fix, so a pinned `tini=<version>` breaks the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml ./
COPY bot ./bot
COPY handlers ./handlers
# The project and its runtime dependencies only: no test extra.
RUN pip install . && rm -rf build ./*.egg-info

RUN useradd --create-home --uid 10001 spaceops
# By uid: a host or Kubernetes (runAsNonRoot) can check a number, not a name only the image knows.
USER 10001

ENV PORT=3000
EXPOSE 3000
# GET /livez (the process and Redis): a Hub outage or a spent rate budget never marks it unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "bot.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
# Exec form; `exec` makes the bot the shell's replacement, so tini's SIGTERM reaches it directly.
CMD ["sh", "-c", "exec python -m bot serve --host 0.0.0.0 --port ${PORT:-3000}"]
