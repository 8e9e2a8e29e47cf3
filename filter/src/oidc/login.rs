//! Starting a login (the redirect to the IdP) and checking its callback.
//!
//! What the callback needs — state, nonce, PKCE verifier, where to return — travels
//! in a short-lived sealed cookie, so there is no server state and any replica can
//! finish a login another one started.

use crate::config::OidcConfig;
use crate::oidc::provider::Provider;
use crate::request::Headers;
use crate::session::chunks::{set_cookie, CookieAttributes};
use crate::session::seal::{CookieKeys, NONCE_BYTES};
use crate::strict_json::{self, take_string, take_u64};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A login must come back within this long.
pub const LOGIN_TTL_SECONDS: u64 = 600;

/// Fresh random bytes for one login, from the host's CSPRNG.
pub struct LoginRandom {
    pub state: [u8; 32],
    pub nonce: [u8; 32],
    pub verifier: [u8; 32],
    pub seal_nonce: [u8; NONCE_BYTES],
}

/// What the callback needs, sealed into the login cookie. Its `Debug` shows
/// neither the state, the nonce nor the PKCE verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Path and query on this origin; with `redirectUri`, the absolute URL the
    /// login started at, checked again when it ends (`domain::return_location`).
    pub return_to: String,
    pub expires_at: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    pub fn to_json(&self) -> Option<Vec<u8>> {
        let mut map = Map::new();
        for (key, text) in [
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("verifier", &self.verifier),
            ("return_to", &self.return_to),
        ] {
            map.insert(key.into(), Value::String(text.clone()));
        }
        map.insert("expires_at".into(), Value::from(self.expires_at));
        serde_json::to_vec(&map).ok()
    }

    pub fn from_json(bytes: &[u8]) -> Option<PendingLogin> {
        let mut map = strict_json::parse_object(bytes).ok()?;
        let mut text = |key| take_string(&mut map, key).flatten();
        Some(PendingLogin {
            state: text("state")?,
            nonce: text("nonce")?,
            verifier: text("verifier")?,
            return_to: text("return_to")?,
            expires_at: take_u64(&mut map, "expires_at")?,
        })
    }
}

pub struct Redirect {
    pub location: String,
    /// The login cookie first; then expiries of abandoned logins' cookies.
    pub set_cookies: Vec<String>,
}

/// How many characters of a login's state name its login cookie (with
/// `redirectUri`): 48 bits, so that logins in flight in one browser do not meet.
const LOGIN_ID_CHARS: usize = 8;

/// Logins in flight in one browser (with `redirectUri`) past which a new one
/// expires the others' cookies: they were abandoned, and each costs every request
/// to the domain a few hundred bytes of `Cookie` for ten minutes.
pub const MAX_LOGINS_IN_FLIGHT: usize = 8;

/// The login cookie of the login whose state is `state`, and what it is sealed for.
/// With `redirectUri` every host of the domain shares the login cookies, so two
/// logins at once (two tabs on two apps) are to be expected: each gets its own
/// cookie, `<cookieName>_login_<start of its state>`; otherwise `<cookieName>_login`.
pub fn login_cookie(oidc: &OidcConfig, state: &str) -> (String, String) {
    if oidc.redirect_uri.is_none() {
        return (oidc.login_cookie_name.clone(), oidc.login_purpose.clone());
    }
    let id: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(LOGIN_ID_CHARS)
        .collect();
    let name = format!("{}_{id}", oidc.login_cookie_name);
    let purpose = oidc.purpose_of(&name);
    (name, purpose)
}

