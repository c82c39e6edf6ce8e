//! AMF0 values: the encoding of RTMP command and data messages.
//!
//! This module owns the [`Amf0Value`] model and its binary codec. It must not
//! know about commands, chunk streams or sessions; those layers build on it.
//!
//! Decoding reads untrusted input, so it never trusts a length or count field
//! further than the bytes actually present: strings are checked against the
//! remaining input before allocating, strict-array counts only pre-allocate as
//! many slots as there are bytes left, and nesting is bounded by
//! [`MAX_DEPTH`].

use bytes::{BufMut, BytesMut};

/// Deepest nesting of objects and arrays that [`decode`] accepts.
pub const MAX_DEPTH: usize = 64;

/// Most strict-array slots reserved before elements are actually decoded.
const PREALLOCATE_MAX: usize = 256;

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0A;
const MARKER_DATE: u8 = 0x0B;
const MARKER_LONG_STRING: u8 = 0x0C;

/// One AMF0 value.
///
/// Objects and ECMA arrays keep their properties in wire order, because
/// RTMP peers (and humans reading captures) expect `level` before `code`
/// and so on, and because keys may repeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE 754 double (marker 0x00).
    Number(f64),
    /// Boolean (marker 0x01).
    Boolean(bool),
    /// UTF-8 string up to 65535 bytes (marker 0x02). Longer strings are
    /// encoded as a long string.
    String(String),
    /// Anonymous object: ordered key/value pairs (marker 0x03).
    Object(Vec<(String, Amf0Value)>),
    /// Null (marker 0x05).
    Null,
    /// Undefined (marker 0x06).
    Undefined,
    /// Associative array, e.g. `onMetaData`'s payload (marker 0x08).
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Dense array (marker 0x0A).
    StrictArray(Vec<Amf0Value>),
    /// Date: milliseconds since the Unix epoch plus a time-zone field that
    /// the format reserves (marker 0x0B).
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Time-zone offset; the specification says it should be 0.
        timezone: i16,
    },
    /// String longer than 65535 bytes (marker 0x0C).
    LongString(String),
}

impl Amf0Value {
    /// The string value of a `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a `Number`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The value of a `Boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The properties of an `Object` or `EcmaArray`.
    pub fn as_properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an `Object` or `EcmaArray`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.as_properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Why AMF0 input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input ended inside a value")]
    UnexpectedEof,
    /// A type marker this decoder does not support (references, AMF3
    /// switch, XML, typed objects, ...).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("AMF0 object-end marker outside an object")]
    UnexpectedObjectEnd,
    /// Objects or arrays nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 values nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Decodes one value from the front of `input` and advances it past the
/// value.
pub fn decode(input: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
    decode_at_depth(input, 0)
}

/// Decodes consecutive values until `input` is exhausted.
pub fn decode_all(mut input: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut values = Vec::new();
    while !input.is_empty() {
        values.push(decode(&mut input)?);
    }
    Ok(values)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Amf0Error> {
    if input.len() < n {
        return Err(Amf0Error::UnexpectedEof);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], Amf0Error> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(input, N)?);
    Ok(out)
}

fn read_u16(input: &mut &[u8]) -> Result<u16, Amf0Error> {
    take_array::<2>(input).map(u16::from_be_bytes)
}

fn read_u32(input: &mut &[u8]) -> Result<u32, Amf0Error> {
    take_array::<4>(input).map(u32::from_be_bytes)
}

fn read_f64(input: &mut &[u8]) -> Result<f64, Amf0Error> {
    take_array::<8>(input).map(f64::from_be_bytes)
}

fn read_utf8(input: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let bytes = take(input, len)?;
    // Real encoders occasionally emit Latin-1 in metadata; losing a
    // character beats dropping the connection.
    Ok(match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    })
}

fn read_short_string(input: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = read_u16(input)?;
    read_utf8(input, usize::from(len))
}

