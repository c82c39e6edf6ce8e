//! HTTP clients for fetches of user-given URLs (watermark pictures,
//! event callbacks) that never reach an address the [`FetchPolicy`]
//! refuses.
//!
//! Owns: the guarded resolver (names are resolved here and only permitted
//! addresses are handed to the connector, so the address checked is the
//! address connected to: DNS rebinding gains nothing) and the checks of IP
//! literals in the URL and in every redirect. Must not: know what is
//! fetched or why, or log the addresses it refused (the caller's message
//! says only that the URL could not be fetched, whatever answered).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use livestack_core::netpolicy::{Cidr, FetchPolicy};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub mod dns;
pub mod proxy;

/// A fetch was refused: the URL's host is, or resolves only to, an address
/// the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("the address is not one a server-side fetch may reach")]
pub struct Refused;

/// How a guarded client follows redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// A redirect is an answer like any other (CSS's callbacks).
    None,
    /// Up to this many are followed, each checked like the URL itself.
    Follow(usize),
}

/// A client whose every connection obeys `policy`.
fn client(
    policy: &Arc<FetchPolicy>,
    timeout: Option<Duration>,
    redirects: Redirects,
) -> reqwest::Result<reqwest::Client> {
    let redirect = match redirects {
        Redirects::None => reqwest::redirect::Policy::none(),
        Redirects::Follow(max) => {
            let policy = Arc::clone(policy);
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= max {
                    attempt.error("too many redirects")
                } else if !literal_permitted(&policy, attempt.url()) {
                    attempt.error(Refused)
                } else {
                    attempt.follow()
                }
            })
        }
    };
    let mut builder = reqwest::Client::builder()
        .redirect(redirect)
        .dns_resolver(Arc::new(GuardedResolver {
            policy: Arc::clone(policy),
        }));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}

/// Checks the URL before a request: an IP literal host (in any spelling
/// the URL parser normalizes, `2130706433` and `0x7f000001` included) must
/// be permitted; a name is checked when it is resolved.
pub fn check_url(policy: &FetchPolicy, url: &str) -> Result<(), Refused> {
    match reqwest::Url::parse(url) {
        Ok(url) if literal_permitted(policy, &url) => Ok(()),
        Ok(_) => Err(Refused),
        // Not a URL: the request itself reports that.
        Err(_) => Ok(()),
    }
}

/// Checks a URL that another program (ffmpeg) will open: its host, an IP
/// literal or a name resolved now, must have only addresses the policy
/// permits, and a URL without a host is refused. The program resolves
/// the name again when it connects, so unlike this crate's HTTP client a
/// name whose answers change between the two (DNS rebinding) could still
/// reach what this refused; the caller checks again before every attempt.
pub async fn check_url_resolved(policy: &FetchPolicy, url: &str) -> Result<(), Refused> {
    let url = reqwest::Url::parse(url).map_err(|_| Refused)?;
    let host = url.host_str().ok_or(Refused)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if policy.permits(ip) {
            Ok(())
        } else {
            Err(Refused)
        };
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, 0))
        .await
        .map_err(|_| Refused)?
        .collect();
    if found.is_empty() || !found.iter().all(|a| policy.permits(a.ip())) {
        return Err(Refused);
    }
    Ok(())
}

fn literal_permitted(policy: &FetchPolicy, url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => policy.permits(ip),
        Err(_) => true,
    }
}

struct GuardedResolver {
    policy: Arc<FetchPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Why [`Fetcher::get_bounded`] got no body.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The URL's host is a refused address.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The server answered something other than success.
    #[error("the server answered HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The body is longer than allowed.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The request or the body failed (timeout, connection, refused
    /// redirect or resolution: see [`is_refused`]).
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// A guarded client with its policy: check the URL, then fetch.
#[derive(Clone)]
pub struct Fetcher {
    policy: Arc<FetchPolicy>,
    client: reqwest::Client,
}

impl Fetcher {
    /// A fetcher obeying `policy`.
    pub fn new(
        policy: FetchPolicy,
        timeout: Option<Duration>,
        redirects: Redirects,
    ) -> reqwest::Result<Fetcher> {
        let policy = Arc::new(policy);
        Ok(Fetcher {
            client: client(&policy, timeout, redirects)?,
            policy,
        })
    }

    /// Refuses a URL whose host is a refused IP literal; names are
    /// checked as the client resolves them.
    pub fn check(&self, url: &str) -> Result<(), Refused> {
        check_url(&self.policy, url)
    }

    /// The policy it obeys.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// The client (every connection it makes obeys the policy).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GETs `url` (checked first) and returns its body of at most `max`
    /// bytes; an answer other than 2xx, or a longer body (announced or
    /// sent), is an error.
    pub async fn get_bounded(&self, url: &str, max: usize) -> Result<Vec<u8>, GetError> {
        self.check(url)?;
        let mut resp = self.client.get(url).send().await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(GetError::Status(status));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(GetError::TooLarge(max));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > max {
                return Err(GetError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Whether `err` (anywhere in its chain) is a [`Refused`].
pub fn is_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<Refused>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_checked_in_every_spelling() {
        let policy = FetchPolicy::default();
        for url in [
            "http://127.0.0.1:9100/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0/",
        ] {
            assert!(check_url(&policy, url).is_err(), "{url}");
        }
        assert!(check_url(&policy, "http://example.com/a.png").is_ok());
        assert!(check_url(&policy, "http://8.8.8.8/").is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_never_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = client_with(FetchPolicy::default());
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .expect_err("refused");
        assert!(is_refused(&err), "{err:?}");
        // Allowed by the operator, the same fetch connects.
        let allowed = FetchPolicy::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
        let client = client_with(allowed);
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        let _ = tokio::time::timeout(
            Duration::from_millis(300),
            client.get(format!("http://localhost:{port}/")).send(),
        )
        .await;
        accept.await.expect("join").expect("connected");
    }

    fn client_with(policy: FetchPolicy) -> reqwest::Client {
        client(
            &Arc::new(policy),
            Some(Duration::from_secs(5)),
            Redirects::None,
        )
        .expect("client")
    }
}
