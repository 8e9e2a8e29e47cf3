//! Session cookies with a fixed key: opening arbitrary cookie headers and chunk
//! sets (`Session::open`, `chunks::read`, `CookieKeys::open`), and the round trip:
//! any session sealed and stored in (chunked) cookies opens to the same session.
#![no_main]

use arbitrary::Arbitrary;
use fuzz_support::headers;
use libfuzzer_sys::fuzz_target;
use oidc_filter::session::chunks::{self, CookieAttributes, MAX_CHUNKS};
use oidc_filter::session::seal::CookieKeys;
use oidc_filter::session::Session;
use serde_json::{Map, Value};

const NAME: &str = "sess";

#[derive(Arbitrary, Debug)]
enum ClaimValue {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Flag(bool),
    Null,
    List(Vec<String>),
    Object(Vec<(String, String)>),
}

impl ClaimValue {
    fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::from(text.as_str()),
            Self::Unsigned(n) => Value::from(*n),
            Self::Signed(n) => Value::from(*n),
            Self::Flag(flag) => Value::from(*flag),
            Self::Null => Value::Null,
            Self::List(items) => Value::from(items.clone()),
            Self::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Arbitrary `cookie` header values.
    Open(Vec<String>),
    /// Arbitrary chunk values under `sess_<i>` (and maybe a bare `sess`).
    Chunks {
        single: Option<String>,
        parts: Vec<String>,
    },
    /// A real sealed session with bytes flipped: must open to nothing or to itself.
    Tamper {
        claims: Vec<(String, ClaimValue)>,
        flips: Vec<(u16, u8)>,
    },
    /// Seal, store, read back.
    RoundTrip {
        claims: Vec<(String, ClaimValue)>,
        id_token: Option<String>,
        access_token: Option<String>,
        refresh_token: Option<String>,
        tokens_expire_at: u64,
        expires_at: u64,
        nonce: [u8; 12],
        /// Chunks `sess_0..` of an earlier session the browser still has.
        stale_chunks: u8,
    },
}

fn keys() -> CookieKeys {
    CookieKeys::new(&[[7; 32], [9; 32]])
}

fn attributes() -> CookieAttributes {
    CookieAttributes {
        domain: None,
        secure: true,
    }
}

fn claims_of(pairs: &[(String, ClaimValue)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
}

/// The request a browser sends back for these `Set-Cookie` values.
fn cookie_header(set_cookies: &[String]) -> String {
    set_cookies
        .iter()
        .filter(|header| !header.contains("Max-Age=0"))
        .map(|header| header.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fuzz_target!(|input: Input| {
    let keys = keys();
    match input {
        Input::Open(values) => {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("cookie", v.as_str())).collect();
            let request = headers(&pairs);
            let _ = Session::open(&keys, NAME, NAME, &request);
            let _ = chunks::present(&request, NAME);
            for value in &values {
                let _ = keys.open(NAME, value);
            }
        }
        Input::Chunks { single, parts } => {
            let mut cookie: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, part)| format!("{NAME}_{i}={part}"))
                .collect();
            if let Some(single) = single {
                cookie.push(format!("{NAME}={single}"));
            }
            let request = headers(&[("cookie", &cookie.join("; "))]);
            if let Some(value) = chunks::read(&request, NAME) {
                assert!(value.len() <= cookie.join("; ").len());
            }
            let _ = Session::open(&keys, NAME, NAME, &request);
        }
        Input::Tamper { claims, flips } => {
            let session = Session {
                claims: claims_of(&claims),
                id_token: None,
                access_token: None,
                refresh_token: None,
                tokens_expire_at: 1,
                tokens_issued_at: 0,
                expires_at: 2,
            };
            let Some(sealed) = session.seal(&keys, NAME, [3; 12]) else {
                return;
            };
            let mut bytes = sealed.into_bytes();
            let mut changed = false;
            for (at, xor) in flips {
                let len = bytes.len();
                if let Some(byte) = bytes.get_mut(at as usize % len.max(1)) {
                    *byte ^= xor;
                    changed |= xor != 0;
                }
            }
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            let request = headers(&[("cookie", &format!("{NAME}={tampered}"))]);
            let opened = Session::open(&keys, NAME, NAME, &request);
            if let Some(opened) = opened {
                // base64url decoding may ignore nothing: a change must not open...
                // ...unless the flips cancelled out.
                assert!(!changed || opened == session, "a tampered cookie opened");
            }
        }
        Input::RoundTrip {
            claims,
            id_token,
            access_token,
            refresh_token,
            tokens_expire_at,
            expires_at,
            nonce,
            stale_chunks,
        } => {
            let session = Session {
                claims: claims_of(&claims),
                id_token,
                access_token,
                refresh_token,
                // Issued a while before it expires (any amount: the judge bounds it).
                tokens_issued_at: tokens_expire_at / 2,
                tokens_expire_at,
                expires_at,
            };
            let sealed = session
                .seal(&keys, NAME, nonce)
                .expect("sealing with a key never fails");
            let opened = keys.open(NAME, &sealed).expect("a sealed session opens");
            assert_eq!(opened, session.to_json().unwrap());
            assert_eq!(Session::from_json(&opened).as_ref(), Some(&session));
            assert_eq!(keys.open("other", &sealed), None, "the name is bound in");
            let present: Vec<String> = (0..usize::from(stale_chunks) % (MAX_CHUNKS + 2))
                .map(|i| format!("{NAME}_{i}"))
                .collect();
            let Some(set_cookies) = chunks::store(NAME, &sealed, 60, &attributes(), &present)
            else {
                assert!(sealed.len() > chunks::MAX_CHUNK_BYTES * MAX_CHUNKS);
                return;
            };
            for header in &set_cookies {
                fuzz_support::assert_safe_header_value("set-cookie", header);
            }
            let request = headers(&[("cookie", &cookie_header(&set_cookies))]);
            let opened = Session::open(&keys, NAME, NAME, &request).expect("a stored session opens");
            assert_eq!(opened, session);
        }
    }
});
