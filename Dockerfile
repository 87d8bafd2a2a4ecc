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
RUN python -m venv /app/.venv && python -m venv /opt/build
ENV PATH="/app/.venv/bin:${PATH}"
WORKDIR /src
# Every package comes from a hash-pinned lock (scripts/lock writes them with
# `uv pip compile --universal --generate-hashes`), as wheels only: the same bytes on every
# build, and a changed or swapped file on the index fails the build instead of shipping.
# Optional extras: --build-arg EXTRAS=postgres for replicas sharing a PostgreSQL state
# (the extra that has a lock: requirements-postgres.lock).
ARG EXTRAS=""
COPY requirements.lock requirements-postgres.lock requirements-build.lock ./
# Dependencies first, from the lock alone, so editing the source reuses this layer.
RUN lock="requirements${EXTRAS:+-$EXTRAS}.lock" \
 && if [ ! -f "$lock" ]; then echo "no $lock: EXTRAS is empty or postgres" >&2; exit 1; fi \
 && pip install --require-hashes --only-binary=:all: --requirement "$lock" \
 && /opt/build/bin/pip install --require-hashes --only-binary=:all: \
      --requirement requirements-build.lock
COPY pyproject.toml README.md ./
COPY rules/demo.yaml ./rules/demo.yaml
COPY watchdog ./watchdog
# The project itself as a wheel built with the locked hatchling (no unpinned download),
# installed without dependencies (the lock has them); then byte-compile everything once.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && pip install --no-deps /tmp/dist/rollback_watchdog-*.whl \
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
