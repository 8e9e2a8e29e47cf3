"""Every configuration the documentation shows loads in the filter.

README.md and docs/*.md (harness/markdown.py finds the blocks):
- a ```json block is a whole plugin configuration;
- a ```yaml block may hold Istio resources — a `WasmPlugin` or
  `TrafficExtension` (its `pluginConfig` is loaded), an `AuthorizationPolicy`
  (loaded in `authorizationPolicies` beside a token rule), a
  `RequestAuthentication` (loaded in `jwtRules`) — or an Envoy Wasm filter
  stanza (its `configuration` value is loaded); other YAML (a Gateway, a
  Secret, Prometheus) is only parsed.

The loading is the real one: `envoy --mode validate` with the built module,
one listener per block, whose plugin is named after the block's file and line,
so Envoy's refusal names it. Each `...FromEnv` variable a configuration names
gets a value of the right form in the VM's environment. Istio resources are also
validated against Istio's CRD schemas when ../shared/istio has them.

A block marked `<!-- docs-check: partial -->` on the line before its fence is a
fragment and only parsed; `<!-- docs-check: invalid -->` must be refused.
"""

import base64
import json
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from harness.envoy import ENVOY_BIN, Listener, bootstrap
from harness.markdown import REPO_ROOT, Block, code_blocks, documentation_files
from harness.tokens import generate_key, jwks_of, pkcs8_pem, self_signed_certificate_pem

SHARED_ISTIO = REPO_ROOT.parent / "shared" / "istio"
SCHEMAS = {
    "WasmPlugin": "wasmplugin-schema.json",
    "TrafficExtension": "trafficextension-schema.json",
    "AuthorizationPolicy": "authorizationpolicy-schema.json",
    "RequestAuthentication": "requestauthentication-schema.json",
}
# A token rule for a pasted AuthorizationPolicy to stand beside.
DOCS_ISSUER = "https://docs-check.test"
VALIDATE_TIMEOUT = 120


@cache
def all_blocks() -> list[Block]:
    return [block for path in documentation_files() for block in code_blocks(path)]


def blocks_of(language: str) -> list[Block]:
    return [block for block in all_blocks() if block.language == language]


# ----- from a block to plugin configurations -----
def wasm_settings(resource: dict) -> dict:
    """A WasmPlugin's `spec`, a TrafficExtension's `spec.wasm`."""
    spec = resource.get("spec") or {}
    return spec.get("wasm") or {} if resource.get("kind") == "TrafficExtension" else spec


def docs_rule() -> dict:
    return {"issuer": DOCS_ISSUER, "jwks": json.dumps(jwks_of(generate_key("ES256", kid="docs")))}


def jwks_clusters(rules: list[dict]) -> dict:
    """A `clusters` entry for each `jwksUri` authority, as a deployment has."""
    clusters = {}
    for rule in rules:
        for entry in rule.get("spec", {}).get("jwtRules", [rule]):
            uri = entry.get("jwksUri", "")
            if "://" in uri:
                authority = uri.split("://", 1)[1].split("/", 1)[0]
                port = "" if ":" in authority else (":443" if uri.startswith("https") else ":80")
                clusters[authority + port] = "idp"
    return clusters


def stanza_configurations(document) -> list[str]:
    """The `configuration` value of every Envoy Wasm filter stanza in a document."""
    found = []
    if isinstance(document, dict):
        config = document.get("config") if document.get("@type", "").endswith("wasm.v3.Wasm") else None
        if isinstance(config, dict) and isinstance(config.get("configuration"), dict):
            found.append(config["configuration"].get("value", ""))
        for value in document.values():
            found += stanza_configurations(value)
    elif isinstance(document, list):
        for value in document:
            found += stanza_configurations(value)
    return found


def plugin_configs(block: Block) -> list[tuple[str, dict | str]]:
    """(what, plugin configuration) for each configuration a block holds."""
    if block.language == "json":
        return [("plugin configuration", json.loads(block.text))]
    found = []
    for document in yaml.safe_load_all(block.text):
        if not isinstance(document, dict):
            continue
        kind = document.get("kind")
        if kind in ("WasmPlugin", "TrafficExtension"):
            found.append((kind, wasm_settings(document).get("pluginConfig", {})))
        elif kind == "AuthorizationPolicy":
            found.append((kind, {"jwtRules": [docs_rule()], "authorizationPolicies": [document]}))
        elif kind == "RequestAuthentication":
            found.append((kind, {"jwtRules": [document], "clusters": jwks_clusters([document])}))
        else:
            found += [("Envoy Wasm filter", text) for text in stanza_configurations(document)]
    return found


def istio_resources(block: Block) -> list[dict]:
    if block.language != "yaml":
        return []
    return [
        document
        for document in yaml.safe_load_all(block.text)
        if isinstance(document, dict) and document.get("kind") in SCHEMAS
    ]


