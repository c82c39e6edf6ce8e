//! TXT lookups of names an API caller chooses (domain ownership checks).
//!
//! Owns: asking a name server for a name's TXT records: the system's
//! (`/etc/resolv.conf`) or one the operator configured (tests point it at
//! a local server). Must not: decide what a record means (the API does).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// Why a lookup failed (a name without TXT records is not a failure).
#[derive(Debug, thiserror::Error)]
#[error("TXT lookup of {name} failed: {why}")]
pub struct DnsError {
    name: String,
    why: String,
}

/// The TXT strings of `name` (each record's strings joined, as DNS
/// splits long values), from `server` or the system's name servers;
/// empty when it has none. Bounded to a few seconds.
pub async fn txt_records(name: &str, server: Option<SocketAddr>) -> Result<Vec<String>, DnsError> {
    let failed = |why: String| DnsError {
        name: name.to_owned(),
        why,
    };
    let mut builder = match server {
        Some(addr) => TokioResolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => TokioResolver::builder_tokio().map_err(|e| failed(e.to_string()))?,
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 1;
    *builder.options_mut() = opts;
    let resolver = builder.build();
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match resolver.txt_lookup(fqdn).await {
        Ok(found) => Ok(found
            .iter()
            .map(|txt| {
                txt.iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>()
            })
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(failed(e.to_string())),
    }
}
