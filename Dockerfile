# syntax=docker/dockerfile:1
# rollback-watchdog: build a venv in one stage, run it from a slim one as a non-root user.
#   docker build -t rollback-watchdog .
#   docker run --rm -v "$PWD/rules:/etc/rollback-watchdog/rules:ro" \
#     -v rollback-watchdog-state:/var/lib/rollback-watchdog -p 9464:9464 rollback-watchdog
# Arguments after the image name go to `rollback-watchdog run` (e.g. --dry-run).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /app/.venv
ENV PATH="/app/.venv/bin:${PATH}"
WORKDIR /src
# Optional extras to install too, comma-separated: --build-arg EXTRAS=postgres for
# replicas sharing a PostgreSQL state.
ARG EXTRAS=""
# Dependencies first, from pyproject.toml alone, so editing the source reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" > /tmp/requirements.txt \
 && pip install --requirement /tmp/requirements.txt
COPY watchdog ./watchdog
# The project itself, not editable; then byte-compile everything once, at build time.
RUN pip install --no-deps . \
 && python -m compileall -q -f --invalidation-mode unchecked-hash /app/.venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rollback-watchdog" \
      org.opencontainers.image.description="Watches error rate, p95 latency and health; rolls back a bad Cloudflare deploy, verifies, escalates." \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app \
 && mkdir -p /etc/rollback-watchdog/rules /var/lib/rollback-watchdog \
 && chown 10001:10001 /var/lib/rollback-watchdog
COPY --from=builder /app/.venv /app/.venv
# Rules are not baked in: mount them (a ConfigMap, a bind mount) at WATCHDOG_RULES.
# State (SQLite store, incident journal, silences, post-mortem drafts) lives on the
# volume, so the image also runs with a read-only root filesystem.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WATCHDOG_RULES=/etc/rollback-watchdog/rules \
    WATCHDOG_STATE=/var/lib/rollback-watchdog/watchdog.db \
    WATCHDOG_POSTMORTEM_DIR=/var/lib/rollback-watchdog/postmortems \
    WATCHDOG_LISTEN=0.0.0.0:9464
VOLUME ["/var/lib/rollback-watchdog"]
WORKDIR /app
USER 10001:10001
EXPOSE 9464
# Liveness for Docker and compose (Kubernetes ignores HEALTHCHECK: deploy/kubernetes has
# its own probes). No curl in a slim image: the CLI probes /healthz, and finds the port
# from WATCHDOG_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["rollback-watchdog", "check", "healthy"]
# Exec form, so the daemon is PID 1 and gets SIGTERM itself. PID 1 has no default
# signal actions, which is fine here: watchdog/service.py installs its own SIGTERM and
# SIGINT (graceful stop within WATCHDOG_SHUTDOWN_TIMEOUT), SIGHUP (reload), SIGUSR1/2
# (silence) handlers, and the daemon starts no subprocesses, so no init (tini) is
# needed to reap zombies.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rollback-watchdog", "run"]