fn decode_at_depth(input: &mut &[u8], depth: usize) -> Result<Amf0Value, Amf0Error> {
    let [marker] = take_array::<1>(input)?;
    match marker {
        MARKER_NUMBER => Ok(Amf0Value::Number(read_f64(input)?)),
        MARKER_BOOLEAN => Ok(Amf0Value::Boolean(take_array::<1>(input)?[0] != 0)),
        MARKER_STRING => Ok(Amf0Value::String(read_short_string(input)?)),
        MARKER_OBJECT => Ok(Amf0Value::Object(decode_properties(input, depth, false)?)),
        MARKER_NULL => Ok(Amf0Value::Null),
        MARKER_UNDEFINED => Ok(Amf0Value::Undefined),
        MARKER_ECMA_ARRAY => {
            // The count is only a hint (encoders get it wrong); the
            // object-end marker is authoritative.
            read_u32(input)?;
            Ok(Amf0Value::EcmaArray(decode_properties(input, depth, true)?))
        }
        MARKER_OBJECT_END => Err(Amf0Error::UnexpectedObjectEnd),
        MARKER_STRICT_ARRAY => {
            let count = read_u32(input)? as usize;
            if depth + 1 > MAX_DEPTH {
                return Err(Amf0Error::TooDeep);
            }
            // Every element takes at least one byte, so a count beyond the
            // remaining input is a lie. Even an honest count only reserves a
            // little up front: nested arrays could otherwise each reserve
            // for the whole remaining input.
            if count > input.len() {
                return Err(Amf0Error::UnexpectedEof);
            }
            let mut items = Vec::with_capacity(count.min(PREALLOCATE_MAX));
            for _ in 0..count {
                items.push(decode_at_depth(input, depth + 1)?);
            }
            Ok(Amf0Value::StrictArray(items))
        }
        MARKER_DATE => {
            let millis = read_f64(input)?;
            let timezone = i16::from_be_bytes(take_array::<2>(input)?);
            Ok(Amf0Value::Date { millis, timezone })
        }
        MARKER_LONG_STRING => {
            let len = read_u32(input)? as usize;
            Ok(Amf0Value::LongString(read_utf8(input, len)?))
        }
        other => Err(Amf0Error::UnsupportedMarker(other)),
    }
}

/// Reads `key value` pairs up to the `00 00 09` terminator. ECMA arrays may
/// also end at the end of input, because several encoders omit their
/// terminator.
fn decode_properties(
    input: &mut &[u8],
    depth: usize,
    eof_ends: bool,
) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
    if depth + 1 > MAX_DEPTH {
        return Err(Amf0Error::TooDeep);
    }
    let mut props = Vec::new();
    loop {
        if eof_ends && input.is_empty() {
            return Ok(props);
        }
        let key = read_short_string(input)?;
        if key.is_empty() && input.first() == Some(&MARKER_OBJECT_END) {
            *input = &input[1..];
            return Ok(props);
        }
        if eof_ends && key.is_empty() && input.is_empty() {
            return Ok(props);
        }
        let value = decode_at_depth(input, depth + 1)?;
        props.push((key, value));
    }
}

