//! The browser-login decision for one request, and what follows the IdP's replies.
//!
//! `begin` says what to do with a request: judge it by bearer token, let a session
//! through, answer it (login redirect, logout, error page, 401), or ask the IdP (code
//! exchange, refresh). The shell performs the dispatch and calls `finish_login` or
//! `finish_refresh` with the reply.

use crate::authority;
use crate::cache::Key;
use crate::claims;
use crate::config::{Config, OidcConfig};
use crate::fetch::HttpRequest;
use crate::jwks::KeySet;
use crate::oidc::callback_memo::{CallbackMemo, Claim};
use crate::oidc::domain;
use crate::oidc::id_token::{self, Expectations};
use crate::oidc::login::{self, cookie_attributes, LoginRandom, PendingLogin};
use crate::oidc::provider::Provider;
use crate::oidc::refresh::{Refresh, RefreshMemo};
use crate::oidc::token_endpoint::{self, TokenResponse};
use crate::path;
use crate::request::{self, is_safe_header_value, Edits, Headers};
use crate::response::{self, AuthError};
use crate::session::chunks;
use crate::session::seal::{CookieKeys, NONCE_BYTES};
use crate::session::{Session, SessionCache, SessionState};
use serde_json::{Map, Value};
use std::rc::Rc;

/// What the filter asks of the host's cryptography: its CSPRNG and, for
/// `private_key_jwt`, a signature with the client's private key (the module never
/// signs with a private key itself).
pub trait HostCrypto {
    /// Random bytes. `false` when the host could not deliver: the caller fails
    /// closed rather than use predictable state, nonces or keys.
    fn fill(&mut self, bytes: &mut [u8]) -> bool;

    /// `message` signed by the host (Envoy's `sign` foreign function) with the
    /// PKCS#8 PEM `private_key`, hashing with `hash` (`sha256`), as the host
    /// returns it (RSA: the signature; ECDSA: DER). `Err` says why not.
    fn sign(
        &mut self,
        _private_key: &str,
        _hash: &str,
        _message: &[u8],
    ) -> Result<Vec<u8>, String> {
        Err("this host signs nothing".into())
    }
}

/// A reply the filter sends itself. Its `Debug` hides header values: a
/// `set-cookie` holds a sealed session, a `location` a login's state.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl std::fmt::Debug for LocalReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReply")
            .field("status", &self.status)
            .field("headers", &request::names_only(self.headers.iter()))
            .field("body", &self.body)
            .finish()
    }
}

#[derive(Debug)]
pub enum Step {
    /// The request carries a bearer token: the token rules alone decide.
    Bearer,
    /// No usable session and no token, with `allowMissing`: the policies judge the
    /// request as anonymous; if they need an identity, `login_or_401` follows.
    Anonymous,
    /// A valid session: forward with these edits; `response_cookies` go on the response.
    Allow {
        edits: Edits,
        /// Whose session: its claims are the identity for authorization.
        session: Rc<Session>,
        response_cookies: Vec<String>,
    },
    Reply(LocalReply),
    /// The browser is sent to the identity provider to log in.
    LoginRedirect(LocalReply),
    /// A callback that cannot be completed (stale, replayed or forged).
    CallbackRejected(LocalReply),
    /// A callback whose code this worker is exchanging or has exchanged: answered
    /// without a call to the IdP.
    CallbackReplayed(LocalReply),
    /// The logout path: cookies cleared, browser sent on.
    Logout(LocalReply),
    /// Exchange the callback's code; then `finish_login`.
    Exchange {
        request: HttpRequest,
        pending: PendingLogin,
    },
    /// Renew the session's tokens; then `finish_refresh`. `key` names the session
    /// in the [`RefreshMemo`].
    Refresh {
        request: HttpRequest,
        session: Session,
        key: Key,
    },
    /// Another request of this worker is at the token endpoint for the same thing
    /// (refreshing this session, or exchanging this callback's code): wait for it.
    AwaitOtherExchange,
    /// The provider's metadata is not known yet: wait for discovery.
    NeedProvider,
}

