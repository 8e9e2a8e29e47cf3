"""The files users deploy from: the standalone Envoy config, the `make run` demo's
config, the two Istio WasmPlugins (a sidecar's and an ingress gateway's) and the
two TrafficExtensions (Istio 1.30's API) equivalent to them."""

import base64
import importlib.util
import json
import os
import re
import string
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.envoy import ENVOY_BIN, REPO_ROOT

ENVOY_LOCAL = REPO_ROOT / "envoy-local" / "envoy.yaml"
DEMO_YAML = REPO_ROOT / "envoy-local" / "demo.yaml"
DEMO_PY = REPO_ROOT / "envoy-local" / "demo.py"
WASM_PLUGIN = REPO_ROOT / "wasm-plugin.yaml"
WASM_PLUGIN_GATEWAY = REPO_ROOT / "wasm-plugin-gateway.yaml"
WASM_PLUGINS = [WASM_PLUGIN, WASM_PLUGIN_GATEWAY]
TRAFFIC_EXTENSION = REPO_ROOT / "traffic-extension.yaml"
TRAFFIC_EXTENSION_GATEWAY = REPO_ROOT / "traffic-extension-gateway.yaml"
TRAFFIC_EXTENSIONS = [TRAFFIC_EXTENSION, TRAFFIC_EXTENSION_GATEWAY]
# Every Istio resource that deploys the filter, with the WasmPlugin each
# TrafficExtension stands for.
ISTIO_EXTENSIONS = WASM_PLUGINS + TRAFFIC_EXTENSIONS
EQUIVALENT = {TRAFFIC_EXTENSION: WASM_PLUGIN, TRAFFIC_EXTENSION_GATEWAY: WASM_PLUGIN_GATEWAY}
SCHEMAS = {"WasmPlugin": "wasmplugin-schema.json", "TrafficExtension": "trafficextension-schema.json"}
SHARED_ISTIO = REPO_ROOT.parent / "shared" / "istio"

