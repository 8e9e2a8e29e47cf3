//! What one worker keeps about requests between their callbacks: requests paused
//! while keys are fetched, requests waiting on the token endpoint, and cookies to
//! set on responses. Each kind is bounded, keyed by the request's context, and
//! released by [`Streams::forget`] when the stream ends, however it ends (a client
//! that resets after a refresh leaves nothing behind).

use crate::peer::Peer;
use crate::pipeline::Pending;
use crate::request::Headers;

/// Most requests paused for keys or for another request's refresh; more fail
/// closed at once.
pub const MAX_WAITERS: usize = 1024;
/// Most token endpoint calls in flight; more get a 503 page. Each is a distinct
/// login (one exchange per `state`, see `oidc::callback_memo`) or a distinct session's
/// refresh (one per session), held at most `oidc.timeout` (5 s by default): at a
/// typical 50-200 ms per call that is hundreds of logins and refreshes a second per
/// worker, far above human sign-in rates. A login's call holds a few hundred bytes
/// (`flow::finish_login_headers`); a refresh holds its whole request, up to Envoy's
/// 60 KiB header limit by default, so the bound keeps that under ~8 MB of a worker's
/// Wasm memory (1024 allowed ~60-100 MB that a VM never gives back).
pub const MAX_EXCHANGES: usize = 128;
/// Most responses with cookies still to set; the oldest entry goes beyond it.
pub const MAX_RESPONSE_COOKIES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub context_id: u32,
    pub deadline_ms: u64,
}

/// A token endpoint call made for one request, and what finishing it needs.
#[derive(Debug)]
pub struct Exchange {
    /// The dispatch call's token.
    pub token: u32,
    pub context_id: u32,
    pub pending: Pending,
    pub headers: Headers,
    pub peer: Peer,
}

#[derive(Debug, Default)]
pub struct Streams {
    waiters: Vec<Waiter>,
    exchanges: Vec<Exchange>,
    response_cookies: Vec<(u32, Vec<String>)>,
}

impl Streams {
    /// False when too many already wait.
    pub fn add_waiter(&mut self, waiter: Waiter) -> bool {
        if self.waiters.len() >= MAX_WAITERS {
            return false;
        }
        self.waiters.push(waiter);
        true
    }

    pub fn is_waiting(&self, context_id: u32) -> bool {
        self.waiters.iter().any(|w| w.context_id == context_id)
    }

    /// Whether another token endpoint call may be made now.
    pub fn has_room_for_an_exchange(&self) -> bool {
        self.exchanges.len() < MAX_EXCHANGES
    }

    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Every waiter, to be decided again; those still waiting come back through
    /// [`Streams::keep_waiting`].
    pub fn take_waiters(&mut self) -> Vec<Waiter> {
        std::mem::take(&mut self.waiters)
    }

    pub fn keep_waiting(&mut self, waiter: Waiter) {
        let _ = self.add_waiter(waiter);
    }

    /// Gives the exchange back when too many calls are in flight: the caller
    /// answers the request and releases what the call was for.
    #[allow(clippy::result_large_err)] // moved back once, on a rare refusal
    pub fn add_exchange(&mut self, exchange: Exchange) -> Result<(), Exchange> {
        if self.exchanges.len() >= MAX_EXCHANGES {
            return Err(exchange);
        }
        self.exchanges.push(exchange);
        Ok(())
    }

    pub fn take_exchange(&mut self, token: u32) -> Option<Exchange> {
        let index = self.exchanges.iter().position(|e| e.token == token)?;
        Some(self.exchanges.swap_remove(index))
    }

    pub fn set_response_cookies(&mut self, context_id: u32, cookies: Vec<String>) {
        let _ = self.take_response_cookies(context_id);
        if cookies.is_empty() {
            return;
        }
        if self.response_cookies.len() >= MAX_RESPONSE_COOKIES {
            // Oldest first: a lost renewed cookie only means one more refresh.
            self.response_cookies.remove(0);
        }
        self.response_cookies.push((context_id, cookies));
    }

