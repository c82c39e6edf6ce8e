//! Child processes and their supervision.
//!
//! Owns: starting ffmpeg ([`Ffmpeg::spawn`]), draining what it prints,
//! ending it cleanly (`q` on its stdin, so files get their trailers; a
//! kill after a grace period), and [`supervise`]: one attempt after
//! another with exponential backoff until the job is cancelled. Must not:
//! decide which jobs run (the processor does) or leave a process behind:
//! children are killed when their handle is dropped, and every attempt is
//! awaited on the owning task.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// How long ffmpeg gets to finish its files after `q` before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The first pause before a failed job is started again.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An attempt that ran this long was healthy: the backoff starts over.
const HEALTHY: Duration = Duration::from_secs(30);
/// Lines of ffmpeg's output kept for error messages.
const TAIL_LINES: usize = 8;

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("exited with {status}: {tail}")]
    Exit {
        /// The exit status.
        status: ExitStatus,
        /// Its last lines of output.
        tail: String,
    },
    /// Waiting for it failed.
    #[error("lost track of the process: {0}")]
    Wait(std::io::Error),
    /// The job's own work (files, storage) failed.
    #[error("{0}")]
    Work(String),
}

/// A command for `program` whose every HTTP request and HTTPS tunnel goes
/// through the fetch proxy at `proxy` (ffmpeg reads `http_proxy` for
/// both, in every input it opens, a list's files and a playlist's
/// segments included), with nothing exempt (`no_proxy` removed).
pub(crate) fn proxied(program: &str, proxy: std::net::SocketAddr) -> Command {
    let mut command = Command::new(program);
    let url = format!("http://{proxy}");
    command
        .env("http_proxy", &url)
        .env("HTTP_PROXY", &url)
        .env("https_proxy", &url)
        .env_remove("no_proxy")
        .env_remove("NO_PROXY");
    command
}

/// A running ffmpeg, killed if dropped.
pub(crate) struct Ffmpeg {
    child: Child,
    /// Kept apart from `child`: `Child::wait` closes the stdin it holds,
    /// and ffmpeg must still be able to read `q` while it is waited on.
    stdin: Option<ChildStdin>,
    stderr: Option<tokio::io::Lines<BufReader<ChildStderr>>>,
    tail: Vec<String>,
    label: String,
    /// Sees every line first; a line it claims (returns true for) is not
    /// logged or kept for error messages (progress reports, say).
    observer: Option<Observer>,
}

/// See [`Ffmpeg::observe`].
pub(crate) type Observer = Box<dyn FnMut(&str) -> bool + Send>;

impl Ffmpeg {
    /// Starts `program` (ffmpeg) with `args`; `label` names the job in logs.
    pub(crate) fn spawn(program: &str, args: &[String], label: &str) -> Result<Ffmpeg, JobError> {
        Ffmpeg::spawn_command(Command::new(program), program, args, label)
    }

    /// The same, its HTTP and HTTPS connections made through the fetch
    /// proxy at `proxy` ([`proxied`]).
    pub(crate) fn spawn_proxied(
        program: &str,
        args: &[String],
        label: &str,
        proxy: std::net::SocketAddr,
    ) -> Result<Ffmpeg, JobError> {
        Ffmpeg::spawn_command(proxied(program, proxy), program, args, label)
    }

    fn spawn_command(
        mut command: Command,
        program: &str,
        args: &[String],
        label: &str,
    ) -> Result<Ffmpeg, JobError> {
        tracing::debug!(job = label, "starting {program} {}", args.join(" "));
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| JobError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        let stderr = child.stderr.take().map(|e| BufReader::new(e).lines());
        let stdin = child.stdin.take();
        Ok(Ffmpeg {
            child,
            stdin,
            stderr,
            tail: Vec::new(),
            label: label.to_owned(),
            observer: None,
        })
    }

