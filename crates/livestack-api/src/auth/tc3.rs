//! TC3-HMAC-SHA256, the API 3.0 signature: parsing the `Authorization`
//! header, signing, and verifying with the tolerances real clients need.
//!
//! Pure functions over bytes; no I/O, no store access.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// HMAC-SHA256. A keyed one is what a server caches per signing key:
/// cloning it skips hashing the key's pads again.
pub type HmacSha256 = Hmac<Sha256>;

/// The algorithm name at the start of the header.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// A parsed `Authorization: TC3-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The key id from the credential scope.
    pub secret_id: &'a str,
    /// `YYYY-MM-DD` from the credential scope.
    pub date: &'a str,
    /// The service from the credential scope (`live`; the Node SDK sends the
    /// first label of its endpoint, so any value is accepted).
    pub service: &'a str,
    /// Lower-cased header names, in the order the client signed them
    /// (borrowed from the header unless it had to be lower-cased).
    pub signed_headers: Vec<Cow<'a, str>>,
    /// The hex signature.
    pub signature: &'a str,
}

/// Parses the header; `Err` says what is malformed.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, &'static str> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or("the algorithm is not TC3-HMAC-SHA256")?;
    if !rest.starts_with(' ') {
        return Err("the algorithm is not TC3-HMAC-SHA256");
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else if !part.is_empty() {
            return Err("unexpected element in the Authorization header");
        }
    }
    let credential = credential.ok_or("Credential is missing")?;
    let signed_headers = signed_headers.ok_or("SignedHeaders is missing")?;
    let signature = signature.ok_or("Signature is missing")?;
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err("Credential is not SecretId/Date/Service/tc3_request");
    };
    if secret_id.is_empty() || service.is_empty() || !is_date(date) {
        return Err("Credential is not SecretId/Date/Service/tc3_request");
    }
    let signed_headers: Vec<Cow<'_, str>> = signed_headers
        .split(';')
        .map(|h| {
            let h = h.trim();
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(h.to_ascii_lowercase())
            } else {
                Cow::Borrowed(h)
            }
        })
        .collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err("SignedHeaders has an empty name");
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("Signature is not 64 hex digits");
    }
    Ok(Authorization {
        secret_id,
        date,
        service,
        signed_headers,
        signature,
    })
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = keyed(key);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex_lower(&Sha256::digest(data))
}

/// Lower-case hex, by table (the `hex` crate's char iterator was 2.5 % of
/// a signed request's CPU).
fn hex_lower(bytes: &[u8]) -> String {
    let mut out = vec![0_u8; bytes.len() * 2];
    hex_lower_into(bytes, &mut out);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// [`hex_lower`] into `out`, which holds twice as many bytes as `bytes`.
fn hex_lower_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0F)];
    }
}

/// `SecretSigning`: the key derived from the secret, date and service.
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    hmac(&k_service, b"tc3_request")
}

/// The canonical request. `headers` are the signed headers' (lower-case
/// name, value) pairs in signing order; values are trimmed here.
pub fn canonical_request(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(256);
    canonical_request_into(&mut out, method, query, headers, false, payload_hash);
    out
}

/// [`canonical_request`] into `out` (cleared first), with the header
/// values lower-cased when `lower` (a variant clients sign).
fn canonical_request_into(
    out: &mut String,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    lower: bool,
    payload_hash: &str,
) {
    out.clear();
    out.push_str(method);
    out.push_str("\n/\n");
    out.push_str(query);
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        let at = out.len();
        out.push_str(value.trim());
        if lower {
            out[at..].make_ascii_lowercase();
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload_hash);
}

/// The string to sign, from the canonical request.
pub fn string_to_sign(timestamp: &str, date: &str, service: &str, canonical: &str) -> String {
    let mut out = String::with_capacity(160);
    for piece in string_to_sign_head(timestamp, date, service) {
        out.push_str(piece);
    }
    out.push_str(&sha256_hex(canonical.as_bytes()));
    out
}

