//! Reading the configuration's JSON objects field by field.
//!
//! Written by hand rather than derived with serde: the derived visitors (and the
//! path-tracking wrapper around them) were about a sixth of the module's size.
//! Every error names the field's path, e.g. `jwtRules[0].fromHeaders[1].name`, and a
//! field the reader never asked for is an error, as with `deny_unknown_fields`.
//! `null` reads as absent, as in proto3 JSON.
//!
//! Readers never fail midway: a field of the wrong type reads as absent and the
//! first such problem is kept for [`Fields::finish`]. So a reader is one plain
//! struct literal, without an early return (and its clean-up code) per field.
//! An object's path is an [`At`], written out only for an error.

use super::{At, ConfigError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A JSON object whose fields are taken one at a time.
#[derive(Debug)]
pub struct Fields<'a> {
    at: At<'a>,
    map: Map<String, Value>,
    known: Vec<&'static str>,
    /// The first wrong type or missing field, reported by `finish` after any
    /// unknown field, since a misspelt name explains a missing one.
    problem: Option<ConfigError>,
}

impl<'a> Fields<'a> {
    /// The fields of `value`, which should be an object; `at` is where it sits
    /// ([`At::Root`] at the top). Anything else reads as an empty object with a
    /// problem.
    pub fn new(at: At<'a>, value: Value) -> Fields<'a> {
        let (map, problem) = match value {
            Value::Object(map) => (map, None),
            other => (Map::new(), Some(wrong_type(&at, &other, "an object"))),
        };
        Fields {
            at,
            map,
            known: Vec::new(),
            problem,
        }
    }

    /// Reads the whole object with `read`, then checks it.
    pub fn read<T>(mut self, read: fn(&mut Fields) -> T) -> Result<T, ConfigError> {
        let value = read(&mut self);
        self.finish().map(|()| value)
    }

    fn note(&mut self, problem: ConfigError) {
        self.problem.get_or_insert(problem);
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.known.push(name);
        self.map.remove(name).filter(|value| !value.is_null())
    }

    /// Takes `name` if it is of the type that `is` tells; otherwise notes that it is
    /// not `expected`. Not generic: one copy of this for every type read.
    fn take_as(
        &mut self,
        name: &'static str,
        expected: &str,
        is: fn(&Value) -> bool,
    ) -> Option<Value> {
        let value = self.take(name)?;
        if is(&value) {
            return Some(value);
        }
        let problem = wrong_type(&self.at.field(name), &value, expected);
        self.note(problem);
        None
    }

    pub fn string(&mut self, name: &'static str) -> Option<String> {
        match self.take_as(name, "a string", Value::is_string)? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// A string that must be present (it may still be empty); absent reads as empty.
    pub fn required_string(&mut self, name: &'static str) -> String {
        let value = self.string(name);
        value.unwrap_or_else(|| self.missing(name))
    }

    fn missing<T: Default>(&mut self, name: &'static str) -> T {
        let problem = self.at.field(name).error("is required");
        self.note(problem);
        T::default()
    }

    pub fn bool(&mut self, name: &'static str) -> Option<bool> {
        self.take_as(name, "a boolean", Value::is_boolean)?
            .as_bool()
    }

    pub fn unsigned(&mut self, name: &'static str) -> Option<u64> {
        self.take_as(name, "a non-negative integer", Value::is_u64)?
            .as_u64()
    }

    /// A size or count: an unsigned integer that fits `usize`.
    pub fn size(&mut self, name: &'static str) -> Option<usize> {
        as_size(&self.take_as(name, "a non-negative integer", |value| {
            as_size(value).is_some()
        })?)
    }

    /// A list of strings, telling absent apart from empty.
    pub fn optional_strings(&mut self, name: &'static str) -> Option<Vec<String>> {
        let items = self.list(name)?;
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text),
                other => {
                    let problem = wrong_type(&self.at.field(name).item(index), &other, "a string");
                    self.note(problem);
                }
            }
        }
        Some(strings)
    }

    /// Whether the object has `name` (not yet taken).
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|value| !value.is_null())
    }

    /// Takes `name`, whatever it holds, and drops it: a field accepted and
    /// documented as ignored.
    pub fn ignore(&mut self, name: &'static str) {
        let _ = self.take(name);
    }

    /// Drops every field not yet taken: an object read only in part on purpose
    /// (a pasted resource's `metadata`).
    pub fn ignore_the_rest(&mut self) {
        self.map.clear();
    }

    /// A list of strings; absent means empty.
    pub fn strings(&mut self, name: &'static str) -> Vec<String> {
        self.optional_strings(name).unwrap_or_default()
    }

    /// An object read with `read`.
    pub fn object<T>(&mut self, name: &'static str, read: fn(&mut Fields) -> T) -> Option<T> {
        let mut object = None;
        self.each_object(name, false, &mut |f| object = Some(read(f)));
        object
    }

    /// As [`Fields::object`], noting a problem (and reading `{}`) when absent.
    pub fn required_object<T>(&mut self, name: &'static str, read: fn(&mut Fields) -> T) -> T {
        let mut object = None;
        if !self.each_object(name, false, &mut |f| object = Some(read(f))) {
            self.missing::<()>(name);
        }
        match object {
            Some(object) => object,
            None => read(&mut Fields::new(
                self.at.field(name),
                Value::Object(Map::new()),
            )),
        }
    }

    /// A list of objects, each read with `read`; absent means empty.
    pub fn objects<T>(&mut self, name: &'static str, read: fn(&mut Fields) -> T) -> Vec<T> {
        self.optional_objects(name, read).unwrap_or_default()
    }

    /// A list of objects, each read with `read`; `None` when absent (an empty list
    /// is present).
    pub fn optional_objects<T>(
        &mut self,
        name: &'static str,
        read: fn(&mut Fields) -> T,
    ) -> Option<Vec<T>> {
        let mut objects = Vec::new();
        let present = self.each_object(name, true, &mut |f| objects.push(read(f)));
        present.then_some(objects)
    }

    /// Field `name` read with `read`: the object, or with `list` each object of the
    /// list. Whether the field was there. Not generic, so one copy serves every
    /// reader; the generic callers above only keep what `read` returns.
    fn each_object(
        &mut self,
        name: &'static str,
        list: bool,
        read: &mut dyn FnMut(&mut Fields),
    ) -> bool {
        let items = if list {
            let Some(items) = self.list(name) else {
                return false;
            };
            items
        } else {
            let Some(value) = self.take(name) else {
                return false;
            };
            vec![value]
        };
        let at = self.at;
        let field_at = at.field(name);
        for (index, item) in items.into_iter().enumerate() {
            let item_at = if list { field_at.item(index) } else { field_at };
            let mut fields = Fields::new(item_at, item);
            read(&mut fields);
            if let Err(problem) = fields.finish() {
                self.note(problem);
            }
        }
        true
    }

    fn list(&mut self, name: &'static str) -> Option<Vec<Value>> {
        match self.take_as(name, "a list", Value::is_array)? {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// An object of string values, e.g. `clusters`; absent means empty.
    pub fn string_map(&mut self, name: &'static str) -> BTreeMap<String, String> {
        let Some(Value::Object(map)) = self.take_as(name, "an object", Value::is_object) else {
            return BTreeMap::new();
        };
        let mut strings = BTreeMap::new();
        for (key, value) in map {
            match value {
                Value::String(text) => {
                    strings.insert(key, text);
                }
                other => {
                    let problem = wrong_type(&self.at.field(name).field(&key), &other, "a string");
                    self.note(problem);
                }
            }
        }
        strings
    }

    /// Fails on the first field that no reader asked for, then on the first problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        let Some(unknown) = self.map.keys().next() else {
            return self.problem.map_or(Ok(()), Err);
        };
        let mut expected = String::new();
        for name in &self.known {
            if !expected.is_empty() {
                expected.push_str(", ");
            }
            expected.push('`');
            expected.push_str(name);
            expected.push('`');
        }
        Err(self.at.field(unknown).error(format!(
            "unknown field `{unknown}`, expected one of {expected}"
        )))
    }
}