    /// The process id, while it runs.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit, logging what it prints. Cancel-safe:
    /// it can be a branch of a `select!` and be called again.
    pub(crate) async fn wait(&mut self) -> Result<(), JobError> {
        loop {
            let line = async {
                match self.stderr.as_mut() {
                    Some(lines) => lines.next_line().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                line = line => match line {
                    Ok(Some(line)) => self.keep(line),
                    _ => self.stderr = None,
                },
                status = self.child.wait() => {
                    let status = status.map_err(JobError::Wait)?;
                    // What it printed last may still be in the pipe.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.drain()).await;
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(JobError::Exit { status, tail: self.tail.join(" | ") })
                    };
                }
            }
        }
    }

    /// Reads what is left of the process's output, to its end.
    async fn drain(&mut self) {
        while let Some(lines) = self.stderr.as_mut() {
            match lines.next_line().await {
                Ok(Some(line)) => self.keep(line),
                _ => self.stderr = None,
            }
        }
    }

    /// Hands every line ffmpeg prints to `observer` first.
    pub(crate) fn observe(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    fn keep(&mut self, line: String) {
        if let Some(observe) = self.observer.as_mut() {
            if observe(&line) {
                return;
            }
        }
        tracing::debug!(job = %self.label, "ffmpeg: {line}");
        if self.tail.len() == TAIL_LINES {
            self.tail.remove(0);
        }
        self.tail.push(line);
    }

    /// Asks ffmpeg to finish (`q`), waits up to the grace period, then
    /// kills it. Files it was writing get their trailers when it listens.
    pub(crate) async fn stop(&mut self) -> Result<(), JobError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"q").await;
            let _ = stdin.flush().await;
        }
        match tokio::time::timeout(STOP_GRACE, self.wait()).await {
            Ok(r) => r.or(Ok(())),
            Err(_) => {
                tracing::warn!(job = %self.label, "ffmpeg did not stop within {STOP_GRACE:?}; killing it");
                let _ = self.child.kill().await;
                Ok(())
            }
        }
    }

    /// Waits for exit, or stops the process when `cancel` fires.
    pub(crate) async fn run_until(&mut self, cancel: &CancellationToken) -> Result<(), JobError> {
        tokio::select! {
            r = self.wait() => r,
            () = cancel.cancelled() => self.stop().await,
        }
    }
}

/// What a job has done, for logs and the Describe actions.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobStatus {
    /// Attempts started.
    pub(crate) attempts: u32,
    /// Attempts that failed.
    pub(crate) failures: u32,
    /// The last failure, if any.
    pub(crate) last_error: Option<String>,
    /// Whether an attempt is running now.
    pub(crate) running: bool,
    /// Files delivered to storage (recordings).
    pub(crate) files: u32,
    /// Files storage refused; they stay on local disk.
    pub(crate) storage_failures: u32,
    /// The last storage error, if any.
    pub(crate) last_storage_error: Option<String>,
    /// The job is being replaced: its attempt runs on until its successor
    /// has taken over, and is not started again when it ends.
    pub(crate) retiring: bool,
}

/// The metrics of a job's kind its attempts count in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    /// Attempts started.
    pub(crate) starts: prometheus_client::metrics::counter::Counter,
    /// Attempts that failed.
    pub(crate) failures: prometheus_client::metrics::counter::Counter,
}

impl Counters {
    /// The counters of jobs of `kind` in `metrics`.
    pub(crate) fn of(
        metrics: &crate::metrics::MediaMetrics,
        kind: crate::metrics::JobKind,
    ) -> Counters {
        let labels = crate::metrics::JobLabels { kind };
        Counters {
            starts: metrics.job_starts.get_or_create(&labels).clone(),
            failures: metrics.job_failures.get_or_create(&labels).clone(),
        }
    }
}