/// What every step needs to know about the request and the filter.
pub struct Context<'a> {
    pub config: &'a Config,
    pub oidc: &'a OidcConfig,
    pub provider: Option<&'a Provider>,
    pub cookie_keys: &'a CookieKeys,
    pub headers: &'a Headers,
    /// Seconds since the epoch, for tokens and cookies (whose times are seconds).
    pub now: u64,
    /// The same instant in milliseconds, for the worker's memos: a backoff of 1 s
    /// measured in whole seconds could end a millisecond after it began.
    pub now_ms: u64,
    /// The app's `allowMissing`: no session and no token is an anonymous request.
    pub allow_missing: bool,
    /// A token sits in some `jwtRules` location (extracted once, by the caller).
    pub bearer_token_present: bool,
    /// The request may not wait any longer (for keys or another request's refresh).
    pub final_attempt: bool,
}

impl Context<'_> {
    fn path(&self) -> &str {
        let path = self.headers.path();
        path.split(['?', '#']).next().unwrap_or("/")
    }

    fn redirect_uri(&self) -> String {
        login::redirect_uri(self.oidc, self.headers)
    }
}

pub fn begin(
    ctx: &Context,
    sessions: &mut SessionCache,
    refreshes: &mut RefreshMemo,
    callbacks: &mut CallbackMemo,
    entropy: &mut dyn HostCrypto,
) -> Step {
    if !within_the_sign_in_domain(ctx) {
        return Step::Reply(error_page(
            400,
            "This host is not within the domain this sign-in covers (its cookieDomain): it \
             cannot sign you in.",
        ));
    }
    if ctx.path() == ctx.oidc.logout_path {
        if !is_same_origin(ctx.headers) {
            return Step::Reply(logout_confirmation(&ctx.oidc.logout_path));
        }
        return logout(ctx);
    }
    if ctx.path() == ctx.oidc.callback_path {
        return callback(ctx, callbacks, entropy);
    }
    if ctx.bearer_token_present {
        return Step::Bearer;
    }
    let session = Session::open_cached(
        ctx.cookie_keys,
        &ctx.oidc.cookie_name,
        &ctx.oidc.session_purpose,
        ctx.headers,
        sessions,
        ctx.now,
    )
    .map_or(SessionState::Absent, |session| {
        session.judge(
            ctx.now,
            ctx.config.clock_skew_seconds,
            ctx.oidc.refresh_before_expiry_seconds,
        )
    });
    match session {
        SessionState::Valid(session) => allow(ctx, session, Vec::new()),
        SessionState::Refreshable {
            session,
            tokens_valid,
        } => {
            let sealed = chunks::read(ctx.headers, &ctx.oidc.cookie_name).unwrap_or_default();
            let key = sessions.key_of(b"refresh", sealed.as_bytes());
            refresh(ctx, session, tokens_valid, key, refreshes, entropy)
        }
        SessionState::Absent => no_session(ctx, entropy),
    }
}

/// With `redirectUri`, a block signs in the hosts of its cookie domain only: a
/// cookie set for that domain never reaches another host, whose logins would loop.
/// Hosts known at load were checked then; this is for those that are not (a
/// top-level block serves any host no app claims).
fn within_the_sign_in_domain(ctx: &Context) -> bool {
    let (Some(_), Some(sign_in_domain)) = (&ctx.oidc.redirect_uri, &ctx.oidc.domain) else {
        return true;
    };
    authority::of_request(ctx.headers)
        .is_some_and(|authority| domain::within(authority.host, sign_in_domain))
}

