//! The request as the core sees it: header pairs as Envoy hands them over, and the
//! changes the core asks the host to make.

/// Request headers with lowercase names (Envoy's form), pseudo-headers included.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pairs: Vec<(String, String)>,
}

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> &str {
        self.get(":path").unwrap_or("/")
    }

    /// Every `name=value` pair of every `cookie` header, in order. Quoted values
    /// lose their quotes (RFC 6265 `cookie-value`).
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.get_all("cookie").flat_map(|header| {
            header.split(';').filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name.trim(), value))
            })
        })
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// Header changes for the upstream request, applied in order: removals, then sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

impl Edits {
    pub fn remove(&mut self, name: &str) {
        if !self.remove.iter().any(|known| known == name) {
            self.remove.push(name.to_string());
        }
    }

    /// Sets `name`, replacing any earlier value we set for it.
    pub fn set(&mut self, name: &str, value: String) {
        self.set.retain(|(known, _)| known != name);
        self.set.push((name.to_string(), value));
    }
}

/// The request as it will be forwarded: the client's headers after the filter's
/// edits. Authorization reads this view, so a condition on a header sees the value
/// the upstream will get (a claim the filter wrote, not a client's copy of it).
#[derive(Clone, Copy)]
pub struct Forwarded<'a> {
    pub headers: &'a Headers,
    pub edits: &'a Edits,
}

impl<'a> Forwarded<'a> {
    /// Every value of `name` (lowercase) after the edits: a header we set has our
    /// one value; a header we removed has none.
    pub fn get_all(&self, name: &str) -> Vec<&'a str> {
        match self.edited(name) {
            Some(value) => value.into_iter().collect(),
            None => self.client_values(name).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        match self.edited(name) {
            Some(value) => value,
            None => self.client_values(name).next(),
        }
    }

    pub fn path(&self) -> &'a str {
        self.get(":path").unwrap_or("/")
    }

    /// `Some` when our edits decide the header: its one value, or none.
    fn edited(&self, name: &str) -> Option<Option<&'a str>> {
        let edits: &'a Edits = self.edits;
        if let Some((_, value)) = edits.set.iter().find(|(key, _)| key == name) {
            return Some(Some(value.as_str()));
        }
        edits.remove.iter().any(|key| key == name).then_some(None)
    }

    fn client_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        let headers: &'a Headers = self.headers;
        headers
            .pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Header values we write must not smuggle a second header or end the block.
pub fn is_safe_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}