# Keys that put a secret in the plugin configuration itself.
INLINE_SECRET_KEYS = {"clientSecret", "cookieSecrets"}
# A base64 32-byte key, as cookie secrets are written.
BASE64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def validate_with_envoy(bootstrap: dict, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`envoy --mode validate` loads the module and runs its on_configure. `env`:
    variables set in Envoy's process environment; the variables any plugin config
    here names are removed from the inherited environment first, so a developer's
    shell cannot decide a test."""
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    named = {name for plugin in WASM_PLUGINS for name in istio_host_env_keys(load(plugin))}
    named |= set(envoy_host_env_keys(yaml.safe_load(ENVOY_LOCAL.read_text())))
    process_env = {k: v for k, v in os.environ.items() if k not in named} | (env or {})
    return subprocess.run(
        [str(ENVOY_BIN), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env,
    )


def wasm_config(bootstrap: dict) -> dict:
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "http_filters"
    ][0]["typed_config"]["config"]


def envoy_host_env_keys(bootstrap: dict) -> list[str]:
    return wasm_config(bootstrap)["vm_config"].get("environment_variables", {}).get("host_env_keys", [])


def envoy_local_with(
    wasm_path: Path,
    plugin_config: dict | None = None,
    host_env_keys: list[str] | None = None,
    key_values: dict | None = None,
) -> dict:
    """envoy-local/envoy.yaml with this module, and optionally another plugin
    configuration and another VM environment (`host_env_keys`, `key_values`)."""
    bootstrap = yaml.safe_load(ENVOY_LOCAL.read_text())
    wasm = wasm_config(bootstrap)
    wasm["vm_config"]["code"]["local"]["filename"] = str(wasm_path)
    if plugin_config is not None:
        wasm["configuration"]["value"] = json.dumps(plugin_config)
    if host_env_keys is not None or key_values is not None:
        wasm["vm_config"]["environment_variables"] = {}
        if host_env_keys is not None:
            wasm["vm_config"]["environment_variables"]["host_env_keys"] = host_env_keys
        if key_values is not None:
            wasm["vm_config"]["environment_variables"]["key_values"] = key_values
    return bootstrap


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def wasm_settings(plugin: dict) -> dict:
    """The module's settings (url, vmConfig, pluginConfig...): a WasmPlugin's
    `spec`, a TrafficExtension's `spec.wasm`."""
    return plugin["spec"]["wasm"] if plugin["kind"] == "TrafficExtension" else plugin["spec"]


def istio_host_env_keys(plugin: dict) -> list[str]:
    """What Istio makes of `vmConfig.env` entries with `valueFrom: HOST`:
    Envoy's `vm_config.environment_variables.host_env_keys`."""
    env = wasm_settings(plugin).get("vmConfig", {}).get("env", [])
    return [entry["name"] for entry in env if entry.get("valueFrom") == "HOST"]


def oidc_blocks(plugin_config: dict) -> list[tuple[str, dict]]:
    """Every `oidc` block with its path: the top level's and each app's."""
    blocks = [("oidc", plugin_config["oidc"])] if "oidc" in plugin_config else []
    for index, app in enumerate(plugin_config.get("apps", [])):
        if "oidc" in app:
            blocks.append((f"apps[{index}].oidc", app["oidc"]))
    return blocks


def secret_env(plugin_config: dict) -> dict:
    """Values for every variable the configuration names: a client secret, and two
    cookie keys (the first seals, both open) separated as a rotation would leave them."""
    env = {}
    for _, oidc in oidc_blocks(plugin_config):
        if "clientSecretFromEnv" in oidc:
            env[oidc["clientSecretFromEnv"]] = base64.urlsafe_b64encode(os.urandom(24)).decode()
        if "cookieSecretsFromEnv" in oidc:
            env[oidc["cookieSecretsFromEnv"]] = f"{random_key()}, {random_key()}"
    return env


def walk(value, path="$"):
    """Every (path, key, value) of a YAML document, keys of mappings included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


# ----- envoy-local/envoy.yaml -----
def test_envoy_local_config_is_valid_and_its_plugin_config_loads(wasm_path, tmp_path):
    bootstrap = envoy_local_with(wasm_path)
    plugin_config = json.loads(wasm_config(bootstrap)["configuration"]["value"])
    env = secret_env(plugin_config)
    assert sorted(env) == sorted(envoy_host_env_keys(bootstrap)) == ["OIDC_CLIENT_SECRET", "OIDC_COOKIE_SECRETS"]
    result = validate_with_envoy(bootstrap, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout + result.stderr


def test_envoy_local_config_holds_no_secret():
    bootstrap = load(ENVOY_LOCAL)
    vm_environment = wasm_config(bootstrap)["vm_config"]["environment_variables"]
    assert "key_values" not in vm_environment
    plugin_config = json.loads(wasm_config(bootstrap)["configuration"]["value"])
    assert not [key for _, key, _ in walk(plugin_config) if key in INLINE_SECRET_KEYS]


def test_envoy_local_without_its_variables_is_refused_naming_one(wasm_path, tmp_path):
    result = validate_with_envoy(envoy_local_with(wasm_path), tmp_path)
    assert result.returncode != 0
    assert re.search(r"invalid plugin configuration: oidc\.\w+FromEnv: environment variable `OIDC_\w+` is not set", result.stderr), result.stderr[-3000:]


def test_a_variable_in_envoys_environment_is_not_seen_without_host_env_keys(wasm_path, tmp_path):
    bootstrap = envoy_local_with(wasm_path, host_env_keys=[])
    plugin_config = json.loads(wasm_config(bootstrap)["configuration"]["value"])
    result = validate_with_envoy(bootstrap, tmp_path, secret_env(plugin_config))
    assert result.returncode != 0
    assert "is not set" in result.stderr


def test_fixed_values_in_key_values_also_work(wasm_path, tmp_path):
    bootstrap = envoy_local_with(wasm_path)
    plugin_config = json.loads(wasm_config(bootstrap)["configuration"]["value"])
    bootstrap = envoy_local_with(wasm_path, key_values=secret_env(plugin_config))
    result = validate_with_envoy(bootstrap, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_bad_cookie_key_is_named_by_its_position_never_printed(wasm_path, tmp_path):
    bootstrap = envoy_local_with(wasm_path)
    plugin_config = json.loads(wasm_config(bootstrap)["configuration"]["value"])
    env = secret_env(plugin_config)
    bad = "not*base64*" + base64.b64encode(os.urandom(9)).decode()
    env["OIDC_COOKIE_SECRETS"] = f"{random_key()},{bad}"
    result = validate_with_envoy(bootstrap, tmp_path, env)
    assert result.returncode != 0
    assert "oidc.cookieSecretsFromEnv: key 2 in environment variable `OIDC_COOKIE_SECRETS` is not base64" in result.stderr
    for value in (bad, env["OIDC_CLIENT_SECRET"], *env["OIDC_COOKIE_SECRETS"].split(",")):
        assert value not in result.stdout + result.stderr


def test_envoy_local_idp_cluster_verifies_the_certificate():
    clusters = load(ENVOY_LOCAL)["static_resources"]["clusters"]
    idp = next(cluster for cluster in clusters if cluster["name"] == "idp")
    tls = idp["transport_socket"]["typed_config"]
    validation = tls["common_tls_context"]["validation_context"]
    assert tls["sni"] == "idp.example.com"
    assert validation["trusted_ca"]["filename"]
    assert validation["match_typed_subject_alt_names"][0]["matcher"]["exact"] == "idp.example.com"


def test_a_bad_plugin_config_fails_validation_naming_the_field(wasm_path, tmp_path):
    plugin_config = {"jwtRules": [{"issuer": "https://idp.example.com", "timeout": "5 seconds"}]}
    result = validate_with_envoy(envoy_local_with(wasm_path, plugin_config), tmp_path)
    assert result.returncode != 0
    assert "invalid plugin configuration: jwtRules[0].timeout" in result.stderr


# ----- the `make run` demo -----
def test_demo_config_takes_its_secrets_from_envoys_environment():
    placeholders = {"ENVOY_PORT": 1, "IDP_PORT": 2, "APP_PORT": 3, "ADMIN_PORT": 4, "WASM": "x.wasm", "PLUGIN_CONFIG": "{}"}
    bootstrap = yaml.safe_load(string.Template(DEMO_YAML.read_text()).substitute(placeholders))
    assert envoy_host_env_keys(bootstrap) == ["OIDC_CLIENT_SECRET", "OIDC_COOKIE_SECRETS"]
    spec = importlib.util.spec_from_file_location("demo", DEMO_PY)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    plugin_config = demo.plugin_config("http://localhost:9400", "localhost:9400")
    assert not [key for _, key, _ in walk(plugin_config) if key in INLINE_SECRET_KEYS]
    assert sorted(secret_env(plugin_config)) == ["OIDC_CLIENT_SECRET", "OIDC_COOKIE_SECRETS"]


# ----- the Istio WasmPlugins and TrafficExtensions -----
@pytest.mark.parametrize("path", ISTIO_EXTENSIONS, ids=lambda path: path.name)
def test_wasm_plugin_matches_istio_crd_schema(path):
    plugin = load(path)
    schema_path = SHARED_ISTIO / SCHEMAS[plugin["kind"]]
    if not schema_path.is_file():
        pytest.skip(f"Istio's {plugin['kind']} schema is not beside the project (../shared/istio)")
    import jsonschema

    schema = json.loads(schema_path.read_text())
    jsonschema.validate(plugin, schema)


@pytest.mark.parametrize("path", ISTIO_EXTENSIONS, ids=lambda path: path.name)
def test_wasm_plugin_jwt_rules_match_request_authentication_schema(path):
    schema_path = SHARED_ISTIO / "jwtrule-schema.json"
    if not schema_path.is_file():
        pytest.skip("Istio's JWTRule schema is not beside the project (../shared/istio)")
    import jsonschema

    schema = json.loads(schema_path.read_text())
    for rule in wasm_settings(load(path))["pluginConfig"]["jwtRules"]:
        jsonschema.validate(rule, schema)


@pytest.mark.parametrize("path", ISTIO_EXTENSIONS, ids=lambda path: path.name)
def test_wasm_plugin_holds_no_secret(path):
    plugin = load(path)
    settings = wasm_settings(plugin)
    inline = [f"{where}.{key}" for where, key, _ in walk(plugin) if key in INLINE_SECRET_KEYS]
    assert not inline, f"secrets in the plugin configuration: {inline}"
    keys = [f"{where}.{key}" for where, key, value in walk(plugin) if isinstance(value, str) and BASE64_KEY.search(value)]
    assert not keys, f"values that look like cookie keys: {keys}"
    env = settings["vmConfig"]["env"]
    assert all("value" not in entry and entry["valueFrom"] == "HOST" for entry in env), env
    # Every variable the configuration names comes from the proxy's environment.
    blocks = oidc_blocks(settings["pluginConfig"])
    assert blocks
    for where, oidc in blocks:
        assert {"clientSecretFromEnv", "cookieSecretsFromEnv"} <= oidc.keys(), where
    assert sorted(secret_env(settings["pluginConfig"])) == sorted(istio_host_env_keys(plugin))


@pytest.mark.parametrize("path", TRAFFIC_EXTENSIONS, ids=lambda path: path.name)
def test_traffic_extension_deploys_what_its_wasm_plugin_does(path):
    """Same image, digest, phase, failure strategy, environment and plugin config;
    only where it attaches differs."""
    extension, plugin = load(path), load(EQUIVALENT[path])
    assert (extension["apiVersion"], extension["kind"]) == ("extensions.istio.io/v1alpha1", "TrafficExtension")
    wasm = extension["spec"]["wasm"]
    for key in ("url", "sha256", "imagePullPolicy", "failStrategy", "vmConfig", "pluginConfig"):
        assert wasm[key] == plugin["spec"][key], key
    assert extension["spec"]["phase"] == plugin["spec"]["phase"] == "AUTHN"
    assert extension["metadata"]["name"] == plugin["metadata"]["name"]


def test_traffic_extensions_attach_to_the_sidecar_and_to_a_gateway_api_gateway():
    sidecar = load(TRAFFIC_EXTENSION)
    assert sidecar["spec"]["selector"] == load(WASM_PLUGIN)["spec"]["selector"]
    assert sidecar["metadata"]["namespace"] == load(WASM_PLUGIN)["metadata"]["namespace"]
    gateway = load(TRAFFIC_EXTENSION_GATEWAY)
    assert "selector" not in gateway["spec"]
    assert gateway["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "apps"}]


def test_gateway_wasm_plugin_serves_two_apps_on_the_ingress_gateway():
    plugin = load(WASM_PLUGIN_GATEWAY)
    assert plugin["metadata"]["namespace"] == "istio-system"
    assert plugin["spec"]["selector"]["matchLabels"] == {"istio": "ingressgateway"}
    config = plugin["spec"]["pluginConfig"]
    assert "oidc" not in config, "a top-level oidc would give the bearer-only API a login"
    apps = {app["name"]: app for app in config["apps"]}
    assert apps["grafana"]["hosts"] == ["grafana.example.com"] and "oidc" in apps["grafana"]
    assert apps["api"]["hosts"] == ["api.example.com"] and "oidc" not in apps["api"]
    assert "/healthz" in apps["api"]["publicPaths"]


@pytest.mark.parametrize("path", ISTIO_EXTENSIONS, ids=lambda path: path.name)
def test_wasm_plugin_plugin_config_is_accepted_by_the_filter(path, wasm_path, tmp_path):
    """Loaded as Istio would load it: the pluginConfig as the configuration, the
    vmConfig.env HOST entries as host_env_keys, the variables in the proxy's
    environment (as the istio-proxy container's env would put them)."""
    plugin = load(path)
    plugin_config = wasm_settings(plugin)["pluginConfig"]
    host_env_keys = istio_host_env_keys(plugin)
    bootstrap = envoy_local_with(wasm_path, plugin_config, host_env_keys=host_env_keys)

    # Without the variables, the filter refuses to load and names one.
    refused = validate_with_envoy(bootstrap, tmp_path)
    assert refused.returncode != 0
    names = "|".join(map(re.escape, host_env_keys))
    assert re.search(rf"FromEnv: environment variable `({names})` is not set", refused.stderr), refused.stderr[-3000:]

    env = secret_env(plugin_config)
    result = validate_with_envoy(bootstrap, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    for value in env.values():
        assert value not in result.stdout + result.stderr