/// A session due for renewal (its tokens expire soon, or did) with a refresh
/// token: at most one refresh per session at a time on this worker; other
/// requests are served by the current tokens while they are still valid, else
/// wait for its result; while the IdP cannot answer, the session backs off
/// instead of retrying.
fn refresh(
    ctx: &Context,
    session: Rc<Session>,
    tokens_valid: bool,
    key: Key,
    refreshes: &mut RefreshMemo,
    entropy: &mut dyn HostCrypto,
) -> Step {
    let now_ms = ctx.now_ms;
    match refreshes.state(key, now_ms) {
        Some(Refresh::InFlight | Refresh::BackingOff) if tokens_valid => {
            allow(ctx, session, Vec::new())
        }
        Some(Refresh::InFlight) if ctx.final_attempt => no_session(ctx, entropy),
        Some(Refresh::InFlight) => Step::AwaitOtherExchange,
        Some(Refresh::Renewed { session, cookies }) => allow(ctx, session, cookies),
        Some(Refresh::Ended) => unauthenticated(ctx, entropy, clear_session(ctx)),
        Some(Refresh::BackingOff) => no_session(ctx, entropy),
        None => match (ctx.provider, session.refresh_token.as_deref()) {
            (None, _) => Step::NeedProvider,
            (Some(provider), Some(refresh_token)) => {
                // A refresh that cannot authenticate is a session that cannot be
                // renewed (the reason is the host's, logged where it failed).
                let Ok(assertion) = client_assertion(ctx, provider, entropy) else {
                    return no_session(ctx, entropy);
                };
                refreshes.start(key, now_ms);
                Step::Refresh {
                    request: token_endpoint::refresh(
                        ctx.oidc,
                        provider,
                        &ctx.config.clusters,
                        ctx.oidc.timeout_ms,
                        refresh_token,
                        assertion.as_deref(),
                    ),
                    session: Session::clone(&session),
                    key,
                }
            }
            (Some(_), None) => no_session(ctx, entropy),
        },
    }
}

/// The `client_assertion` of a token request, for the methods that send one:
/// `Ok(None)` for the others; `Err` when it could not be made (no randomness for
/// its `jti`, or the host would not sign).
fn client_assertion(
    ctx: &Context,
    provider: &Provider,
    host: &mut dyn HostCrypto,
) -> Result<Option<String>, String> {
    let oidc = ctx.oidc;
    let client = token_endpoint::Client {
        id: &oidc.client_id,
        secret: &oidc.client_secret,
        auth: oidc.client_auth,
    };
    let audience = token_endpoint::audience(oidc, provider);
    token_endpoint::client_assertion(&client, oidc.client_key.as_ref(), &audience, ctx.now, host)
}

fn no_session(ctx: &Context, entropy: &mut dyn HostCrypto) -> Step {
    if ctx.allow_missing {
        Step::Anonymous
    } else {
        login_or_401(ctx, entropy)
    }
}

/// A request that needs an identity and has none: a browser navigation is sent to
/// log in, anything else gets the 401 an API client can act on.
pub fn login_or_401(ctx: &Context, entropy: &mut dyn HostCrypto) -> Step {
    unauthenticated(ctx, entropy, Vec::new())
}

/// [`login_or_401`]; `clear` expires cookies of a dead session.
fn unauthenticated(ctx: &Context, entropy: &mut dyn HostCrypto, mut clear: Vec<String>) -> Step {
    if !login::is_navigation(ctx.headers) {
        let denial = response::deny(AuthError::Missing, "no session and no token", ctx.headers);
        let mut headers = denial.headers;
        headers.extend(
            clear
                .into_iter()
                .map(|cookie| ("set-cookie".to_string(), cookie)),
        );
        return Step::Reply(LocalReply {
            status: denial.status,
            headers,
            body: denial.body.to_string(),
        });
    }
    let Some(provider) = ctx.provider else {
        return Step::NeedProvider;
    };
    let mut random = LoginRandom {
        state: [0; 32],
        nonce: [0; 32],
        verifier: [0; 32],
        seal_nonce: [0; NONCE_BYTES],
    };
    let filled = entropy.fill(&mut random.state)
        && entropy.fill(&mut random.nonce)
        && entropy.fill(&mut random.verifier)
        && entropy.fill(&mut random.seal_nonce);
    if !filled {
        return Step::Reply(error_page(500, "The login could not be started."));
    }
    match login::start(
        ctx.oidc,
        provider,
        ctx.cookie_keys,
        ctx.headers,
        &random,
        ctx.now,
    ) {
        Some(redirect) => {
            clear.extend(redirect.set_cookies);
            Step::LoginRedirect(redirect_reply(&redirect.location, clear))
        }
        None => Step::Reply(error_page(500, "The login could not be started.")),
    }
}

