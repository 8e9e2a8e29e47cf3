"""The filter as an OCI image Istio pulls (WasmPlugin `url: oci://...`).

`make push` builds the "compat" image of Containerfile with buildah and pushes
it to a real registry (Debian's docker-registry) on loopback; skopeo pulls it
back. The image must be what Istio's fetcher accepts (one tar+gzip layer with
plugin.wasm at its root, the compat annotation), hold the exact module, be
reproducible, and the pulled module must run in Envoy. `make push-oci`
pushes the two-layer "oci" variant (custom Wasm media types) the same way.

Needs `make oci-tools` (buildah, skopeo, docker-registry) and `make build`.
Every buildah storage, registry and pulled layout lives in a temporary
directory removed at the end.
"""

import gzip
import json
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import oci
from harness.client import assert_denied, get, upstream_view
from harness.envoy import Listener
from harness.stack import Stack
from harness.tokens import cached_key, claims, jwks_of, sign

REPOSITORY = "oidc-filter"
TAG = "test"
ISSUER = "https://issuer.oci.test"
COMPAT_ANNOTATION = ("module.wasm.image/variant", "compat")


@dataclass(frozen=True)
class Pushed:
    """One `make push` (or push-oci) and what skopeo pulled back from the registry."""

    registry: oci.Registry
    repository: str
    printed_digest: str  # the digest `make push` printed
    layout: oci.OciLayout
    module: bytes  # the .wasm that went into the build context

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{self.repository}:{TAG}"

    def registry_digest(self) -> str:
        return self.registry.manifest_digest(self.repository, TAG)

    @property
    def layer(self) -> dict:
        (only,) = self.layout.manifest["layers"]
        return only


class TempDir:
    """A temporary directory a Stack can own (removed by stop())."""

    def __init__(self, prefix: str):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def stop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ----- fixtures -----
@pytest.fixture(scope="module")
def oci_stack():
    """Owns this module's registries, buildah storages and temporary dirs."""
    problem = oci.tools_missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    stack = Stack(name="oci")
    stack.own(oci.SystemCacheGuard())  # closed last: after every buildah/skopeo run
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def build_context(oci_stack, wasm_path) -> Path:
    """A snapshot of the module as the Containerfile's context expects it, so a
    `make build` running meanwhile cannot change what this module tests."""
    context = oci_stack.own(TempDir("oci-context-")).path
    shutil.copyfile(wasm_path, context / "oidc_filter.wasm")
    return context


def push_and_pull(
    stack: Stack, registry: oci.Registry, target: str, repository: str, context: Path, **variables: str
) -> Pushed:
    """`make <target>` (push or push-oci) of the module in `context` to
    `registry`, and the image pulled back into an OCI layout."""
    image = f"{registry.host}/{repository}:{TAG}"
    run = oci.make_push(target, image, context, **variables)
    layout_dir = stack.own(TempDir("oci-pulled-")).path / "layout"
    return Pushed(
        registry=registry,
        repository=repository,
        printed_digest=run.manifest_digest,
        layout=oci.pull_layout(image, layout_dir),
        module=(context / "oidc_filter.wasm").read_bytes(),
    )


def push_compat_to_new_registry(stack: Stack, context: Path, name: str) -> Pushed:
    """`make push` with a new, empty buildah storage to a new, empty registry."""
    registry = stack.own(oci.Registry(name=f"{name}-registry")).start()
    storage = stack.own(oci.BuildahStorage(name=f"{name}-buildah"))
    return push_and_pull(stack, registry, "push", REPOSITORY, context, **storage.make_variables())


@pytest.fixture(scope="module")
def pushed(oci_stack, build_context) -> Pushed:
    """The compat image, pushed by `make push`."""
    return push_compat_to_new_registry(oci_stack, build_context, "first")


@pytest.fixture(scope="module")
def pushed_oci_variant(oci_stack, build_context) -> Pushed:
    """The two-layer oci variant, pushed by `make push-oci`."""
    registry = oci_stack.own(oci.Registry(name="oci-variant-registry")).start()
    layout = oci_stack.own(TempDir("oci-variant-layout-")).path / "layout"
    return push_and_pull(oci_stack, registry, "push-oci", f"{REPOSITORY}-oci", build_context, OCI_LAYOUT=str(layout))


def write_module(stack: Stack, module: bytes) -> Path:
    path = stack.own(TempDir("oci-module-")).path / "plugin.wasm"
    path.write_bytes(module)
    return path


@pytest.fixture(scope="module")
def pulled_module(oci_stack, pushed) -> Path:
    """plugin.wasm extracted from the pulled compat image as Istio does, on disk."""
    return write_module(oci_stack, oci.extract_plugin_like_istio(pushed.layout))


@pytest.fixture(scope="module")
def pulled_oci_variant_module(oci_stack, pushed_oci_variant) -> Path:
    return write_module(oci_stack, oci.extract_plugin_like_istio(pushed_oci_variant.layout))


