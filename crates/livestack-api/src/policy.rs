//! Publishing the media plane's [`Policy`] from the store.
//!
//! Owns: building the immutable snapshot (domains with their keys and
//! referer rules, forbidden streams, processing templates, rules and
//! tasks) and handing it to the media plane
//! through a `watch` channel. Handlers that change any of it call
//! [`PolicyPublisher::refresh`] before they answer, so a change is in force
//! on the media plane by the time the client hears of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use livestack_core::media::{DomainPolicy, Policy, RefererPolicy, StreamKey, TlsMaterial, UrlAuth};
use livestack_core::rules::Processing;
use livestack_core::tasks::Task;
use livestack_core::Clock;
use livestack_store::domains::Domain;
use livestack_store::{certs, domains, streams, tasks, templates, Store, StoreResult};
use tokio::sync::watch;

/// Keeps the media plane's policy in step with the store.
///
/// Refreshes may run concurrently (every write calls one), and each reads
/// its whole snapshot in one read transaction. Publication is monotonic:
/// each snapshot gets a generation number in the order the database took
/// the snapshots, and a snapshot older than the one already published is
/// dropped instead of replacing it. So the published policy never goes
/// back in time, and a refresh that returns has either published its own
/// snapshot or a newer one, which holds its caller's write too.
pub struct PolicyPublisher {
    store: Store,
    clock: Clock,
    tx: watch::Sender<Arc<Policy>>,
    /// Every domain row as of the published snapshot: the read model that
    /// `DescribeLiveDomains` answers from without a database round trip.
    /// The API is the only writer of domains and refreshes after every
    /// write, so it is never behind what a client has been told.
    domains: std::sync::RwLock<Arc<Vec<Domain>>>,
    /// The generation of the newest snapshot taken; held (on the blocking
    /// pool, never across an `.await`) while a snapshot is opened, so
    /// generations follow the order of the snapshots.
    taken: Arc<std::sync::Mutex<u64>>,
    /// The generation of the published snapshot.
    published: AtomicU64,
}

/// Everything one refresh reads, from one read transaction.
struct Snapshot {
    generation: u64,
    domains: Vec<Domain>,
    bans: Vec<streams::Forbidden>,
    delays: Vec<streams::Delayed>,
    tls: Vec<(String, certs::TlsBinding)>,
    templates: Vec<livestack_core::rules::Template>,
    rules: Vec<livestack_core::rules::Rule>,
    tasks: Vec<tasks::TaskRow>,
    pull_tasks: Vec<livestack_store::pull_tasks::PullTaskRow>,
    mixes: Vec<livestack_store::mixes::MixRow>,
    inserts: Vec<livestack_store::pull_tasks::InsertRow>,
    nodes: Vec<String>,
    accounts: Vec<livestack_store::Account>,
}

impl PolicyPublisher {
    /// A publisher with an empty policy, reading time from `clock`; call
    /// [`refresh`](Self::refresh) before serving.
    pub fn new(store: Store, clock: Clock) -> PolicyPublisher {
        let (tx, _) = watch::channel(Arc::new(Policy::default()));
        PolicyPublisher {
            store,
            clock,
            tx,
            domains: std::sync::RwLock::new(Arc::new(Vec::new())),
            taken: Arc::new(std::sync::Mutex::new(0)),
            published: AtomicU64::new(0),
        }
    }

