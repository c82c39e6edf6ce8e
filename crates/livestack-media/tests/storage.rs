//! The storage of recordings and snapshots against real servers: an
//! S3-compatible one (moto, installed into `.venv` by `scripts/test`), an
//! endpoint nobody listens on, one that never answers, and livestack's own
//! HTTP port serving the local directory under `/records/`.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livestack_core::media::Policy;
use livestack_media::storage::{
    Destination, S3Settings, Secret, Storage, StorageError, StorageSettings, UploadError,
};
use livestack_media::{MediaConfig, MediaServer};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A moto S3 server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> SocketAddr {
    let l = StdListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Moto {
    async fn start() -> Moto {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test, which installs tests/clients/requirements.txt",
            bin.display()
        );
        // moto takes no port 0; a port just released is free unless another
        // process grabs it in between, which a retry absorbs.
        for _ in 0..3 {
            let addr = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts");
            let mut moto = Moto { child, addr };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // exited: the port was taken; try another
                }
                if http(addr, "GET", "/moto-api/", b"").await.is_some() {
                    return moto;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = moto.child.kill();
        }
        panic!("moto_server did not start");
    }

    fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: format!("http://{}", self.addr),
            region: "us-east-1".to_owned(),
            access_key_id: "testing".to_owned(),
            secret_access_key: Secret::new("testing"),
            path_style: true,
            allow_http: true,
        }
    }

    async fn create_bucket(&self, bucket: &str) {
        let status = http(self.addr, "PUT", &format!("/{bucket}"), b"")
            .await
            .expect("moto answers");
        assert_eq!(status.0, 200, "{}", String::from_utf8_lossy(&status.1));
    }

    /// The object at `key`, read through an independent client.
    async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let store = AmazonS3Builder::new()
            .with_endpoint(format!("http://{}", self.addr))
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .expect("client");
        let path = object_store::path::Path::parse(key).expect("key");
        store
            .get_opts(&path, Default::default())
            .await
            .expect("object exists")
            .bytes()
            .await
            .expect("body")
            .to_vec()
    }
}

/// One HTTP/1.0 request; the status and body, or None when nothing answers.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let start = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, out[start..].to_vec()))
}

fn storage(dir: &Path, s3: Option<S3Settings>, timeout: Duration) -> Storage {
    Storage::new(StorageSettings {
        local_dir: dir.join("records"),
        local_url: "http://media.example.com/records".to_owned(),
        s3,
        upload_timeout: timeout,
        ..StorageSettings::default()
    })
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write");
    path
}

/// A media server keeping records in `records` and serving them on a
/// loopback HTTP port.
async fn serving_records(records: &Path) -> (MediaServer, SocketAddr) {
    let config = MediaConfig {
        storage: StorageSettings {
            local_dir: records.to_owned(),
            ..StorageSettings::default()
        },
        ..MediaConfig::default()
    };
    let (_policy_tx, policy_rx) = tokio::sync::watch::channel(Arc::new(Policy::default()));
    let (events_tx, _events_rx) = tokio::sync::mpsc::channel(16);
    let media = MediaServer::new(
        config,
        policy_rx,
        events_tx,
        livestack_core::Clock::system(),
        CancellationToken::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    media.serve_http(listener);
    (media, addr)
}

fn bucket(name: &str) -> Destination {
    Destination::Bucket {
        bucket: name.to_owned(),
        region: "ap-guangzhou".to_owned(),
        app_id: 1_250_000_000,
    }
}

#[tokio::test]
async fn a_file_put_in_a_bucket_can_be_read_back_and_leaves_no_local_copy() {
    let moto = Moto::start().await;
    moto.create_bucket("records").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = storage(dir.path(), Some(moto.settings()), Duration::from_secs(30));

    let src = write(dir.path(), "part.flv", b"FLV\x01 small recording");
    let key = "origin/push.example.com/live/cam/1-7/2018-12-17-19-06-59.flv";
    let stored = s
        .put(&bucket("records"), key, &src)
        .await
        .expect("uploaded");
    assert_eq!(stored.size, 20);
    assert_eq!(stored.key, key);
    assert_eq!(stored.url, format!("http://{}/records/{key}", moto.addr));
    assert_eq!(stored.local_path, None);
    assert_eq!(moto.get("records", key).await, b"FLV\x01 small recording");
    assert!(!src.exists(), "the uploaded file is removed");
    assert!(!dir.path().join("records").exists(), "nothing kept locally");
}

#[tokio::test]
async fn a_probe_passes_for_a_bucket_that_exists_and_names_one_that_does_not() {
    let moto = Moto::start().await;
    moto.create_bucket("records").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = storage(dir.path(), Some(moto.settings()), Duration::from_secs(30));
    s.probe("records", "us-east-1", 1_250_000_000)
        .await
        .expect("reachable");
    let err = s
        .probe("missing", "us-east-1", 1_250_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, livestack_media::storage::ProbeError::NoSuchBucket),
        "{err}"
    );
    // Nothing was written by asking.
    let listed = http(moto.addr, "GET", "/records", b"")
        .await
        .expect("moto answers");
    assert!(
        !String::from_utf8_lossy(&listed.1).contains("<Key>"),
        "{}",
        String::from_utf8_lossy(&listed.1)
    );
}