/// The string to sign up to the canonical request's hash, which ends it.
fn string_to_sign_head<'a>(timestamp: &'a str, date: &'a str, service: &'a str) -> [&'a str; 8] {
    [
        ALGORITHM,
        "\n",
        timestamp,
        "\n",
        date,
        "/",
        service,
        "/tc3_request\n",
    ]
}

/// The hex signature of `string_to_sign` under a derived signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex_lower(&hmac(signing_key, string_to_sign.as_bytes()))
}

/// What the server knows about a request, for verification.
pub struct Signed<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The raw query string (empty for POST).
    pub query: &'a str,
    /// `X-TC-Timestamp` as sent.
    pub timestamp: &'a str,
    /// The payload hash (of the body, or of `UNSIGNED-PAYLOAD`).
    pub payload_hash: String,
    /// The value of each signed header as received, `None` when absent.
    /// `host` is the raw Host header.
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
}

/// Checks `auth.signature` for `req` under `secret_key`, in constant time.
///
/// Clients disagree on what they sign (the official SDKs and tccli each sign a little differently), so the
/// canonical request is tried with header values as sent and lower-cased,
/// and with the Host as sent, without a scheme prefix (tccli users write
/// `--endpoint http://…`) and without its port (the Node SDK signs the
/// hostname only). The signing key is derived once.
pub fn verify(req: &Signed<'_>, auth: &Authorization<'_>, secret_key: &str) -> bool {
    verify_with(
        req,
        auth,
        &keyed(&signing_key(secret_key, auth.date, auth.service)),
    )
}

/// An HMAC keyed with `key` (for [`verify_with`], the signing key).
pub fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

/// [`verify`] with the HMAC already keyed with the signing key (see
/// [`signing_key`] and [`keyed`]): a server caches it per key, date and
/// service.
pub fn verify_with(req: &Signed<'_>, auth: &Authorization<'_>, key: &HmacSha256) -> bool {
    let raw_host = (req.header)("host").unwrap_or("");
    let hosts = host_variants(raw_host);
    // The variants are tried in order and the first match wins: which
    // variant a client needs is no secret, and each comparison itself is
    // constant-time. Most clients match the first (as sent). Each is
    // built in one reused buffer and the string to sign is fed to the
    // HMAC in pieces: allocating them per variant was a sixth of the
    // gateway's CPU.
    let Some(wanted) = decode_signature(auth.signature) else {
        return false;
    };
    // The signed headers' values, looked up once; `host`'s varies below.
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = if name == "host" {
            Some(raw_host)
        } else {
            (req.header)(name)
        };
        let Some(value) = value else {
            // A header the client claims to have signed is absent.
            return false;
        };
        pairs.push((name, value));
    }
    let mut canonical = String::with_capacity(256);
    for lower in [false, true] {
        for host in hosts.into_iter().flatten() {
            for (name, value) in &mut pairs {
                if *name == "host" {
                    *value = host;
                }
            }
            canonical_request_into(
                &mut canonical,
                req.method,
                req.query,
                &pairs,
                lower,
                &req.payload_hash,
            );
            let hashed = Sha256::digest(canonical.as_bytes());
            let mut hex = [0_u8; 64];
            hex_lower_into(&hashed, &mut hex);
            let mut mac = key.clone();
            for piece in string_to_sign_head(req.timestamp, auth.date, auth.service) {
                mac.update(piece.as_bytes());
            }
            mac.update(&hex);
            let expected: [u8; 32] = mac.finalize().into_bytes().into();
            if bool::from(expected.ct_eq(&wanted)) {
                return true;
            }
        }
    }
    false
}

/// The 32 bytes of a 64-digit lower-case hex signature, or `None` (an
/// upper-case signature never matched the lower-case one computed).
fn decode_signature(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i])? << 4) | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// The Host as sent, then without `http(s)://`, then without the port;
/// `None` where a variant is the same as one before it.
pub(crate) fn host_variants(raw: &str) -> [Option<&str>; 3] {
    let no_scheme = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"))
        .unwrap_or(raw);
    let no_scheme = no_scheme.trim_end_matches('/');
    let no_port = strip_port(no_scheme);
    [
        Some(raw),
        (no_scheme != raw).then_some(no_scheme),
        (no_port != raw && no_port != no_scheme).then_some(no_port),
    ]
}

