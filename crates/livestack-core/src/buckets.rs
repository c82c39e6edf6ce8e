//! Which object-storage buckets each account may store files into.
//!
//! Owns: the operator's grant table (`[storage.s3] buckets` in the
//! configuration) and the one question asked of it, [`BucketGrants::permits`].
//! The API asks it when a template or task names a bucket; the media plane
//! asks it again before every upload, so a template made before the
//! operator narrowed the table cannot write where it no longer may.
//! Must not: read configuration files or know about S3 itself.
//!
//! A grant is a list of patterns per AppId (the `appid` of callbacks), with
//! `*` for any run of characters and `{appid}` for the account's own AppId,
//! plus an entry `*` for every account the table does not name:
//! `"*" = ["{appid}-*"]` gives every account the buckets named after it
//! and no other's. An empty table grants every bucket to every account
//! (one operator, one tenant: the default).

use std::collections::BTreeMap;

/// The grant table. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketGrants {
    /// Patterns by AppId.
    by_app_id: BTreeMap<i64, Vec<String>>,
    /// Patterns for accounts not in `by_app_id`; `None` grants them none
    /// (when the table is not empty).
    others: Option<Vec<String>>,
}

/// A grant table the configuration got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantError(String);

impl std::fmt::Display for GrantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GrantError {}

impl BucketGrants {
    /// A table from `(key, patterns)` pairs, where a key is an AppId in
    /// decimal or `*`.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a str, Vec<String>)>,
    ) -> Result<BucketGrants, GrantError> {
        let mut grants = BucketGrants::default();
        for (key, patterns) in entries {
            for p in &patterns {
                let sample = p.replace("{appid}", "1250000000").replace('*', "x");
                if p.is_empty()
                    || !sample.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    })
                {
                    return Err(GrantError(format!(
                        "bucket pattern {p:?} for {key:?}: use lower-case letters, digits, `-`, `.`, `*` and {{appid}}"
                    )));
                }
            }
            if key == "*" {
                grants.others = Some(patterns);
            } else {
                let id: i64 = key.parse().map_err(|_| {
                    GrantError(format!(
                        "bucket grants are keyed by AppId (a number, the `appid` of callbacks) or \"*\", not {key:?}"
                    ))
                })?;
                grants.by_app_id.insert(id, patterns);
            }
        }
        Ok(grants)
    }

    /// Whether the table restricts anything.
    pub fn is_open(&self) -> bool {
        self.by_app_id.is_empty() && self.others.is_none()
    }

    /// Whether the account with AppId `app_id` may store into `bucket`.
    pub fn permits(&self, app_id: i64, bucket: &str) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(patterns) = self.by_app_id.get(&app_id).or(self.others.as_ref()) else {
            return false;
        };
        let own = app_id.to_string();
        patterns
            .iter()
            .any(|p| glob(&p.replace("{appid}", &own), bucket))
    }
}

/// `*`-only glob match over bytes.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(entries: &[(&str, &[&str])]) -> BucketGrants {
        BucketGrants::new(
            entries
                .iter()
                .map(|(k, v)| (*k, v.iter().map(|s| (*s).to_owned()).collect())),
        )
        .expect("grants")
    }

    #[test]
    fn an_empty_table_grants_every_bucket() {
        assert!(BucketGrants::default().permits(1, "anything"));
    }

    #[test]
    fn an_account_gets_its_own_patterns_and_others_get_the_star_entry() {
        let g = grants(&[("1250000001", &["rec-*", "pics"]), ("*", &["*-{appid}"])]);
        assert!(g.permits(1_250_000_001, "rec-a"));
        assert!(g.permits(1_250_000_001, "pics"));
        assert!(!g.permits(1_250_000_001, "pics2"));
        // Its own entry replaces the star entry.
        assert!(!g.permits(1_250_000_001, "x-1250000001"));
        assert!(g.permits(1_250_000_002, "media-1250000002"));
        assert!(!g.permits(1_250_000_002, "media-1250000001"));
        assert!(!g.permits(1_250_000_002, "rec-a"));
    }

    #[test]
    fn without_a_star_entry_unnamed_accounts_get_no_bucket() {
        let g = grants(&[("7", &["*"])]);
        assert!(g.permits(7, "any"));
        assert!(!g.permits(8, "any"));
    }

    #[test]
    fn bad_keys_and_patterns_are_refused() {
        for (k, p) in [("root", "x"), ("*", "UPPER"), ("1", ""), ("1", "a/b")] {
            assert!(
                BucketGrants::new([(k, vec![p.to_owned()])]).is_err(),
                "{k} {p}"
            );
        }
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*c", "abcd"));
        assert!(!glob("abc", "ab"));
    }
}
