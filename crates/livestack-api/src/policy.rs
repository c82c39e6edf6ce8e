//! Publishing the media plane's [`Policy`] from the store.
//!
//! Owns: building the immutable snapshot (domains with their keys and
//! referer rules, forbidden streams, processing templates, rules and
//! tasks) and handing it to the media plane
//! through a `watch` channel. Handlers that change any of it call
//! [`PolicyPublisher::refresh`] before they answer, so a change is in force
//! on the media plane by the time the client hears of it.

use std::collections::HashMap;
use std::sync::Arc;

use livestack_core::media::{DomainPolicy, Policy, RefererPolicy, StreamKey, TlsMaterial, UrlAuth};
use livestack_core::rules::Processing;
use livestack_core::tasks::Task;
use livestack_core::DomainKind;
use livestack_store::domains::Domain;
use livestack_store::{certs, domains, streams, tasks, templates, Store, StoreResult};
use tokio::sync::watch;

/// Keeps the media plane's policy in step with the store.
pub struct PolicyPublisher {
    store: Store,
    tx: watch::Sender<Arc<Policy>>,
    /// Every domain row as of the last refresh: the read model that
    /// `DescribeLiveDomains` answers from without a database round trip.
    /// The API is the only writer of domains and refreshes after every
    /// write, so it is never behind what a client has been told.
    domains: std::sync::RwLock<Arc<Vec<Domain>>>,
}

impl PolicyPublisher {
    /// A publisher with an empty policy; call [`refresh`](Self::refresh)
    /// before serving.
    pub fn new(store: Store) -> PolicyPublisher {
        let (tx, _) = watch::channel(Arc::new(Policy::default()));
        PolicyPublisher {
            store,
            tx,
            domains: std::sync::RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Every domain of every account, as of the last refresh, by name.
    pub fn domains(&self) -> Arc<Vec<Domain>> {
        Arc::clone(&self.domains.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A receiver for the media plane.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.tx.subscribe()
    }

    /// Every template and rule (read together, so every rule's template
    /// is there) and the tasks in force at `now`, for [`Policy::processing`].
    async fn processing(&self, now: i64) -> StoreResult<Processing> {
        let (all, rules, tasks, accounts) = self
            .store
            .run(move |c| {
                Ok((
                    templates::all(c)?,
                    templates::all_rules(c)?,
                    tasks::in_force(c, now)?,
                    livestack_store::accounts::list(c)?,
                ))
            })
            .await?;
        Ok(Processing {
            templates: all.into_iter().map(|t| (t.id, t)).collect(),
            rules,
            picture_dir: templates::picture_dir(&self.store),
            // The media plane checks each task's window itself
            // (`Task::wants`), so one that ends after this refresh ends on
            // time all the same. Each carries the id its creator was
            // given, for the record callbacks (`task_id`).
            tasks: tasks
                .into_iter()
                .map(|row| {
                    let public_id = crate::actions::task::public_id(&row);
                    Task {
                        public_id,
                        ..row.task
                    }
                })
                .collect(),
            app_ids: accounts.into_iter().map(|a| (a.id, a.app_id)).collect(),
        })
    }

    /// Rebuilds the policy from the store and publishes it.
    pub async fn refresh(&self) -> StoreResult<()> {
        let now = crate::gateway::unix_now();
        let (domains, bans, delays, tls) = self
            .store
            .run(move |c| {
                Ok((
                    domains::all(c)?,
                    streams::forbidden_in_force(c, now)?,
                    streams::delays_in_force(c, now)?,
                    certs::all_tls_bindings(c)?,
                ))
            })
            .await?;
        // Play domains with HTTPS switched on serve their bound certificate.
        let mut tls: HashMap<String, Arc<TlsMaterial>> = tls
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
        let mut policy = Policy {
            domains: HashMap::with_capacity(domains.len()),
            forbidden: HashMap::with_capacity(bans.len()),
            delays: HashMap::with_capacity(delays.len()),
            processing: self.processing(now).await?,
        };
        *self.domains.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(domains.clone());
        for d in domains {
            let keys: Vec<String> = [d.auth.key, d.auth.backup_key]
                .into_iter()
                .filter(|k| !k.is_empty())
                .collect();
            let cert = tls.remove(&d.name);
            policy.domains.insert(
                d.name,
                DomainPolicy {
                    account: d.account_id,
                    kind: if d.domain_type == 0 {
                        DomainKind::Push
                    } else {
                        DomainKind::Play
                    },
                    enabled: d.status == 1,
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
        for b in bans {
            policy.forbidden.insert(
                StreamKey {
                    account: b.account_id,
                    app: b.app,
                    stream: b.stream,
                },
                b.resume_at,
            );
        }
        for d in delays {
            policy.delays.insert(
                StreamKey {
                    account: d.account_id,
                    app: d.app,
                    stream: d.stream,
                },
                (u32::try_from(d.delay_time).unwrap_or(0), d.expire_at),
            );
        }
        self.tx.send_replace(Arc::new(policy));
        Ok(())
    }
}