fn strip_port(host: &str) -> &str {
    // Leave bracketed IPv6 literals without a port alone.
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official example of Tencent's signature v3 documentation
    // (<https://cloud.tencent.com/document/product/1278/46710>).
    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    const BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    #[test]
    fn signer_reproduces_the_official_test_vector() {
        let payload = sha256_hex(BODY.as_bytes());
        assert_eq!(
            payload,
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let canonical = canonical_request(
            "POST",
            "",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("host", "cvm.tencentcloudapi.com"),
            ],
            &payload,
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let sts = string_to_sign("1551113065", "2019-02-25", "cvm", &canonical);
        let sig = signature(&signing_key(KEY, "2019-02-25", "cvm"), &sts);
        assert_eq!(
            sig,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    fn check(host_header: &str, signature: &str) -> bool {
        check_with(host_header, "application/json; charset=utf-8", signature)
    }

    fn check_with(host_header: &str, content_type: &str, signature: &str) -> bool {
        let header = move |name: &str| match name {
            "host" => Some(host_header),
            "content-type" => Some(content_type),
            _ => None,
        };
        let req = Signed {
            method: "POST",
            query: "",
            timestamp: "1551113065",
            payload_hash: sha256_hex(BODY.as_bytes()),
            header: &header,
        };
        let value = format!(
            "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, Signature={signature}"
        );
        let auth = parse_authorization(&value).expect("parses");
        verify(&req, &auth, KEY)
    }

    const GOOD: &str = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168";

    #[test]
    fn verifier_accepts_the_official_vector_and_rejects_a_changed_signature() {
        assert!(check("cvm.tencentcloudapi.com", GOOD));
        let bad = GOOD.replace("72e4", "72e5");
        assert!(!check("cvm.tencentcloudapi.com", &bad));
    }

    #[test]
    fn verifier_tolerates_header_values_the_client_signed_lower_cased() {
        assert!(check_with(
            "cvm.tencentcloudapi.com",
            " APPLICATION/JSON; charset=UTF-8 ",
            GOOD
        ));
        assert!(!check_with(
            "cvm.tencentcloudapi.com",
            "text/plain; charset=utf-8",
            GOOD
        ));
    }

    #[test]
    fn verifier_refuses_the_signature_in_upper_case_hex() {
        assert!(!check(
            "cvm.tencentcloudapi.com",
            &GOOD.to_ascii_uppercase()
        ));
    }

    #[test]
    fn verifier_tolerates_a_port_or_scheme_the_client_did_not_sign() {
        assert!(check("cvm.tencentcloudapi.com:443", GOOD));
        assert!(check("http://cvm.tencentcloudapi.com", GOOD));
        assert!(!check("other.example.com", GOOD));
    }

    #[test]
    fn signed_header_names_are_read_lower_cased() {
        let value = format!(
            "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=Content-Type; Host, Signature={GOOD}"
        );
        let auth = parse_authorization(&value).expect("parses");
        assert_eq!(auth.signed_headers, ["content-type", "host"]);
    }

    #[test]
    fn malformed_authorization_headers_are_rejected_with_a_reason() {
        for bad in [
            "SKIP",
            "TC3-HMAC-SHA256",
            "TC3-HMAC-SHA1 Credential=a/2019-02-25/live/tc3_request, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/live, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=AKID/20190225/live/tc3_request, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/live/tc3_request, SignedHeaders=host, Signature=xyz",
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/live/tc3_request, Signature=00",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_variants_strip_scheme_and_port() {
        assert_eq!(
            host_variants("http://127.0.0.1:9100"),
            [
                Some("http://127.0.0.1:9100"),
                Some("127.0.0.1:9100"),
                Some("127.0.0.1")
            ]
        );
        assert_eq!(
            host_variants("example.com"),
            [Some("example.com"), None, None]
        );
        assert_eq!(
            host_variants("example.com:80"),
            [Some("example.com:80"), None, Some("example.com")]
        );
    }
}
