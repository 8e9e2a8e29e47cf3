"""The files users deploy from: the standalone Envoy config and the Istio WasmPlugin."""

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.envoy import ENVOY_BIN, REPO_ROOT

ENVOY_LOCAL = REPO_ROOT / "envoy-local" / "envoy.yaml"
WASM_PLUGIN = REPO_ROOT / "wasm-plugin.yaml"
SHARED_ISTIO = REPO_ROOT.parent / "shared" / "istio"


def validate_with_envoy(bootstrap: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate` loads the module and runs its on_configure."""
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    return subprocess.run(
        [str(ENVOY_BIN), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def envoy_local_with(wasm_path: Path, plugin_config: dict | None = None) -> dict:
    bootstrap = yaml.safe_load(ENVOY_LOCAL.read_text())
    wasm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "http_filters"
    ][0]["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = str(wasm_path)
    if plugin_config is not None:
        wasm["configuration"]["value"] = json.dumps(plugin_config)
    return bootstrap


def test_envoy_local_config_is_valid_and_its_plugin_config_loads(wasm_path, tmp_path):
    result = validate_with_envoy(envoy_local_with(wasm_path), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout + result.stderr


def test_envoy_local_idp_cluster_verifies_the_certificate():
    clusters = yaml.safe_load(ENVOY_LOCAL.read_text())["static_resources"]["clusters"]
    idp = next(cluster for cluster in clusters if cluster["name"] == "idp")
    tls = idp["transport_socket"]["typed_config"]
    validation = tls["common_tls_context"]["validation_context"]
    assert tls["sni"] == "idp.example.com"
    assert validation["trusted_ca"]["filename"]
    assert validation["match_typed_subject_alt_names"][0]["matcher"]["exact"] == "idp.example.com"


def test_wasm_plugin_matches_istio_crd_schema():
    schema_path = SHARED_ISTIO / "wasmplugin-schema.json"
    if not schema_path.is_file():
        pytest.skip("Istio's WasmPlugin schema is not beside the project (../shared/istio)")
    import jsonschema

    schema = json.loads(schema_path.read_text())
    jsonschema.validate(yaml.safe_load(WASM_PLUGIN.read_text()), schema)


def test_wasm_plugin_jwt_rules_match_request_authentication_schema():
    schema_path = SHARED_ISTIO / "jwtrule-schema.json"
    if not schema_path.is_file():
        pytest.skip("Istio's JWTRule schema is not beside the project (../shared/istio)")
    import jsonschema

    schema = json.loads(schema_path.read_text())
    for rule in yaml.safe_load(WASM_PLUGIN.read_text())["spec"]["pluginConfig"]["jwtRules"]:
        jsonschema.validate(rule, schema)


def test_wasm_plugin_plugin_config_is_accepted_by_the_filter(wasm_path, tmp_path):
    plugin_config = yaml.safe_load(WASM_PLUGIN.read_text())["spec"]["pluginConfig"]
    # As shipped, the cookie secret is a placeholder the filter must refuse.
    refused = validate_with_envoy(envoy_local_with(wasm_path, plugin_config), tmp_path)
    assert refused.returncode != 0
    assert "oidc.cookieSecrets[0]" in refused.stderr
    plugin_config["oidc"]["cookieSecrets"] = [base64.b64encode(os.urandom(32)).decode()]
    result = validate_with_envoy(envoy_local_with(wasm_path, plugin_config), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_bad_plugin_config_fails_validation_naming_the_field(wasm_path, tmp_path):
    plugin_config = {"jwtRules": [{"issuer": "https://idp.example.com", "timeout": "5 seconds"}]}
    result = validate_with_envoy(envoy_local_with(wasm_path, plugin_config), tmp_path)
    assert result.returncode != 0
    assert "invalid plugin configuration: jwtRules[0].timeout" in result.stderr
