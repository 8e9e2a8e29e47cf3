//! Reading the configuration's JSON objects field by field.
//!
//! Written by hand rather than derived with serde: the derived visitors (and the
//! path-tracking wrapper around them) were about a sixth of the module's size.
//! Every error names the field's path, e.g. `jwtRules[0].fromHeaders[1].name`, and a
//! field the reader never asked for is an error, as with `deny_unknown_fields`.
//! `null` reads as absent, as in proto3 JSON.

use super::{error, ConfigError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A JSON object whose fields are taken one at a time; [`Fields::finish`] refuses leftovers.
#[derive(Debug)]
pub struct Fields {
    path: String,
    map: Map<String, Value>,
    known: Vec<&'static str>,
    /// The first required field found absent; reported by `finish`, after any
    /// unknown field, since a misspelt name explains a missing one.
    missing: Option<&'static str>,
}

impl Fields {
    /// `value` must be an object; `path` is where it sits (empty at the top).
    pub fn new(path: String, value: Value) -> Result<Fields, ConfigError> {
        match value {
            Value::Object(map) => Ok(Fields {
                path,
                map,
                known: Vec::new(),
                missing: None,
            }),
            other => Err(wrong_type(path, &other, "an object")),
        }
    }

    /// The path of field `name` of this object.
    pub fn path_of(&self, name: &str) -> String {
        child(&self.path, name)
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.known.push(name);
        self.map.remove(name).filter(|value| !value.is_null())
    }

    pub fn string(&mut self, name: &'static str) -> Result<Option<String>, ConfigError> {
        self.take(name)
            .map(|value| string(self.path_of(name), value))
            .transpose()
    }

    /// A string that must be present (it may still be empty). When absent, an empty
    /// placeholder is returned and [`Fields::finish`] fails.
    pub fn required_string(&mut self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.string(name)?;
        Ok(value.unwrap_or_else(|| self.note_missing(name, String::new())))
    }

    fn note_missing<T>(&mut self, name: &'static str, placeholder: T) -> T {
        self.missing = self.missing.or(Some(name));
        placeholder
    }

    pub fn bool(&mut self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(value)),
            Some(other) => Err(wrong_type(self.path_of(name), &other, "a boolean")),
        }
    }

    pub fn unsigned(&mut self, name: &'static str) -> Result<Option<u64>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(number)) if number.as_u64().is_some() => Ok(number.as_u64()),
            Some(other) => Err(wrong_type(
                self.path_of(name),
                &other,
                "a non-negative integer",
            )),
        }
    }

    /// A size or count: an unsigned integer that fits `usize`.
    pub fn size(&mut self, name: &'static str) -> Result<Option<usize>, ConfigError> {
        let path = self.path_of(name);
        self.unsigned(name)?
            .map(|value| usize::try_from(value).map_err(|_| error(path, "is too large")))
            .transpose()
    }

    /// A list of strings; absent means empty.
    pub fn strings(&mut self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        self.optional_strings(name).map(Option::unwrap_or_default)
    }

    /// A list of strings, telling absent apart from empty.
    pub fn optional_strings(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let path = self.path_of(name);
        self.take(name)
            .map(|value| list(&path, value, string))
            .transpose()
    }

    pub fn object(&mut self, name: &'static str) -> Result<Option<Fields>, ConfigError> {
        let path = self.path_of(name);
        self.take(name)
            .map(|value| Fields::new(path, value))
            .transpose()
    }

    /// As [`Fields::required_string`], with an empty object as the placeholder.
    pub fn required_object(&mut self, name: &'static str) -> Result<Fields, ConfigError> {
        let value = self.object(name)?;
        let placeholder = || Fields::new(self.path_of(name), Value::Object(Map::new()));
        match value {
            Some(fields) => Ok(fields),
            None => self.note_missing(name, placeholder()),
        }
    }

    /// A list of objects, telling absent apart from empty.
    pub fn object_list(&mut self, name: &'static str) -> Result<Option<Vec<Fields>>, ConfigError> {
        let path = self.path_of(name);
        self.take(name)
            .map(|value| list(&path, value, Fields::new))
            .transpose()
    }

    /// A list of objects; absent means empty.
    pub fn objects(&mut self, name: &'static str) -> Result<Vec<Fields>, ConfigError> {
        self.object_list(name).map(Option::unwrap_or_default)
    }

    /// An object of string values, e.g. `clusters`; absent means empty.
    pub fn string_map(
        &mut self,
        name: &'static str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let path = self.path_of(name);
        let Some(value) = self.take(name) else {
            return Ok(BTreeMap::new());
        };
        let Value::Object(map) = value else {
            return Err(wrong_type(path, &value, "an object"));
        };
        map.into_iter()
            .map(|(key, value)| {
                let value = string(child(&path, &key), value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Fails on the first field that no reader asked for, then on a missing one.
    pub fn finish(self) -> Result<(), ConfigError> {
        let Some(unknown) = self.map.keys().next() else {
            return match self.missing {
                Some(name) => Err(error(self.path_of(name), "is required")),
                None => Ok(()),
            };
        };
        let expected = self
            .known
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(error(
            child(&self.path, unknown),
            format!("unknown field `{unknown}`, expected one of {expected}"),
        ))
    }
}

/// Reads each object of a list with `read`.
pub fn read_all<T>(
    items: Vec<Fields>,
    read: fn(Fields) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    items.into_iter().map(read).collect()
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn string(path: String, value: Value) -> Result<String, ConfigError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(wrong_type(path, &other, "a string")),
    }
}

/// Reads every item of a JSON array with `read`, naming items `path[i]`.
fn list<T>(
    path: &str,
    value: Value,
    read: fn(String, Value) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(path.to_string(), &value, "a list"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| read(format!("{path}[{index}]"), item))
        .collect()
}

fn wrong_type(path: String, found: &Value, expected: &str) -> ConfigError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    error(path, format!("invalid type: {found}, expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        Fields::new("top".into(), value).unwrap()
    }

    #[test]
    fn reads_each_kind_and_treats_null_as_absent() {
        let mut f =
            fields(json!({"s": "x", "b": true, "n": 7, "l": ["a"], "m": {"k": "v"}, "z": null}));
        assert_eq!(f.string("s").unwrap().as_deref(), Some("x"));
        assert_eq!(f.bool("b").unwrap(), Some(true));
        assert_eq!(f.size("n").unwrap(), Some(7));
        assert_eq!(f.strings("l").unwrap(), ["a"]);
        assert_eq!(
            f.string_map("m").unwrap().get("k").map(String::as_str),
            Some("v")
        );
        assert_eq!(f.string("z").unwrap(), None);
        assert_eq!(f.strings("missing").unwrap(), Vec::<String>::new());
        f.finish().unwrap();
    }

    #[test]
    fn wrong_types_name_the_field_and_the_item() {
        let mut f = fields(json!({"n": -1, "l": ["a", 2], "o": [{}, 3]}));
        let e = f.unsigned("n").unwrap_err();
        assert_eq!(e.path, "top.n");
        let e = f.strings("l").unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.problem.as_str()),
            ("top.l[1]", "invalid type: a number, expected a string")
        );
        let e = f.objects("o").unwrap_err();
        assert_eq!(e.path, "top.o[1]");
    }

    #[test]
    fn a_misspelt_field_is_reported_before_the_missing_one() {
        let mut f = fields(json!({"nam": "x"}));
        assert_eq!(f.required_string("name").unwrap(), "");
        assert_eq!(f.finish().unwrap_err().path, "top.nam");
        let mut f = fields(json!({}));
        f.required_object("source").unwrap();
        let e = f.finish().unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.problem.as_str()),
            ("top.source", "is required")
        );
    }

    #[test]
    fn leftover_fields_are_unknown() {
        let mut f = Fields::new(String::new(), json!({"jwtRule": []})).unwrap();
        f.strings("jwtRules").unwrap();
        let e = f.finish().unwrap_err();
        assert_eq!(e.path, "jwtRule");
        assert_eq!(
            e.problem,
            "unknown field `jwtRule`, expected one of `jwtRules`"
        );
    }
}
