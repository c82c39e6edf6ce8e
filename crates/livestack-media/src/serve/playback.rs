//! A play, whatever carries it (RTMP and RTMPS today): whether the client may
//! play what it names, and the live stream it then reads.
//!
//! Owns: play authorization with its two sources (a processing job's own
//! credential on loopback, or the play domain's rules and signature) and
//! resolving the stream (starting a transcode or an edge relay when the
//! name asks for one). Must not: speak a protocol or touch a socket: the
//! protocol modules answer their client in their own terms.

use std::net::SocketAddr;
use std::sync::Arc;

use livestack_core::media::StreamKey;

use crate::process::Direction;
use crate::serve::access::{self, PlayRefusal};
use crate::serve::ingest::Target;
use crate::stream::live::Live;
use crate::Inner;

/// Why a play gets no stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlayDenied {
    /// Play authentication (signature, referer) failed.
    Forbidden,
    /// No such play domain.
    NoDomain,
    /// The stream is not live (nor can it be started).
    NotLive,
}

impl PlayDenied {
    /// For logs and protocol messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            PlayDenied::Forbidden => "play authentication failed",
            PlayDenied::NoDomain => "no such play domain",
            PlayDenied::NotLive => "the stream is not live",
        }
    }
}

/// The live stream `target` names, if `peer` may play it.
pub(crate) async fn open(
    inner: &Arc<Inner>,
    target: &Target,
    peer: SocketAddr,
) -> Result<Arc<Live>, PlayDenied> {
    let domain = target.domain.clone().unwrap_or_default();
    let key = |account| StreamKey {
        account,
        app: target.app.clone(),
        stream: target.stream.clone(),
    };
    if let Some((account, _)) = target.job_grant(inner, peer, Direction::Read) {
        // A job reads exactly what it names, and may start before its
        // source (a watermarked output, say) is up.
        return inner
            .processor
            .wait_for(inner, &key(account))
            .await
            .ok_or(PlayDenied::NotLive);
    }
    let account = access::authorize_play(
        &inner.policy(),
        &domain,
        &target.app,
        &target.stream,
        &target.query,
        None,
        inner.clock.unix(),
    )
    .map_err(|refusal| match refusal {
        PlayRefusal::Forbidden => PlayDenied::Forbidden,
        PlayRefusal::NotFound => PlayDenied::NoDomain,
    })?;
    inner
        .processor
        .resolve_play(inner, &key(account), &domain)
        .await
        .ok_or(PlayDenied::NotLive)
}
