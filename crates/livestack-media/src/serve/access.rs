//! Who may push and play: names, domains, URL signatures and referers,
//! checked against the control plane's [`Policy`].
//!
//! Owns: parsing RTMP `tcUrl`s and stream names with their query strings,
//! and the push/play decisions. Must not: do I/O. Pure functions, so every
//! refusal is unit-tested.

use livestack_core::media::{EndReason, Policy, UrlAuth};
use livestack_core::{urlsign, AccountId, DomainKind};

/// The host of an RTMP `tcUrl` (`rtmp://host[:port]/app[?query]`) and
/// the query string of its app part, if any.
pub(crate) fn tc_url_parts(tc_url: &str) -> (Option<String>, String) {
    let rest = tc_url.split_once("://").map_or(tc_url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = strip_port(host);
    let query = path
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    ((!host.is_empty()).then(|| host.to_ascii_lowercase()), query)
}

/// A host without its `:port` (IPv6 literals in brackets keep theirs out too).
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.split(':').next().unwrap_or(host)
}

/// Splits `name?query` into the name and the query.
pub(crate) fn split_query(name: &str) -> (&str, &str) {
    name.split_once('?').unwrap_or((name, ""))
}

/// The value of `key` in a query string, decoded.
pub(crate) fn query_get(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Whether an AppName or StreamName is acceptable: 1–256 letters, digits,
/// `_`, `-` or `.`, not `.` or `..` (CSS refuses others with 18/308).
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The domain a request means: a `domain=` parameter (for clients that
/// connect to an IP address) wins over the host.
pub(crate) fn resolve_domain(host: Option<&str>, queries: &[&str]) -> Option<String> {
    queries
        .iter()
        .find_map(|q| query_get(q, "domain"))
        .map(|d| d.to_ascii_lowercase())
        .or_else(|| host.map(str::to_ascii_lowercase))
}

/// Checks the `txSecret`/`txTime` of `query` for `stream` under `auth`.
fn check_signature(
    auth: &UrlAuth,
    stream: &str,
    query: &str,
    now: i64,
) -> Result<(), urlsign::Refusal> {
    let keys: Vec<&str> = auth.keys.iter().map(String::as_str).collect();
    urlsign::verify(
        &keys,
        auth.delta,
        stream,
        query_get(query, "txSecret").as_deref(),
        query_get(query, "txTime").as_deref(),
        now,
    )
}

/// Decides a push of `app`/`stream` to `domain` with `query` at `now`.
pub(crate) fn authorize_push(
    policy: &Policy,
    domain: &str,
    app: &str,
    stream: &str,
    query: &str,
    now: i64,
) -> Result<AccountId, EndReason> {
    let d = admit_push(policy, domain, app, stream, now)?;
    if let Some(auth) = &d.auth {
        check_signature(auth, stream, query, now).map_err(|r| match r {
            urlsign::Refusal::NoAuthParams => EndReason::NoAuthParams,
            urlsign::Refusal::NoTxTime => EndReason::NoTxTime,
            urlsign::Refusal::Expired => EndReason::Expired,
            urlsign::Refusal::BadSecret => EndReason::BadSignature,
        })?;
    }
    Ok(d.account)
}

/// Everything [`authorize_push`] checks but the signature: an enabled push
/// domain, valid names, a stream not forbidden. A relay task's push, which
/// carries no signature, is checked this far.
pub(crate) fn admit_push<'p>(
    policy: &'p Policy,
    domain: &str,
    app: &str,
    stream: &str,
    now: i64,
) -> Result<&'p livestack_core::media::DomainPolicy, EndReason> {
    let Some(d) = policy.domain(domain).filter(|d| d.kind == DomainKind::Push) else {
        return Err(EndReason::UnknownDomain);
    };
    if !d.enabled {
        return Err(EndReason::DomainDisabled);
    }
    if !valid_name(app) || !valid_name(stream) {
        return Err(EndReason::BadName);
    }
    let key = livestack_core::media::StreamKey {
        account: d.account,
        app: app.to_owned(),
        stream: stream.to_owned(),
    };
    if policy.is_forbidden(&key, now) {
        return Err(EndReason::StreamForbidden);
    }
    Ok(d)
}

/// Why a play was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlayRefusal {
    /// No such play domain, or a bad name (HTTP 404).
    NotFound,
    /// The domain is disabled, the signature or the referer failed (HTTP 403).
    Forbidden,
}