fn as_size(value: &Value) -> Option<usize> {
    value.as_u64().and_then(|n| usize::try_from(n).ok())
}

fn wrong_type(at: &At, found: &Value, expected: &str) -> ConfigError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    at.error(format!("invalid type: {found}, expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn fields(value: Value) -> Fields<'static> {
        Fields::new(At::top("top"), value)
    }

    fn name(f: &mut Fields) -> String {
        f.required_string("name")
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_each_kind_and_treats_null_as_absent() {
        let mut f =
            fields(json!({"s": "x", "b": true, "n": 7, "l": ["a"], "m": {"k": "v"}, "z": null}));
        assert_eq!(f.string("s").as_deref(), Some("x"));
        assert_eq!(f.bool("b"), Some(true));
        assert_eq!(f.size("n"), Some(7));
        assert_eq!(f.strings("l"), ["a"]);
        assert_eq!(f.string_map("m").get("k").map(String::as_str), Some("v"));
        assert_eq!(f.string("z"), None);
        assert_eq!(f.strings("missing"), Vec::<String>::new());
        f.finish().unwrap();
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn wrong_types_name_the_field_and_the_item() {
        type Case = (Value, fn(&mut Fields), &'static str, &'static str);
        let cases: [Case; 4] = [
            (
                json!({"n": -1}),
                |f| {
                    f.unsigned("n");
                },
                "top.n",
                "invalid type: a number, expected a non-negative integer",
            ),
            (
                json!({"l": ["a", 2]}),
                |f| {
                    f.strings("l");
                },
                "top.l[1]",
                "invalid type: a number, expected a string",
            ),
            (
                json!({"o": [{}, 3]}),
                |f| {
                    f.objects("o", name);
                },
                "top.o[0].name",
                "is required",
            ),
            (
                json!({"o": [{"name": ""}, 3]}),
                |f| {
                    f.objects("o", name);
                },
                "top.o[1]",
                "invalid type: a number, expected an object",
            ),
        ];
        for (value, read, path, problem) in cases {
            let mut f = fields(value);
            read(&mut f);
            let e = f.finish().unwrap_err();
            assert_eq!((e.path.as_str(), e.problem.as_str()), (path, problem));
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_misspelt_field_is_reported_before_the_missing_one() {
        let mut f = fields(json!({"nam": "x"}));
        assert_eq!(f.required_string("name"), "");
        assert_eq!(f.finish().unwrap_err().path, "top.nam");
        let mut f = fields(json!({}));
        f.required_object("source", name);
        let e = f.finish().unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.problem.as_str()),
            ("top.source", "is required")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn leftover_fields_are_unknown() {
        let e = Fields::new(At::Root, json!({"jwtRule": []}))
            .read(|f| f.strings("jwtRules"))
            .unwrap_err();
        assert_eq!(e.path, "jwtRule");
        assert_eq!(
            e.problem,
            "unknown field `jwtRule`, expected one of `jwtRules`"
        );
    }
}
