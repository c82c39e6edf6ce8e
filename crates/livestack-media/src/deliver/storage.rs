//! Where finished recordings and snapshots are kept: a local directory
//! (livestack's stand-in for CSS's VOD storage) or an S3-compatible bucket
//! (its stand-in for COS).
//!
//! Owns: moving a finished local file to a key, in one of the two
//! backends; the URL a callback reports for it (`video_url`, `pic_url`);
//! the object-storage clients (one per bucket and region, built on first
//! use); keeping a file whose upload failed; and asking whether a bucket
//! can take files now ([`Storage::probe`]). Must not: choose keys
//! (`livestack_core::naming` expands the templates' name patterns), know
//! Tencent error codes (the API layer answers
//! `FailedOperation.InvokeVideoApiFail` when a probe fails), or log
//! secrets.
//!
//! # Use
//!
//! ```ignore
//! let dest = storage.destination(&output.cos_bucket, &output.cos_region);
//! let key = naming.vod_key(&output.vod_file_name, "flv")?;   // or cos_key
//! match storage.put(&dest, &key, &finished_file).await {
//!     Ok(stored) => /* report stored.url, stored.size */,
//!     Err(e) => /* log and report e; e.kept() says where the file still is */,
//! }
//! ```
//!
//! [`Storage::put`] takes the file over: on success it is gone from `local`
//! (moved into the directory, or uploaded and then removed). It runs on the
//! async runtime without blocking it (file work goes through `tokio::fs`,
//! uploads stream the file in parts) and gives up after the configured
//! timeout, longer for larger files.
//!
//! # Local layout
//!
//! `<local_dir>/<key>` for [`Destination::Local`], served read-only by the
//! HTTP playback port under `/records/<key>` and reported as
//! `<local_url>/<key>`. Keys from `livestack_core::naming` start with the
//! push domain, which always has a dot, so they never meet `buckets/`:
//! a file whose upload failed is kept at `<local_dir>/buckets/<bucket>/<key>`
//! (and reported at that URL in the error).
//!
//! # Object storage
//!
//! One S3-compatible endpoint for every bucket (MinIO, Ceph, AWS, COS's S3
//! API, …), path-style (`<endpoint>/<bucket>/<key>`) or virtual-hosted
//! (`<scheme>://<bucket>.<host>/<key>`); that address is also the reported
//! URL (plain, not signed: make the bucket readable to whoever reads the
//! callbacks). The signing region is the configured one, else the
//! template's, else `us-east-1`. Without an access key requests go
//! unsigned: credentials are never looked up in the environment or an
//! instance-metadata service.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livestack_core::naming::{check_key, KeyError, NamingZone};
use object_store::aws::AmazonS3Builder;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// Files up to this size go up in one request; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Size of a multipart upload's parts (S3 wants at least 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// The upload timeout grows by one second for each of these.
const BYTES_PER_EXTRA_SECOND: u64 = 1024 * 1024;
/// The top-level folder of the local directory that keeps failed uploads.
const KEPT_UPLOADS: &str = "buckets";

/// A secret that prints as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The S3-compatible object storage buckets live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host[:port]`, without a bucket.
    pub endpoint: String,
    /// The signing region; empty takes the template's.
    pub region: String,
    /// Access key id; empty sends unsigned requests.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// `<endpoint>/<bucket>/<key>` rather than `<bucket>.<host>/<key>`.
    pub path_style: bool,
    /// Allow a plain `http://` endpoint.
    pub allow_http: bool,
}

/// Settings of [`Storage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The local directory (`<data dir>/records`).
    pub local_dir: PathBuf,
    /// The URL `local_dir` is reachable at (the HTTP playback port's
    /// `/records`), without a trailing slash.
    pub local_url: String,
    /// Object storage; `None` keeps everything in `local_dir`.
    pub s3: Option<S3Settings>,
    /// How long an upload may take, plus a second per MiB.
    pub upload_timeout: Duration,
    /// The time zone file names are written in.
    pub zone: NamingZone,
    /// Which buckets each account may store into.
    pub grants: livestack_core::buckets::BucketGrants,
    /// Signed `/records/` URLs; `None` serves recordings to whoever knows
    /// their URL, as CSS does.
    pub signing: Option<RecordSigning>,
}

