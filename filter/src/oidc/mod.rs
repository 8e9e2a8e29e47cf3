//! OpenID Connect browser login, as plain functions the shell calls: where to send
//! the browser, what a callback means, and whether an ID token is acceptable.
//! Nothing here touches the host; randomness and time are passed in.

pub mod callback_memo;
pub mod client_assertion;
pub mod domain;
pub mod flow;
pub mod id_token;
pub mod login;
pub mod provider;
pub mod refresh;
pub mod token_endpoint;