/// Appends the encoding of `value` to `out`.
///
/// `String` values longer than 65535 bytes are written as long strings;
/// object keys longer than 65535 bytes (which AMF0 cannot represent) are cut
/// at the last character boundary that fits.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => encode_number(*n, out),
        Amf0Value::Boolean(b) => {
            out.put_u8(MARKER_BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => encode_string(s, out),
        Amf0Value::Object(props) => {
            out.put_u8(MARKER_OBJECT);
            encode_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(MARKER_NULL),
        Amf0Value::Undefined => out.put_u8(MARKER_UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(MARKER_ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            encode_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(MARKER_STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(MARKER_DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(s) => encode_long_string(s, out),
    }
}

/// Appends a Number without building an [`Amf0Value`].
pub fn encode_number(n: f64, out: &mut BytesMut) {
    out.put_u8(MARKER_NUMBER);
    out.put_f64(n);
}

/// Appends a String (or a long string when `s` exceeds 65535 bytes)
/// without building an [`Amf0Value`].
pub fn encode_string(s: &str, out: &mut BytesMut) {
    match u16::try_from(s.len()) {
        Ok(len) => {
            out.put_u8(MARKER_STRING);
            out.put_u16(len);
            out.put_slice(s.as_bytes());
        }
        Err(_) => encode_long_string(s, out),
    }
}

/// Appends Null.
pub fn encode_null(out: &mut BytesMut) {
    out.put_u8(MARKER_NULL);
}

fn encode_long_string(s: &str, out: &mut BytesMut) {
    let bytes = truncate_at_char_boundary(s, u32::MAX as usize);
    out.put_u8(MARKER_LONG_STRING);
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes.as_bytes());
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        let key = truncate_at_char_boundary(key, usize::from(u16::MAX));
        // Bounded by the truncation just above.
        out.put_u16(key.len() as u16);
        out.put_slice(key.as_bytes());
        encode(value, out);
    }
    out.put_slice(&[0, 0, MARKER_OBJECT_END]);
}

fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Amf0Value) {
        let mut buf = BytesMut::new();
        encode(&value, &mut buf);
        let mut input = &buf[..];
        let decoded = decode(&mut input).expect("decodes");
        assert!(input.is_empty(), "decoder consumed every byte");
        assert_eq!(decoded, value);
    }

    fn obj(pairs: &[(&str, Amf0Value)]) -> Vec<(String, Amf0Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn scalars_survive_a_round_trip() {
        round_trip(Amf0Value::Number(3.5));
        round_trip(Amf0Value::Number(-0.0));
        round_trip(Amf0Value::Boolean(true));
        round_trip(Amf0Value::Boolean(false));
        round_trip(Amf0Value::String(String::new()));
        round_trip(Amf0Value::String("héllo".into()));
        round_trip(Amf0Value::Null);
        round_trip(Amf0Value::Undefined);
        round_trip(Amf0Value::Date {
            millis: 1.7e12,
            timezone: 0,
        });
        round_trip(Amf0Value::LongString("x".repeat(70_000)));
    }

    #[test]
    fn nested_objects_and_arrays_survive_a_round_trip() {
        let inner = Amf0Value::Object(obj(&[
            ("level", Amf0Value::String("status".into())),
            ("n", Amf0Value::Number(1.0)),
        ]));
        round_trip(Amf0Value::Object(obj(&[
            ("inner", inner.clone()),
            ("", Amf0Value::Null),
            (
                "list",
                Amf0Value::StrictArray(vec![inner.clone(), Amf0Value::Undefined]),
            ),
        ])));
        round_trip(Amf0Value::EcmaArray(obj(&[
            ("duration", Amf0Value::Number(0.0)),
            ("width", Amf0Value::Number(320.0)),
            ("encoder", Amf0Value::String("Lavf59.27.100".into())),
            ("nested", Amf0Value::EcmaArray(obj(&[("a", inner)]))),
        ])));
        round_trip(Amf0Value::EcmaArray(Vec::new()));
        round_trip(Amf0Value::StrictArray(Vec::new()));
    }

    #[test]
    fn long_strings_in_string_values_are_written_as_long_strings() {
        let mut buf = BytesMut::new();
        encode(&Amf0Value::String("y".repeat(65_536)), &mut buf);
        assert_eq!(buf[0], MARKER_LONG_STRING);
        let decoded = decode(&mut &buf[..]).expect("decodes");
        assert_eq!(decoded.as_str().map(str::len), Some(65_536));
    }

    #[test]
    fn ecma_arrays_without_a_terminator_end_at_end_of_input() {
        let bytes = [MARKER_ECMA_ARRAY, 0, 0, 0, 1, 0, 1, b'a', MARKER_BOOLEAN, 1];
        let decoded = decode(&mut &bytes[..]).expect("decodes");
        assert_eq!(
            decoded,
            Amf0Value::EcmaArray(obj(&[("a", Amf0Value::Boolean(true))]))
        );
    }

    #[test]
    fn decode_all_reads_a_command_message() {
        let mut buf = BytesMut::new();
        encode_string("connect", &mut buf);
        encode_number(1.0, &mut buf);
        encode(
            &Amf0Value::Object(obj(&[("app", Amf0Value::String("live".into()))])),
            &mut buf,
        );
        let values = decode_all(&buf).expect("decodes");
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        encode(
            &Amf0Value::Object(obj(&[("key", Amf0Value::String("value".into()))])),
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert!(decode(&mut &buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        let strict = [MARKER_STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, MARKER_NULL];
        assert_eq!(decode(&mut &strict[..]), Err(Amf0Error::UnexpectedEof));
        let long = [MARKER_LONG_STRING, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
        assert_eq!(decode(&mut &long[..]), Err(Amf0Error::UnexpectedEof));
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected() {
        let mut deep = Vec::new();
        for _ in 0..(MAX_DEPTH + 1) {
            deep.extend_from_slice(&[MARKER_STRICT_ARRAY, 0, 0, 0, 1]);
        }
        deep.push(MARKER_NULL);
        assert_eq!(decode(&mut &deep[..]), Err(Amf0Error::TooDeep));

        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[MARKER_STRICT_ARRAY, 0, 0, 0, 1]);
        }
        ok.push(MARKER_NULL);
        assert!(decode(&mut &ok[..]).is_ok());
    }

    #[test]
    fn unsupported_markers_and_stray_object_ends_are_errors() {
        assert_eq!(
            decode(&mut &[0x07u8, 0, 1][..]),
            Err(Amf0Error::UnsupportedMarker(0x07))
        );
        assert_eq!(
            decode(&mut &[MARKER_OBJECT_END][..]),
            Err(Amf0Error::UnexpectedObjectEnd)
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_rather_than_rejected() {
        let bytes = [MARKER_STRING, 0, 2, 0xC3, 0x28];
        let decoded = decode(&mut &bytes[..]).expect("decodes");
        assert_eq!(decoded.as_str(), Some("\u{FFFD}("));
    }
}
