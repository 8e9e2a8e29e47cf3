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

use super::{error, ConfigError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A JSON object whose fields are taken one at a time.
#[derive(Debug)]
pub struct Fields {
    path: String,
    map: Map<String, Value>,
    known: Vec<&'static str>,
    /// The first wrong type or missing field, reported by `finish` after any
    /// unknown field, since a misspelt name explains a missing one.
    problem: Option<ConfigError>,
}

impl Fields {
    /// The fields of `value`, which should be an object; `path` is where it sits
    /// (empty at the top). Anything else reads as an empty object with a problem.
    pub fn new(path: String, value: Value) -> Fields {
        let (map, problem) = match value {
            Value::Object(map) => (map, None),
            other => (Map::new(), Some(wrong_type(&path, &other, "an object"))),
        };
        Fields {
            path,
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

    /// The path of field `name` of this object.
    pub fn path_of(&self, name: &str) -> String {
        child(&self.path, name)
    }

    fn note(&mut self, problem: ConfigError) {
        self.problem.get_or_insert(problem);
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.known.push(name);
        self.map.remove(name).filter(|value| !value.is_null())
    }

    /// Takes `name` if `convert` accepts it (it hands back what it refuses);
    /// otherwise notes that it is not `expected`.
    fn take_as<T>(
        &mut self,
        name: &'static str,
        expected: &str,
        convert: fn(Value) -> Result<T, Value>,
    ) -> Option<T> {
        match convert(self.take(name)?) {
            Ok(converted) => Some(converted),
            Err(value) => {
                let problem = wrong_type(&self.path_of(name), &value, expected);
                self.note(problem);
                None
            }
        }
    }

    pub fn string(&mut self, name: &'static str) -> Option<String> {
        self.take_as(name, "a string", |value| match value {
            Value::String(text) => Ok(text),
            other => Err(other),
        })
    }

    /// A string that must be present (it may still be empty); absent reads as empty.
    pub fn required_string(&mut self, name: &'static str) -> String {
        let value = self.string(name);
        value.unwrap_or_else(|| self.missing(name))
    }

    fn missing<T: Default>(&mut self, name: &'static str) -> T {
        let problem = error(self.path_of(name), "is required");
        self.note(problem);
        T::default()
    }

    pub fn bool(&mut self, name: &'static str) -> Option<bool> {
        self.take_as(name, "a boolean", |value| value.as_bool().ok_or(value))
    }

    pub fn unsigned(&mut self, name: &'static str) -> Option<u64> {
        self.take_as(name, "a non-negative integer", |value| {
            value.as_u64().ok_or(value)
        })
    }

    /// A size or count: an unsigned integer that fits `usize`.
    pub fn size(&mut self, name: &'static str) -> Option<usize> {
        self.take_as(name, "a non-negative integer", |value| {
            let size = value.as_u64().and_then(|n| usize::try_from(n).ok());
            size.ok_or(value)
        })
    }

    /// A list of strings, telling absent apart from empty.
    pub fn optional_strings(&mut self, name: &'static str) -> Option<Vec<String>> {
        let items = self.list(name)?;
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text),
                other => {
                    let path = format!("{}[{index}]", self.path_of(name));
                    self.note(wrong_type(&path, &other, "a string"));
                }
            }
        }
        Some(strings)
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
                self.path_of(name),
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
        let path = self.path_of(name);
        for (index, item) in items.into_iter().enumerate() {
            let item_path = if list {
                format!("{path}[{index}]")
            } else {
                path.clone()
            };
            let mut fields = Fields::new(item_path, item);
            read(&mut fields);
            if let Err(problem) = fields.finish() {
                self.note(problem);
            }
        }
        true
    }

    fn list(&mut self, name: &'static str) -> Option<Vec<Value>> {
        self.take_as(name, "a list", |value| match value {
            Value::Array(items) => Ok(items),
            other => Err(other),
        })
    }

    /// An object of string values, e.g. `clusters`; absent means empty.
    pub fn string_map(&mut self, name: &'static str) -> BTreeMap<String, String> {
        let object = self.take_as(name, "an object", |value| match value {
            Value::Object(map) => Ok(map),
            other => Err(other),
        });
        let Some(map) = object else {
            return BTreeMap::new();
        };
        let mut strings = BTreeMap::new();
        for (key, value) in map {
            match value {
                Value::String(text) => {
                    strings.insert(key, text);
                }
                other => {
                    let path = child(&self.path_of(name), &key);
                    self.note(wrong_type(&path, &other, "a string"));
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
        Err(error(
            child(&self.path, unknown),
            format!("unknown field `{unknown}`, expected one of {expected}"),
        ))
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn wrong_type(path: &str, found: &Value, expected: &str) -> ConfigError {
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
    use wasm_bindgen_test::wasm_bindgen_test;

    fn fields(value: Value) -> Fields {
        Fields::new("top".into(), value)
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
        let e = Fields::new(String::new(), json!({"jwtRule": []}))
            .read(|f| f.strings("jwtRules"))
            .unwrap_err();
        assert_eq!(e.path, "jwtRule");
        assert_eq!(
            e.problem,
            "unknown field `jwtRule`, expected one of `jwtRules`"
        );
    }
}