#[tokio::test]
async fn a_large_file_goes_up_in_parts_and_arrives_whole() {
    let moto = Moto::start().await;
    moto.create_bucket("big").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = storage(dir.path(), Some(moto.settings()), Duration::from_secs(60));

    // 19 MiB and a bit: three parts of 8 MiB, the last one short.
    let data: Vec<u8> = (0..19 * 1024 * 1024 + 12_345_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = write(dir.path(), "long.mp4", &data);
    let stored = s
        .put(&bucket("big"), "live/cam.mp4", &src)
        .await
        .expect("uploaded");
    assert_eq!(stored.size, data.len() as u64);
    let back = moto.get("big", "live/cam.mp4").await;
    assert!(back == data, "the object differs from the file");
}

#[tokio::test]
async fn an_unreachable_endpoint_gives_a_typed_error_and_keeps_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let down = S3Settings {
        endpoint: format!("http://{}", free_port()),
        region: String::new(),
        access_key_id: "testing".to_owned(),
        secret_access_key: Secret::new("testing"),
        path_style: true,
        allow_http: true,
    };
    let s = storage(dir.path(), Some(down), Duration::from_secs(30));
    let src = write(dir.path(), "snap.jpg", b"\xff\xd8 jpeg");

    let started = Instant::now();
    let err = s
        .put(&bucket("pics"), "2018-12-17/cam-screenshot.jpg", &src)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "gave up in time"
    );
    let StorageError::Upload {
        bucket,
        kept,
        source,
        ..
    } = &err
    else {
        panic!("not an upload error: {err}");
    };
    assert_eq!(bucket, "pics");
    assert!(matches!(source, UploadError::Store(_)), "{source:?}");
    let path = dir
        .path()
        .join("records/buckets/pics/2018-12-17/cam-screenshot.jpg");
    assert_eq!(kept.local_path.as_deref(), Some(path.as_path()));
    assert_eq!(
        kept.url,
        "http://media.example.com/records/buckets/pics/2018-12-17/cam-screenshot.jpg"
    );
    assert_eq!(std::fs::read(&path).expect("kept"), b"\xff\xd8 jpeg");
    assert!(!err.to_string().contains("testing"), "{err}");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_and_keeps_the_file() {
    // Connections complete in the kernel's backlog; nobody ever reads.
    let silent = StdListener::bind("127.0.0.1:0").expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3Settings {
        endpoint: format!("http://{}", silent.local_addr().expect("addr")),
        region: "us-east-1".to_owned(),
        access_key_id: "testing".to_owned(),
        secret_access_key: Secret::new("testing"),
        path_style: true,
        allow_http: true,
    };
    let s = storage(dir.path(), Some(s3), Duration::from_secs(1));
    let src = write(dir.path(), "a.flv", b"FLV");

    let started = Instant::now();
    let err = s.put(&bucket("bkt"), "a.flv", &src).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(
            &err,
            StorageError::Upload {
                source: UploadError::TimedOut(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.kept().is_some_and(Path::exists));
    drop(silent);
}

#[tokio::test]
async fn the_http_port_serves_local_records_read_only_and_nothing_outside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = dir.path().join("records");
    let (media, addr) = serving_records(&records).await;

    let src = write(dir.path(), "done.flv", b"FLV recorded");
    let stored = media
        .storage()
        .put(&Destination::Local, "push.example.com/live/a b.flv", &src)
        .await
        .expect("stored");
    assert!(stored
        .url
        .ends_with("/records/push.example.com/live/a%20b.flv"));
    std::fs::write(dir.path().join("secret.txt"), b"outside").expect("write");
    std::fs::write(records.join(".hidden"), b"hidden").expect("write");
    std::os::unix::fs::symlink(
        dir.path().join("secret.txt"),
        records.join("push.example.com/link.txt"),
    )
    .expect("symlink");

    let (status, body) = http(addr, "GET", "/records/push.example.com/live/a%20b.flv", b"")
        .await
        .expect("answer");
    assert_eq!((status, body.as_slice()), (200, &b"FLV recorded"[..]));
    let (status, body) = http(
        addr,
        "HEAD",
        "/records/push.example.com/live/a%20b.flv",
        b"",
    )
    .await
    .expect("answer");
    assert_eq!((status, body.len()), (200, 0));

    for path in [
        "/records/push.example.com/live/",
        "/records/push.example.com",
        "/records/../secret.txt",
        "/records/%2e%2e/secret.txt",
        "/records/push.example.com/..%2f..%2fsecret.txt",
        "/records/push.example.com/link.txt",
        "/records/.hidden",
        "/records//etc/passwd",
        "/records/missing.flv",
    ] {
        let (status, body) = http(addr, "GET", path, b"").await.expect("answer");
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _) = http(
        addr,
        "PUT",
        "/records/push.example.com/live/a%20b.flv",
        b"x",
    )
    .await
    .expect("answer");
    assert_eq!(status, 405);
    assert_eq!(
        std::fs::read(records.join("push.example.com/live/a b.flv")).expect("read"),
        b"FLV recorded"
    );
    media.shutdown().await;
}

#[tokio::test]
async fn a_bucket_name_that_is_a_path_or_a_host_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No object storage at all: the upload would fail and keep the file
    // under `buckets/<bucket>/` — the bucket must never get that far.
    let s = storage(dir.path(), None, Duration::from_secs(5));
    for name in [
        "..",
        "../../../../../../x/escape",
        "127.0.0.1:18080#",
        "a/../../b",
    ] {
        let src = write(dir.path(), "part.flv", b"FLV\x01");
        let err = s
            .put(&bucket(name), "push.a.test/live/cam.flv", &src)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                livestack_media::storage::StorageError::InvalidBucket { .. }
            ),
            "{name}: {err}"
        );
        assert!(src.exists(), "{name}: the file stays where it was");
    }
    assert!(!dir.path().join("records").exists(), "nothing was written");
    assert!(!dir.path().join("x").exists());
}