# ----- the VM's environment -----
def walk_objects(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_objects(item)


@cache
def key_pair(alg: str) -> tuple[str, str]:
    key = generate_key(alg, kid="docs-client")
    return pkcs8_pem(key), self_signed_certificate_pem(key)


def environment_for(config: dict | str) -> dict[str, str]:
    """A value of the right form for every variable a `...FromEnv` field names."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return {}
    env = {}
    for holder in walk_objects(config):
        alg = "RS256" if holder.get("clientAssertionAlg") == "RS256" else "ES256"
        for field, name in holder.items():
            if not (field.endswith("FromEnv") and isinstance(name, str)):
                continue
            if field == "cookieSecretsFromEnv":
                env[name] = base64.b64encode(os.urandom(32)).decode()
            elif field == "clientPrivateKeyFromEnv":
                env[name] = key_pair(alg)[0]
            elif field == "clientCertificateFromEnv":
                env[name] = key_pair(alg)[1]
            else:
                env[name] = base64.urlsafe_b64encode(os.urandom(30)).decode()
    return env


# ----- loading in Envoy -----
def validate(configs: list[tuple[str, dict | str]], wasm_path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate` with one listener per (name, configuration)."""
    listeners = [
        Listener(f"docs-{index}", config, port=20000 + index, vm_environment={"key_values": environment_for(config)})
        for index, (_, config) in enumerate(configs)
    ]
    # Validation binds no port: fixed numbers do.
    document = bootstrap(listeners, wasm_path, 19999, {"idp": 19998}, 19997)
    for index, listener in enumerate(document["static_resources"]["listeners"]):
        wasm = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]["config"]
        wasm["name"] = configs[index][0]
        # A VM per environment: the same variable may hold another value elsewhere.
        wasm["vm_config"]["vm_id"] = f"docs-{index}"
    path = tmp_path / "docs-bootstrap.json"
    path.write_text(json.dumps(document))
    return subprocess.run(
        [str(ENVOY_BIN), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT,
        env={key: value for key, value in os.environ.items() if not key.startswith("OIDC")},
    )


def refusal(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if "invalid plugin configuration" in line]
    return lines[0] if lines else (result.stderr + result.stdout)[-600:]


def checked_configs() -> list[tuple[str, dict | str]]:
    """(place, configuration) of every unmarked block holding one (a block that
    does not parse fails `test_every_unmarked_block_parses`)."""
    found = []
    for block in all_blocks():
        if block.marker is None and block.language in ("json", "yaml"):
            try:
                configs = plugin_configs(block)
            except ValueError:
                continue
            found += [(f"{block.place} ({what})", config) for what, config in configs]
    return found


# ----- tests -----
@pytest.mark.parametrize("language", ["json", "yaml"])
def test_every_unmarked_block_parses(language):
    broken = []
    for block in blocks_of(language):
        if block.marker == "partial" and language == "json":
            continue  # a fragment, such as `"oidc": {…}`
        try:
            json.loads(block.text) if language == "json" else list(yaml.safe_load_all(block.text))
        except ValueError as error:  # yaml.YAMLError is a ValueError too
            broken.append(f"{block.place}: {error}".splitlines()[0])
    assert not broken, "blocks that do not parse (fix them, or mark a fragment <!-- docs-check: partial -->):\n" + "\n".join(broken)


def test_the_docs_show_configurations():
    places = {place.split(":")[0] for place, _ in checked_configs()}
    assert len(checked_configs()) >= 5, checked_configs()
    assert "README.md" in places


def test_every_configuration_in_the_docs_loads(wasm_path, tmp_path):
    configs = checked_configs()
    result = validate(configs, wasm_path, tmp_path)
    if result.returncode == 0:
        return
    refused = []
    for place, config in configs:
        alone = validate([(place, config)], wasm_path, tmp_path)
        if alone.returncode != 0:
            refused.append(f"{place}: {refusal(alone)}")
    assert refused, f"all blocks load one by one, but not together:\n{refusal(result)}"
    pytest.fail("configurations in the docs that the filter refuses:\n" + "\n".join(refused), pytrace=False)


def test_blocks_marked_invalid_are_refused(wasm_path, tmp_path):
    loaded = []
    for block in all_blocks():
        if block.marker != "invalid":
            continue
        try:
            configs = plugin_configs(block)
        except ValueError:
            continue  # not even JSON or YAML: invalid as marked
        for what, config in configs:
            if validate([(f"{block.place} ({what})", config)], wasm_path, tmp_path).returncode == 0:
                loaded.append(block.place)
    assert not loaded, f"blocks marked invalid that load: {loaded}"


def test_the_check_can_fail(wasm_path, tmp_path):
    """A wrong field in a configuration is refused, and named by its block."""
    bad = {"jwtRules": [{"issuer": DOCS_ISSUER, "timeout": "5 seconds"}]}
    result = validate([("docs-self-check", bad)], wasm_path, tmp_path)
    assert result.returncode != 0
    assert "jwtRules[0].timeout" in refusal(result)


def test_istio_resources_match_istio_schemas():
    import jsonschema

    checked, wrong = 0, []
    for block in all_blocks():
        if block.marker is not None:
            continue
        for resource in istio_resources(block):
            schema_path = SHARED_ISTIO / SCHEMAS[resource["kind"]]
            if not schema_path.is_file():
                continue
            checked += 1
            try:
                jsonschema.validate(resource, json.loads(schema_path.read_text()))
            except jsonschema.ValidationError as error:
                wrong.append(f"{block.place} {resource['kind']}: {error.message}")
    if not SHARED_ISTIO.is_dir():
        pytest.skip("Istio's schemas are not beside the project (../shared/istio)")
    assert checked > 0, "no Istio resource in the docs was checked"
    assert not wrong, "\n".join(wrong)