/// A callback that checks out exchanges its code, once: see [`CallbackMemo`]. The
/// same callback sent again while its login cookie lasts (a reload during the
/// exchange, a double submit, a script replaying it) never reaches the IdP:
/// - while the first exchange is in flight, it waits for it (as for a refresh, up to
///   `timeout`, the first call's own timeout), so that it is answered after the first
///   one's cookies are set;
/// - then, and whenever later (or at once when there is no room to wait), it is sent
///   back to where the login started ([`replayed_callback`]).
///
/// A memo with no room (every entry an exchange in flight, which the cap on token
/// endpoint calls makes impossible in practice) refuses the callback with a 503
/// rather than let calls go unbounded.
fn callback(ctx: &Context, callbacks: &mut CallbackMemo, entropy: &mut dyn HostCrypto) -> Step {
    let Some(provider) = ctx.provider else {
        return Step::NeedProvider;
    };
    let assertion = match client_assertion(ctx, provider, entropy) {
        Ok(assertion) => assertion,
        Err(_) => {
            return Step::CallbackRejected(error_page(
                500,
                "The sign-in could not be completed: the client could not authenticate to \
                 the identity provider.",
            ))
        }
    };
    let checked =
        match login::check_callback(ctx.oidc, provider, ctx.cookie_keys, ctx.headers, ctx.now) {
            Ok(checked) => checked,
            Err(error) => {
                return Step::CallbackRejected(error_page(error.status(), &error.message()))
            }
        };
    let now_ms = ctx.now_ms;
    match callbacks.claim(&checked.pending.state, checked.pending.expires_at, now_ms) {
        Claim::Granted => Step::Exchange {
            request: token_endpoint::code_exchange(
                ctx.oidc,
                provider,
                &ctx.config.clusters,
                ctx.oidc.timeout_ms,
                &checked.code,
                &checked.pending.verifier,
                &ctx.redirect_uri(),
                assertion.as_deref(),
            ),
            pending: checked.pending,
        },
        Claim::InFlight if !ctx.final_attempt => Step::AwaitOtherExchange,
        Claim::InFlight | Claim::Spent => {
            Step::CallbackReplayed(replayed_callback(ctx, &checked.pending))
        }
        Claim::Full => Step::CallbackRejected(error_page(
            503,
            "Too many sign-ins at once. Please try again.",
        )),
    }
}

/// The answer to a callback whose code was already exchanged: a 302 back to where the
/// login started, with no cookie. If the first exchange's reply reached the browser,
/// it has its session there and the user is in; if not (a reload cancelled it), that
/// page starts a new login, which an IdP session makes seamless. A replay thus gets
/// nothing a replayer could use (no session, no IdP call), and a user whose browser
/// sent the callback twice is not shown an error. Not a loop: a new login needs a new
/// trip through the IdP and a new state.
fn replayed_callback(ctx: &Context, pending: &PendingLogin) -> LocalReply {
    let location = domain::return_location(ctx.oidc, ctx.headers, &pending.return_to);
    redirect_reply(&location, Vec::new())
}

/// What finishing a login reads of its callback request, kept while the token
/// endpoint answers instead of the whole request: the host (which app), the origin's
/// scheme, `accept`, the method and the path without its query (the log line; the
/// query holds the code), and the names — not the values — of the session cookie's
/// chunks, so that chunks of an earlier, larger session are expired.
pub fn finish_login_headers(oidc: &OidcConfig, request: &Headers) -> Headers {
    let mut kept = Headers::default();
    for (name, value) in request.iter() {
        match name {
            ":method" | ":scheme" | ":authority" | "host" | "x-forwarded-proto" | "accept" => {
                kept.push(name, value)
            }
            ":path" => kept.push(name, path::without_query(value)),
            _ => {}
        }
    }
    let chunk_names = chunks::present(request, &oidc.cookie_name);
    if !chunk_names.is_empty() {
        kept.push("cookie", &(chunk_names.join("=; ") + "="));
    }
    kept
}

