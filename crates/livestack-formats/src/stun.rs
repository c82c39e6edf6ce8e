//! STUN (RFC 8489) just far enough to route a datagram: the USERNAME of a
//! message, which for ICE is `<receiver's ufrag>:<sender's ufrag>`.
//!
//! Owns: finding one attribute in an untrusted datagram without
//! allocating. Must not: check integrity or fingerprints (the WebRTC
//! stack that gets the datagram does).

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;

/// The USERNAME attribute of `datagram` when it is a STUN message that
/// carries one as UTF-8.
pub fn username(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < HEADER || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(HEADER..HEADER + len)?;
    let mut pos = 0;
    while pos + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[pos], body[pos + 1]]);
        let attr_len = usize::from(u16::from_be_bytes([body[pos + 2], body[pos + 3]]));
        let value = body.get(pos + 4..pos + 4 + attr_len)?;
        if kind == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        // Values are padded to four bytes.
        pos += 4 + attr_len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn the_username_is_found_after_other_padded_attributes() {
        let m = message(&[
            (0x0024, b"\x6e\x7f\x1e\xff"),
            (0x802A, b"12345"),
            (USERNAME, b"srv:cli"),
        ]);
        assert_eq!(username(&m), Some("srv:cli"));
    }

    #[test]
    fn rtp_dtls_and_truncated_messages_have_no_username() {
        let m = message(&[(USERNAME, b"srv:cli")]);
        assert_eq!(username(&m[..m.len() - 2]), None);
        assert_eq!(username(&[0x80, 0x60, 0, 1]), None);
        assert_eq!(
            username(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }
}