/// How `/records/` URLs are signed: CSS's play-URL scheme over the file's
/// key, `txSecret = MD5(key + <file key> + txTime)` with `txTime` the
/// expiry in upper-case hex Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSigning {
    /// The signing key.
    pub key: Secret,
    /// How long the URLs in callbacks stay valid.
    pub ttl: Duration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            local_dir: PathBuf::from("./livestack-data/records"),
            local_url: "http://127.0.0.1:8080/records".to_owned(),
            s3: None,
            upload_timeout: Duration::from_secs(60),
            zone: NamingZone::default(),
            grants: livestack_core::buckets::BucketGrants::default(),
            signing: None,
        }
    }
}

/// Where a file goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The local directory (CSS's VOD).
    Local,
    /// A bucket of the object storage (CSS's COS).
    Bucket {
        /// The bucket's name, used as given.
        bucket: String,
        /// The template's region; may be empty.
        region: String,
        /// The AppId of the account the file is for: the bucket must be
        /// granted to it ([`StorageSettings::grants`]).
        app_id: i64,
    },
}

/// A file in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its key.
    pub key: String,
    /// Its address, for callbacks.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is on disk when it is in the local directory.
    pub local_path: Option<PathBuf>,
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No object storage is configured.
    #[error("no object storage is configured")]
    NotConfigured,
    /// The operator does not let the file's account use the bucket.
    #[error("the account may not store files into this bucket ([storage.s3] buckets)")]
    NotPermitted,
    /// The upload took longer than allowed.
    #[error("the upload timed out after {0:?}")]
    TimedOut(Duration),
    /// The object storage refused or could not be reached.
    #[error(transparent)]
    Store(#[from] object_store::Error),
    /// The file could not be read while uploading.
    #[error("cannot read the file: {0}")]
    Read(io::Error),
    /// The bucket cannot name a bucket at the configured endpoint.
    #[error("refused bucket: {0}")]
    BadBucket(String),
}

/// Why [`Storage::probe`] found a bucket unusable. The message is short
/// and names no address (it reaches API callers); the cause is in the
/// error's source, for logs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("the object storage did not answer within {0:?}")]
    TimedOut(Duration),
    /// The object storage says the bucket does not exist.
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The operator does not let the account use the bucket.
    #[error("the account may not store files into this bucket")]
    NotPermitted,
    /// The object storage refused the credentials (HTTP 401 or 403).
    #[error("the object storage refused livestack's credentials")]
    Refused(#[source] object_store::Error),
    /// It cannot be reached, or it failed.
    #[error("the object storage cannot be reached or failed to answer")]
    Unreachable(#[source] UploadError),
}

/// How long [`Storage::probe`] waits for the object storage.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The key [`Storage::probe`] asks for: one that is not there.
const PROBE_KEY: &str = "livestack-probe/does-not-exist";

/// Why [`Storage::put`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket name breaks S3's rules; the file was not touched.
    #[error("refused bucket {bucket:?}: {source}")]
    InvalidBucket {
        /// The bucket.
        bucket: String,
        /// What is wrong with it.
        #[source]
        source: livestack_core::naming::BucketError,
    },
    /// The key is not a safe relative path; the file was not touched.
    #[error("refused key {key:?}: {source}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The finished file cannot be read; nothing was done.
    #[error("cannot read {}: {source}", path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file cannot be placed in the local directory; it stays at
    /// `source_path`.
    #[error("cannot store {} as {}: {source}", source_path.display(), path.display())]
    Local {
        /// The file, still where it was.
        source_path: PathBuf,
        /// Where it was to go.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The upload failed; the file was kept in the local directory.
    #[error("upload of {key} to bucket {bucket} failed, kept at {}: {source}", kept.url)]
    Upload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Where the file is now.
        kept: Box<Stored>,
        /// Why the upload failed.
        source: UploadError,
    },
    /// The upload failed and the file could not be moved into the local
    /// directory either; it stays at `source_path`.
    #[error("upload of {key} to bucket {bucket} failed ({source}), and keeping it failed too ({keep}); it is still at {}", source_path.display())]
    UploadNotKept {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The file, still where it was.
        source_path: PathBuf,
        /// Why the upload failed.
        source: UploadError,
        /// Why it could not be kept.
        keep: io::Error,
    },
}

