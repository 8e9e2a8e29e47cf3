//! Where a value sits in the configuration, e.g. `jwtRules[0].fromHeaders[1].name`.
//!
//! A path is a chain of references on the stack, written out only when an error
//! names it. Formatting each field's path up front (`format!("{path}.issuer")`, then
//! dropping the string) cost the module about 3.5 KB of code, almost all of it for
//! paths that no error ever showed.

use super::ConfigError;
use std::fmt::{self, Write};

#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    /// The configuration itself (an empty path).
    Root,
    /// `parent.name`, or `name` at the root.
    Field(&'a At<'a>, &'a str),
    /// `parent[index]`.
    Item(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    /// Top-level field `name`.
    pub(crate) fn top(name: &'a str) -> At<'a> {
        At::Field(&At::Root, name)
    }

    pub(crate) fn field(&'a self, name: &'a str) -> At<'a> {
        At::Field(self, name)
    }

    pub(crate) fn item(&'a self, index: usize) -> At<'a> {
        At::Item(self, index)
    }

    /// The error `problem` at this path. Out of line: each caller only passes two
    /// references.
    #[inline(never)]
    pub(crate) fn error(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.to_string(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Field(At::Root, name) => f.write_str(name),
            At::Field(parent, name) => {
                parent.fmt(f)?;
                f.write_char('.')?;
                f.write_str(name)
            }
            At::Item(parent, index) => {
                parent.fmt(f)?;
                write!(f, "[{index}]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::At;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn paths_read_as_written() {
        let rules = At::top("jwtRules");
        let rule = rules.item(0);
        let headers = rule.field("fromHeaders");
        let header = headers.item(1);
        assert_eq!(
            header.field("name").to_string(),
            "jwtRules[0].fromHeaders[1].name"
        );
        assert_eq!(At::Root.to_string(), "");
        assert_eq!(At::top("clusters").field("").to_string(), "clusters.");
        let e = rule.field("issuer").error("is required");
        assert_eq!(
            (e.path.as_str(), e.problem.as_str()),
            ("jwtRules[0].issuer", "is required")
        );
    }
}
