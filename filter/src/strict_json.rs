//! JSON parsing that rejects duplicate object keys at every depth.
//!
//! `serde_json` keeps the last of two equal keys. For a token header or payload that
//! lets two parsers of the same bytes disagree (`{"alg":"RS256","alg":"none"}`), so
//! anything we verify or trust is parsed here instead.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Parses `bytes` as JSON, failing on duplicate keys or trailing data.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|strict| strict.0)
}

/// Parses `bytes` as a JSON object, failing on duplicate keys or any other type.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        Err(error) => Err(format!("invalid JSON: {error}")),
    }
}

/// Removes `key` from `map`: `Some(None)` when absent or null, `None` when not a string.
pub fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<Option<String>> {
    match map.remove(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Some(Some(text)),
        Some(_) => None,
    }
}

/// Removes `key` from `map`; `None` unless it is an unsigned integer.
pub fn take_u64(map: &mut Map<String, Value>, key: &str) -> Option<u64> {
    map.remove(key).as_ref().and_then(Value::as_u64)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_nested_values() {
        let value = parse(br#"{"a":[1,-2,3.5,"x",true,null,{"b":{}}]}"#).unwrap();
        assert_eq!(value["a"][1], Value::from(-2));
        assert_eq!(value["a"][6]["b"], Value::Object(Map::new()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_duplicate_keys_at_any_depth() {
        assert!(parse(br#"{"alg":"RS256","alg":"none"}"#).is_err());
        assert!(parse(br#"{"a":[{"b":1,"b":2}]}"#).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_non_objects_and_trailing_data() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{} x").is_err());
        assert!(parse_object(b"").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
