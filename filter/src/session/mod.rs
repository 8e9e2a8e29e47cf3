//! Stateless browser sessions: what the filter needs about a logged-in user, sealed
//! with AES-256-GCM into a cookie, chunked when large. Any replica can open it.

pub mod chunks;
pub mod seal;

use crate::cache::BoundedCache;
use crate::request::Headers;
use crate::strict_json::{self, take_string, take_u64};
use seal::{CookieKeys, NONCE_BYTES};
use serde_json::{Map, Value};
use std::rc::Rc;

/// What a logged-in browser carries. Its JSON uses one-letter keys (see
/// [`Session::to_json`]) to keep the cookie small. Its `Debug` shows no token.
#[derive(Clone, PartialEq)]
pub struct Session {
    /// The ID token's claims: identity for rules and output headers.
    pub claims: Map<String, Value>,
    /// Kept for `id_token_hint` at logout and for forwarding upstream.
    pub id_token: Option<String>,
    /// Kept only when the access token is forwarded upstream.
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the tokens expire (seconds): a refresh token renews them ahead of it;
    /// without one, the session goes on but no expired token is forwarded.
    pub tokens_expire_at: u64,
    /// When those tokens were issued (seconds): half their lifetime bounds how early
    /// they are renewed. Sessions sealed before it was kept read it as
    /// `tokens_expire_at` (renewed at expiry, as they were).
    pub tokens_issued_at: u64,
    /// When the session ends whatever the tokens say (`sessionTtl`).
    pub expires_at: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Session")
            .field("claims", &self.claims)
            .field("id_token", &held(&self.id_token))
            .field("access_token", &held(&self.access_token))
            .field("refresh_token", &held(&self.refresh_token))
            .field("tokens_expire_at", &self.tokens_expire_at)
            .field("tokens_issued_at", &self.tokens_issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Sessions already opened, by cookie: a busy browser's requests skip the
/// decryption and parsing.
pub type SessionCache = BoundedCache<Session>;

#[derive(Debug, PartialEq)]
pub enum SessionState {
    Valid(Rc<Session>),
    /// A refresh token should renew the tokens now: they are within
    /// `refreshBeforeExpiry` of their expiry (`tokens_valid`: still usable meanwhile)
    /// or past it.
    Refreshable {
        session: Rc<Session>,
        tokens_valid: bool,
    },
    /// No session, or one that cannot be used: treated as logged out.
    Absent,
}

impl Session {
    /// `{"c": claims, "i": id token, "a": access token, "r": refresh token,
    /// "t": tokens expire at, "n": tokens issued at, "e": session expires at}`;
    /// absent tokens are left out.
    pub fn to_json(&self) -> Option<Vec<u8>> {
        let mut map = Map::new();
        map.insert("c".into(), Value::Object(self.claims.clone()));
        for (key, token) in [
            ("i", &self.id_token),
            ("a", &self.access_token),
            ("r", &self.refresh_token),
        ] {
            if let Some(token) = token {
                map.insert(key.into(), Value::String(token.clone()));
            }
        }
        map.insert("t".into(), Value::from(self.tokens_expire_at));
        map.insert("n".into(), Value::from(self.tokens_issued_at));
        map.insert("e".into(), Value::from(self.expires_at));
        serde_json::to_vec(&map).ok()
    }

    /// The inverse of [`Session::to_json`]; unknown keys are ignored.
    pub fn from_json(bytes: &[u8]) -> Option<Session> {
        let mut map = strict_json::parse_object(bytes).ok()?;
        let Some(Value::Object(claims)) = map.remove("c") else {
            return None;
        };
        let tokens_expire_at = take_u64(&mut map, "t")?;
        Some(Session {
            claims,
            id_token: take_string(&mut map, "i")?,
            access_token: take_string(&mut map, "a")?,
            refresh_token: take_string(&mut map, "r")?,
            tokens_issued_at: match map.get("n") {
                Some(_) => take_u64(&mut map, "n")?,
                None => tokens_expire_at,
            },
            tokens_expire_at,
            expires_at: take_u64(&mut map, "e")?,
        })
    }

    /// Sealed for `purpose` (see [`CookieKeys::seal`]), which only the same
    /// purpose opens.
    pub fn seal(
        &self,
        keys: &CookieKeys,
        purpose: &str,
        nonce: [u8; NONCE_BYTES],
    ) -> Option<String> {
        keys.seal(purpose, &self.to_json()?, nonce)
    }

    /// The session in the request's cookie `cookie_name`, sealed for `purpose`.
    /// Tampered, truncated, foreign, old-key or malformed cookies are simply no session.
    pub fn open(
        keys: &CookieKeys,
        cookie_name: &str,
        purpose: &str,
        headers: &Headers,
    ) -> Option<Session> {
        let sealed = chunks::read(headers, cookie_name)?;
        Self::open_sealed(keys, purpose, &sealed).map(|(session, _)| session)
    }

    /// The session in one sealed value, and the size of its JSON.
    fn open_sealed(keys: &CookieKeys, purpose: &str, sealed: &str) -> Option<(Session, usize)> {
        let plain = keys.open(purpose, sealed)?;
        let session = Self::from_json(&plain)?;
        Some((session, plain.len()))
    }

    /// [`Session::open`] through `cache`. Only sessions that opened are cached, so
    /// garbage cookies cannot displace real ones.
    pub fn open_cached(
        keys: &CookieKeys,
        cookie_name: &str,
        purpose: &str,
        headers: &Headers,
        cache: &mut SessionCache,
        now: u64,
    ) -> Option<Rc<Session>> {
        let sealed = chunks::read(headers, cookie_name)?;
        if !cache.enabled() {
            let (session, _) = Self::open_sealed(keys, purpose, &sealed)?;
            return Some(Rc::new(session));
        }
        let cache_key = cache.key_of(purpose.as_bytes(), sealed.as_bytes());
        let cached = cache.get(&cache_key, now);
        cache.count(cached.is_some());
        if cached.is_some() {
            return cached;
        }
        let (session, json_bytes) = Self::open_sealed(keys, purpose, &sealed)?;
        let expires_at = session.expires_at;
        // Parsed claims and tokens cost about twice their JSON.
        let bytes = json_bytes.saturating_mul(2);
        Some(cache.insert(cache_key, session, bytes, expires_at, now))
    }

    /// What the session is worth at `now`. It ends at `sessionTtl` whatever its
    /// tokens say. With a refresh token, the tokens are renewed `refresh_before`
    /// seconds ahead of their expiry (at most half their lifetime ahead, so short
    /// tokens are not renewed on every request). Without one, the session lasts
    /// its `sessionTtl` as a cookie session does; its identity still holds, and
    /// `flow` forwards no token past its `exp`.
    pub fn judge(self: Rc<Self>, now: u64, skew: u64, refresh_before: u64) -> SessionState {
        if now >= self.expires_at {
            return SessionState::Absent;
        }
        if self.refresh_token.is_none() {
            return SessionState::Valid(self);
        }
        let lifetime = self.tokens_expire_at.saturating_sub(self.tokens_issued_at);
        let ahead = refresh_before.min(lifetime / 2);
        if now < self.tokens_expire_at.saturating_sub(ahead) {
            return SessionState::Valid(self);
        }
        let tokens_valid = now < self.tokens_expire_at.saturating_add(skew);
        SessionState::Refreshable {
            session: self,
            tokens_valid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn session(refresh: Option<&str>) -> Session {
        Session {
            claims: json!({"sub": "alice", "email": "alice@example.test"})
                .as_object()
                .unwrap()
                .clone(),
            id_token: Some("id.token.value".into()),
            access_token: None,
            refresh_token: refresh.map(str::to_string),
            tokens_expire_at: 1_000,
            tokens_issued_at: 700,
            expires_at: 5_000,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn debug_shows_claims_but_no_token() {
        let text = format!("{:?}", session(Some("refresh-secret")));
        assert!(
            !text.contains("refresh-secret") && !text.contains("id.token.value"),
            "{text}"
        );
        assert!(text.contains("alice@example.test"), "{text}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn round_trips_through_chunked_cookies() {
        let keys = CookieKeys::new(&[[9; 32]]);
        let mut big = session(Some("r"));
        big.claims.insert("blob".into(), json!("x".repeat(9_000)));
        let sealed = big.seal(&keys, "sess", [1; 12]).unwrap();
        let set = chunks::store(
            "sess",
            &sealed,
            60,
            &chunks::CookieAttributes {
                domain: None,
                secure: true,
            },
            &[],
        )
        .unwrap();
        assert!(set.len() >= 3, "a 9 KB session needs chunks");
        let cookie = set
            .iter()
            .map(|h| h.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let headers = Headers::new(vec![("cookie".into(), cookie)]);
        assert_eq!(Session::open(&keys, "sess", "sess", &headers), Some(big));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn expiry_decides_valid_refreshable_or_absent() {
        let judge = |refresh: Option<&str>, now, skew, before| {
            Rc::new(session(refresh)).judge(now, skew, before)
        };
        let refreshable = |tokens_valid| SessionState::Refreshable {
            session: Rc::new(session(Some("r"))),
            tokens_valid,
        };
        assert!(matches!(
            judge(Some("r"), 900, 0, 60),
            SessionState::Valid(_)
        ));
        // Renewed ahead of expiry, while its tokens still serve...
        assert_eq!(judge(Some("r"), 940, 0, 60), refreshable(true));
        assert_eq!(judge(Some("r"), 1_030, 60, 60), refreshable(true), "skew");
        // ... at most half their lifetime (300 s) ahead ...
        assert!(matches!(
            judge(Some("r"), 849, 0, 600),
            SessionState::Valid(_)
        ));
        assert_eq!(judge(Some("r"), 850, 0, 600), refreshable(true));
        // ... and after it, with tokens that no longer serve (from `exp` on).
        assert_eq!(judge(Some("r"), 999, 0, 60), refreshable(true));
        assert_eq!(judge(Some("r"), 1_000, 0, 60), refreshable(false));
        assert_eq!(judge(Some("r"), 2_000, 0, 60), refreshable(false));
        // Without a refresh token the session lasts its TTL.
        assert!(matches!(judge(None, 2_000, 0, 60), SessionState::Valid(_)));
        assert_eq!(judge(None, 5_000, 0, 60), SessionState::Absent);
        assert_eq!(
            judge(Some("r"), 5_000, 0, 60),
            SessionState::Absent,
            "session TTL is final"
        );
    }

    /// Cookies sealed before `n` was kept renew at expiry, as they did.
    #[wasm_bindgen_test(unsupported = test)]
    fn sessions_without_an_issue_time_renew_at_expiry() {
        let mut json: Map<String, Value> =
            serde_json::from_slice(&session(Some("r")).to_json().unwrap()).unwrap();
        json.remove("n");
        let old = Session::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(old.tokens_issued_at, 1_000);
        assert!(matches!(
            Rc::new(old).judge(999, 0, 60),
            SessionState::Valid(_)
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_cookie_sealed_under_another_name_is_no_session() {
        let keys = CookieKeys::new(&[[9; 32]]);
        let sealed = session(None).seal(&keys, "other", [1; 12]).unwrap();
        let headers = Headers::new(vec![("cookie".into(), format!("sess={sealed}"))]);
        assert_eq!(Session::open(&keys, "sess", "sess", &headers), None);
    }

    fn small_cache() -> SessionCache {
        SessionCache::new(
            crate::cache::Limits {
                max_entries: 16,
                max_bytes: 1 << 20,
            },
            [1; 16],
        )
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_opened_session_is_served_from_the_cache_until_it_ends() {
        let keys = CookieKeys::new(&[[9; 32]]);
        let sealed = session(None).seal(&keys, "sess", [1; 12]).unwrap();
        let headers = Headers::new(vec![("cookie".into(), format!("sess={sealed}"))]);
        let mut cache = small_cache();
        let first = Session::open_cached(&keys, "sess", "sess", &headers, &mut cache, 100).unwrap();
        let again = Session::open_cached(&keys, "sess", "sess", &headers, &mut cache, 101).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        assert_eq!((cache.misses, cache.hits), (1, 1));
        // `expires_at` (5_000) ends the entry with the session.
        let late =
            Session::open_cached(&keys, "sess", "sess", &headers, &mut cache, 5_000).unwrap();
        assert!(!Rc::ptr_eq(&first, &late));
        assert_eq!(late.judge(5_000, 0, 60), SessionState::Absent);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cookies_that_do_not_open_are_not_cached() {
        let keys = CookieKeys::new(&[[9; 32]]);
        let sealed = session(None).seal(&keys, "other", [1; 12]).unwrap();
        let mut cache = small_cache();
        for cookie in [
            format!("sess={sealed}"),
            "sess=garbage".into(),
            "sess=".into(),
        ] {
            let headers = Headers::new(vec![("cookie".into(), cookie)]);
            assert_eq!(
                Session::open_cached(&keys, "sess", "sess", &headers, &mut cache, 100),
                None
            );
        }
        assert!(cache.is_empty());
    }
}
