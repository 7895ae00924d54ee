"""The Helm chart (helm/guardline), linted and rendered offline by Helm's own Go SDK
(helm-python-sdk): which objects each values flag adds, and that what the chart renders
agrees with Guardline's code (settings, command line, endpoints, shutdown, dashboards,
alert rules)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from guardline import __version__
from guardline.cli import _parser
from guardline.server import make_server
from guardline.settings import load_settings
from guardline.workers import KILL_AFTER
from tests.conftest import need
from tests.servers import proxy, simulator

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "guardline"
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "alerts" / "guardline.rules.yml"
RELEASE = "gl"
NAMESPACE = "llm"
FULLNAME = "gl-guardline"
CONFIG_FILE = "/etc/guardline/guardline.yaml"
DATA = "/var/lib/guardline"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 15x faster on the dashboards

KAFKA = {
    "enabled": True,
    "bootstrapServers": ["kafka-0.kafka:9092", "kafka-1.kafka:9092"],
    "topic": "llm.samples",
    "securityProtocol": "SASL_SSL",
    "saslMechanism": "SCRAM-SHA-512",
    "saslUsername": "guardline",
    "saslPassword": {"secretName": "kafka-creds", "key": "password"},
}
OTLP = {"enabled": True, "endpoint": "http://otel-collector.observability:4318", "interval": 30}
RECEIVER = {"enabled": True, "token": {"secretName": "reeval-token", "key": "token"}}
# Every optional part on, each with its references filled in.
ALL_ON: dict[str, Any] = {
    "workers": 3,
    "config": {
        "log_level": "debug",
        "max_body_bytes": 67108864,
        "upstreams": {
            "openai": {
                "provider": "openai",
                "base_url": "https://api.openai.com/v1",
                "api_key_env": "OPENAI_API_KEY",
            },
            "anthropic": {
                "provider": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key_env": "ANTHROPIC_API_KEY",
            },
        },
        "policy": {"response": {"pii": {"mode": "guard", "action": "redact"}}},
        "samples": {"baseline_rate": 0.05},
        "telemetry": {"record_content": False, "label_cap": 100},
    },
    "kafka": KAFKA,
    "otlp": OTLP,
    "feedbackSecret": {"secretName": "guardline-feedback", "key": "hmac"},
    "secretEnv": [
        {"name": "OPENAI_API_KEY", "secretName": "llm-keys", "key": "openai"},
        {"name": "ANTHROPIC_API_KEY", "secretName": "llm-keys", "key": "anthropic"},
        {"name": "GUARDLINE_ACCESS_KEYS", "secretName": "guardline-clients", "key": "keys.json"},
    ],
    "existingSecret": "guardline-extra-env",
    "persistence": {"enabled": True},
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "dashboards": {"enabled": True},
    "reeval": {"worker": {"enabled": True}, "receiver": RECEIVER},
    "datasetsConsumer": {"enabled": True},
}
CORE = Counter({"Deployment": 1, "Service": 1, "ConfigMap": 1, "ServiceAccount": 1})
# Each optional part alone: the values that turn it on and the objects it adds.
OPTIONAL: dict[str, tuple[dict[str, Any], set[tuple[str, str]]]] = {
    "autoscaling": (
        {"autoscaling": {"enabled": True}},
        {("HorizontalPodAutoscaler", FULLNAME)},
    ),
    "podDisruptionBudget": (
        {"podDisruptionBudget": {"enabled": True}},
        {("PodDisruptionBudget", FULLNAME)},
    ),
    "serviceMonitor": ({"serviceMonitor": {"enabled": True}}, {("ServiceMonitor", FULLNAME)}),
    "prometheusRule": ({"prometheusRule": {"enabled": True}}, {("PrometheusRule", FULLNAME)}),
    "dashboards": ({"dashboards": {"enabled": True}}, {("ConfigMap", f"{FULLNAME}-dashboards")}),
    "persistence": (
        {"persistence": {"enabled": True}},
        {("PersistentVolumeClaim", f"{FULLNAME}-data")},
    ),
    "reeval.worker": (
        {"reeval": {"worker": {"enabled": True}}, "kafka": KAFKA},
        {("Deployment", f"{FULLNAME}-reeval-worker")},
    ),
    "reeval.receiver": (
        {"reeval": {"receiver": RECEIVER}},
        {("Deployment", f"{FULLNAME}-reeval-receiver"), ("Service", f"{FULLNAME}-reeval-receiver")},
    ),
    "datasetsConsumer": (
        {"kafka": KAFKA, "datasetsConsumer": {"enabled": True}},
        {
            ("Deployment", f"{FULLNAME}-datasets-consumer"),
            ("PersistentVolumeClaim", f"{FULLNAME}-datasets-consumer"),
        },
    ),
}
STANDARD_LABELS = {
    "app.kubernetes.io/name": "guardline",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/version": __version__,
    "app.kubernetes.io/part-of": "guardline",
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": "guardline-0.1.0",
}


def sdk() -> ModuleType:
    """helm_python, imported on first use: loading it starts Go runtime threads, and a
    process that forks after that must never call it in the child."""
    need(
        importlib.util.find_spec("helm_python") is not None,
        "helm-python-sdk is not installed (make setup installs the dev extra)",
    )
    import helm_python

    return helm_python


def render_raw(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> dict[str, str]:
    """{template path: rendered text}, like ``helm template NAME helm/guardline``."""
    with sdk().Chart.load(CHART) as chart:
        out: dict[str, str] = chart.render(values, name=name, namespace=NAMESPACE)
    return out


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects (NOTES.txt and templates that rendered empty left out)."""
    objects = []
    for path, text in sorted(render_raw(values, name=name).items()):
        if not path.endswith("NOTES.txt"):
            objects.extend(doc for doc in yaml.load_all(text, Loader=LOADER) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    return render_raw(values)["guardline/templates/NOTES.txt"]


def get(objects: list[dict[str, Any]], kind: str, name: str = FULLNAME) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def deployments(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "Deployment"]


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values layered like ``-f a.yaml -f b.yaml``: dicts merge, the rest is replaced."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def env_refs(c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{env var: (Secret name, key)} of a container."""
    refs = {}
    for entry in c.get("env", []):
        assert set(entry) == {"name", "valueFrom"}, f"{entry['name']} is not a Secret reference"
        ref = entry["valueFrom"]["secretKeyRef"]
        refs[entry["name"]] = (ref["name"], ref["key"])
    return refs


def settings_of(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The rendered settings ConfigMap loaded by Guardline itself (its real validation)."""
    for name in (
        "GUARDLINE_SAMPLES__JSONL__DIRECTORY",
        "GUARDLINE_SAMPLES__KAFKA__SPOOL_DIRECTORY",
    ):
        monkeypatch.delenv(name)  # conftest points them at a temporary directory
    path = tmp_path / "guardline.yaml"
    path.write_text(get(objects, "ConfigMap")["data"]["guardline.yaml"])
    return load_settings(path)


def test_chart_app_version_is_guardlines_version() -> None:
    """Chart.yaml's appVersion is guardline.__version__, and the default image tag is it."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (meta["apiVersion"], meta["name"], meta["appVersion"]) == (
        "v2",
        "guardline",
        __version__,
    )
    assert container(get(render(), "Deployment"))["image"] == f"guardline:{__version__}"


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_lint_strict_passes(values: dict[str, Any] | None) -> None:
    """`helm lint --strict` finds nothing wrong (warnings count) with defaults and with
    every optional part on."""
    report = sdk().lint(CHART, values, strict=True)
    assert report["errors"] == [], report
    assert report["total_charts_linted"] == 1


def test_lint_passes_on_the_oldest_supported_kubernetes() -> None:
    """Chart.yaml's kubeVersion floor, 1.25, lints cleanly with everything on (its preStop
    takes the pre-1.30 branch)."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["kubeVersion"] == ">=1.25.0-0"
    report = sdk().lint(CHART, ALL_ON, strict=True, kube_version="v1.25.0")
    assert report["errors"] == [], report
    assert report["total_charts_linted"] == 1


def test_default_render_has_only_the_core_objects() -> None:
    """Defaults: a Deployment, its Service, the settings ConfigMap and a ServiceAccount;
    no optional object."""
    objects = render()
    assert Counter(o["kind"] for o in objects) == CORE
    assert {o["metadata"]["name"] for o in objects} == {FULLNAME}


@pytest.mark.parametrize("part", list(OPTIONAL))
def test_each_optional_part_adds_its_objects(part: str) -> None:
    """One values flag turns on one optional part and adds exactly its objects."""
    values, added = OPTIONAL[part]
    before = {(o["kind"], o["metadata"]["name"]) for o in render()}
    after = {(o["kind"], o["metadata"]["name"]) for o in render(values)}
    assert after - before == added
    assert before <= after


def test_all_on_renders_every_optional_object() -> None:
    """ALL_ON renders the core plus every optional part's objects, each once."""
    objects = render(ALL_ON)
    seen = Counter((o["kind"], o["metadata"]["name"]) for o in objects)
    expected = {(o["kind"], o["metadata"]["name"]) for o in render()}
    for _, added in OPTIONAL.values():
        expected |= added
    # serviceMonitor and reeval.receiver together: the receiver's metrics are scraped too
    expected.add(("ServiceMonitor", f"{FULLNAME}-reeval-receiver"))
    assert set(seen) == expected
    assert set(seen.values()) == {1}
    monitor = get(objects, "ServiceMonitor", f"{FULLNAME}-reeval-receiver")
    receiver = get(objects, "Service", f"{FULLNAME}-reeval-receiver")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= receiver["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == receiver["spec"]["ports"][0]["name"]


def test_service_account_is_optional() -> None:
    """serviceAccount.create=false: no ServiceAccount; pods use the one named, or default."""
    objects = render({"serviceAccount": {"create": False}})
    assert "ServiceAccount" not in {o["kind"] for o in objects}
    assert get(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    objects = render({"serviceAccount": {"create": False, "name": "llm-proxy"}})
    assert (
        get(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "llm-proxy"
    )


def test_probes_use_guardlines_health_endpoints_on_the_named_port() -> None:
    """Startup and readiness probe /readyz, liveness /healthz, on the container port named
    http, which is the port `serve` is told to listen on."""
    c = container(get(render({"containerPort": 9001}), "Deployment"))
    assert c["ports"] == [{"name": "http", "containerPort": 9001, "protocol": "TCP"}]
    assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert _parser().parse_args(c["args"]).port == 9001


@pytest.mark.e2e
def test_probe_and_scrape_paths_answer_on_a_running_guardline() -> None:
    """The paths the chart probes and scrapes exist: Guardline started from the rendered
    settings answers 200 on /readyz, /healthz and /metrics."""
    text = get(render(), "ConfigMap")["data"]["guardline.yaml"]
    settings = yaml.safe_load(text)
    objects = render({"serviceMonitor": {"enabled": True}})
    c = container(get(objects, "Deployment"))
    paths = [c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    paths.append(get(objects, "ServiceMonitor")["spec"]["endpoints"][0]["path"])
    with simulator() as sim:
        upstreams = {p: {"provider": p, "base_url": sim.url} for p in ("openai", "anthropic")}
        # The data directories stay where conftest's environment puts them.
        del settings["samples"]
        with proxy(load_settings(overrides={**settings, "upstreams": upstreams})) as gw:
            assert {p: httpx.get(gw.url + p).status_code for p in paths} == dict.fromkeys(
                paths, 200
            )


def test_pods_run_non_root_on_a_read_only_root_filesystem() -> None:
    """Every Guardline pod: non-root uid/gid 10001, RuntimeDefault seccomp, no service
    account token, a read-only root filesystem, no privilege escalation, no capabilities."""
    for deployment in deployments(render(ALL_ON)):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        sc = container(deployment)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["runAsNonRoot"] is True
        assert sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_every_path_guardline_writes_is_on_a_writable_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the root filesystem read-only, the sample datasets, the Kafka spool and the
    temporary directory (`serve --workers N` keeps metric snapshots there) are mounts;
    the settings file is a read-only mount."""
    objects = render(ALL_ON)
    settings = settings_of(objects, tmp_path, monkeypatch)
    for deployment in deployments(objects):
        c = container(deployment)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        writable = [Path(p) for p, m in mounts.items() if not m.get("readOnly")]
        for path in (
            settings.samples.jsonl.directory,
            settings.samples.kafka.spool_directory,
            Path("/tmp/guardline-metrics-x"),
        ):
            assert any(path.is_relative_to(w) for w in writable), (
                deployment["metadata"]["name"],
                path,
            )
        assert mounts["/etc/guardline"]["readOnly"] is True
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert {m["name"] for m in c["volumeMounts"]} == set(volumes)
        assert volumes["config"]["configMap"]["name"] == FULLNAME


def test_persistence_puts_the_data_directory_on_a_claim() -> None:
    """persistence off: an emptyDir with a size limit; on: the chart's claim (or an
    existing one), and Recreate so a ReadWriteOnce volume is never needed by two pods."""

    def data_volume(values: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
        deployment = get(render(values), "Deployment")
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        return next(v for v in volumes if v["name"] == "data"), deployment["spec"].get("strategy")

    assert data_volume(None) == ({"name": "data", "emptyDir": {"sizeLimit": "2Gi"}}, None)
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": f"{FULLNAME}-data"}}
    assert data_volume({"persistence": {"enabled": True}}) == (claim, {"type": "Recreate"})
    mine = {"persistence": {"enabled": True, "existingClaim": "mine"}}
    assert data_volume(mine)[0]["persistentVolumeClaim"] == {"claimName": "mine"}
    assert "PersistentVolumeClaim" not in {o["kind"] for o in render(mine)}


def test_containers_have_resources() -> None:
    """Every container requests CPU and memory and has a memory limit."""
    for deployment in deployments(render(ALL_ON)):
        resources = container(deployment)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), deployment["metadata"]["name"]
        assert "memory" in resources["limits"]


def test_grace_period_outlasts_guardlines_own_shutdown() -> None:
    """Kubernetes waits terminationGracePeriodSeconds from the preStop pause to SIGKILL:
    it exceeds the pause plus Guardline's shutdown (uvicorn's graceful timeout, and the
    supervisor's KILL_AFTER for --workers), and the chart refuses a value that does not."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError

    shutdown = max(KILL_AFTER, make_server(app).config.timeout_graceful_shutdown or 0)
    for deployment in deployments(render(ALL_ON)):
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        pause = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert pod["terminationGracePeriodSeconds"] > pause + shutdown
    lifecycle = container(get(render(), "Deployment"))["lifecycle"]
    assert lifecycle == {"preStop": {"sleep": {"seconds": 10}}}
    edge = int(lifecycle["preStop"]["sleep"]["seconds"] + shutdown)
    render({"terminationGracePeriodSeconds": edge + 1})
    with pytest.raises(sdk().HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"terminationGracePeriodSeconds": edge})


def test_pre_stop_falls_back_to_exec_sleep_before_kubernetes_1_30() -> None:
    """The built-in sleep action needs Kubernetes 1.30; older clusters get `sleep` in the
    container. (The SDK's public render has no kube version: its C ABI does.)"""
    helm = sdk()
    with helm.Chart.load(CHART) as chart:
        options = {"name": RELEASE, "namespace": NAMESPACE, "kube_version": "v1.29.0"}
        raw = helm._native.call_string("helm_render", chart._raw(), "{}", json.dumps(options))
    text = json.loads(raw)["guardline/templates/deployment.yaml"]
    c = container(yaml.safe_load(text))
    assert c["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}


def test_every_object_carries_the_standard_labels() -> None:
    """Every object and pod template has the app.kubernetes.io labels and helm.sh/chart;
    every selector is part of its pods' labels and selects one component only."""
    objects = render(ALL_ON)
    for o in objects:
        labels = o["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), o["metadata"]["name"]
        assert labels["app.kubernetes.io/component"]
    components = set()
    for deployment in deployments(objects):
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= pod_labels.items()
        assert selector.items() <= pod_labels.items()
        assert set(selector) == {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }  # nothing that changes on upgrade (version, chart)
        components.add(selector["app.kubernetes.io/component"])
    assert len(components) == len(deployments(objects))


def test_names_fit_kubernetes_limits_for_a_long_release_name() -> None:
    """Names and label values stay within 63 characters whatever the release is called."""
    objects = render(ALL_ON, name="a-release-name-that-is-quite-long-for-a-cluster-abc")
    for o in objects:
        assert len(o["metadata"]["name"]) <= 63
        assert all(len(v) <= 63 for v in o["metadata"]["labels"].values())
    assert len({(o["kind"], o["metadata"]["name"]) for o in objects}) == len(objects)


def test_services_target_the_named_port_of_their_pods() -> None:
    """Each Service selects its Deployment's pods and targets the container port named
    http; the PodDisruptionBudget and ServiceMonitor select the proxy."""
    objects = render(ALL_ON)
    for name in (FULLNAME, f"{FULLNAME}-reeval-receiver"):
        service = get(objects, "Service", name)
        deployment = get(objects, "Deployment", name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
        assert [p["name"] for p in container(deployment)["ports"]] == ["http"]
    proxy_selector = get(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert get(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == proxy_selector
    monitor = get(objects, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= get(objects, "Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_rendered_settings_load_in_guardline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings ConfigMap passes Guardline's own validation and holds the data
    directories on the volume, the kafka.* and otlp.* values, and `config` merged in."""
    settings = settings_of(render(ALL_ON), tmp_path, monkeypatch)
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.samples.jsonl.directory == Path(f"{DATA}/samples")
    kafka = settings.samples.kafka
    assert kafka.spool_directory == Path(f"{DATA}/spool")
    assert kafka.bootstrap_servers == tuple(KAFKA["bootstrapServers"])
    assert (kafka.topic, kafka.security_protocol) == ("llm.samples", "SASL_SSL")
    assert (kafka.sasl_mechanism, kafka.sasl_username) == ("SCRAM-SHA-512", "guardline")
    assert kafka.sasl_password_env == "GUARDLINE_KAFKA_SASL_PASSWORD"
    assert settings.telemetry.otlp_endpoint == OTLP["endpoint"]
    assert settings.telemetry.otlp_interval == 30
    # `config` merges into the chart's own sections, which keep their keys.
    assert settings.telemetry.label_cap == 100
    assert settings.samples.baseline_rate == 0.05
    assert (settings.log_level, settings.max_body_bytes) == ("debug", 67108864)
    assert settings.policy.response["pii"].mode == "guard"
    assert settings.upstreams["openai"].api_key_env == "OPENAI_API_KEY"


def test_default_settings_load_in_guardline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With defaults the settings hold no Kafka and no OTLP push, and data on the volume."""
    settings = settings_of(render(), tmp_path, monkeypatch)
    assert settings.samples.kafka.bootstrap_servers == ()
    assert settings.telemetry.otlp_endpoint is None
    assert settings.samples.jsonl.directory == Path(f"{DATA}/samples")


def test_config_cannot_move_the_listening_address_away_from_the_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """host and port in `config` are overridden: the probes and Service use containerPort."""
    values = {"containerPort": 8081, "config": {"host": "127.0.0.1", "port": 9999}}
    settings = settings_of(render(values), tmp_path, monkeypatch)
    assert (settings.host, settings.port) == ("0.0.0.0", 8081)


def test_commands_parse_with_guardlines_cli() -> None:
    """The proxy's and the dataset consumer's arguments parse with `guardline`'s own
    parser: serve on all addresses at containerPort with the mounted settings file and
    N workers; consume into the data volume."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["guardline"] == "guardline.cli:main"
    objects = render(merged(ALL_ON, {"containerPort": 8181}))
    c = container(get(objects, "Deployment"))
    assert c["command"] == ["guardline"]
    args = _parser().parse_args(c["args"])
    assert (args.command, args.host, args.port, args.workers) == ("serve", "0.0.0.0", 8181, 3)
    assert args.config == CONFIG_FILE
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert Path(mount["mountPath"]) / "guardline.yaml" == Path(CONFIG_FILE)
    consumer = container(get(objects, "Deployment", f"{FULLNAME}-datasets-consumer"))
    args = _parser().parse_args(consumer["args"])
    assert (args.command, args.action, args.config) == ("datasets", "consume", CONFIG_FILE)
    assert (args.out, args.group) == (f"{DATA}/samples", "guardline-datasets")
    worker = container(get(objects, "Deployment", f"{FULLNAME}-reeval-worker"))
    args = _parser().parse_args(worker["args"])
    assert (args.command, args.action, args.config) == ("reeval", "worker", CONFIG_FILE)
    receiver = container(get(objects, "Deployment", f"{FULLNAME}-reeval-receiver"))
    args = _parser().parse_args(receiver["args"])
    assert (args.command, args.action, args.host) == ("reeval", "receiver", "0.0.0.0")
    assert args.port == receiver["ports"][0]["containerPort"]


def test_secrets_are_secret_key_refs_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secret references become env secretKeyRef entries in every container; the chart
    renders no Secret; every environment variable the settings name for a secret is set."""
    objects = render(ALL_ON)
    assert "Secret" not in {o["kind"] for o in objects}
    settings = settings_of(objects, tmp_path, monkeypatch)
    named = {u.api_key_env for u in settings.upstreams.values()} | {
        settings.samples.kafka.sasl_password_env,
        settings.feedback.secret_env,
    }
    expected = {
        "GUARDLINE_FEEDBACK_SECRET": ("guardline-feedback", "hmac"),
        "GUARDLINE_KAFKA_SASL_PASSWORD": ("kafka-creds", "password"),
        "OPENAI_API_KEY": ("llm-keys", "openai"),
        "ANTHROPIC_API_KEY": ("llm-keys", "anthropic"),
        "GUARDLINE_ACCESS_KEYS": ("guardline-clients", "keys.json"),
    }
    for deployment in deployments(objects):
        c = container(deployment)
        refs = env_refs(c)
        assert expected.items() <= refs.items()
        assert named <= set(refs)
        assert c["envFrom"] == [{"secretRef": {"name": "guardline-extra-env"}}]
    receiver = container(get(objects, "Deployment", f"{FULLNAME}-reeval-receiver"))
    assert env_refs(receiver)["GUARDLINE_REEVAL_TOKEN"] == ("reeval-token", "token")


SENTINEL = "sk-not-a-real-key-0123456789"


@pytest.mark.parametrize(
    "values",
    [
        {"secretEnv": [{"name": "OPENAI_API_KEY", "value": SENTINEL}]},
        {"secretEnv": [{"name": "X", "secretName": "s", "key": "k", "value": SENTINEL}]},
        {"kafka": {"saslPassword": SENTINEL}},
        {"feedbackSecret": {"value": SENTINEL}},
        {"reeval": {"receiver": {"token": SENTINEL}}},
        {"config": {"access_keys": [SENTINEL]}},
    ],
    ids=["env-value", "ref-with-value", "sasl", "feedback", "receiver-token", "access-keys"],
)
def test_values_have_no_place_for_a_secret_itself(values: dict[str, Any]) -> None:
    """A secret given as a plain value anywhere is refused by the schema before anything
    renders, so key material never reaches a manifest or the release record."""
    helm = sdk()
    with pytest.raises(helm.HelmValuesError):
        render(values)
    assert helm.lint(CHART, values, strict=True)["errors"]


def test_schema_declares_secrets_only_as_references() -> None:
    """Every secret-like key in values.schema.json is a {secretName, key} reference (or a
    Secret's name), never a string that could hold the secret."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    secretish = re.compile(r"(?i)password|secret|token|credential|api_?key")
    ref = {"secretName", "key"}
    found = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            here = f"{path}.{key}".lstrip(".")
            if secretish.search(key):
                found.append(here)
                if key == "existingSecret":
                    assert sub["type"] == "string"  # a Secret's name
                elif sub.get("type") == "array":  # {name, secretName, key}, or Secret names
                    assert set(sub["items"]["properties"]) in ({"name"}, ref | {"name"}), here
                    assert sub["items"]["additionalProperties"] is False
                else:
                    assert set(sub["properties"]) == ref, here
                    assert sub["additionalProperties"] is False
            else:
                walk(sub, here)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path)

    walk(schema, "")
    assert set(found) == {
        "kafka.saslPassword",
        "feedbackSecret",
        "secretEnv",
        "existingSecret",
        "reeval.receiver.token",
        "imagePullSecrets",
    }


def test_prometheus_rule_is_the_committed_rules_file() -> None:
    """The PrometheusRule's groups are dashboards/alerts/guardline.rules.yml's, unchanged."""
    rule = get(
        render({"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}),
        "PrometheusRule",
    )
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert rule["metadata"]["labels"]["release"] == "kps"


def test_dashboards_configmap_holds_the_committed_dashboards() -> None:
    """The dashboards ConfigMap carries the Grafana sidecar label and folder annotation,
    and every committed dashboards/*.json byte for byte (through the chart's symlink)."""
    assert (CHART / "files" / "dashboards").resolve() == DASHBOARDS.resolve()
    objects = render({"dashboards": {"enabled": True}})
    cm = get(objects, "ConfigMap", f"{FULLNAME}-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "Guardline"}
    committed = {p.name: p.read_bytes() for p in sorted(DASHBOARDS.glob("*.json"))}
    assert len(committed) >= 2
    assert {k: v.encode() for k, v in cm["data"].items()} == committed
    size = sum(len(v) for v in committed.values())
    assert size < 1024 * 1024 * 0.9, "a ConfigMap holds at most 1 MiB"


def test_dashboards_label_and_folder_are_configurable() -> None:
    """The sidecar's label key and value and the folder annotation follow the values."""
    values = {
        "dashboards": {
            "enabled": True,
            "label": "grafana_dashboards",
            "labelValue": "guardline",
            "folderAnnotation": "grafana_folder",
            "folder": "LLM",
        }
    }
    cm = get(render(values), "ConfigMap", f"{FULLNAME}-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboards"] == "guardline"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "LLM"}


def test_autoscaling_leaves_the_replica_count_to_the_hpa() -> None:
    """HPA on: the Deployment has no replicas (an upgrade would reset the HPA's count);
    the HPA scales that Deployment. Off: replicas is replicaCount."""
    objects = render({"autoscaling": {"enabled": True, "minReplicas": 3}, "replicaCount": 5})
    assert "replicas" not in get(objects, "Deployment")["spec"]
    hpa = get(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert get(render({"replicaCount": 5}), "Deployment")["spec"]["replicas"] == 5


def test_pod_disruption_budget_takes_min_available_or_max_unavailable() -> None:
    """PodDisruptionBudget policy/v1: maxUnavailable 1 by default, minAvailable when set."""
    pdb = get(render({"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    values = {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}
    spec = get(render(values), "PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == "50%"
    assert "maxUnavailable" not in spec


def test_config_change_rolls_the_pods() -> None:
    """A settings change changes every pod template's checksum annotation (a rollout);
    the same settings give the same checksum."""

    def checksums(values: dict[str, Any]) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in deployments(render(values))
        }

    before = checksums(ALL_ON)
    assert len(before) == 1
    assert checksums(copy.deepcopy(ALL_ON)) == before
    assert checksums(merged(ALL_ON, {"config": {"log_level": "warning"}})) != before


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicas": 2}, "replicas"),
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"autoscaling": {"enable": True}}, "enable"),
        ({"workers": 0}, "/workers"),
        ({"kafka": {"bootstrapServers": ["kafka"]}}, "/kafka/bootstrapServers/0"),
        (
            {"secretEnv": [{"name": "not a name", "secretName": "s", "key": "k"}]},
            "/secretEnv/0/name",
        ),
    ],
    ids=[
        "typo-top-level",
        "wrong-type",
        "enum",
        "typo-nested",
        "minimum",
        "broker-format",
        "env-name",
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], where: str) -> None:
    """values.schema.json stops a typo'd key, a wrong type, an unknown enum value or an
    out-of-range number before anything renders, naming the place."""
    helm = sdk()
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka": {"enabled": True}}, "kafka.bootstrapServers"),
        ({"otlp": {"enabled": True}}, "otlp.endpoint"),
        ({"reeval": {"receiver": {"enabled": True}}}, "reeval.receiver.token"),
        ({"datasetsConsumer": {"enabled": True}}, "datasetsConsumer"),
        ({"feedbackSecret": {"secretName": "s"}}, "feedbackSecret.key"),
    ],
    ids=[
        "kafka-no-brokers",
        "otlp-no-endpoint",
        "receiver-no-token",
        "consumer-no-kafka",
        "ref-no-key",
    ],
)
def test_incomplete_values_stop_the_render_with_a_message(
    values: dict[str, Any], message: str
) -> None:
    """A part switched on without what it needs fails with a message naming the value."""
    with pytest.raises(sdk().HelmRenderError, match=re.escape(message)):
        render(values)


def test_consumer_may_take_kafka_from_config() -> None:
    """The dataset consumer also runs when the brokers come from `config` instead of kafka.*."""
    values = {
        "config": {"samples": {"kafka": {"bootstrap_servers": ["kafka:9092"]}}},
        "datasetsConsumer": {"enabled": True},
    }
    assert get(render(values), "Deployment", f"{FULLNAME}-datasets-consumer")


def test_optional_workloads_share_the_proxys_config_secrets_and_security() -> None:
    """The re-evaluation worker and receiver and the dataset consumer run the same image
    with the same settings mount, Secret references, volumes (bar the data source) and
    security contexts as the proxy; the receiver has its Service on port 8090."""
    objects = render(ALL_ON)
    base = get(objects, "Deployment")
    base_pod, base_c = base["spec"]["template"]["spec"], container(base)

    def same(name: str) -> dict[str, Any]:
        deployment = get(objects, "Deployment", name)
        pod, c = deployment["spec"]["template"]["spec"], container(deployment)
        for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken"):
            assert pod[key] == base_pod[key], (name, key)
        for key in ("image", "securityContext", "volumeMounts", "envFrom"):
            assert c[key] == base_c[key], (name, key)
        assert env_refs(base_c).items() <= env_refs(c).items()
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"] == {"name": "config", "configMap": {"name": FULLNAME}}
        assert c["args"][2:4] == ["--config", CONFIG_FILE]
        return c

    worker = same(f"{FULLNAME}-reeval-worker")
    assert worker["args"][:2] == ["reeval", "worker"]
    assert "ports" not in worker
    receiver = same(f"{FULLNAME}-reeval-receiver")
    assert receiver["args"][:2] == ["reeval", "receiver"]
    assert receiver["args"][4:] == ["--host", "0.0.0.0", "--port", "8090"]
    assert receiver["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = get(objects, "Service", f"{FULLNAME}-reeval-receiver")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8090, "targetPort": "http", "protocol": "TCP"}
    ]
    consumer = get(objects, "Deployment", f"{FULLNAME}-datasets-consumer")
    same(consumer["metadata"]["name"])
    assert consumer["spec"]["replicas"] == 1
    assert consumer["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in consumer["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {
        "claimName": f"{FULLNAME}-datasets-consumer"
    }


def test_worker_args_are_configurable() -> None:
    """extraArgs are appended to the re-evaluation worker's command."""
    values = {
        "reeval": {"worker": {"enabled": True, "extraArgs": ["--log-level", "debug"]}},
        "kafka": KAFKA,
    }
    c = container(get(render(values), "Deployment", f"{FULLNAME}-reeval-worker"))
    assert c["args"] == ["reeval", "worker", "--config", CONFIG_FILE, "--log-level", "debug"]


def test_the_worker_needs_kafka_and_makes_the_queue_kafka(tmp_path: Path) -> None:
    """Jobs reach workers only through Kafka: a worker without it stops the render; with
    it, the settings say queue kafka, so the receiver publishes instead of running."""
    with pytest.raises(sdk().HelmRenderError, match=r"reeval\.worker needs kafka\.enabled"):
        render({"reeval": {"worker": {"enabled": True}}})
    objects = render({"reeval": {"worker": {"enabled": True}}, "kafka": KAFKA})
    settings_file = tmp_path / "guardline.yaml"
    settings_file.write_text(get(objects, "ConfigMap")["data"]["guardline.yaml"])
    settings = load_settings(settings_file)
    assert settings.reeval.queue == "kafka"
    assert settings.reeval.directory == Path(DATA) / "reeval"


def test_notes_say_how_to_reach_guardline_and_what_is_on() -> None:
    """NOTES.txt gives the SDK base URLs, health and metrics, and which parts are on; with
    the receiver on, an Alertmanager receiver snippet pointing at its webhook."""
    default = notes()
    url = f"http://{FULLNAME}.{NAMESPACE}.svc:8080"
    assert f'OpenAI(base_url="{url}/v1")' in default
    assert f'Anthropic(base_url="{url}")' in default
    assert f"{url}/metrics" in default
    assert "/healthz" in default
    assert re.search(r"prometheusRule \(alerts\)\s+off", default)
    assert "Alertmanager" not in default
    text = notes(ALL_ON)
    assert re.search(r"prometheusRule \(alerts\)\s+on", text)
    snippet = yaml.safe_load(text.split("mount it into Alertmanager):\n", 1)[1].split("\n\n")[0])
    hook = snippet["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == f"http://{FULLNAME}-reeval-receiver.{NAMESPACE}.svc:8090/v1/reeval/alerts"
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert hook["http_config"]["authorization"]["credentials_file"].endswith("/reeval-token/token")


def test_notes_warn_about_replicas_without_a_shared_feedback_secret() -> None:
    """Several replicas without feedbackSecret: NOTES.txt says feedback will not reach them."""
    assert "feedbackSecret" in notes({"replicaCount": 2})
    assert "feedbackSecret" not in notes(
        {"replicaCount": 2, "feedbackSecret": {"secretName": "f", "key": "k"}}
    )


def test_image_digest_wins_over_tag() -> None:
    """image.digest pins the image by digest; image.tag overrides appVersion."""
    digest = "sha256:" + "ab" * 32
    values = {
        "image": {"repository": "registry.example/guardline", "tag": "9.9.9", "digest": digest}
    }
    assert (
        container(get(render(values), "Deployment"))["image"]
        == f"registry.example/guardline@{digest}"
    )
    values["image"]["digest"] = ""
    assert (
        container(get(render(values), "Deployment"))["image"] == "registry.example/guardline:9.9.9"
    )


def test_readme_example_values_lint_render_and_load(tmp_path: Path) -> None:
    """The README's `my-values.yaml` is a working example: it passes the schema and strict
    lint, turns on what it says, and its settings load in Guardline."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n# my-values\.yaml\n(.*?)```", readme, re.S)
    assert block, "README has no my-values.yaml example"
    values = yaml.safe_load(block.group(1))
    report = sdk().lint(CHART, values, strict=True)
    assert report["errors"] == [], report
    objects = render(values)
    kinds = Counter(o["kind"] for o in objects)
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"):
        assert kinds[kind] == 1, kind
    assert kinds["PrometheusRule"] == kinds["Deployment"] - 1 == 1  # + the datasets consumer
    settings_file = tmp_path / "guardline.yaml"
    settings_file.write_text(get(objects, "ConfigMap")["data"]["guardline.yaml"])
    settings = load_settings(settings_file)
    assert list(settings.samples.kafka.bootstrap_servers) == values["kafka"]["bootstrapServers"]
    assert settings.upstreams["openai"].api_key_env == "OPENAI_API_KEY"
