//! TLS for HTTPS playback and RTMPS: the certificate bound to each
//! domain, chosen by SNI.
//!
//! Owns: turning the policy's PEM material into rustls keys (parsed once
//! per certificate and cached) and the certificate resolver. Must not: read
//! certificates from anywhere but the [`Policy`](livestack_core::media::Policy)
//! snapshot, or log key material.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livestack_core::media::TlsMaterial;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Inner;

/// A parsed key and the policy material it came from.
type CachedKey = (Arc<TlsMaterial>, Arc<CertifiedKey>);

/// Picks the certificate for the SNI name from the current policy.
pub(crate) struct SniResolver {
    inner: Arc<Inner>,
    /// Parsed keys by domain, with the material they came from: a new
    /// binding (a different `Arc`) is parsed again.
    cache: Mutex<HashMap<String, CachedKey>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl SniResolver {
    pub(crate) fn new(inner: Arc<Inner>) -> SniResolver {
        SniResolver {
            inner,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// Parses PEM material into a signing key with its chain.
pub(crate) fn certified_key(m: &TlsMaterial) -> Option<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(m.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .ok()?;
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes()).ok()?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
    Some(CertifiedKey::new(chain, signer))
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let policy = self.inner.policy();
        let material = policy.domain(&name)?.tls.clone()?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((m, key)) = cache.get(&name) {
            if Arc::ptr_eq(m, &material) {
                return Some(Arc::clone(key));
            }
        }
        let Some(key) = certified_key(&material).map(Arc::new) else {
            tracing::warn!(
                domain = name,
                "the certificate bound to this domain cannot be loaded"
            );
            return None;
        };
        cache.insert(name, (material, Arc::clone(&key)));
        Some(key)
    }
}

/// A TLS server configuration offering `alpn` (HTTP/1.1 for HTTPS,
/// nothing for RTMPS), certificates by SNI.
pub(crate) fn server_config(
    inner: Arc<Inner>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(inner)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts TLS connections on `listener` until shutdown (the connection
/// budget and task ownership of [`crate::accept_loop`]), running `handle`
/// with each stream whose handshake completes in time; `what` names the
/// listener in logs.
pub(crate) async fn accept_loop<F, Fut>(
    inner: Arc<Inner>,
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    what: &'static str,
    handle: F,
) where
    F: Fn(Arc<Inner>, TlsStream, std::net::SocketAddr, std::net::SocketAddr) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    crate::accept_loop(inner, listener, what, move |inner, socket, peer| {
        let (acceptor, handle) = (acceptor.clone(), handle.clone());
        async move {
            let Ok(local) = socket.local_addr() else {
                return;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => handle(inner, stream, peer, local).await,
                Ok(Err(e)) => tracing::debug!(%peer, listener = what, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, listener = what, "TLS handshake timed out"),
            }
        }
    })
    .await;
}

/// A server-side TLS stream over TCP.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