impl StorageError {
    /// Where the file is now, when it still exists.
    pub fn kept(&self) -> Option<&Path> {
        match self {
            StorageError::InvalidKey { .. }
            | StorageError::InvalidBucket { .. }
            | StorageError::Source { .. } => None,
            StorageError::Local { source_path, .. }
            | StorageError::UploadNotKept { source_path, .. } => Some(source_path),
            StorageError::Upload { kept, .. } => kept.local_path.as_deref(),
        }
    }
}

/// The two storage backends. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<StorageInner>,
}

struct StorageInner {
    settings: StorageSettings,
    /// The time signed URLs expire from.
    clock: livestack_core::Clock,
    /// Object-storage clients by (bucket, signing region). Built without
    /// I/O, so the lock is never held across an await.
    clients: Mutex<HashMap<(String, String), Arc<dyn ObjectStore>>>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// A storage with `settings`; nothing is created or contacted until
    /// the first [`Storage::put`].
    pub fn new(settings: StorageSettings) -> Storage {
        Storage::with_clock(settings, livestack_core::Clock::system())
    }

    /// The same with the server's clock (signed URLs expire by it).
    pub fn with_clock(settings: StorageSettings, clock: livestack_core::Clock) -> Storage {
        Storage {
            inner: Arc::new(StorageInner {
                settings,
                clock,
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &StorageSettings {
        &self.inner.settings
    }

    /// The time zone file names are written in.
    pub fn zone(&self) -> NamingZone {
        self.inner.settings.zone
    }

    /// The local directory.
    pub fn local_dir(&self) -> &Path {
        &self.inner.settings.local_dir
    }

    /// Where a template's files go: its bucket when it names one and
    /// object storage is configured, else the local directory (a
    /// self-hosted livestack without object storage keeps everything).
    pub fn destination(&self, bucket: &str, region: &str, app_id: i64) -> Destination {
        if bucket.is_empty() || self.inner.settings.s3.is_none() {
            Destination::Local
        } else {
            Destination::Bucket {
                bucket: bucket.to_owned(),
                region: region.to_owned(),
                app_id,
            }
        }
    }

    /// Whether the account with AppId `app_id` may store into `bucket`.
    /// Without object storage every file stays in the local directory and
    /// no bucket is written, so every name is fine.
    pub fn permits(&self, app_id: i64, bucket: &str) -> bool {
        self.inner.settings.s3.is_none() || self.inner.settings.grants.permits(app_id, bucket)
    }

    /// Whether files for `bucket` (in `region`) can go to it now: asks
    /// the object storage for an object that is not there, within
    /// [`PROBE_TIMEOUT`]. "Not found" is the healthy answer (the storage
    /// answered and took the credentials), unless it says the bucket
    /// itself does not exist. `Ok` without asking when the files would
    /// go to the local directory anyway ([`Storage::destination`]).
    ///
    /// The credentials need read access (S3's `GetObject`, and
    /// `ListBucket` for a missing key to read as 404 rather than 403).
    pub async fn probe(&self, bucket: &str, region: &str, app_id: i64) -> Result<(), ProbeError> {
        if self.destination(bucket, region, app_id) == Destination::Local {
            return Ok(());
        }
        if !self.permits(app_id, bucket) {
            return Err(ProbeError::NotPermitted);
        }
        let s3 = self
            .inner
            .settings
            .s3
            .as_ref()
            .ok_or(ProbeError::Unreachable(UploadError::NotConfigured))?;
        let (store, _) = self
            .client(s3, bucket, region)
            .map_err(ProbeError::Unreachable)?;
        let key = object_store::path::Path::from(PROBE_KEY);
        let asked = tokio::time::timeout(PROBE_TIMEOUT, async {
            // The body of an object that happens to be there is never read.
            store
                .get_opts(&key, object_store::GetOptions::default())
                .await
                .map(drop)
        })
        .await
        .map_err(|_| ProbeError::TimedOut(PROBE_TIMEOUT))?;
        match asked {
            Ok(()) => Ok(()),
            // S3's error body names the case; a missing key is fine.
            Err(e @ object_store::Error::NotFound { .. }) => {
                if error_chain(&e).contains("NoSuchBucket") {
                    Err(ProbeError::NoSuchBucket)
                } else {
                    Ok(())
                }
            }
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => Err(ProbeError::Refused(e)),
            Err(e) => Err(ProbeError::Unreachable(UploadError::Store(e))),
        }
    }

    /// The URL of `key` in the local directory, signed for
    /// [`RecordSigning::ttl`] when URLs are signed.
    pub fn local_url(&self, key: &str) -> String {
        let url = format!(
            "{}/{}",
            self.inner.settings.local_url.trim_end_matches('/'),
            encode_key(key)
        );
        match &self.inner.settings.signing {
            None => url,
            Some(sign) => {
                let ttl = i64::try_from(sign.ttl.as_secs()).unwrap_or(i64::MAX);
                let expires = self.inner.clock.unix().saturating_add(ttl);
                format!(
                    "{url}?{}",
                    livestack_core::urlsign::query(sign.key.expose(), key, expires)
                )
            }
        }
    }

    /// Whether a request for the local file `key` with these `txSecret`
    /// and `txTime` may have it: always when URLs are not signed.
    pub fn may_read(&self, key: &str, tx_secret: Option<&str>, tx_time: Option<&str>) -> bool {
        match &self.inner.settings.signing {
            None => true,
            Some(sign) => livestack_core::urlsign::verify(
                &[sign.key.expose()],
                0,
                key,
                tx_secret,
                tx_time,
                self.inner.clock.unix(),
            )
            .is_ok(),
        }
    }

    /// The query that signs `key` until the `txTime` given (for the
    /// segments of a signed playlist, which expire with it); `None` when
    /// URLs are not signed.
    pub fn sign_until(&self, key: &str, tx_time: &str) -> Option<String> {
        let sign = self.inner.settings.signing.as_ref()?;
        Some(format!(
            "txSecret={}&txTime={tx_time}",
            livestack_core::urlsign::tx_secret(sign.key.expose(), key, tx_time)
        ))
    }

    /// Moves the finished file `local` to `key` at `dest` (see the module
    /// docs). On an upload failure the file is kept in the local directory
    /// and the error says where.
    pub async fn put(
        &self,
        dest: &Destination,
        key: &str,
        local: &Path,
    ) -> Result<Stored, StorageError> {
        check_key(key).map_err(|source| StorageError::InvalidKey {
            key: key.to_owned(),
            source,
        })?;
        if let Destination::Bucket { bucket, .. } = dest {
            livestack_core::naming::check_bucket(bucket).map_err(|source| {
                StorageError::InvalidBucket {
                    bucket: bucket.clone(),
                    source,
                }
            })?;
        }
        let size = tokio::fs::metadata(local)
            .await
            .and_then(|m| {
                if m.is_file() {
                    Ok(m.len())
                } else {
                    Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file"))
                }
            })
            .map_err(|source| StorageError::Source {
                path: local.to_owned(),
                source,
            })?;
        match dest {
            Destination::Local => self.put_local(key, key, local, size).await,
            Destination::Bucket {
                bucket,
                region,
                app_id,
            } => {
                // Asked again here, not only by the API: a template made
                // before the operator narrowed the grants must not write
                // where it no longer may.
                let uploaded = if self.permits(*app_id, bucket) {
                    self.upload(bucket, region, key, local, size).await
                } else {
                    Err(UploadError::NotPermitted)
                };
                match uploaded {
                    Ok(url) => {
                        if let Err(e) = tokio::fs::remove_file(local).await {
                            tracing::warn!(path = %local.display(), "uploaded, but cannot remove the local file: {e}");
                        }
                        Ok(Stored {
                            key: key.to_owned(),
                            url,
                            size,
                            local_path: None,
                        })
                    }
                    Err(source) => {
                        let kept_key = format!("{KEPT_UPLOADS}/{bucket}/{key}");
                        match self.put_local(&kept_key, key, local, size).await {
                            Ok(kept) => Err(StorageError::Upload {
                                bucket: bucket.clone(),
                                key: key.to_owned(),
                                kept: Box::new(kept),
                                source,
                            }),
                            Err(e) => Err(StorageError::UploadNotKept {
                                bucket: bucket.clone(),
                                key: key.to_owned(),
                                source_path: local.to_owned(),
                                source,
                                keep: match e {
                                    StorageError::Local { source, .. } => source,
                                    other => io::Error::other(other.to_string()),
                                },
                            }),
                        }
                    }
                }
            }
        }
    }

    /// Moves `local` to `<local_dir>/<path_key>`; the result is reported
    /// under `key`.
    async fn put_local(
        &self,
        path_key: &str,
        key: &str,
        local: &Path,
        size: u64,
    ) -> Result<Stored, StorageError> {
        // Every path under the local directory is made here, and checked
        // whole: no part of it (a bucket, a prefix) may leave the root.
        check_key(path_key).map_err(|source| StorageError::InvalidKey {
            key: path_key.to_owned(),
            source,
        })?;
        // A delivered file is never overwritten: names have one-second
        // resolution, and two snapshots (or files) can fall in one second.
        let mut n = 0;
        let (path_key, key) = loop {
            let (p, k) = if n == 0 {
                (path_key.to_owned(), key.to_owned())
            } else {
                (numbered(path_key, n), numbered(key, n))
            };
            if n >= 1000 || !self.inner.settings.local_dir.join(&p).exists() {
                break (p, k);
            }
            n += 1;
        };
        let (path_key, key) = (path_key.as_str(), key.as_str());
        let target = self.inner.settings.local_dir.join(path_key);
        move_file(local, &target)
            .await
            .map_err(|source| StorageError::Local {
                source_path: local.to_owned(),
                path: target.clone(),
                source,
            })?;
        Ok(Stored {
            key: key.to_owned(),
            url: self.local_url(path_key),
            size,
            local_path: Some(target),
        })
    }

    /// Uploads `local` to `key` in `bucket`; its URL on success.
    async fn upload(
        &self,
        bucket: &str,
        region: &str,
        key: &str,
        local: &Path,
        size: u64,
    ) -> Result<String, UploadError> {
        let s3 = self
            .inner
            .settings
            .s3
            .as_ref()
            .ok_or(UploadError::NotConfigured)?;
        let (store, url) = self.client(s3, bucket, region)?;
        let path = object_store::path::Path::parse(key).map_err(object_store::Error::from)?;
        let limit =
            self.inner.settings.upload_timeout + Duration::from_secs(size / BYTES_PER_EXTRA_SECOND);
        let deadline = Instant::now() + limit;
        let timed_out = |_| UploadError::TimedOut(limit);
        if size <= SINGLE_PUT_MAX {
            let bytes = tokio::fs::read(local).await.map_err(UploadError::Read)?;
            tokio::time::timeout_at(
                deadline,
                store.put_opts(&path, PutPayload::from(bytes), PutOptions::default()),
            )
            .await
            .map_err(timed_out)??;
        } else {
            let upload = tokio::time::timeout_at(
                deadline,
                store.put_multipart_opts(&path, PutMultipartOptions::default()),
            )
            .await
            .map_err(timed_out)??;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let sent = tokio::time::timeout_at(deadline, send_parts(&mut writer, local))
                .await
                .map_err(timed_out)
                .and_then(|r| r);
            if let Err(e) = sent {
                // Best effort: an upload left incomplete costs storage
                // until the bucket's lifecycle rules clear it.
                if let Ok(Err(abort)) =
                    tokio::time::timeout(Duration::from_secs(10), writer.abort()).await
                {
                    tracing::debug!(bucket, key, "cannot abort the multipart upload: {abort}");
                }
                return Err(e);
            }
            tokio::time::timeout_at(deadline, writer.finish())
                .await
                .map_err(timed_out)??;
        }
        Ok(format!("{url}/{}", encode_key(key)))
    }

    /// The client of `bucket` and the URL objects in it are at.
    fn client(
        &self,
        s3: &S3Settings,
        bucket: &str,
        region: &str,
    ) -> Result<(Arc<dyn ObjectStore>, String), UploadError> {
        let region = [s3.region.as_str(), region]
            .into_iter()
            .find(|r| !r.is_empty())
            .unwrap_or("us-east-1")
            .to_owned();
        let endpoint = s3.endpoint.trim_end_matches('/');
        let bucket_url = bucket_url(endpoint, bucket, s3.path_style)?;
        let cache_key = (bucket.to_owned(), region.clone());
        let mut clients = self.inner.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = clients.get(&cache_key) {
            return Ok((Arc::clone(store), bucket_url));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s3.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(30),
            });
        builder = if s3.path_style {
            builder.with_endpoint(endpoint)
        } else {
            builder
                .with_endpoint(&bucket_url)
                .with_virtual_hosted_style_request(true)
        };
        builder = if s3.access_key_id.is_empty() {
            builder.with_skip_signature(true)
        } else {
            builder
                .with_access_key_id(&s3.access_key_id)
                .with_secret_access_key(s3.secret_access_key.expose())
        };
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        clients.insert(cache_key, Arc::clone(&store));
        Ok((store, bucket_url))
    }
}

/// The URL of `bucket` at `endpoint`, built as a URL, never by pasting
/// text: the bucket (checked against S3's rules first) becomes one path
/// level or the first label of the host, and cannot change the scheme,
/// the host or the port the operator configured.
fn bucket_url(endpoint: &str, bucket: &str, path_style: bool) -> Result<String, UploadError> {
    let bad = |why: String| UploadError::BadBucket(why);
    livestack_core::naming::check_bucket(bucket).map_err(|e| bad(e.to_string()))?;
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| bad(format!("the endpoint {endpoint} is not a URL: {e}")))?;
    if path_style {
        url.path_segments_mut()
            .map_err(|()| bad(format!("the endpoint {endpoint} cannot have a path")))?
            .pop_if_empty()
            .push(bucket);
    } else {
        let host = url
            .host_str()
            .ok_or_else(|| bad(format!("the endpoint {endpoint} has no host")))?
            .to_owned();
        url.set_host(Some(&format!("{bucket}.{host}")))
            .map_err(|e| bad(format!("{bucket}.{host} is not a host name: {e}")))?;
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `e` and its sources, `: `-separated, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        // Wrappers often repeat their source's text.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

/// Streams `local` into `writer` part by part, never more than
/// [`PARTS_IN_FLIGHT`] parts in memory.
async fn send_parts(writer: &mut WriteMultipart, local: &Path) -> Result<(), UploadError> {
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(UploadError::Read)?;
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(UploadError::Read)?;
        if n == 0 {
            return Ok(());
        }
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.write(&buf[..n]);
    }
}

/// Moves `from` to `to`, creating `to`'s folders: a rename, or a copy
/// under a temporary name then a rename when they are on different file
/// systems, so the target never shows half a file.
async fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    if tokio::fs::rename(from, to).await.is_ok() {
        return Ok(());
    }
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = to.with_file_name(format!(".{name}.partial"));
    if let Err(e) = tokio::fs::copy(from, &partial).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    if let Err(e) = tokio::fs::rename(&partial, to).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    if let Err(e) = tokio::fs::remove_file(from).await {
        tracing::warn!(path = %from.display(), "copied, but cannot remove the original: {e}");
    }
    Ok(())
}

/// Characters kept as they are in a URL path level (RFC 3986 unreserved).
const PATH_LEVEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `key` as a URL path: each level percent-encoded, `/` kept.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|level| percent_encoding::utf8_percent_encode(level, PATH_LEVEL).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `key` with `-n` before the extension of its last level:
/// `a/b/cam-19-06-59.jpg` → `a/b/cam-19-06-59-1.jpg`.
fn numbered(key: &str, n: u32) -> String {
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, f)| (d, f));
    let named = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
        _ => format!("{name}-{n}"),
    };
    if dir.is_empty() {
        named
    } else {
        format!("{dir}/{named}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_url_keeps_the_operators_host_and_port() {
        assert_eq!(
            bucket_url("http://127.0.0.1:9000", "records", true).expect("url"),
            "http://127.0.0.1:9000/records"
        );
        assert_eq!(
            bucket_url("https://s3.example.com", "records", false).expect("url"),
            "https://records.s3.example.com"
        );
        assert_eq!(
            bucket_url("s3.example.com:8443", "pics", false).expect("url"),
            "https://pics.s3.example.com:8443"
        );
        for bad in ["127.0.0.1:18080#", "evil.com/x", "a@b", ".."] {
            assert!(
                bucket_url("https://s3.example.com", bad, false).is_err(),
                "{bad}"
            );
            assert!(
                bucket_url("http://127.0.0.1:9000", bad, true).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_taken_name_gets_a_number_before_its_extension() {
        assert_eq!(
            numbered("a/b/cam-19-06-59.jpg", 1),
            "a/b/cam-19-06-59-1.jpg"
        );
        assert_eq!(numbered("cam.flv", 2), "cam-2.flv");
        assert_eq!(numbered("a/noext", 3), "a/noext-3");
    }

    fn storage(dir: &Path, s3: Option<S3Settings>) -> Storage {
        Storage::new(StorageSettings {
            local_dir: dir.join("records"),
            local_url: "http://127.0.0.1:8080/records/".to_owned(),
            s3,
            ..StorageSettings::default()
        })
    }

    fn s3_at(endpoint: &str) -> S3Settings {
        S3Settings {
            endpoint: endpoint.to_owned(),
            region: String::new(),
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: Secret::new("very-secret"),
            path_style: true,
            allow_http: true,
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = StorageSettings {
            s3: Some(s3_at("http://127.0.0.1:1")),
            ..StorageSettings::default()
        };
        let text = format!("{:?} {:?}", s, Storage::new(s.clone()));
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn urls_encode_each_level_and_keep_the_slashes() {
        assert_eq!(encode_key("a.b/c d/é%"), "a.b/c%20d/%C3%A9%25");
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            storage(dir.path(), None).local_url("push.example.com/live/x y.flv"),
            "http://127.0.0.1:8080/records/push.example.com/live/x%20y.flv"
        );
    }

    #[test]
    fn templates_naming_a_bucket_go_local_without_object_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = storage(dir.path(), None);
        assert_eq!(
            plain.destination("b", "ap-guangzhou", 1),
            Destination::Local
        );
        let s3 = storage(dir.path(), Some(s3_at("http://127.0.0.1:1")));
        assert_eq!(s3.destination("", "ap-guangzhou", 1), Destination::Local);
        assert_eq!(
            s3.destination("b", "ap-guangzhou", 1),
            Destination::Bucket {
                bucket: "b".into(),
                region: "ap-guangzhou".into(),
                app_id: 1
            }
        );
    }

    #[tokio::test]
    async fn a_local_put_moves_the_file_under_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = storage(dir.path(), None);
        let src = dir.path().join("work.flv");
        std::fs::write(&src, b"FLV...").expect("write");
        let stored = s
            .put(&Destination::Local, "push.example.com/live/a.flv", &src)
            .await
            .expect("stored");
        assert_eq!(stored.size, 6);
        assert_eq!(
            stored.url,
            "http://127.0.0.1:8080/records/push.example.com/live/a.flv"
        );
        let path = dir.path().join("records/push.example.com/live/a.flv");
        assert_eq!(stored.local_path.as_deref(), Some(path.as_path()));
        assert_eq!(std::fs::read(&path).expect("read"), b"FLV...");
        assert!(!src.exists());
    }

    #[tokio::test]
    async fn unsafe_keys_and_missing_files_are_refused_without_touching_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = storage(dir.path(), None);
        let src = dir.path().join("work.flv");
        std::fs::write(&src, b"x").expect("write");
        for key in ["../escape.flv", "/abs.flv", "a//b", ""] {
            let err = s.put(&Destination::Local, key, &src).await.unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidKey { .. }),
                "{key}: {err}"
            );
        }
        assert!(src.exists());
        let err = s
            .put(&Destination::Local, "a.flv", &dir.path().join("missing"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Source { .. }), "{err}");
        assert!(err.kept().is_none());
    }

    #[tokio::test]
    async fn a_bucket_without_object_storage_keeps_the_file_locally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = storage(dir.path(), None);
        let src = dir.path().join("snap.jpg");
        std::fs::write(&src, b"JPEG").expect("write");
        let dest = Destination::Bucket {
            bucket: "pics".into(),
            region: "ap-guangzhou".into(),
            app_id: 1,
        };
        let err = s.put(&dest, "2018-12-17/a.jpg", &src).await.unwrap_err();
        let StorageError::Upload { kept, source, .. } = &err else {
            panic!("not an upload error: {err}");
        };
        assert!(matches!(source, UploadError::NotConfigured));
        assert_eq!(
            kept.url,
            "http://127.0.0.1:8080/records/buckets/pics/2018-12-17/a.jpg"
        );
        let path = dir.path().join("records/buckets/pics/2018-12-17/a.jpg");
        assert_eq!(err.kept(), Some(path.as_path()));
        assert_eq!(std::fs::read(&path).expect("kept"), b"JPEG");
    }

    #[tokio::test]
    async fn a_probe_asks_nothing_when_files_stay_local_and_fails_on_a_closed_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = storage(dir.path(), None);
        assert!(plain.probe("vids", "ap-guangzhou", 1).await.is_ok());
        // Nothing listens on port 9 of loopback.
        let s3 = storage(dir.path(), Some(s3_at("http://127.0.0.1:9")));
        assert!(s3.probe("", "", 1).await.is_ok(), "no bucket: local");
        let started = std::time::Instant::now();
        let err = s3.probe("vids", "ap-guangzhou", 1).await.unwrap_err();
        assert!(matches!(err, ProbeError::Unreachable(_)), "{err}");
        assert!(started.elapsed() <= PROBE_TIMEOUT + Duration::from_secs(1));
        // The message names no address; the chain (for logs) does.
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        assert!(
            error_chain(&err).contains("127.0.0.1:9"),
            "{}",
            error_chain(&err)
        );
    }

    #[tokio::test]
    async fn a_bucket_not_granted_to_the_files_account_is_neither_probed_nor_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::new(StorageSettings {
            local_dir: dir.path().join("records"),
            local_url: "http://127.0.0.1:8080/records".to_owned(),
            // Nothing listens here: a refusal that asked would time out
            // or fail as unreachable, not as not permitted.
            s3: Some(s3_at("http://127.0.0.1:9")),
            grants: livestack_core::buckets::BucketGrants::new([(
                "*",
                vec!["{appid}-*".to_owned()],
            )])
            .expect("grants"),
            ..StorageSettings::default()
        });
        assert!(s.permits(7, "7-vids"));
        assert!(!s.permits(8, "7-vids"));
        let err = s.probe("7-vids", "ap-guangzhou", 8).await.unwrap_err();
        assert!(matches!(err, ProbeError::NotPermitted), "{err}");

        let src = dir.path().join("a.flv");
        std::fs::write(&src, b"FLV").expect("write");
        let dest = s.destination("7-vids", "ap-guangzhou", 8);
        let err = s.put(&dest, "rec/a.flv", &src).await.unwrap_err();
        let StorageError::Upload { source, .. } = &err else {
            panic!("not an upload error: {err}");
        };
        assert!(matches!(source, UploadError::NotPermitted), "{err}");
        // The file is not lost: it is kept locally, as a failed upload is.
        let kept = dir.path().join("records/buckets/7-vids/rec/a.flv");
        assert_eq!(std::fs::read(kept).expect("kept"), b"FLV");
    }
}
