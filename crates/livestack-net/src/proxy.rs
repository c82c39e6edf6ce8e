//! A forward HTTP proxy on loopback for programs that fetch user-given
//! URLs themselves (ffmpeg pulling a relay task's source): they are
//! started with `http_proxy` pointing here, so every HTTP request and
//! HTTPS tunnel they open, redirects, playlist segments and files of a
//! list included, comes through [`serve`], which connects only to an
//! address the [`FetchPolicy`] permits, the same address it checked (a
//! name is resolved once, here: DNS rebinding gains nothing).
//!
//! Owns: the proxy's two forms (`CONNECT host:port` tunnels, and
//! absolute-form `GET http://…` requests, sent on as one request per
//! connection). Must not: log what it refused (the program's error says
//! the URL could not be fetched), or serve anyone but loopback.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::FetchPolicy;

/// The longest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the origin may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves proxy clients on `listener` (bound to loopback by the caller)
/// until `shutdown` completes; every connection's task ends with it.
pub async fn serve(
    listener: TcpListener,
    policy: Arc<FetchPolicy>,
    shutdown: impl Future<Output = ()>,
) {
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else { continue };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let policy = Arc::clone(&policy);
                conns.spawn(async move {
                    let _ = handle(client, &policy).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// A permitted address of `host:port`: an IP literal the policy permits,
/// or the first permitted address the name resolves to.
async fn permitted(policy: &FetchPolicy, host: &str, port: u16) -> Option<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return policy.permits(ip).then_some(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((bare, port))
        .await
        .ok()?
        .find(|a| policy.permits(a.ip()))
}

const REFUSED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Reads a request head; what follows it stays in the buffer.
async fn read_head(client: &mut TcpStream) -> io::Result<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0_u8; 2048];
    let read = async {
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(i + 4);
            }
            if buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
            }
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let end = tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok((buf, end))
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

async fn handle(mut client: TcpStream, policy: &FetchPolicy) -> io::Result<()> {
    let (buf, end) = read_head(&mut client).await?;
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return client.write_all(BAD).await;
    };
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) =
        (request.next(), request.next(), request.next())
    else {
        return client.write_all(BAD).await;
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = target
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        else {
            return client.write_all(BAD).await;
        };
        let Some(addr) = permitted(policy, host, port).await else {
            return client.write_all(REFUSED).await;
        };
        let mut upstream = connect(addr).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        upstream.write_all(&buf[end..]).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    let Ok(url) = reqwest::Url::parse(target) else {
        return client.write_all(BAD).await;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return client.write_all(BAD).await;
    };
    if url.scheme() != "http" {
        return client.write_all(BAD).await;
    }
    let Some(addr) = permitted(policy, host, port).await else {
        return client.write_all(REFUSED).await;
    };
    // Origin form, one request per connection: a second request on this
    // connection could name another host, which the check above did not
    // see.
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim();
        if [
            "connection",
            "proxy-connection",
            "proxy-authorization",
            "keep-alive",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut upstream = connect(addr).await?;
    upstream.write_all(out.as_bytes()).await?;
    upstream.write_all(&buf[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cidr;

    async fn start(policy: FetchPolicy) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, Arc::new(policy), async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn origin() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let mut buf = vec![0_u8; 4096];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let body = format!("saw {line}");
                let _ = c
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        addr
    }

    async fn ask(proxy: SocketAddr, request: String) -> String {
        let mut c = TcpStream::connect(proxy).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn requests_reach_permitted_origins_in_origin_form_and_others_are_refused() {
        let origin = origin().await;
        let allow = FetchPolicy::allowing(vec!["127.0.0.0/8".parse::<Cidr>().unwrap()]);
        let (proxy, _stop) = start(allow).await;
        let got = ask(
            proxy,
            format!("GET http://{origin}/a.mp4?x=1 HTTP/1.1\r\nHost: {origin}\r\nProxy-Connection: keep-alive\r\n\r\n"),
        )
        .await;
        assert!(got.contains("saw GET /a.mp4?x=1 HTTP/1.1"), "{got}");

        let (strict, _stop) = start(FetchPolicy::default()).await;
        let refused = ask(
            strict,
            format!("GET http://{origin}/a.mp4 HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
        )
        .await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        let tunnel = ask(strict, format!("CONNECT {origin} HTTP/1.1\r\n\r\n")).await;
        assert!(tunnel.starts_with("HTTP/1.1 403"), "{tunnel}");
        let named = ask(strict, "CONNECT localhost:443 HTTP/1.1\r\n\r\n".into()).await;
        assert!(named.starts_with("HTTP/1.1 403"), "{named}");
    }

    #[tokio::test]
    async fn a_permitted_tunnel_carries_bytes_both_ways() {
        let origin = origin().await;
        let allow = FetchPolicy::allowing(vec!["127.0.0.0/8".parse::<Cidr>().unwrap()]);
        let (proxy, _stop) = start(allow).await;
        let got = ask(
            proxy,
            format!("CONNECT {origin} HTTP/1.1\r\n\r\nGET /t HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert!(
            got.starts_with("HTTP/1.1 200 Connection established"),
            "{got}"
        );
        assert!(got.contains("saw GET /t HTTP/1.1"), "{got}");
    }
}