/// Decides a play of `stream` (possibly suffixed) on play domain `domain`.
/// `referer` is `Some` for HTTP playback (the header, if sent), `None`
/// for RTMP, where CSS does not check referers.
pub(crate) fn authorize_play(
    policy: &Policy,
    domain: &str,
    app: &str,
    stream: &str,
    query: &str,
    referer: Option<Option<&str>>,
    now: i64,
) -> Result<AccountId, PlayRefusal> {
    let Some(d) = policy.domain(domain).filter(|d| d.kind == DomainKind::Play) else {
        return Err(PlayRefusal::NotFound);
    };
    if !valid_name(app) || !valid_name(stream) {
        return Err(PlayRefusal::NotFound);
    }
    if !d.enabled {
        return Err(PlayRefusal::Forbidden);
    }
    if let Some(referer) = referer {
        if !d.referer.allows(referer) {
            return Err(PlayRefusal::Forbidden);
        }
    }
    if let Some(auth) = &d.auth {
        check_signature(auth, stream, query, now).map_err(|_| PlayRefusal::Forbidden)?;
    }
    Ok(d.account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::media::{DomainPolicy, RefererPolicy, StreamKey};

    fn policy() -> Policy {
        let mut p = Policy::default();
        let domain = |kind, auth: Option<UrlAuth>| DomainPolicy {
            account: AccountId(7),
            kind,
            enabled: true,
            auth,
            referer: RefererPolicy::default(),
            tls: None,
        };
        let auth = Some(UrlAuth {
            keys: vec!["master".into(), "backup".into()],
            delta: 0,
        });
        p.domains.insert(
            "push.example.com".into(),
            domain(DomainKind::Push, auth.clone()),
        );
        p.domains
            .insert("open.example.com".into(), domain(DomainKind::Push, None));
        p.domains
            .insert("play.example.com".into(), domain(DomainKind::Play, auth));
        let mut off = domain(DomainKind::Push, None);
        off.enabled = false;
        p.domains.insert("off.example.com".into(), off);
        p.forbidden.insert(
            StreamKey {
                account: AccountId(7),
                app: "live".into(),
                stream: "banned".into(),
            },
            1000,
        );
        p
    }

    fn signed(key: &str, stream: &str, expiry: i64) -> String {
        urlsign::query(key, stream, expiry)
    }

    #[test]
    fn tc_urls_give_their_host_and_query() {
        assert_eq!(
            tc_url_parts("rtmp://Push.Example.com:1935/live?domain=x.com"),
            (Some("push.example.com".into()), "domain=x.com".into())
        );
        assert_eq!(
            tc_url_parts("rtmp://127.0.0.1/live"),
            (Some("127.0.0.1".into()), String::new())
        );
        assert_eq!(split_query("cam?a=1&b=2"), ("cam", "a=1&b=2"));
        assert_eq!(
            resolve_domain(Some("127.0.0.1"), &["", "domain=Push.example.com"]),
            Some("push.example.com".into())
        );
        assert_eq!(
            resolve_domain(Some("push.example.com"), &[""]),
            Some("push.example.com".into())
        );
    }

    #[test]
    fn pushes_are_refused_with_the_css_reason() {
        let p = policy();
        let now = 500;
        let ok = signed("master", "cam", 600);
        assert_eq!(
            authorize_push(&p, "push.example.com", "live", "cam", &ok, now),
            Ok(AccountId(7))
        );
        let backup = signed("backup", "cam", 600);
        assert_eq!(
            authorize_push(&p, "push.example.com", "live", "cam", &backup, now),
            Ok(AccountId(7))
        );
        let cases = [
            (
                "nope.example.com",
                "cam",
                ok.clone(),
                EndReason::UnknownDomain,
            ),
            (
                "play.example.com",
                "cam",
                ok.clone(),
                EndReason::UnknownDomain,
            ),
            (
                "off.example.com",
                "cam",
                String::new(),
                EndReason::DomainDisabled,
            ),
            ("push.example.com", "ca m", ok.clone(), EndReason::BadName),
            (
                "open.example.com",
                "banned",
                String::new(),
                EndReason::StreamForbidden,
            ),
            (
                "push.example.com",
                "cam",
                String::new(),
                EndReason::NoAuthParams,
            ),
            (
                "push.example.com",
                "cam",
                "txSecret=abc".into(),
                EndReason::NoTxTime,
            ),
            (
                "push.example.com",
                "cam",
                signed("master", "cam", 400),
                EndReason::Expired,
            ),
            (
                "push.example.com",
                "cam",
                signed("other", "cam", 600),
                EndReason::BadSignature,
            ),
            (
                "push.example.com",
                "cam2",
                ok.clone(),
                EndReason::BadSignature,
            ),
        ];
        for (domain, stream, query, want) in cases {
            assert_eq!(
                authorize_push(&p, domain, "live", stream, &query, now),
                Err(want),
                "{domain} {stream} {query}"
            );
        }
        assert_eq!(
            authorize_push(&p, "open.example.com", "live", "cam", "", now),
            Ok(AccountId(7))
        );
        // The ban is over at its resume time.
        assert!(authorize_push(&p, "open.example.com", "live", "banned", "", 1000).is_ok());
    }

    #[test]
    fn plays_check_the_play_key_and_http_referers() {
        let mut p = policy();
        let now = 500;
        let ok = signed("master", "cam_hd", 600);
        assert_eq!(
            authorize_play(&p, "play.example.com", "live", "cam_hd", &ok, None, now),
            Ok(AccountId(7))
        );
        assert_eq!(
            authorize_play(&p, "play.example.com", "live", "cam_hd", "", None, now),
            Err(PlayRefusal::Forbidden)
        );
        assert_eq!(
            authorize_play(&p, "push.example.com", "live", "cam", &ok, None, now),
            Err(PlayRefusal::NotFound)
        );
        if let Some(d) = p.domains.get_mut("play.example.com") {
            d.referer = RefererPolicy {
                enabled: true,
                allow_list: true,
                allow_empty: false,
                rules: vec!["good.com".into()],
            };
        }
        assert_eq!(
            authorize_play(
                &p,
                "play.example.com",
                "live",
                "cam_hd",
                &ok,
                Some(Some("http://good.com/x")),
                now
            ),
            Ok(AccountId(7))
        );
        assert_eq!(
            authorize_play(
                &p,
                "play.example.com",
                "live",
                "cam_hd",
                &ok,
                Some(None),
                now
            ),
            Err(PlayRefusal::Forbidden)
        );
        // RTMP playback ignores referers.
        assert_eq!(
            authorize_play(&p, "play.example.com", "live", "cam_hd", &ok, None, now),
            Ok(AccountId(7))
        );
    }
}
