//! Stateless browser sessions: what the filter needs about a logged-in user, sealed
//! with AES-256-GCM into a cookie, chunked when large. Any replica can open it.

pub mod chunks;
pub mod seal;
