//! A WebRTC (WHEP) player for the media benchmark's load generator, built
//! on the same sans-IO stack livestack serves with (str0m): one UDP
//! socket and one `Rtc` per player, full ICE on this side against the
//! server's ICE-lite, DTLS and SRTP, depacketized H.264 and Opus counted
//! as the RTMP and HTTP-FLV players count tags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use super::{Counter, CONNECT_TIMEOUT};
use livestack_formats::flv::TagKind;

/// The crypto backend livestack uses, made once per load generator.
fn crypto() -> Arc<str0m::crypto::CryptoProvider> {
    static CRYPTO: std::sync::OnceLock<Arc<str0m::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    Arc::clone(CRYPTO.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags())))
}

/// POSTs `offer` to `path` on `addr` (HTTP/1.1, WHEP); the answer's SDP.
async fn whep(addr: SocketAddr, path: &str, offer: &str) -> Result<String> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .context("connect failed")?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{offer}",
        offer.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("write failed")?;
    let mut response = Vec::new();
    tokio::time::timeout(CONNECT_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .context("WHEP answer timed out")?
        .context("read failed")?;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?;
    let status = response.split(|&b| b == b'\r').next().unwrap_or(&[]);
    if !status.starts_with(b"HTTP/1.1 201") {
        bail!(
            "WHEP answered {}: {}",
            String::from_utf8_lossy(status),
            String::from_utf8_lossy(&response[end + 4..]).trim()
        );
    }
    Ok(String::from_utf8_lossy(&response[end + 4..]).into_owned())
}

/// Plays `path` (a WHEP URL's path) on `addr` until `until`, counting
/// each H.264 access unit and Opus frame as a tag.
pub(super) async fn play(
    addr: SocketAddr,
    path: &str,
    counter: &mut Counter,
    until: tokio::time::Instant,
) -> Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .context("cannot bind a UDP socket")?;
    let local = socket.local_addr()?;
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().context("no offer")?;
    let answer = whep(addr, path, &offer.to_sdp_string()).await?;
    let answer = SdpAnswer::from_sdp_string(&answer).context("unreadable SDP answer")?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .context("the answer does not fit the offer")?;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output().context("WebRTC failed")? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    bail!("ICE disconnected");
                }
                Output::Event(Event::MediaData(data)) => {
                    let now = tokio::time::Instant::now();
                    let kind = if data.params.spec().codec == Codec::H264 {
                        TagKind::Video
                    } else {
                        TagKind::Audio
                    };
                    let keyframe = kind == TagKind::Video
                        && livestack_formats::annexb::split_annexb(&data.data)
                            .any(|nal| nal.first().is_some_and(|b| b & 0x1F == 5));
                    counter.media(kind, data.data.len(), keyframe, now);
                    if counter.done() {
                        return Ok(());
                    }
                }
                Output::Event(_) => {}
            }
        };
        let wait = tokio::time::Instant::from_std(timeout);
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.context("UDP receive failed")?;
                let now = tokio::time::Instant::now();
                counter.bytes(n, now);
                let Ok(contents) = buf[..n].try_into() else { continue };
                rtc.handle_input(Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                })).context("WebRTC input failed")?;
            }
            () = tokio::time::sleep_until(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now())).context("WebRTC timeout failed")?;
            }
            () = tokio::time::sleep_until(until) => return Ok(()),
        }
    }
}