    pub fn take_response_cookies(&mut self, context_id: u32) -> Vec<String> {
        match self
            .response_cookies
            .iter()
            .position(|(id, _)| *id == context_id)
        {
            Some(index) => self.response_cookies.swap_remove(index).1,
            None => Vec::new(),
        }
    }

    /// The stream is over: drop everything kept for it. Returns what its token
    /// endpoint calls were waiting for, so that their bookkeeping can be released.
    pub fn forget(&mut self, context_id: u32) -> Vec<Pending> {
        remove_where(&mut self.waiters, &|w| w.context_id == context_id);
        let _ = self.take_response_cookies(context_id);
        let mut abandoned = Vec::new();
        let mut index = 0;
        while let Some(exchange) = self.exchanges.get(index) {
            if exchange.context_id == context_id {
                abandoned.push(self.exchanges.swap_remove(index).pending);
            } else {
                index += 1;
            }
        }
        abandoned
    }

    /// (waiters, exchanges, responses with cookies): for tests and gauges.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.waiters.len(),
            self.exchanges.len(),
            self.response_cookies.len(),
        )
    }
}

/// Removes the items `unwanted` picks (order not kept). One small loop per item
/// type instead of a `retain` per closure: the module is size-bounded.
pub fn remove_where<T>(items: &mut Vec<T>, unwanted: &dyn Fn(&T) -> bool) {
    let mut index = 0;
    while let Some(item) = items.get(index) {
        if unwanted(item) {
            items.swap_remove(index);
        } else {
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::login::PendingLogin;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn exchange(token: u32, context_id: u32) -> Exchange {
        Exchange {
            token,
            context_id,
            pending: Pending::Login(PendingLogin {
                state: String::new(),
                nonce: String::new(),
                verifier: String::new(),
                return_to: "/".into(),
                expires_at: 0,
            }),
            headers: Headers::default(),
            peer: Peer::default(),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_stream_that_ends_leaves_nothing_behind() {
        let mut streams = Streams::default();
        assert!(streams.add_waiter(Waiter {
            context_id: 3,
            deadline_ms: 10
        }));
        assert!(streams.add_exchange(exchange(100, 3)).is_ok());
        assert!(streams.add_exchange(exchange(101, 4)).is_ok());
        streams.set_response_cookies(3, vec!["a=1".into()]);
        streams.set_response_cookies(4, vec!["b=1".into()]);
        // Context 3 is reset before its response and its call's reply arrive.
        assert_eq!(streams.forget(3).len(), 1);
        assert_eq!(streams.sizes(), (0, 1, 1));
        assert!(streams.take_exchange(100).is_none());
        assert_eq!(streams.take_exchange(101).map(|e| e.context_id), Some(4));
        assert_eq!(streams.take_response_cookies(4), ["b=1"]);
        assert_eq!(streams.sizes(), (0, 0, 0));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_kind_is_bounded() {
        let mut streams = Streams::default();
        for id in 0..(MAX_WAITERS as u32 + 5) {
            let added = streams.add_waiter(Waiter {
                context_id: id,
                deadline_ms: 0,
            });
            assert_eq!(added, (id as usize) < MAX_WAITERS);
        }
        for id in 0..(MAX_EXCHANGES as u32 + 5) {
            let added = streams.add_exchange(exchange(id, id)).is_ok();
            assert_eq!(added, (id as usize) < MAX_EXCHANGES);
        }
        for id in 0..(MAX_RESPONSE_COOKIES as u32 * 3) {
            streams.set_response_cookies(id, vec!["c=1".into()]);
        }
        assert_eq!(
            streams.sizes(),
            (MAX_WAITERS, MAX_EXCHANGES, MAX_RESPONSE_COOKIES)
        );
        assert!(
            streams.take_response_cookies(0).is_empty(),
            "oldest dropped"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn waiters_are_taken_and_kept_waiting() {
        let mut streams = Streams::default();
        let waiter = Waiter {
            context_id: 9,
            deadline_ms: 5,
        };
        streams.add_waiter(waiter);
        assert!(streams.is_waiting(9));
        let taken = streams.take_waiters();
        assert!(!streams.has_waiters());
        streams.keep_waiting(taken[0]);
        assert!(streams.is_waiting(9));
    }
}