/// After the code exchange: validate the ID token, seal the session, and send the
/// browser back where it started. `keys` are the issuer's keys.
pub fn finish_login(
    ctx: &Context,
    pending: &PendingLogin,
    status: Option<u32>,
    body: &[u8],
    keys: &KeySet,
    entropy: &mut dyn HostCrypto,
) -> Result<LocalReply, (LocalReply, String)> {
    let tokens = token_endpoint::parse_response(status, body)
        .map_err(|why| (idp_failure_page(status), why))?;
    let Some(id_token) = tokens.id_token.clone() else {
        return Err((
            error_page(502, "The identity provider sent no ID token."),
            "no id_token".into(),
        ));
    };
    let expect = expectations(ctx, &pending.nonce);
    let claims = id_token::validate(&id_token, keys, &expect).map_err(|why| {
        let message = if why == id_token::UNKNOWN_KEY {
            "The identity provider's signing keys just changed. Please try again."
        } else {
            "The identity provider's answer could not be verified."
        };
        (error_page(401, message), why)
    })?;
    let session = new_session(ctx, claims, id_token, &tokens);
    let mut cookies = seal_session(ctx, &session, entropy).ok_or_else(|| {
        (
            error_page(500, "The session is too large to store."),
            "session too large".into(),
        )
    })?;
    let (login_cookie, _) = login::login_cookie(ctx.oidc, &pending.state);
    cookies.push(chunks::set_cookie(
        &login_cookie,
        "",
        Some(0),
        &cookie_attributes(ctx.oidc),
    ));
    let location = domain::return_location(ctx.oidc, ctx.headers, &pending.return_to);
    Ok(redirect_reply(&location, cookies))
}

/// After a refresh: the renewed session, or a fresh login (browsers) / 401 (APIs).
///
/// The session cookie is cleared only when the session is over: the IdP refused the
/// refresh (4xx, e.g. `invalid_grant`) or its tokens failed validation. When the IdP
/// did not answer usefully (timeout, reset, 5xx, an unusable body), or signed with a
/// key we have not fetched yet (it just rotated; the caller refetches), the cookie is
/// kept, so that an outage or a rotation does not cost every session its refresh
/// token: the next request after the IdP is back (or the keys are) renews it.
///
/// The outcome is remembered under `key` for the requests that waited on it, and for
/// the backoff: 1 s after a first failure to reach the IdP, doubling up to 60 s.
#[allow(clippy::too_many_arguments)] // the reply, and where its outcome goes
pub fn finish_refresh(
    ctx: &Context,
    old: Session,
    key: Key,
    refreshes: &mut RefreshMemo,
    status: Option<u32>,
    body: &[u8],
    keys: &KeySet,
    entropy: &mut dyn HostCrypto,
) -> (Step, Option<String>) {
    let now_ms = ctx.now_ms;
    // A refresh made ahead of expiry that cannot be made now leaves the current
    // tokens to serve until they expire.
    let still_valid = ctx.now
        < old
            .tokens_expire_at
            .saturating_add(ctx.config.clock_skew_seconds);
    let current = still_valid.then(|| Rc::new(old.clone()));
    let (renewed, session_over) = match token_endpoint::parse_response(status, body) {
        Ok(tokens) => {
            let renewed = refreshed_session(ctx, old, &tokens, keys);
            let stale_keys =
                renewed.as_ref().err().map(String::as_str) == Some(id_token::UNKNOWN_KEY);
            (renewed, !stale_keys)
        }
        Err(why) => (Err(why), matches!(status, Some(400..=499))),
    };
    match renewed {
        Ok(session) => match seal_session(ctx, &session, entropy) {
            Some(cookies) => {
                let session = Rc::new(session);
                refreshes.renewed(key, Rc::clone(&session), cookies.clone(), now_ms);
                (allow(ctx, session, cookies), None)
            }
            None => {
                refreshes.ended(key, now_ms);
                (
                    unauthenticated(ctx, entropy, clear_session(ctx)),
                    Some("session too large".into()),
                )
            }
        },
        Err(why) => {
            if session_over {
                refreshes.ended(key, now_ms);
                return (unauthenticated(ctx, entropy, clear_session(ctx)), Some(why));
            }
            refreshes.failed(key, now_ms);
            match current {
                Some(session) => (allow(ctx, session, Vec::new()), Some(why)),
                None => (unauthenticated(ctx, entropy, Vec::new()), Some(why)),
            }
        }
    }
}

