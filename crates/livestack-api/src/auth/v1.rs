//! The legacy signature (HmacSHA1 / HmacSHA256) that tccli-era scripts and
//! the SDKs' `signMethod` option still send: parameters in the query or a
//! form body, signed as `METHOD + host + "/?" + sorted k=v`.
//!
//! Pure functions; no I/O.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The hash of a legacy signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `HmacSHA1`, the default when `SignatureMethod` is absent.
    HmacSha1,
    /// `HmacSHA256`.
    HmacSha256,
}

impl Method {
    /// Parses `SignatureMethod`; `None` for an unknown name.
    pub fn parse(name: Option<&str>) -> Option<Method> {
        match name {
            None | Some("HmacSHA1") => Some(Method::HmacSha1),
            Some("HmacSHA256") => Some(Method::HmacSha256),
            Some(_) => None,
        }
    }
}

/// The string to sign. `params` are every decoded parameter but `Signature`.
pub fn string_to_sign(method: &str, host: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = format!("{method}{host}/?");
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Base64 HMAC of `string_to_sign`.
pub fn sign(method: Method, secret_key: &str, string_to_sign: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match method {
        Method::HmacSha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret_key.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(string_to_sign.as_bytes());
            engine.encode(mac.finalize().into_bytes())
        }
        Method::HmacSha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret_key.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(string_to_sign.as_bytes());
            engine.encode(mac.finalize().into_bytes())
        }
    }
}

/// Checks `signature` in constant time, allowing for the Host as sent or
/// without scheme or port, and for the Python SDK's habit of signing keys
/// with `_` replaced by `.`.
pub fn verify(
    http_method: &str,
    raw_host: &str,
    params: &[(&str, &str)],
    method: Method,
    secret_key: &str,
    signature: &str,
) -> bool {
    let dotted: Vec<(String, &str)> = params
        .iter()
        .map(|(k, v)| (k.replace('_', "."), *v))
        .collect();
    let dotted: Vec<(&str, &str)> = dotted.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut param_sets = vec![params];
    if dotted != params {
        param_sets.push(&dotted);
    }
    let mut matched = false;
    for host in super::tc3::host_variants(raw_host).into_iter().flatten() {
        for set in &param_sets {
            let expected = sign(method, secret_key, &string_to_sign(http_method, host, set));
            matched |= bool::from(expected.as_bytes().ct_eq(signature.as_bytes()));
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[(&str, &str)] = &[
        ("Action", "DescribeInstances"),
        ("InstanceIds.0", "ins-09dx96dg"),
        ("Limit", "20"),
        ("Nonce", "11886"),
        ("Offset", "0"),
        ("Region", "ap-guangzhou"),
        ("SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
        ("Timestamp", "1465185768"),
        ("Version", "2017-03-12"),
    ];

    #[test]
    fn signer_reproduces_the_official_hmac_sha1_vector() {
        let sts = string_to_sign("GET", "cvm.tencentcloudapi.com", PARAMS);
        assert_eq!(
            sts,
            "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg\
             &Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou\
             &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE&Timestamp=1465185768&Version=2017-03-12"
        );
        assert_eq!(
            sign(Method::HmacSha1, "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", &sts),
            "EliP9YW3pW28FpsEdkXt/+WcGeI="
        );
    }

    #[test]
    fn verifier_accepts_the_vector_in_any_parameter_order_and_rejects_another_key() {
        let mut shuffled = PARAMS.to_vec();
        shuffled.reverse();
        let key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
        let sig = "EliP9YW3pW28FpsEdkXt/+WcGeI=";
        assert!(verify(
            "GET",
            "cvm.tencentcloudapi.com",
            &shuffled,
            Method::HmacSha1,
            key,
            sig
        ));
        assert!(verify(
            "GET",
            "cvm.tencentcloudapi.com:443",
            &shuffled,
            Method::HmacSha1,
            key,
            sig
        ));
        assert!(!verify(
            "GET",
            "cvm.tencentcloudapi.com",
            &shuffled,
            Method::HmacSha1,
            "other",
            sig
        ));
        assert!(!verify(
            "POST",
            "cvm.tencentcloudapi.com",
            &shuffled,
            Method::HmacSha1,
            key,
            sig
        ));
    }

    #[test]
    fn signature_method_names_are_the_documented_ones() {
        assert_eq!(Method::parse(None), Some(Method::HmacSha1));
        assert_eq!(Method::parse(Some("HmacSHA256")), Some(Method::HmacSha256));
        assert_eq!(Method::parse(Some("hmacsha256")), None);
    }
}