    /// Every domain of every account, as of the published policy, by name.
    pub fn domains(&self) -> Arc<Vec<Domain>> {
        Arc::clone(&self.domains.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The clock the policy reads time from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A receiver for the media plane.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.tx.subscribe()
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        Arc::clone(&self.tx.borrow())
    }

    /// Builds the policy from the store as it is now, without publishing
    /// it (what [`refresh`](Self::refresh) would publish; for checks).
    pub async fn build(&self) -> StoreResult<Policy> {
        let snapshot = self.read().await?;
        Ok(self.assemble(snapshot).1)
    }

    /// Reads one consistent snapshot of everything the policy holds.
    async fn read(&self) -> StoreResult<Snapshot> {
        let now = self.clock.unix();
        let taken = Arc::clone(&self.taken);
        self.store
            .snapshot(move |c| {
                // The first read of a read transaction fixes its snapshot;
                // numbering it under the lock orders generations like the
                // snapshots themselves.
                let (generation, domains) = {
                    let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
                    let domains = domains::all(c)?;
                    *taken += 1;
                    (*taken, domains)
                };
                Ok(Snapshot {
                    generation,
                    domains,
                    bans: streams::forbidden_in_force(c, now)?,
                    delays: streams::delays_in_force(c, now)?,
                    tls: certs::all_tls_bindings(c)?,
                    templates: templates::all(c)?,
                    rules: templates::all_rules(c)?,
                    tasks: tasks::in_force(c, now)?,
                    pull_tasks: livestack_store::pull_tasks::in_force(c, now)?,
                    mixes: livestack_store::mixes::all(c)?,
                    inserts: livestack_store::pull_tasks::pending_inserts(c)?,
                    // Nodes share a database only on PostgreSQL.
                    nodes: if c.backend() == livestack_store::db::Backend::Postgres {
                        livestack_store::cluster::live_nodes(c)?
                            .into_iter()
                            .map(|n| n.name)
                            .collect()
                    } else {
                        Vec::new()
                    },
                    accounts: livestack_store::accounts::list(c)?,
                })
            })
            .await
    }

    /// Rebuilds the policy from one snapshot of the store and publishes it,
    /// unless a newer snapshot is already in force.
    pub async fn refresh(&self) -> StoreResult<()> {
        let snapshot = self.read().await?;
        self.publish(snapshot);
        Ok(())
    }

    /// After a configuration write: puts it in force here. The other
    /// nodes sharing the database (PostgreSQL) have been told already, by
    /// the database itself: the write's own transaction announced it
    /// (migration 12's triggers), so no committed write goes unannounced,
    /// whatever happens to this node after the commit.
    pub async fn changed(&self) -> StoreResult<()> {
        self.refresh().await
    }

    /// This store's id in change announcements, so that this node does not
    /// reload for its own writes ([`Store::origin`]).
    pub fn origin(&self) -> &str {
        self.store.origin()
    }

    /// Publishes `snapshot` unless a newer one is in force already.
    fn publish(&self, snapshot: Snapshot) {
        let generation = snapshot.generation;
        let (domains, policy) = self.assemble(snapshot);
        let policy = Arc::new(policy);
        // The watch channel's lock makes check-and-swap one step.
        self.tx.send_if_modified(|current| {
            if generation <= self.published.load(Ordering::Acquire) {
                return false;
            }
            self.published.store(generation, Ordering::Release);
            *self.domains.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(domains);
            *current = policy;
            true
        });
    }

    /// The policy (and the domain read model) of one snapshot.
    fn assemble(&self, s: Snapshot) -> (Vec<Domain>, Policy) {
        // Domains with their certificate switched on serve it (HTTPS and
        // RTMPS for play domains, RTMPS for push domains).
        let mut tls: HashMap<String, Arc<TlsMaterial>> = s
            .tls
            .into_iter()
            .filter(|(_, b)| b.https_enabled)
            .map(|(name, b)| {
                let material = TlsMaterial {
                    chain_pem: b.chain_pem,
                    key_pem: b.key_pem.expose().to_owned(),
                };
                (name, Arc::new(material))
            })
            .collect();
        let processing = Processing {
            templates: s.templates.into_iter().map(|t| (t.id, t)).collect(),
            rules: s.rules,
            picture_dir: templates::picture_dir(&self.store),
            // The media plane checks each task's window itself
            // (`Task::wants`), so one that ends after this refresh ends on
            // time all the same. Each carries the id its creator was
            // given, for the record callbacks (`task_id`).
            tasks: s
                .tasks
                .into_iter()
                .map(|row| {
                    let public_id = crate::ids::public_task_id(&row);
                    Task {
                        public_id,
                        ..row.task
                    }
                })
                .collect(),
            // Relay tasks, started and stopped by their window on the
            // media plane like record tasks; in a cluster the nodes alive
            // now share them out.
            pull_tasks: s
                .pull_tasks
                .iter()
                .filter_map(crate::actions::pull::to_core)
                .map(|mut t| {
                    t.inserts = s
                        .inserts
                        .iter()
                        .filter(|i| i.task == t.id)
                        .map(|i| livestack_core::pull::PullInsert {
                            id: i.id,
                            after: i.after,
                            priority: i.priority,
                            files: i.files.clone(),
                            context: i.context.clone(),
                        })
                        .collect();
                    t
                })
                .collect(),
            // Mix sessions run until cancelled.
            mixes: s
                .mixes
                .iter()
                .filter_map(crate::actions::mix::to_core)
                .collect(),
            nodes: s.nodes,
            app_ids: s.accounts.into_iter().map(|a| (a.id, a.app_id)).collect(),
        };
        let mut policy = Policy {
            domains: HashMap::with_capacity(s.domains.len()),
            forbidden: HashMap::with_capacity(s.bans.len()),
            delays: HashMap::with_capacity(s.delays.len()),
            processing,
        };
        for d in &s.domains {
            let keys: Vec<String> = [&d.auth.key, &d.auth.backup_key]
                .into_iter()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect();
            let cert = tls.remove(&d.name);
            policy.domains.insert(
                d.name.clone(),
                DomainPolicy {
                    account: d.account_id,
                    kind: d.kind,
                    enabled: d.enabled,
                    auth: (d.auth.enabled && !keys.is_empty()).then_some(UrlAuth {
                        keys,
                        delta: d.auth.delta,
                    }),
                    referer: RefererPolicy {
                        enabled: d.referer.enabled,
                        allow_list: d.referer.list_type == 1,
                        allow_empty: d.referer.allow_empty,
                        rules: d
                            .referer
                            .rules
                            .split(';')
                            .filter(|r| !r.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    },
                    tls: cert,
                },
            );
        }
        for b in s.bans {
            policy.forbidden.insert(
                StreamKey {
                    account: b.account_id,
                    app: b.app,
                    stream: b.stream,
                },
                b.resume_at,
            );
        }
        for d in s.delays {
            policy.delays.insert(
                StreamKey {
                    account: d.account_id,
                    app: d.app,
                    stream: d.stream,
                },
                (u32::try_from(d.delay_time).unwrap_or(0), d.expire_at),
            );
        }
        (s.domains, policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_store::accounts;

    fn add_domain(store: &Store, name: &str) {
        let name = name.to_owned();
        store
            .run_blocking(move |c| {
                let account = accounts::ensure(c, "root")?.id;
                domains::insert(
                    c,
                    &Domain::new(account, name, livestack_core::DomainKind::Push, 0),
                )
            })
            .expect("insert");
    }

    #[tokio::test]
    async fn a_snapshot_older_than_the_published_one_is_never_published() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        let publisher = PolicyPublisher::new(store.clone(), Clock::system());
        // A refresh reads its snapshot, then a write lands and its own
        // refresh publishes; the slow first refresh publishes last.
        let stale = publisher.read().await.expect("read");
        add_domain(&store, "push.example.com");
        publisher.refresh().await.expect("refresh");
        publisher.publish(stale);
        assert!(publisher.current().domains.contains_key("push.example.com"));
        assert_eq!(
            *publisher.current(),
            publisher.build().await.expect("build")
        );
        assert_eq!(publisher.domains().len(), 1);
    }

    #[tokio::test]
    async fn snapshots_are_numbered_in_the_order_they_were_taken() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        let publisher = PolicyPublisher::new(store, Clock::system());
        let a = publisher.read().await.expect("read").generation;
        let b = publisher.read().await.expect("read").generation;
        assert!(b > a);
    }
}