/// The tokens of a refresh reply without an ID token live this long when the reply
/// has no `expires_in` either (OIDC Core 12.2 allows both to be absent).
pub const REFRESHED_TOKENS_DEFAULT_TTL_SECONDS: u64 = 300;
const REFRESHED_TOKENS_MIN_TTL_SECONDS: u64 = 10;

fn refreshed_session(
    ctx: &Context,
    old: Session,
    tokens: &TokenResponse,
    keys: &KeySet,
) -> Result<Session, String> {
    let (claims, id_token) = match &tokens.id_token {
        Some(id_token) => {
            // A refreshed ID token need not carry a nonce; if it does, it must be the
            // original one (OIDC Core 12.2).
            let original = old
                .claims
                .get("nonce")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let claims =
                id_token::validate_without_nonce(id_token, keys, &expectations(ctx, original))?;
            let nonce = claims.get("nonce").and_then(Value::as_str);
            if nonce.is_some_and(|nonce| nonce != original) {
                return Err("refreshed ID token has another nonce".into());
            }
            // OIDC Core 12.2: the same issuer and subject as the session's.
            let same = |name: &str| claims.get(name) == old.claims.get(name);
            if !(same("iss") && same("sub")) {
                return Err("refreshed ID token names another issuer or subject".into());
            }
            (claims, Some(id_token.clone()))
        }
        None => (old.claims.clone(), old.id_token.clone()),
    };
    let refreshed_id_token = tokens.id_token.is_some();
    let mut session = new_session(ctx, claims, id_token.unwrap_or_default(), tokens);
    if !refreshed_id_token {
        // The old ID token's `exp` is past: the renewed tokens' lifetime is the
        // access token's, or a bounded default.
        // At least a few seconds, so that `expires_in: 0` cannot make every request
        // refresh.
        let lifetime = tokens
            .expires_in
            .unwrap_or(REFRESHED_TOKENS_DEFAULT_TTL_SECONDS)
            .max(REFRESHED_TOKENS_MIN_TTL_SECONDS);
        session.tokens_expire_at = ctx.now.saturating_add(lifetime);
    }
    session.refresh_token = tokens.refresh_token.clone().or(old.refresh_token);
    session.expires_at = old.expires_at;
    Ok(session)
}

fn expectations<'a>(ctx: &'a Context, nonce: &'a str) -> Expectations<'a> {
    Expectations {
        issuer: &ctx.oidc.issuer,
        client_id: &ctx.oidc.client_id,
        nonce,
        now: ctx.now,
        skew: ctx.config.clock_skew_seconds,
        max_bytes: ctx.config.max_token_bytes,
        backend: &ctx.config.signature_backend,
    }
}

fn new_session(
    ctx: &Context,
    claims: Map<String, Value>,
    id_token: String,
    tokens: &TokenResponse,
) -> Session {
    let id_expiry = claims.get("exp").and_then(Value::as_u64).unwrap_or(ctx.now);
    let access_expiry = tokens
        .expires_in
        .map_or(u64::MAX, |seconds| ctx.now.saturating_add(seconds));
    let forward_access = ctx
        .oidc
        .forward_token
        .as_ref()
        .is_some_and(|forward| !forward.id_token);
    Session {
        claims,
        id_token: (!id_token.is_empty()).then_some(id_token),
        access_token: forward_access.then(|| tokens.access_token.clone()),
        refresh_token: tokens.refresh_token.clone(),
        tokens_expire_at: id_expiry.min(access_expiry),
        tokens_issued_at: ctx.now,
        expires_at: ctx.now.saturating_add(ctx.oidc.session_ttl_ms / 1000),
    }
}

fn seal_session(
    ctx: &Context,
    session: &Session,
    entropy: &mut dyn HostCrypto,
) -> Option<Vec<String>> {
    let mut nonce = [0; NONCE_BYTES];
    if !entropy.fill(&mut nonce) {
        return None;
    }
    let sealed = session.seal(ctx.cookie_keys, &ctx.oidc.session_purpose, nonce)?;
    let max_age = session.expires_at.saturating_sub(ctx.now);
    let present = chunks::present(ctx.headers, &ctx.oidc.cookie_name);
    chunks::store(
        &ctx.oidc.cookie_name,
        &sealed,
        max_age,
        &cookie_attributes(ctx.oidc),
        &present,
    )
}

