//! One sign-in for a whole domain (`redirectUri`): which hosts lie within the
//! cookie domain, and where a browser may be sent back after its login.
//!
//! A login may start on any host of the domain and ends on the one callback host,
//! so the URL to return to is absolute. It comes from the request that started the
//! login (sealed in the login cookie), and is checked again when the login ends:
//! only a URL on the callback's own origin, or on a host `allowedRedirectDomains`
//! names (oauth2-proxy's `--whitelist-domain`), is followed; anything else is `/`
//! on the callback host. The URL is read by the one URL parser (`HttpUrl`), which
//! refuses user info, `%` and non-ASCII in hosts, backslashes and controls, and
//! the `Location` sent is its normal form, never the stored text.

use crate::apps::HostPattern;
use crate::config::OidcConfig;
use crate::http_url::{HttpUrl, Scheme};
use crate::oidc::login::{origin, safe_return_path};
use crate::request::Headers;

/// Whether `host` (any case, no port) is `domain` or one of its subdomains.
/// `domain` is lowercase without a leading dot. A trailing dot is part of the host
/// (`a.example.com.` is not within `example.com`), as in the route table.
pub fn within(host: &str, domain: &str) -> bool {
    if host.eq_ignore_ascii_case(domain) {
        return true;
    }
    let Some(start) = host.len().checked_sub(domain.len().saturating_add(1)) else {
        return false;
    };
    host.get(start..)
        .and_then(|tail| tail.strip_prefix('.'))
        .is_some_and(|tail| !domain.is_empty() && tail.eq_ignore_ascii_case(domain))
}

/// The port part of an `allowedRedirectDomains` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedPort {
    /// No port written: the scheme's default port only (oauth2-proxy's rule).
    Default,
    Exact(u16),
    /// `:*`: any port.
    Any,
}

/// An entry of `allowedRedirectDomains`: `example.com` (that host only) or
/// `.example.com` (the domain and every subdomain), with an optional `:port` or `:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDomain {
    /// Lowercase, without the leading dot.
    name: String,
    subdomains: bool,
    port: AllowedPort,
}

impl AllowedDomain {
    /// The host names follow the grammar of `hosts` (lowercase, no scheme).
    pub fn parse(text: &str) -> Result<AllowedDomain, String> {
        let invalid = || {
            format!(
                "`{text}` is not a host (`app.example.com`) or a domain with its subdomains \
                 (`.example.com`), lowercase, with an optional `:port` or `:*`"
            )
        };
        let (host, port) = match text.rsplit_once(':') {
            None => (text, AllowedPort::Default),
            Some((host, "*")) => (host, AllowedPort::Any),
            Some((host, digits)) => {
                let port = digits
                    .parse::<u16>()
                    .ok()
                    .filter(|&port| port != 0 && digits.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(invalid)?;
                (host, AllowedPort::Exact(port))
            }
        };
        let (subdomains, name) = match host.strip_prefix('.') {
            Some(name) => (true, name),
            None => (false, host),
        };
        match HostPattern::parse(name) {
            Ok(HostPattern::Exact(name)) => Ok(AllowedDomain {
                name,
                subdomains,
                port,
            }),
            _ => Err(invalid()),
        }
    }

    /// The default of `allowedRedirectDomains`: the cookie domain and its
    /// subdomains, on the scheme's default port.
    pub fn domain_and_subdomains(domain: &str) -> AllowedDomain {
        AllowedDomain {
            name: domain.to_string(),
            subdomains: true,
            port: AllowedPort::Default,
        }
    }

    /// Whether `url`'s host and port are allowed (its scheme is checked apart).
    pub fn allows(&self, url: &HttpUrl) -> bool {
        let host = url.host();
        let host_allowed = if self.subdomains {
            within(host, &self.name)
        } else {
            host == self.name
        };
        let port_allowed = match self.port {
            AllowedPort::Default => url.port().is_none(),
            AllowedPort::Exact(port) => url.port_or_default() == port,
            AllowedPort::Any => true,
        };
        host_allowed && port_allowed
    }
}

/// Where the browser goes when a login that started at `return_to` ends on the
/// callback request `callback`: a path (a login without `redirectUri`) as
/// [`safe_return_path`] allows it; an absolute URL on the callback's own origin as
/// its path; with `redirectUri`, an absolute URL whose scheme is `https` (or `http`
/// where the block allows plain HTTP, `cookieSecure: false`) on a host and port
/// `allowedRedirectDomains` allows, in its normal form; anything else `/`.
pub fn return_location(oidc: &OidcConfig, callback: &Headers, return_to: &str) -> String {
    if return_to.starts_with('/') {
        return safe_return_path(return_to);
    }
    let Ok(url) = HttpUrl::parse(return_to) else {
        return "/".into();
    };
    let here = HttpUrl::parse(&format!("{}/", origin(callback)));
    let same_origin = here.is_ok_and(|here| {
        here.scheme() == url.scheme() && here.host() == url.host() && here.port() == url.port()
    });
    if same_origin {
        return safe_return_path(&url.path_and_query());
    }
    let scheme_allowed = url.scheme() == Scheme::Https || !oidc.cookie_secure;
    let allowed = oidc.redirect_uri.is_some()
        && scheme_allowed
        && oidc
            .allowed_redirect_domains
            .iter()
            .any(|domain| domain.allows(&url));
    if allowed {
        url.to_string()
    } else {
        "/".into()
    }
}

#[cfg(test)]
mod tests;
