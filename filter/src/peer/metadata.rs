//! The dynamic metadata other filters wrote, as Istio's `experimental.envoy.filters.*`
//! keys read it (`experimental.envoy.filters.a.b[c]`: namespace `envoy.filters.a.b`,
//! key `c`).
//!
//! Envoy hands the whole dynamic metadata to Wasm (the attribute `metadata`) as a
//! serialized `envoy.config.core.v3.Metadata`. (Deeper paths, such as
//! `metadata.filter_metadata.<namespace>`, come back in Envoy's untyped pairs
//! encoding, where a string cannot be told from a list or a number; Envoy's RBAC
//! tells them apart, so this reads the typed form.) This decodes that much
//! protobuf (Metadata, Struct, Value, ListValue) and no more: enough to tell a
//! string from a list of strings from anything else, which is all Envoy's RBAC
//! matchers distinguish.

pub use crate::protobuf::Unreadable;
use crate::protobuf::{Field, Reader};

/// Metadata bytes beyond this are not read: the values are unknown.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Nesting beyond this (a struct in a list in a struct...) is not followed.
const MAX_DEPTH: usize = 8;

/// A metadata value as Envoy's `string_match` and `list_match` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataValue {
    Text(String),
    /// A list: its string elements (others are no string, so they match nothing).
    List(Vec<String>),
    /// A number, a boolean, null or a struct: matches no string pattern.
    Other,
}

/// The value of `key` in `namespace` of a serialized `Metadata`; `None` when
/// there is no such namespace or key.
pub fn value_of(
    metadata: &[u8],
    namespace: &str,
    key: &str,
) -> Result<Option<MetadataValue>, Unreadable> {
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(Unreadable);
    }
    // Metadata.filter_metadata = 1: map<string, Struct>.
    match map_entry(metadata, namespace)? {
        Some(fields) => struct_field(fields, key),
        None => Ok(None),
    }
}

/// `key`'s value in a serialized `google.protobuf.Struct`; `None` when the struct
/// has no such field.
fn struct_field(bytes: &[u8], key: &str) -> Result<Option<MetadataValue>, Unreadable> {
    // Struct.fields = 1: map<string, Value>.
    match map_entry(bytes, key)? {
        Some(value) => decode_value(value, 0).map(Some),
        None => Ok(None),
    }
}

/// The value bytes of `key` in the protobuf map that is field 1 of `bytes`
/// (entries `{1: key, 2: value}`); a key given twice: the last one wins, as in
/// protobuf. Every entry is read, so malformed bytes anywhere are `Unreadable`.
fn map_entry<'a>(bytes: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, Unreadable> {
    let mut found = None;
    let mut fields = Reader::new(bytes);
    while let Some((number, field)) = fields.field()? {
        let (1, Field::Bytes(entry)) = (number, field) else {
            continue;
        };
        let mut entry = Reader::new(entry);
        let (mut name, mut value): (Option<&[u8]>, &[u8]) = (None, &[]);
        while let Some((number, field)) = entry.field()? {
            match (number, field) {
                (1, Field::Bytes(text)) => name = Some(text),
                (2, Field::Bytes(message)) => value = message,
                _ => {}
            }
        }
        if name == Some(key.as_bytes()) {
            found = Some(value);
        }
    }
    Ok(found)
}

