//! What leaves the media plane besides media: event callbacks (`notify`),
//! the storage of recordings and snapshots (`storage`) and the hourly
//! access logs (`access_log`).
//!
//! Owns: the callback protocol and retries, local and object storage.
//! Must not: decide what to record (`process` does).

pub(crate) mod access_log;
pub(crate) mod notify;
pub mod storage;

/// Appends `data` to the file at `path`, creating it and its directory if
/// need be, and flushes it (access logs, recordings' segments and lists).
pub(crate) async fn append(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(data).await?;
    f.flush().await
}