/// Runs `attempt` again and again until `cancel` fires: after a failure
/// (or an exit while the job is still wanted) it waits 1 s, 2 s, 4 s …
/// up to 30 s, starting over after an attempt that ran 30 s.
pub(crate) async fn supervise<F, Fut>(
    label: String,
    status: Arc<Mutex<JobStatus>>,
    cancel: CancellationToken,
    counters: Counters,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), JobError>>,
{
    let mut backoff = BACKOFF_MIN;
    tracing::info!(job = %label, "job started");
    loop {
        let started = Instant::now();
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            if s.retiring {
                // Replaced while it waited to start again.
                cancel.cancel();
                break;
            }
            s.attempts += 1;
            s.running = true;
        }
        counters.starts.inc();
        let result = attempt().await;
        let retiring = {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.running = false;
            s.retiring
        };
        if retiring {
            // Its owner sees the token and lets it go.
            cancel.cancel();
        }
        if cancel.is_cancelled() {
            match result {
                // A replaced job's outputs are taken from it: its errors
                // are expected.
                Err(e) if retiring => {
                    tracing::debug!(job = %label, "replaced job ended: {e}");
                }
                Err(e) => tracing::warn!(job = %label, "job ended with an error: {e}"),
                Ok(()) => {}
            }
            break;
        }
        if started.elapsed() >= HEALTHY {
            backoff = BACKOFF_MIN;
        }
        match result {
            Ok(()) => tracing::info!(job = %label, "job exited; starting it again in {backoff:?}"),
            Err(e) => {
                tracing::warn!(job = %label, "job failed: {e}; starting it again in {backoff:?}");
                counters.failures.inc();
                let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                s.failures += 1;
                s.last_error = Some(e.to_string());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = cancel.cancelled() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    tracing::info!(job = %label, "job stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_job_is_restarted_with_growing_pauses_until_cancelled() {
        let status = Arc::new(Mutex::new(JobStatus::default()));
        let cancel = CancellationToken::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU32::new(0));
        let run = {
            let (starts, count, cancel) = (starts.clone(), count.clone(), cancel.clone());
            supervise(
                "t".into(),
                status.clone(),
                cancel.clone(),
                Counters::default(),
                move || {
                    let (starts, count, cancel) = (starts.clone(), count.clone(), cancel.clone());
                    async move {
                        starts.lock().unwrap().push(tokio::time::Instant::now());
                        if count.fetch_add(1, Ordering::SeqCst) == 3 {
                            cancel.cancel();
                        }
                        Err(JobError::Work("boom".into()))
                    }
                },
            )
        };
        run.await;
        let starts = starts.lock().unwrap();
        let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, vec![1, 2, 4]);
        let s = status.lock().unwrap();
        assert_eq!((s.attempts, s.failures), (4, 3));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn a_stopped_process_is_asked_to_quit_and_then_killed() {
        // `cat` ignores `q` and runs until its stdin closes: stop() closes
        // it, so this ends at once; a program that ignored both would be
        // killed after the grace period.
        let mut p = Ffmpeg::spawn("cat", &[], "cat").unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        p.run_until(&cancel).await.unwrap();
    }

    #[tokio::test]
    async fn a_process_being_waited_on_still_gets_the_quit_command() {
        // Exits 0 on reading `q`, 1 on anything else (end of input).
        let mut p = Ffmpeg::spawn(
            "sh",
            &["-c".into(), "c=$(head -c 1); test \"$c\" = q".into()],
            "sh",
        )
        .unwrap();
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later.cancel();
        });
        let started = Instant::now();
        p.run_until(&cancel).await.unwrap();
        assert!(started.elapsed() < STOP_GRACE, "it was killed, not asked");
    }

    #[tokio::test]
    async fn a_failed_exit_carries_the_last_lines_it_printed() {
        let mut p = Ffmpeg::spawn(
            "sh",
            &["-c".into(), "echo one >&2; echo two >&2; exit 3".into()],
            "sh",
        )
        .unwrap();
        let err = p.wait().await.unwrap_err().to_string();
        assert!(err.contains("one | two"), "{err}");
    }
}
