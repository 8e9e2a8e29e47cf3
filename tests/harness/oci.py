"""OCI images of the filter: a real registry on loopback, `make push`, and
reading a pulled image the way Istio does.

`Registry` runs Debian's docker-registry (the distribution registry v2) with
its storage in a temporary directory, plain HTTP on 127.0.0.1, no auth.
`make_push()` builds and pushes through the Makefile's own `push` target (so
the test exercises exactly what a user runs), with a throwaway buildah storage.
`pull_layout()` copies an image from a registry into an OCI layout with
skopeo, and `OciLayout` reads its manifest, config and blobs.
Install the tools with `make oci-tools` (tests/install-oci-tools.sh).
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .envoy import _die_with_parent
from .ports import free_port
from .processes import terminate

REPO_ROOT = Path(__file__).resolve().parents[2]

REGISTRY_BIN = "/usr/bin/docker-registry"
TOOLS = ("/usr/bin/buildah", "/usr/bin/skopeo", REGISTRY_BIN)

REGISTRY_READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 90.0  # a build, a push or a copy of a 1 MB image takes well under a second

# Layer media types Istio extracts plugin.wasm from (compat variant).
OCI_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PLUGIN_FILE = "plugin.wasm"
# The two-layer "oci" variant's media types.
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_CONTENT = "application/vnd.module.wasm.content.layer.v1+wasm"

# As root, containers/image keeps a blob-info cache here whatever --root says.
SYSTEM_CONTAINERS_DIR = Path("/var/lib/containers")
BLOB_INFO_CACHE = SYSTEM_CONTAINERS_DIR / "cache" / "blob-info-cache-v1.boltdb"


def tools_missing() -> str | None:
    """None when buildah, skopeo and docker-registry are installed, else what is missing."""
    missing = [tool for tool in TOOLS if not os.access(tool, os.X_OK)]
    if missing:
        return f"{', '.join(missing)} missing: run `make oci-tools`"
    return None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----- registry -----
class Registry:
    """A distribution registry v2 on a free loopback port; use as a context
    manager or start()/stop(). Its storage is removed when it stops."""

    def __init__(self, name: str = "registry"):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.config_path = self.dir / "config.yml"
        self.log_path = self.dir / "registry.log"
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """host:port, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> None:
        # JSON is YAML: no YAML library needed.
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self) -> "Registry":
        problem = tools_missing()
        if problem:
            raise RuntimeError(problem)
        self.write_config()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = REGISTRY_READY_TIMEOUT) -> None:
        """Until GET /v2/ answers 200 (the API version check every client does first)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry not ready after {timeout}s:\n{self.log_text()}")
            time.sleep(0.05)

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest the registry itself gives the manifest of repository:tag
        (its Docker-Content-Digest header)."""
        reply = requests.head(
            f"http://{self.host}/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            timeout=5,
        )
        assert reply.status_code == 200, f"HEAD manifest {repository}:{tag}: {reply.status_code}"
        return reply.headers["Docker-Content-Digest"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process, STOP_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ----- make image / make push -----
@dataclass(frozen=True)
class MakeRun:
    returncode: int
    output: str  # stdout and stderr, interleaved

    @property
    def manifest_digest(self) -> str:
        """The `manifest digest: sha256:...` line `make push` prints."""
        found = re.search(r"^manifest digest: (sha256:[0-9a-f]{64})$", self.output, re.MULTILINE)
        assert found, f"no manifest digest in the output of make:\n{self.output}"
        return found.group(1)


def run_make(target: str, **variables: str) -> MakeRun:
    """`make <target> NAME=value...` in the repo, bounded in time. The caller's
    make context (MAKEFLAGS, an IMAGE in the environment) is left out, so only
    the given variables count."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "IMAGE")}
    command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), target]
    command += [f"{name}={value}" for name, value in variables.items()]
    done = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=COMMAND_TIMEOUT
    )
    return MakeRun(done.returncode, done.stdout)


class BuildahStorage:
    """A throwaway buildah storage (Makefile's BUILDAH_ROOT), removed by stop()."""

    def __init__(self, name: str = "buildah"):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))

    def make_variables(self) -> dict[str, str]:
        return {"BUILDAH_ROOT": str(self.dir)}

    def stop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def make_push(target: str, image: str, context_dir: Path, **variables: str) -> MakeRun:
    """`make push` (or push-oci) of the module in `context_dir` to `image` on a
    loopback registry (INSECURE_REGISTRY=1: plain HTTP); fails the test if
    make fails."""
    run = run_make(target, IMAGE=image, IMAGE_CONTEXT=str(context_dir), INSECURE_REGISTRY="1", **variables)
    assert run.returncode == 0, f"make {target} failed ({run.returncode}):\n{run.output}"
    return run


