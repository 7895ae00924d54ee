"""Settings: defaults < YAML < GUARDLINE_* env < overrides; bad config names key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardline.errors import ConfigError
from guardline.settings import load_settings, with_upstream


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guardline.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert {n: u.base_url for n, u in settings.upstreams.items()} == {
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
    }
    assert [(r.provider, r.upstream) for r in settings.resolved_routes()] == [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
    ]


def test_precedence_yaml_then_env_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _yaml(
        tmp_path,
        """
port: 7000
log_level: debug
max_body_bytes: 1234
upstreams:
  openai: {provider: openai, base_url: "http://yaml:1/v1"}
  anthropic: {provider: anthropic, base_url: "http://yaml:2"}
""",
    )
    monkeypatch.setenv("GUARDLINE_PORT", "7100")
    monkeypatch.setenv("GUARDLINE_UPSTREAMS__OPENAI__BASE_URL", "http://env:3/v1")
    settings = load_settings(path, {"log_level": "warning"})
    assert settings.port == 7100  # env beats YAML
    assert settings.log_level == "warning"  # overrides beat env and YAML
    assert settings.max_body_bytes == 1234  # YAML beats defaults
    assert settings.upstreams["openai"].base_url == "http://env:3/v1"  # nested env merges
    assert settings.upstreams["openai"].provider == "openai"  # ...into the YAML entry
    assert settings.upstreams["anthropic"].base_url == "http://yaml:2"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDLINE_CONFIG", str(_yaml(tmp_path, "port: 7200\n")))
    assert load_settings().port == 7200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: [1\n", r"line 2, column 1: invalid YAML \(expected ',' or ']'"),
        ("- a\n", r"top level must be a mapping"),
        ("prot: 9000\n", r"prot: unknown key"),
        ("port: lots\n", r"port: Input should be a valid integer"),
        ("port: 70000\n", r"port: Input should be less than or equal to 65535"),
        (
            "routes: [{provider: openai, upstream: nope}]\n",
            r"routes\[0\]\.upstream: unknown upstream 'nope'; define it under 'upstreams' or use one of: anthropic, openai",
        ),
        (
            "routes: [{provider: openai, upstream: anthropic}]\n",
            r"goes to upstream 'anthropic' which speaks anthropic",
        ),
        (
            "upstreams: {a: {provider: openai, base_url: 'http://a'}, b: {provider: openai, base_url: 'http://b'}}\n",
            r"several openai upstreams \(a, b\); add 'routes'",
        ),
        (
            "upstreams: {openai: {provider: openai, base_url: 'ftp://x'}}\n",
            r"upstreams\.openai\.base_url: 'ftp://x' is not an http\(s\) URL",
        ),
        (
            "upstreams: {openai: {provider: openai, base_url: 'https://user:pw@x'}}\n",
            r"must not carry credentials",
        ),
        (
            "upstreams: {openai: {provider: openai, base_url: 'https://x', api_key_env: 'sk-live-123'}}\n",
            r"is not an environment variable name \(did you paste the key\?\)",
        ),
        (
            "upstreams: {openai: {provider: openai, base_url: 'https://x', headers: {'X-A': \"v\\r\\nx: y\"}}}\n",
            r"line break",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_yaml(tmp_path, text))


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match=r"config file /nonexistent.yaml: No such file"):
        load_settings("/nonexistent.yaml")


def test_upstream_shortcut_sends_every_upstream_to_one_url(tmp_path: Path) -> None:
    path = _yaml(
        tmp_path,
        """
upstreams:
  openai: {provider: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
  anthropic: {provider: anthropic, base_url: "https://api.anthropic.com"}
access_keys: [k1]
""",
    )
    settings = with_upstream(load_settings(path), "http://127.0.0.1:9000")
    assert {u.base_url for u in settings.upstreams.values()} == {"http://127.0.0.1:9000"}
    assert settings.upstreams["openai"].api_key_env == "OPENAI_API_KEY"
    assert [k.get_secret_value() for k in settings.access_keys] == ["k1"]
    with pytest.raises(ConfigError, match=r"^--upstream: 'not a url' is not an http\(s\) URL"):
        with_upstream(settings, "not a url")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_upstream_shortcut_keeps_partial_rules_partial(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule naming only its mode keeps the detector's default action (pii: redact),
    also after --upstream rebuilds the settings."""
    from guardline.detectors.policy import PolicyBook

    monkeypatch.setenv("GUARDLINE_POLICY__RESPONSE__PII__MODE", "guard")
    for settings in (load_settings(), with_upstream(load_settings(), "http://127.0.0.1:9000")):
        rule = (
            PolicyBook(settings.policy, ["pii"])
            .resolve("openai", "/v1/x", None, None)
            .response["pii"]
        )
        assert (rule.mode, rule.action) == ("guard", "redact")


@pytest.mark.parametrize("server", ["http://kafka:9092", "kafka", "kafka:port", "a b:9092"])
def test_kafka_bootstrap_servers_must_be_host_and_port(server: str) -> None:
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        load_settings(overrides={"samples": {"kafka": {"bootstrap_servers": [server]}}})


def test_kafka_bootstrap_servers_take_names_addresses_and_ipv6() -> None:
    servers = ["kafka-0.kafka.svc:9092", "10.0.0.5:9093", "[::1]:9092"]
    settings = load_settings(overrides={"samples": {"kafka": {"bootstrap_servers": servers}}})
    assert settings.samples.kafka.bootstrap_servers == tuple(servers)
    assert settings.samples.kafka.enabled