/// The names of the per-login cookies (`<cookieName>_login_<id>`) the request carries.
pub fn logins_in_flight(oidc: &OidcConfig, headers: &Headers) -> Vec<String> {
    let prefix = format!("{}_", oidc.login_cookie_name);
    let mut names: Vec<String> = headers
        .cookies()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

pub fn cookie_attributes(oidc: &OidcConfig) -> CookieAttributes {
    CookieAttributes {
        domain: oidc.cookie_domain.clone(),
        secure: oidc.cookie_secure,
    }
}

/// `scheme://host[:port]` of the request, as the browser addressed it.
pub fn origin(headers: &Headers) -> String {
    let scheme = headers
        .get("x-forwarded-proto")
        .or_else(|| headers.get(":scheme"))
        .unwrap_or("http");
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(":authority")
        .or_else(|| headers.get("host"))
        .unwrap_or_default();
    format!("{scheme}://{host}")
}

/// `redirectUri` when set (one callback for every host), else this host's callback.
pub fn redirect_uri(oidc: &OidcConfig, headers: &Headers) -> String {
    match &oidc.redirect_uri {
        Some(uri) => uri.clone(),
        None => format!("{}{}", origin(headers), oidc.callback_path),
    }
}

/// Only a top-level navigation may be redirected to a login page; anything else
/// (XHR, fetch, API clients) gets a 401 it can act on.
pub fn is_navigation(headers: &Headers) -> bool {
    let method = headers.get(":method").unwrap_or("GET");
    let wants_html = headers
        .get("accept")
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/html"));
    let xhr = headers
        .get("x-requested-with")
        .is_some_and(|value| value.eq_ignore_ascii_case("XMLHttpRequest"));
    matches!(method, "GET" | "HEAD") && wants_html && !xhr
}

/// A path on this origin to return to after login: `/` unless `path` is a plain
/// absolute path. `//host` and `/\host` would leave the origin, so they fall back.
pub fn safe_return_path(path: &str) -> String {
    let leaves_origin = path.starts_with("//") || path.starts_with("/\\") || !path.starts_with('/');
    let has_controls = path.chars().any(|c| c.is_control());
    if leaves_origin || has_controls || path.len() > 2048 {
        "/".to_string()
    } else {
        path.to_string()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The redirect to the authorization endpoint, with state, nonce and a PKCE S256
/// challenge, and the sealed login cookie that remembers them.
pub fn start(
    oidc: &OidcConfig,
    provider: &Provider,
    keys: &CookieKeys,
    headers: &Headers,
    random: &LoginRandom,
    now: u64,
) -> Option<Redirect> {
    let pending = PendingLogin {
        state: b64(&random.state),
        nonce: b64(&random.nonce),
        verifier: b64(&random.verifier),
        return_to: match oidc.redirect_uri {
            // The login ends on the callback host: where it started must be absolute.
            Some(_) => format!("{}{}", origin(headers), safe_return_path(headers.path())),
            None => safe_return_path(headers.path()),
        },
        expires_at: now.saturating_add(LOGIN_TTL_SECONDS),
    };
    let challenge = b64(&Sha256::digest(pending.verifier.as_bytes()));
    let redirect_uri = redirect_uri(oidc, headers);
    let scope = oidc.scopes.join(" ");
    let location = provider.authorization_endpoint.with_query_pairs([
        ("response_type", "code"),
        ("client_id", oidc.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", pending.state.as_str()),
        ("nonce", pending.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let (name, purpose) = login_cookie(oidc, &pending.state);
    let sealed = keys.seal(&purpose, &pending.to_json()?, random.seal_nonce)?;
    let attributes = cookie_attributes(oidc);
    let mut set_cookies = vec![set_cookie(
        &name,
        &sealed,
        Some(LOGIN_TTL_SECONDS),
        &attributes,
    )];
    if oidc.redirect_uri.is_some() {
        let in_flight = logins_in_flight(oidc, headers);
        if in_flight.len() >= MAX_LOGINS_IN_FLIGHT {
            set_cookies.extend(
                in_flight
                    .iter()
                    .map(|abandoned| set_cookie(abandoned, "", Some(0), &attributes)),
            );
        }
    }
    Some(Redirect {
        location: location.to_string(),
        set_cookies,
    })
}

/// Why a callback cannot be completed; each maps to a small error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// The IdP answered with `error=` (for example `access_denied`).
    Refused { error: String },
    /// No `code` or `state` in the query.
    Malformed,
    /// No login cookie, one we cannot open, or an expired one: stale or replayed.
    NoPendingLogin,
    /// `state` differs from the one this browser was sent with.
    StateMismatch,
    /// `iss` names another issuer, is repeated, or is missing when the IdP says
    /// it sends one (RFC 9207): the response may come from another IdP (mix-up).
    WrongIssuer,
}

impl CallbackError {
    pub fn status(&self) -> u32 {
        match self {
            Self::Refused { .. } => 401,
            _ => 400,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Refused { error } => {
                format!("The identity provider did not sign you in ({error}).")
            }
            Self::Malformed => "The login callback is missing its code or state.".into(),
            Self::NoPendingLogin => {
                "This login has expired or was already used. Please start again.".into()
            }
            // One text for both: to the user each is a callback that is not the
            // login they started, and the module is near its size budget.
            Self::StateMismatch | Self::WrongIssuer => {
                "The login callback does not match this browser's login.".into()
            }
        }
    }
}

/// A callback that checked out: exchange `code` using the pending login's verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub code: String,
    pub pending: PendingLogin,
}

/// Checks a callback against the login this browser started. An `iss` parameter
/// must name our issuer (RFC 9207, which compares the decoded value as a plain
/// string), and must be there when the IdP promised it, except on an error
/// response: that ends the login anyway, and anyone can forge one as a link.
pub fn check_callback(
    oidc: &OidcConfig,
    provider: &Provider,
    keys: &CookieKeys,
    headers: &Headers,
    now: u64,
) -> Result<Callback, CallbackError> {
    let query = headers
        .path()
        .split_once('?')
        .map_or("", |(_, query)| query);
    let mut code = None;
    let mut state = None;
    let mut refused = None;
    // Whether `iss` named our issuer; a second `iss` makes it false, as two
    // values could each satisfy a different reader.
    let mut iss_matches = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "iss" => iss_matches = Some(iss_matches.is_none() && value == provider.issuer.as_str()),
            "error" => {
                refused = Some(
                    value
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect(),
                )
            }
            _ => {}
        }
    }
    if !iss_matches.unwrap_or(refused.is_some() || !provider.callback_iss_required) {
        return Err(CallbackError::WrongIssuer);
    }
    if let Some(error) = refused {
        return Err(CallbackError::Refused { error });
    }
    let (Some(code), Some(state)) = (code, state) else {
        return Err(CallbackError::Malformed);
    };
    let (name, purpose) = login_cookie(oidc, &state);
    let pending: PendingLogin = headers
        .cookie(&name)
        .and_then(|sealed| keys.open(&purpose, sealed))
        .and_then(|plain| PendingLogin::from_json(&plain))
        .filter(|pending: &PendingLogin| pending.expires_at >= now)
        .ok_or(CallbackError::NoPendingLogin)?;
    if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
        return Err(CallbackError::StateMismatch);
    }
    Ok(Callback { code, pending })
}

#[cfg(test)]
mod tests;