fn decode_value(bytes: &[u8], depth: usize) -> Result<MetadataValue, Unreadable> {
    if depth > MAX_DEPTH {
        return Err(Unreadable);
    }
    let mut value = MetadataValue::Other;
    let mut fields = Reader::new(bytes);
    while let Some((number, field)) = fields.field()? {
        value = match (number, field) {
            // Value.string_value = 3
            (3, Field::Bytes(text)) => {
                MetadataValue::Text(String::from_utf8(text.to_vec()).map_err(|_| Unreadable)?)
            }
            // Value.list_value = 6: ListValue.values = 1
            (6, Field::Bytes(list)) => {
                let mut strings = Vec::new();
                let mut items = Reader::new(list);
                while let Some((number, item)) = items.field()? {
                    if let (1, Field::Bytes(item)) = (number, item) {
                        if let MetadataValue::Text(text) = decode_value(item, depth + 1)? {
                            strings.push(text);
                        }
                    }
                }
                MetadataValue::List(strings)
            }
            // null (1), number (2), bool (4), struct (5): no string.
            _ => MetadataValue::Other,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    // Protobuf encoding, written out, for the vectors.
    fn length_delimited(number: u8, body: &[u8]) -> Vec<u8> {
        crate::protobuf::Writer::default()
            .bytes(u32::from(number), body)
            .finish()
    }

    fn string_value(text: &str) -> Vec<u8> {
        length_delimited(3, text.as_bytes())
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut body = length_delimited(1, key.as_bytes());
        body.extend(length_delimited(2, value));
        length_delimited(1, &body)
    }

    fn list(values: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for value in values {
            body.extend(length_delimited(1, value));
        }
        length_delimited(6, &body)
    }

    /// A `Metadata` with one namespace `ns` holding the struct `fields`.
    fn metadata(fields: &[u8]) -> Vec<u8> {
        let mut body = length_delimited(1, b"ns");
        body.extend(length_delimited(2, fields));
        length_delimited(1, &body)
    }

    fn struct_field(fields: &[u8], key: &str) -> Result<Option<MetadataValue>, Unreadable> {
        value_of(&metadata(fields), "ns", key)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_strings_lists_and_others() {
        let number = {
            let mut v = vec![(2 << 3) | 1];
            v.extend(3.0f64.to_le_bytes());
            v
        };
        let boolean = vec![4 << 3, 1];
        let mut bytes = entry("c", &string_value("exact"));
        bytes.extend(entry(
            "roles",
            &list(&[string_value("a"), number.clone(), string_value("b")]),
        ));
        bytes.extend(entry("n", &number));
        bytes.extend(entry("t", &boolean));
        bytes.extend(entry(
            "s",
            &length_delimited(5, &entry("x", &string_value("y"))),
        ));
        assert_eq!(
            struct_field(&bytes, "c"),
            Ok(Some(MetadataValue::Text("exact".into())))
        );
        assert_eq!(
            struct_field(&bytes, "roles"),
            Ok(Some(MetadataValue::List(vec!["a".into(), "b".into()])))
        );
        assert_eq!(struct_field(&bytes, "n"), Ok(Some(MetadataValue::Other)));
        assert_eq!(struct_field(&bytes, "t"), Ok(Some(MetadataValue::Other)));
        assert_eq!(struct_field(&bytes, "s"), Ok(Some(MetadataValue::Other)));
        assert_eq!(struct_field(&bytes, "missing"), Ok(None));
        assert_eq!(struct_field(&[], "c"), Ok(None));
        assert_eq!(value_of(&metadata(&bytes), "other", "c"), Ok(None));
        assert_eq!(value_of(&[], "ns", "c"), Ok(None));
        // The empty string is a string; a value without a kind is no string.
        assert_eq!(
            struct_field(&entry("e", &string_value("")), "e"),
            Ok(Some(MetadataValue::Text(String::new())))
        );
        assert_eq!(
            struct_field(&entry("e", &[]), "e"),
            Ok(Some(MetadataValue::Other))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_bytes_are_unreadable_never_a_panic() {
        let good = metadata(&entry("c", &string_value("exact")));
        for cut in 1..good.len() {
            assert_eq!(value_of(&good[..cut], "ns", "c"), Err(Unreadable), "{cut}");
        }
        assert_eq!(value_of(&[0xff; 11], "ns", "c"), Err(Unreadable));
        assert_eq!(value_of(&[(1 << 3) | 3], "ns", "c"), Err(Unreadable));
        assert_eq!(value_of(&[0, 0], "ns", "c"), Err(Unreadable));
        assert_eq!(
            struct_field(&entry("c", &string_value("\u{0}ok")), "c"),
            Ok(Some(MetadataValue::Text("\u{0}ok".into())))
        );
        let not_utf8 = entry("c", &length_delimited(3, &[0xff, 0xfe]));
        assert_eq!(struct_field(&not_utf8, "c"), Err(Unreadable));
        assert_eq!(
            value_of(&vec![0; MAX_METADATA_BYTES + 1], "ns", "c"),
            Err(Unreadable)
        );
        // Lists nested past the bound; up to it, they read.
        let nested = |depth: usize| {
            let mut value = string_value("x");
            for _ in 0..depth {
                value = list(&[value]);
            }
            struct_field(&entry("c", &value), "c")
        };
        assert_eq!(nested(MAX_DEPTH), Ok(Some(MetadataValue::List(vec![]))));
        assert_eq!(nested(MAX_DEPTH + 1), Err(Unreadable));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn metadata_up_to_the_bound_is_read() {
        // A string value sized so that the whole Metadata is `size` bytes.
        let sized = |size: usize| {
            // Start a little below: each length prefix grows by a byte or two.
            let mut filler = size.saturating_sub(32);
            loop {
                let bytes = metadata(&entry("c", &string_value(&"y".repeat(filler))));
                match bytes.len().cmp(&size) {
                    std::cmp::Ordering::Less => filler += 1,
                    std::cmp::Ordering::Equal => return Some(bytes),
                    std::cmp::Ordering::Greater => return None,
                }
            }
        };
        let at_bound = (0..4)
            .find_map(|less| sized(MAX_METADATA_BYTES - less))
            .unwrap();
        assert!(at_bound.len() > MAX_METADATA_BYTES - 4);
        assert!(matches!(
            value_of(&at_bound, "ns", "c"),
            Ok(Some(MetadataValue::Text(_)))
        ));
        let over = (1..5)
            .find_map(|more| sized(MAX_METADATA_BYTES + more))
            .unwrap();
        assert_eq!(value_of(&over, "ns", "c"), Err(Unreadable));
    }
}