# ----- the image -----
def test_manifest_is_the_compat_variant(pushed):
    manifest = pushed.layout.manifest
    assert manifest["schemaVersion"] == 2
    assert len(manifest["layers"]) == 1, manifest["layers"]
    assert pushed.layer["mediaType"] in (oci.OCI_TAR_GZIP, oci.DOCKER_TAR_GZIP)
    key, value = COMPAT_ANNOTATION
    assert manifest.get("annotations", {}).get(key) == value, manifest.get("annotations")


def test_layer_holds_only_plugin_wasm_at_its_root(pushed):
    (member,) = oci.tar_members(pushed.layout.blob(pushed.layer["digest"]))
    assert member.name in ("plugin.wasm", "./plugin.wasm") and member.isfile()
    # Fixed metadata: what makes the layer reproducible.
    assert (stat.S_IMODE(member.mode), member.uid, member.gid, member.mtime) == (0o644, 0, 0, 0)


def test_istio_extraction_gives_the_exact_module(pushed, pulled_module):
    assert oci.extract_compat_variant(pushed.layout) == pushed.module
    assert pulled_module.read_bytes() == pushed.module


def test_digests_match_the_content(pushed):
    layer_blob = pushed.layout.blob(pushed.layer["digest"])
    assert oci.sha256_digest(layer_blob) == pushed.layer["digest"]
    assert len(layer_blob) == pushed.layer["size"]
    # The config's diff_id is the digest of the uncompressed tar.
    (diff_id,) = pushed.layout.config["rootfs"]["diff_ids"]
    assert diff_id == oci.sha256_digest(gzip.decompress(layer_blob))


def test_push_prints_the_registry_manifest_digest(pushed):
    """The printed digest is what a WasmPlugin's sha256 must match (Istio
    compares the manifest digest) and what the registry serves."""
    assert pushed.printed_digest == pushed.registry_digest()
    assert pushed.printed_digest == oci.inspect_digest(pushed.image)
    assert pushed.printed_digest == oci.sha256_digest(pushed.layout.manifest_bytes)


def test_rebuild_from_empty_storage_gives_the_same_digests(oci_stack, build_context, pushed):
    """A second build in a new storage, pushed to a new registry (so no blob can
    be reused from the first push): same layer, config and manifest."""
    again = push_compat_to_new_registry(oci_stack, build_context, "second")
    assert again.layer["digest"] == pushed.layer["digest"]
    assert again.layout.manifest["config"]["digest"] == pushed.layout.manifest["config"]["digest"]
    assert again.printed_digest == pushed.printed_digest
    print(f"layer {again.layer['digest']}, manifest {again.printed_digest} (twice)")


# ----- make push's guard rails -----
def test_push_without_image_fails_clearly():
    run = oci.run_make("push")
    assert run.returncode != 0
    assert "make push needs the destination: make push IMAGE=" in run.output


def test_push_verifies_tls_unless_told_otherwise(oci_stack, build_context, pushed):
    """Without INSECURE_REGISTRY=1 a plain-HTTP registry is refused."""
    storage = oci_stack.own(oci.BuildahStorage(name="tls-buildah"))
    run = oci.run_make("push", IMAGE=pushed.image, IMAGE_CONTEXT=str(build_context), **storage.make_variables())
    assert run.returncode != 0
    assert "server gave HTTP response to HTTPS client" in run.output, run.output


# ----- the two-layer "oci" variant -----
def test_oci_variant_has_the_two_layers_istio_needs(pushed_oci_variant):
    manifest = pushed_oci_variant.layout.manifest
    assert manifest["config"]["mediaType"] == oci.WASM_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [oci.WASM_CONFIG, oci.WASM_CONTENT]
    assert pushed_oci_variant.layout.config["type"] == "envoy_proxy"


def test_oci_variant_holds_the_exact_module_uncompressed(pushed_oci_variant, pulled_oci_variant_module):
    content = pushed_oci_variant.layout.manifest["layers"][1]
    # Raw module bytes: the layer digest is the module's own sha256.
    assert content["digest"] == oci.sha256_digest(pushed_oci_variant.module)
    assert oci.extract_oci_variant(pushed_oci_variant.layout) == pushed_oci_variant.module
    assert pulled_oci_variant_module.read_bytes() == pushed_oci_variant.module


def test_push_oci_prints_the_registry_manifest_digest(pushed_oci_variant):
    assert pushed_oci_variant.printed_digest == pushed_oci_variant.registry_digest()
    assert pushed_oci_variant.printed_digest == oci.sha256_digest(pushed_oci_variant.layout.manifest_bytes)


# ----- the pulled module in Envoy -----
@pytest.mark.parametrize("variant", ["compat", "oci"])
def test_envoy_runs_the_pulled_module(request, variant, echo_server):
    module = request.getfixturevalue("pulled_module" if variant == "compat" else "pulled_oci_variant_module")
    key = cached_key("EdDSA", "oci")
    config = {"jwtRules": [{"issuer": ISSUER, "jwks": json.dumps(jwks_of(key))}]}
    stack = Stack(module, echo_server.port, name=f"oci-envoy-{variant}")
    try:
        envoy = stack.envoy(Listener("pulled", config))
        upstream_view(get(envoy.url(), "/", token=sign({}, claims(ISSUER), key)))
        assert_denied(get(envoy.url(), "/"), 401, "Jwt is missing")
    finally:
        stack.close()