fn clear_session(ctx: &Context) -> Vec<String> {
    chunks::clear(
        &chunks::present(ctx.headers, &ctx.oidc.cookie_name),
        &cookie_attributes(ctx.oidc),
    )
}

/// A session request goes upstream without our cookies, with identity headers set
/// and client copies of them removed.
fn allow(ctx: &Context, session: Rc<Session>, response_cookies: Vec<String>) -> Step {
    let mut edits = Edits::default();
    request::remove_identity_headers(&ctx.config.output_headers, ctx.headers, &mut edits);
    strip_filter_cookies(ctx.config, ctx.headers, &mut edits);
    let outputs = ctx.config.output_claim_to_headers.iter();
    for output in outputs.chain(&ctx.oidc.output_claim_to_headers) {
        let value = claims::lookup(&session.claims, &output.claim).and_then(claims::scalar_text);
        if let Some(value) = value.filter(|value| is_safe_header_value(value)) {
            edits.set(&output.header, value);
        }
    }
    if let Some(forward) = &ctx.oidc.forward_token {
        let (token, expires_at) = if forward.id_token {
            // After a refresh without a new ID token, the session's tokens outlive
            // the ID token it keeps: its own `exp` decides.
            let exp = session.claims.get("exp").and_then(Value::as_u64);
            let expires_at = exp.map_or(session.tokens_expire_at, |exp| {
                exp.min(session.tokens_expire_at)
            });
            (&session.id_token, expires_at)
        } else {
            (&session.access_token, session.tokens_expire_at)
        };
        // Never a token past its `exp` (no skew: the upstream checks it too).
        let current = token
            .as_ref()
            .filter(|token| ctx.now < expires_at && is_safe_header_value(token));
        match current {
            Some(token) => {
                let value = if forward.header == "authorization" {
                    format!("Bearer {token}")
                } else {
                    token.clone()
                };
                edits.set(&forward.header, value);
            }
            // Nor the client's own value in its place.
            None => edits.remove(&forward.header),
        }
    }
    Step::Allow {
        edits,
        session,
        response_cookies,
    }
}

/// The filter's own cookies (session chunks and the login cookie) of every login
/// configured never reach the upstream, whatever path the request takes and
/// whichever app it is for: another login's session under a shared
/// `cookieDomain` holds a refresh token too.
pub fn strip_filter_cookies(config: &Config, headers: &Headers, edits: &mut Edits) {
    let is_ours = |name: &str| {
        config
            .login_cookie_names
            .iter()
            .any(|family| chunks::is_set_by(family, name))
    };
    request::remove_cookies(headers, edits, &is_ours);
}

/// Whether the browser says the request comes from our own origin: Fetch Metadata
/// (`same-origin`, or `none` for a typed URL or bookmark), else `Origin`, else
/// `Referer`. Without any of them we cannot tell, and treat it as cross-site.
fn is_same_origin(headers: &Headers) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let ours = login::origin(headers);
    if let Some(origin) = headers.get("origin") {
        return origin == ours;
    }
    headers.get("referer").is_some_and(|referer| {
        referer
            .strip_prefix(ours.as_str())
            .is_some_and(|rest| matches!(rest.bytes().next(), None | Some(b'/' | b'?' | b'#')))
    })
}

/// The 403 a signed-in browser user gets from a policy: who they are signed in as
/// (so they can tell a wrong account from a missing right) and a button that
/// signs them out, posted from this origin as the logout path requires. API
/// clients keep Istio's plain `RBAC: access denied`.
pub fn refused_page(claims: &Map<String, Value>, logout_path: &str) -> LocalReply {
    let who = ["email", "preferred_username", "name", "sub"]
        .iter()
        .find_map(|claim| claims.get(*claim).and_then(Value::as_str))
        .unwrap_or("an unknown user");
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Access denied</title></head>\
         <body><h1>Access denied</h1><p>You are signed in as <strong>{}</strong>, who may not \
         open this page.</p><form method=\"post\" action=\"{}\"><p>To use another account, \
         sign out first.</p><button type=\"submit\">Sign out</button></form></body></html>",
        escape_html(who),
        escape_html(logout_path)
    );
    let mut reply = logout_confirmation(logout_path);
    reply.status = 403;
    reply.body = body;
    reply
}