#[tokio::test]
async fn stored_files_are_served_with_ranges_validators_and_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = dir.path().join("records");
    let (media, addr) = serving_records(&records).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let src = write(dir.path(), "done.mp4", &data);
    media
        .storage()
        .put(&Destination::Local, "push.example.com/live/cam.mp4", &src)
        .await
        .expect("stored");
    let url = format!("http://{addr}/records/push.example.com/live/cam.mp4");
    let client = reqwest::Client::new();

    let full = client.get(&url).send().await.expect("answer");
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().expect("etag").to_owned();
    let modified = full.headers()["last-modified"]
        .to_str()
        .expect("date")
        .to_owned();
    assert_eq!(full.bytes().await.expect("body").as_ref(), &data[..]);

    let part = client
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("answer");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(part.bytes().await.expect("body").as_ref(), &data[100..200]);

    let tail = client
        .get(&url)
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("answer");
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.expect("body").as_ref(), &data[9_990..]);

    let beyond = client
        .get(&url)
        .header("Range", "bytes=20000-")
        .send()
        .await
        .expect("answer");
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], "bytes */10000");

    let head = client.head(&url).send().await.expect("answer");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "10000");

    for (name, value) in [
        ("If-None-Match", etag.as_str()),
        ("If-Modified-Since", modified.as_str()),
    ] {
        let cached = client
            .get(&url)
            .header(name, value)
            .send()
            .await
            .expect("answer");
        assert_eq!(cached.status(), 304, "{name}");
    }
    let stale = client
        .get(&url)
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"another-version\"")
        .send()
        .await
        .expect("answer");
    assert_eq!(
        stale.status(),
        200,
        "If-Range of another version gets the whole file"
    );
}

#[tokio::test]
async fn a_delivered_file_is_never_overwritten_by_one_of_the_same_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = storage(dir.path(), None, Duration::from_secs(5));
    let key = "push.example.com/live/2018-12-17/cam-screenshot-19-06-59-320x180.jpg";
    let first = s
        .put(
            &Destination::Local,
            key,
            &write(dir.path(), "a.jpg", b"first"),
        )
        .await
        .expect("stored");
    let second = s
        .put(
            &Destination::Local,
            key,
            &write(dir.path(), "b.jpg", b"second"),
        )
        .await
        .expect("stored");
    assert_eq!(first.key, key);
    assert_eq!(
        second.key,
        "push.example.com/live/2018-12-17/cam-screenshot-19-06-59-320x180-1.jpg"
    );
    assert_eq!(
        std::fs::read(first.local_path.expect("local")).expect("read"),
        b"first"
    );
    assert_eq!(
        std::fs::read(second.local_path.expect("local")).expect("read"),
        b"second"
    );
}
