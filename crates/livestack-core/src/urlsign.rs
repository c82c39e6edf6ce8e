//! CSS URL signing ("hotlink protection"): `txSecret` and `txTime` on push
//! and play URLs.
//!
//! `txTime` is the URL's expiry as hexadecimal Unix seconds; `txSecret` is
//! the lower-case hex MD5 of `key + StreamName + txTime`, hashed over the
//! `txTime` string exactly as written in the URL. AppName and domain are
//! not part of the hash. Shared by the `url` command (signing) and the
//! media plane (verification).

use md5::{Digest, Md5};

/// `txSecret` for a stream name and a `txTime` string.
pub fn tx_secret(key: &str, stream_name: &str, tx_time: &str) -> String {
    let mut h = Md5::new();
    h.update(key.as_bytes());
    h.update(stream_name.as_bytes());
    h.update(tx_time.as_bytes());
    hex::encode(h.finalize())
}

/// `txTime` for an expiry: upper-case hex Unix seconds, as the CSS console
/// writes it.
pub fn tx_time(expires_at: i64) -> String {
    format!("{:X}", expires_at.max(0))
}

/// The query string `txSecret=…&txTime=…` for a URL.
pub fn query(key: &str, stream_name: &str, expires_at: i64) -> String {
    let time = tx_time(expires_at);
    format!(
        "txSecret={}&txTime={time}",
        tx_secret(key, stream_name, &time)
    )
}

/// Why a signed URL was refused; each maps to a CSS push error code
/// (<https://www.tencentcloud.com/document/product/267/31560>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither `txSecret` nor `txTime` (18/502).
    NoAuthParams,
    /// `txTime` missing or not hex (18/500).
    NoTxTime,
    /// `txTime` + the grace period is in the past (18/501).
    Expired,
    /// The secret matches neither key (18/503).
    BadSecret,
}

/// Checks `txSecret`/`txTime` against the master and backup keys at Unix
/// time `now`, allowing `delta` seconds past `txTime`.
pub fn verify(
    keys: &[&str],
    delta: i64,
    stream_name: &str,
    tx_secret_given: Option<&str>,
    tx_time_given: Option<&str>,
    now: i64,
) -> Result<(), Refusal> {
    let (secret, time) = match (tx_secret_given, tx_time_given) {
        (None, None) => return Err(Refusal::NoAuthParams),
        (_, None) => return Err(Refusal::NoTxTime),
        (None, Some(_)) => return Err(Refusal::BadSecret),
        (Some(s), Some(t)) => (s, t),
    };
    let expiry = i64::from_str_radix(time, 16).map_err(|_| Refusal::NoTxTime)?;
    if expiry.saturating_add(delta) < now {
        return Err(Refusal::Expired);
    }
    let ok = keys
        .iter()
        .filter(|k| !k.is_empty())
        .any(|k| tx_secret(k, stream_name, time).eq_ignore_ascii_case(secret));
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_secret_matches_the_official_example() {
        // The example of <https://www.tencentcloud.com/document/product/267/31560>.
        assert_eq!(
            tx_secret("e12c46f2612d5106e2034781ab261ca3", "test", "5C271099"),
            "f85a2ab363fe4deaffef9754d79da6fe"
        );
        // The hash is over txTime as written: lower-case hex differs.
        assert_eq!(
            tx_secret("e12c46f2612d5106e2034781ab261ca3", "test", "5c271099"),
            "9603387445825a481e6b7496aced5746"
        );
        assert_eq!(tx_time(0x5C271099), "5C271099");
    }

    #[test]
    fn verification_accepts_either_key_until_expiry_plus_delta() {
        let q = |key: &str| tx_secret(key, "s", "64");
        let keys = ["master", "backup"];
        assert_eq!(
            verify(&keys, 0, "s", Some(&q("master")), Some("64"), 100),
            Ok(())
        );
        assert_eq!(
            verify(&keys, 0, "s", Some(&q("backup")), Some("64"), 100),
            Ok(())
        );
        assert_eq!(
            verify(&keys, 0, "s", Some(&q("other")), Some("64"), 100),
            Err(Refusal::BadSecret)
        );
        assert_eq!(
            verify(&keys, 0, "s", Some(&q("master")), Some("64"), 101),
            Err(Refusal::Expired)
        );
        assert_eq!(
            verify(&keys, 10, "s", Some(&q("master")), Some("64"), 110),
            Ok(())
        );
        assert_eq!(
            verify(&keys, 0, "s", None, None, 0),
            Err(Refusal::NoAuthParams)
        );
        assert_eq!(
            verify(&keys, 0, "s", Some("x"), None, 0),
            Err(Refusal::NoTxTime)
        );
        assert_eq!(
            verify(&keys, 0, "s", Some("x"), Some("zz"), 0),
            Err(Refusal::NoTxTime)
        );
        // The stream name is in the hash.
        assert_eq!(
            verify(&keys, 0, "t", Some(&q("master")), Some("64"), 0),
            Err(Refusal::BadSecret)
        );
    }
}
