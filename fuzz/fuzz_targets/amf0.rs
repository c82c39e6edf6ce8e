//! AMF0: decoding arbitrary bytes never panics, and whatever decodes
//! re-encodes to bytes that decode to the same value.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestack_rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    let _ = amf0::decode_all(data);

    let mut input = data;
    while let Ok(value) = amf0::decode(&mut input) {
        let mut first = BytesMut::new();
        amf0::encode(&value, &mut first);
        let again = amf0::decode(&mut &first[..]).expect("an encoded value decodes");
        // Compare encodings rather than values: NaN != NaN.
        let mut second = BytesMut::new();
        amf0::encode(&again, &mut second);
        assert_eq!(first, second, "re-encoding is stable");
        if input.is_empty() {
            break;
        }
    }
});