# ----- skopeo -----
def skopeo(*args: str) -> str:
    """skopeo with a permissive signature policy (images here are our own, on
    loopback), so /etc/containers/policy.json does not matter."""
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert done.returncode == 0, f"skopeo {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def inspect_digest(image: str) -> str:
    """skopeo's view of the manifest digest of `image` (plain HTTP registry).
    Container images only: skopeo refuses to inspect the oci variant (an
    artifact with a non-image config)."""
    return json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{image}"))["Digest"]


def pull_layout(image: str, layout_dir: Path) -> "OciLayout":
    """Copy `image` from a plain HTTP registry into an OCI layout at `layout_dir`."""
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{image}", f"oci:{layout_dir}:pulled")
    return OciLayout(layout_dir)


# ----- OCI layout -----
class OciLayout:
    """An OCI image layout holding one image (as `skopeo copy ... oci:DIR` writes it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.manifest_descriptor,) = json.loads((self.path / "index.json").read_text())["manifests"]

    def blob(self, digest: str) -> bytes:
        algorithm, hex_digest = digest.split(":", 1)
        return (self.path / "blobs" / algorithm / hex_digest).read_bytes()

    @property
    def manifest_bytes(self) -> bytes:
        return self.blob(self.manifest_descriptor["digest"])

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)

    @property
    def config(self) -> dict:
        return json.loads(self.blob(self.manifest["config"]["digest"]))


def tar_members(layer_blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_blob)), mode="r:") as archive:
        return archive.getmembers()


def extract_plugin_like_istio(layout: OciLayout) -> bytes:
    """The module as Istio's fetcher finds it (pkg/wasm/imagefetcher.go): as
    the compat variant if it can, else as the oci variant."""
    try:
        return extract_compat_variant(layout)
    except AssertionError as compat_error:
        try:
            return extract_oci_variant(layout)
        except AssertionError as oci_error:
            raise AssertionError(f"neither variant: compat: {compat_error}; oci: {oci_error}") from None


def extract_compat_variant(layout: OciLayout) -> bytes:
    """The LAST layer, which must be tar+gzip, and in it the first file whose
    base name is plugin.wasm."""
    last_layer = layout.manifest["layers"][-1]
    assert last_layer["mediaType"] in (OCI_TAR_GZIP, DOCKER_TAR_GZIP), f"last layer is {last_layer['mediaType']}"
    tar_bytes = gzip.decompress(layout.blob(last_layer["digest"]))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        for member in archive:
            if member.isfile() and os.path.basename(member.name) == PLUGIN_FILE:
                return archive.extractfile(member).read()
    raise AssertionError(f"no {PLUGIN_FILE} in the last layer")


def extract_oci_variant(layout: OciLayout) -> bytes:
    """Exactly two layers; the raw (uncompressed) blob of the one with the
    Wasm content media type."""
    layers = layout.manifest["layers"]
    assert len(layers) == 2, f"{len(layers)} layers, the oci variant needs 2"
    content = [layer for layer in layers if layer["mediaType"] == WASM_CONTENT]
    assert content, f"no {WASM_CONTENT} layer"
    return layout.blob(content[0]["digest"])


# ----- host hygiene -----
class SystemCacheGuard:
    """buildah and skopeo running as root write a small blob-info cache under
    /var/lib/containers/cache even with a private --root (containers/image
    offers no flag to move it). If that directory did not exist before, stop()
    removes it again, but only when it holds nothing but that cache, so an
    image store someone made meanwhile is never touched."""

    def __init__(self):
        self.existed = SYSTEM_CONTAINERS_DIR.exists()

    def stop(self) -> None:
        if self.existed or not SYSTEM_CONTAINERS_DIR.exists():
            return
        contents = [p for p in SYSTEM_CONTAINERS_DIR.rglob("*") if p.is_file()]
        if contents == [BLOB_INFO_CACHE]:
            shutil.rmtree(SYSTEM_CONTAINERS_DIR)
