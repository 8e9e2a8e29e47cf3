//! Protobuf's wire format, as far as the filter speaks it: reading a message field
//! by field (Envoy's serialized `Metadata`), and writing the few fields of the
//! messages the host's foreign functions take (`verify_signature`, `sign`).
//! Bounded and panic-free: any malformation is `Unreadable`.

/// The bytes are not a message this reader can walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

pub enum Field<'a> {
    /// A varint field (`bool`, `int32`, enums...): its value.
    Varint(u64),
    /// A fixed-size field (`double`, `fixed32`...), stepped over.
    Fixed,
    Bytes(&'a [u8]),
}

/// Protobuf's wire format, read field by field; any malformation is `Unreadable`.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// The next field: its number and, for length-delimited ones, the bytes.
    pub fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, Unreadable> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = tag >> 3;
        let field = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let length = usize::try_from(self.varint()?).map_err(|_| Unreadable)?;
                Field::Bytes(self.take(length)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            _ => return Err(Unreadable),
        };
        if number == 0 {
            return Err(Unreadable);
        }
        Ok(Some((number, field)))
    }

    fn varint(&mut self) -> Result<u64, Unreadable> {
        let mut value: u64 = 0;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = self.bytes.get(index + 1..).ok_or(Unreadable)?;
                return Ok(value);
            }
        }
        Err(Unreadable)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], Unreadable> {
        if length > self.bytes.len() {
            return Err(Unreadable);
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }
}

/// A message being written: fields appended in the order given.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// A length-delimited field (`bytes`, `string`, an embedded message).
    pub fn bytes(mut self, number: u32, value: &[u8]) -> Writer {
        self.varint(u64::from(number) << 3 | 2);
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    /// A `bool` or other varint field.
    pub fn varint_field(mut self, number: u32, value: u64) -> Writer {
        self.varint(u64::from(number) << 3);
        self.varint(value);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn what_is_written_reads_back() {
        let long = vec![7u8; 300];
        let bytes = Writer::default()
            .bytes(1, b"sha256")
            .bytes(2, &long)
            .varint_field(3, 1)
            .finish();
        // 300 as a varint: 0xac 0x02.
        assert_eq!(
            &bytes[..10],
            &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6', 0x12, 0xac]
        );
        let mut reader = Reader::new(&bytes);
        assert!(matches!(
            reader.field(),
            Ok(Some((1, Field::Bytes(b"sha256"))))
        ));
        assert!(matches!(reader.field(), Ok(Some((2, Field::Bytes(value)))) if value == &long[..]));
        assert!(matches!(reader.field(), Ok(Some((3, Field::Varint(1))))));
        assert!(matches!(reader.field(), Ok(None)));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fixed_size_fields_are_stepped_over() {
        // fixed64 (wire type 1), fixed32 (5), then a string the reader must still find.
        let mut bytes = vec![
            (1 << 3) | 1,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            (2 << 3) | 5,
            1,
            2,
            3,
            4,
        ];
        bytes.extend(Writer::default().bytes(3, b"after").finish());
        let mut reader = Reader::new(&bytes);
        assert!(matches!(reader.field(), Ok(Some((1, Field::Fixed)))));
        assert!(matches!(reader.field(), Ok(Some((2, Field::Fixed)))));
        assert!(matches!(
            reader.field(),
            Ok(Some((3, Field::Bytes(b"after"))))
        ));
        // Cut inside a fixed field: unreadable.
        assert!(Reader::new(&bytes[..5]).field().is_err());
        assert!(Reader::new(&bytes[9..12]).field().is_err());
    }
}
