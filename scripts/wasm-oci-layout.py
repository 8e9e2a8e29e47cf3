#!/usr/bin/env python3
"""Write the filter as Istio's two-layer "oci" Wasm image variant, into an OCI
image layout (then `skopeo copy oci:DIR:TAG docker://...` pushes it).

    scripts/wasm-oci-layout.py dist/oidc_filter.wasm target/oci-layout [--tag latest]

The "oci" variant (solo-io/wasm spec/spec.md, read by Istio's
pkg/wasm/imagefetcher.go extractOCIArtifactImage) has exactly two layers: the
runtime config (application/vnd.module.wasm.config.v1+json) and the raw,
uncompressed module (application/vnd.module.wasm.content.layer.v1+wasm); the
manifest's config is the same runtime config. No tar and no timestamps, so the
same module always gives the same digests. The standard library only.
"""

import argparse
import hashlib
import json
import shutil
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.module.wasm.config.v1+json"
CONTENT_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm"
TITLE = "org.opencontainers.image.title"
ROOT_ID = "oidc_filter"  # the root_id the filter registers (envoy-local, wasm-plugin.yaml)


def runtime_config() -> bytes:
    """The spec's Envoy runtime config: metadata only, Istio does not read it."""
    config = {"type": "envoy_proxy", "config": {"root_ids": [ROOT_ID]}}
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def canonical_json(document: dict) -> bytes:
    # Fixed key order and spacing: the manifest digest depends on the bytes.
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: Path):
        self.path = path
        shutil.rmtree(path, ignore_errors=True)
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def add_blob(self, data: bytes, media_type: str, title: str | None = None) -> dict:
        """Store `data` by digest; returns its descriptor."""
        hex_digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / hex_digest).write_bytes(data)
        descriptor = {"mediaType": media_type, "digest": f"sha256:{hex_digest}", "size": len(data)}
        if title:
            descriptor["annotations"] = {TITLE: title}
        return descriptor

    def write_index(self, manifest: dict, tag: str) -> None:
        descriptor = self.add_blob(canonical_json(manifest), MANIFEST_TYPE)
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index = {"schemaVersion": 2, "manifests": [descriptor]}
        (self.path / "index.json").write_text(json.dumps(index, indent=2))


def write_oci_variant(module: bytes, out: Path, tag: str) -> None:
    layout = Layout(out)
    config = layout.add_blob(runtime_config(), CONFIG_TYPE)
    config_layer = layout.add_blob(runtime_config(), CONFIG_TYPE, title="runtime-config.json")
    content_layer = layout.add_blob(module, CONTENT_TYPE, title="plugin.wasm")
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config,
        "layers": [config_layer, content_layer],
    }
    layout.write_index(manifest, tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", type=Path, help="the .wasm module")
    parser.add_argument("layout", type=Path, help="the OCI layout directory to (re)create")
    parser.add_argument("--tag", default="latest")
    args = parser.parse_args()
    if not args.module.is_file():
        parser.error(f"{args.module} is missing: run `make build` first")
    module = args.module.read_bytes()
    if module[:4] != b"\0asm":
        parser.error(f"{args.module} is not a Wasm module")
    write_oci_variant(module, args.layout, args.tag)
    print(f"wrote the oci-variant image of {args.module} to {args.layout}:{args.tag}")


if __name__ == "__main__":
    main()
