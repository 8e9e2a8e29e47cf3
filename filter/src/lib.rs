//! Proxy-Wasm identity filter for Envoy.
//!
//! Where things live (one concern per file, after Envoy's `jwt_authn`):
//! - [`authority`]: the request's host and port, read strictly; [`apps`]: which
//!   app's settings judge a request.
//! - [`config`]: plugin configuration (Istio `jwtRules` and our additions), parsed and
//!   validated once at load.
//! - [`extractor`]: where a token is found in a request, and how it is removed.
//! - [`token`]: compact JWS parsing and the structural checks made before any crypto.
//! - [`jwks`]: JWKS documents parsed into verification keys; key selection by kid/alg.
//! - [`verifier`]: signature verification over the signing input.
//! - [`claims`]: `exp`/`nbf`/`iat`/`iss`/`aud` checks and claim lookup.
//! - [`authenticator`]: bearer-token authentication: extract, verify, allow or deny.
//! - [`cache`]: bounded caches of verified tokens and opened sessions.
//! - [`key_cache`]: when JWKS must be fetched, shared across worker VMs.
//! - [`fetch`]: the HTTP requests the filter makes (discovery, JWKS) and reply checks.
//! - [`metrics`]: what is counted, and the stat names Envoy shows.
//! - [`response`]: deny responses with Envoy `jwt_authn`'s statuses and texts.
//! - [`session`]: sealed, chunked session cookies.
//! - [`oidc`]: browser login (redirect, callback, token endpoint, ID token, logout).
//! - [`authz`]: authorization policies with Istio `AuthorizationPolicy` semantics.
//! - [`pipeline`]: the whole decision for one request; [`path`]: path normalization;
//!   [`peer`]: the downstream peer ([`peer::certificate`]: the URI SANs of its
//!   certificate); [`streams`]: what is kept per request between callbacks;
//!   [`profile`]: test-only timing of a request's phases inside Envoy.
//! - [`host_calls`]: the host calls a request's outcome depends on (clock, header
//!   edits), as a trait; a call that fails answers 500.
//! - `host` (wasm32-wasip1 only): the proxy-wasm contexts, the only code touching Envoy.
//!
//! Everything except `host` is plain Rust, tested natively and under wasm-bindgen-test.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::panic
    )
)]

pub mod apps;
pub mod authenticator;
pub mod authority;
pub mod authz;
pub mod cache;
pub mod claims;
pub mod config;
pub mod crypto;
pub mod duration;
pub mod extractor;
pub mod fetch;
pub mod host_calls;
pub mod http_url;
pub mod introspection;
pub mod jwks;
pub mod key_cache;
pub mod metrics;
pub mod oidc;
pub mod path;
pub mod peer;
pub mod pipeline;
pub mod profile;
pub mod protobuf;
pub mod request;
pub mod response;
pub mod session;
pub mod signature_backend;
pub mod signature_probe;
pub mod streams;
pub mod strict_json;
pub mod token;
pub mod verifier;
pub mod verify_signature;

#[cfg(test)]
mod test_keys;

#[cfg(target_os = "wasi")]
mod host;