/// A cross-site request to the logout path (a link or an image on another site)
/// must not log the user out: it gets a page whose button POSTs from our origin.
fn logout_confirmation(logout_path: &str) -> LocalReply {
    let action = escape_html(logout_path);
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign out</title></head>\
         <body><form method=\"post\" action=\"{action}\"><p>Sign out of this site?</p>\
         <button type=\"submit\">Sign out</button></form></body></html>"
    );
    LocalReply {
        status: 200,
        headers: vec![
            (
                "content-type".to_string(),
                "text/html; charset=utf-8".to_string(),
            ),
            ("cache-control".to_string(), "no-store".to_string()),
            // The button must not be framed by another site (clickjacking).
            (
                "content-security-policy".to_string(),
                "frame-ancestors 'none'".to_string(),
            ),
        ],
        body,
    }
}

fn logout(ctx: &Context) -> Step {
    let session = Session::open(
        ctx.cookie_keys,
        &ctx.oidc.cookie_name,
        &ctx.oidc.session_purpose,
        ctx.headers,
    );
    let mut cookies = clear_session(ctx);
    let attributes = cookie_attributes(ctx.oidc);
    cookies.push(chunks::set_cookie(
        &ctx.oidc.login_cookie_name,
        "",
        Some(0),
        &attributes,
    ));
    // With `redirectUri`, the logins under way anywhere in the domain end too.
    if ctx.oidc.redirect_uri.is_some() {
        for name in login::logins_in_flight(ctx.oidc, ctx.headers) {
            cookies.push(chunks::set_cookie(&name, "", Some(0), &attributes));
        }
    }
    let after_logout = ctx.oidc.post_logout_redirect_uri.as_deref().map(|uri| {
        if uri.starts_with('/') {
            format!("{}{uri}", login::origin(ctx.headers))
        } else {
            uri.to_string()
        }
    });
    let end_session = ctx
        .provider
        .and_then(|provider| provider.end_session_endpoint.clone());
    let location = match end_session {
        Some(url) => {
            let id_token = session.as_ref().and_then(|s| s.id_token.as_deref());
            let pairs = [
                Some(("client_id", ctx.oidc.client_id.as_str())),
                id_token.map(|token| ("id_token_hint", token)),
                after_logout
                    .as_deref()
                    .map(|uri| ("post_logout_redirect_uri", uri)),
            ];
            url.with_query_pairs(pairs.into_iter().flatten())
                .to_string()
        }
        None => after_logout.unwrap_or_else(|| "/".to_string()),
    };
    Step::Logout(redirect_reply(&location, cookies))
}

fn redirect_reply(location: &str, cookies: Vec<String>) -> LocalReply {
    let mut headers = vec![
        ("location".to_string(), location.to_string()),
        ("cache-control".to_string(), "no-store".to_string()),
    ];
    headers.extend(
        cookies
            .into_iter()
            .map(|cookie| ("set-cookie".to_string(), cookie)),
    );
    LocalReply {
        status: 302,
        headers,
        body: String::new(),
    }
}

fn idp_failure_page(status: Option<u32>) -> LocalReply {
    match status {
        Some(400..=499) => error_page(
            401,
            "The identity provider refused this login. Please start again.",
        ),
        _ => error_page(
            502,
            "The identity provider could not be reached. Please try again.",
        ),
    }
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A small page; the message is ours, never echoed input, but is escaped anyway.
pub fn error_page(status: u32, message: &str) -> LocalReply {
    let escaped = escape_html(message);
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in problem</title></head>\
         <body><h1>Sign-in problem</h1><p>{escaped}</p><p><a href=\"/\">Start again</a></p></body></html>"
    );
    LocalReply {
        status,
        headers: vec![
            (
                "content-type".to_string(),
                "text/html; charset=utf-8".to_string(),
            ),
            ("cache-control".to_string(), "no-store".to_string()),
        ],
        body,
    }
}

#[cfg(test)]
mod tests;
