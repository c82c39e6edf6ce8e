//! Who may do what: the CAM check of every call, after the signature and
//! the parameters, before the handler.
//!
//! Owns: [`Caller`] (who is calling, as the handlers and CAM see it), the
//! preset policies, the wire numbering of sub-accounts and policies, the
//! resources a call names, the `[cam] enforce` switch and the
//! `AuthFailure.UnauthorizedOperation` answer. Must not: parse or evaluate
//! policy documents itself (`livestack_core::cam` does), or skip the check
//! for anyone but a root key without a session policy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livestack_core::cam::{self, Policy};
use livestack_core::AccountId;
use livestack_model::schema::Service;
use livestack_store::cam::{Role, Target, User};
use livestack_store::{accounts, Store};
use serde_json::Value;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// `[cam] enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforce {
    /// Denials are answered (`AuthFailure.UnauthorizedOperation`).
    #[default]
    On,
    /// Denials are logged with the deciding statement and let through.
    Soft,
    /// Nothing is evaluated.
    Off,
}

impl Enforce {
    /// `on`, `soft` or `off`.
    pub fn parse(s: &str) -> Option<Enforce> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" => Some(Enforce::On),
            "soft" => Some(Enforce::Soft),
            "off" => Some(Enforce::Off),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforce::On => "on",
            Enforce::Soft => "soft",
            Enforce::Off => "off",
        }
    }
}

/// Sub-account UINs are this plus the row id (root accounts are numbered
/// from 100000000001, so the two never meet).
pub const SUB_UIN_BASE: u64 = 200_000_000_000;
/// Sub-account UIDs are this plus the row id.
pub const UID_BASE: u64 = 11_000_000;
/// Custom policy ids are this plus the row id; preset ids are below it.
pub const CUSTOM_POLICY_BASE: u64 = 100_000_000;
/// Role ids are this plus the row id (CAM's are 19-digit numbers).
pub const ROLE_ID_BASE: u64 = 4_611_686_018_427_387_904;

/// The wire `RoleId` of a role.
pub fn role_id(id: i64) -> String {
    (ROLE_ID_BASE + id.unsigned_abs()).to_string()
}

/// The row id behind a wire `RoleId`.
pub fn role_row_of(role_id: &str) -> Option<i64> {
    role_id
        .trim()
        .parse::<u64>()
        .ok()?
        .checked_sub(ROLE_ID_BASE)
        .filter(|&r| r > 0)
        .and_then(|r| i64::try_from(r).ok())
}

/// The wire `Uin` of a sub-account.
pub fn user_uin(id: i64) -> u64 {
    SUB_UIN_BASE + id.unsigned_abs()
}

/// The wire `Uid` of a sub-account.
pub fn user_uid(id: i64) -> u64 {
    UID_BASE + id.unsigned_abs()
}

/// The row id behind a sub-account `Uin`.
pub fn user_id_of_uin(uin: u64) -> Option<i64> {
    uin.checked_sub(SUB_UIN_BASE)
        .filter(|&id| id > 0)
        .and_then(|id| i64::try_from(id).ok())
}

/// The row id behind a sub-account `Uid`.
pub fn user_id_of_uid(uid: u64) -> Option<i64> {
    uid.checked_sub(UID_BASE)
        .filter(|&id| id > 0 && id < SUB_UIN_BASE - UID_BASE)
        .and_then(|id| i64::try_from(id).ok())
}

/// A policy Tencent defines for every account.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Its PolicyId.
    pub id: u64,
    /// `QcloudLIVEFullAccess`, ...
    pub name: &'static str,
    /// Its description, as the console shows it.
    pub description: &'static str,
    /// Its document.
    pub document: &'static str,
    /// `ServiceType`.
    pub service_type: &'static str,
}

/// The preset policies. Their documents are the ones Tencent publishes
/// for them (<https://cloud.tencent.com/document/product/267/32468>):
/// full access is `live:*` on `*`, read-only is `live:Describe*` on `*`.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: 1,
        name: "AdministratorAccess",
        description: "该策略允许您管理账户内所有用户及其权限、财务相关的信息、云服务资产。",
        document: r#"{"version":"2.0","statement":[{"action":["*"],"resource":["*"],"effect":"allow"}]}"#,
        service_type: "",
    },
    Preset {
        id: 2,
        name: "QcloudLIVEFullAccess",
        description: "云直播（LIVE）全读写访问权限",
        document: r#"{"version":"2.0","statement":[{"action":["live:*"],"resource":"*","effect":"allow"}]}"#,
        service_type: "live",
    },
    Preset {
        id: 3,
        name: "QcloudLIVEReadOnlyAccess",
        description: "云直播（LIVE）只读访问权限",
        document: r#"{"version":"2.0","statement":[{"action":["live:Describe*"],"resource":"*","effect":"allow"}]}"#,
        service_type: "live",
    },
    Preset {
        id: 4,
        name: "QcloudCamFullAccess",
        description: "访问管理（CAM）全读写访问权限",
        document: r#"{"version":"2.0","statement":[{"action":["cam:*"],"resource":"*","effect":"allow"}]}"#,
        service_type: "cam",
    },
    Preset {
        id: 5,
        name: "QcloudCamReadOnlyAccess",
        description: "访问管理（CAM）只读访问权限",
        document: r#"{"version":"2.0","statement":[{"action":["cam:Get*","cam:List*"],"resource":"*","effect":"allow"}]}"#,
        service_type: "cam",
    },
    Preset {
        id: 6,
        name: "QcloudSTSFullAccess",
        description: "安全凭证服务（STS）全读写访问权限",
        document: r#"{"version":"2.0","statement":[{"action":["sts:*"],"resource":"*","effect":"allow"}]}"#,
        service_type: "sts",
    },
];

/// The preset with this id.
pub fn preset(id: u64) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// Who is calling, as handlers and CAM see it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The root account every resource belongs to.
    pub account: AccountId,
    /// The root account's UIN.
    pub owner_uin: String,
    /// The root account's AppId.
    pub app_id: i64,
    /// The sub-account, when the key is one's.
    pub user: Option<User>,
    /// The role, for credentials from AssumeRole.
    pub role: Option<Role>,
    /// The key that signed.
    pub secret_id: String,
    /// Whether the key is temporary (has a session token).
    pub temporary: bool,
    /// A federation token's name.
    pub session_name: Option<String>,
}

impl Caller {
    /// The caller's principals, as trust policies name them: its account
    /// (`qcs::cam::uin/<uin>:root`) and, for a sub-account, itself.
    pub fn principals(&self) -> Vec<String> {
        let mut out = vec![format!("qcs::cam::uin/{}:root", self.owner_uin)];
        if let Some(u) = &self.user {
            out.push(format!(
                "qcs::cam::uin/{}:uin/{}",
                self.owner_uin,
                user_uin(u.id)
            ));
        }
        out
    }

    /// The caller's own UIN: the sub-account's, else the root's.
    pub fn uin(&self) -> String {
        match &self.user {
            Some(u) => user_uin(u.id).to_string(),
            None => self.owner_uin.clone(),
        }
    }
}

/// What CAM knows about an identity, cached for [`GRANTS_TTL`].
struct Grants {
    owner_uin: String,
    app_id: i64,
    user: Option<User>,
    role: Option<Role>,
    /// (name, document) of every policy that applies to a sub-account.
    policies: Vec<(String, Arc<Policy>)>,
}

/// How long an identity's policies are trusted before they are read again:
/// a policy detached on another node (or by the CLI) stops granting within
/// this time, as a disabled key does.
pub const GRANTS_TTL: Duration = Duration::from_secs(1);

/// A root account and, for a sub-account or a role, its row id.
type Identity = (AccountId, Option<i64>, Option<i64>);

/// The CAM check, with its cache.
pub struct Access {
    store: Store,
    mode: Enforce,
    cache: Mutex<HashMap<Identity, (Instant, Arc<Grants>)>>,
    sessions: Mutex<HashMap<String, Arc<Policy>>>,
}

/// The member names that carry a Live domain, one domain each or a list.
const DOMAIN_MEMBERS: &[&str] = &[
    "DomainName",
    "PushDomain",
    "PlayDomain",
    "PushDomainName",
    "Domain",
    "DomainNames",
    "PlayDomains",
    "PushDomains",
    "Domains",
    "DeliverDomains",
];

/// The resources a Live call names: one per domain in its parameters
/// (`DomainInfos[].DomainName` too), or `*` for an operation-level call.
pub fn live_resources(params: &Value, region: &str, owner_uin: &str) -> Vec<String> {
    let mut domains: Vec<&str> = Vec::new();
    if let Value::Object(map) = params {
        for name in DOMAIN_MEMBERS {
            match map.get(*name) {
                Some(Value::String(s)) if !s.is_empty() => domains.push(s),
                Some(Value::Array(items)) => domains.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.is_empty()),
                ),
                _ => {}
            }
        }
        if let Some(Value::Array(infos)) = map.get("DomainInfos") {
            domains.extend(
                infos
                    .iter()
                    .filter_map(|i| i.get("DomainName").and_then(Value::as_str))
                    .filter(|s| !s.is_empty()),
            );
        }
    }
    let mut domains: Vec<String> = domains.into_iter().map(str::to_ascii_lowercase).collect();
    domains.sort_unstable();
    domains.dedup();
    if domains.is_empty() {
        return vec!["*".to_owned()];
    }
    domains
        .into_iter()
        .map(|d| cam::live_domain_resource(region, owner_uin, &d))
        .collect()
}

/// A stored document, checked when it was written (CreatePolicy,
/// UpdatePolicy, GetFederationToken, AssumeRole): one that no longer
/// parses (a grammar change) grants nothing rather than everything.
fn stored_policy(doc: &str) -> Policy {
    Policy::parse(doc).unwrap_or(Policy {
        statements: Vec::new(),
    })
}

/// What [`Access::authorize`] needs to know about the call.
pub struct Call<'a> {
    /// The service asked.
    pub service: &'a Service,
    /// The action's name.
    pub action: &'a str,
    /// The checked parameters.
    pub params: &'a Value,
    /// The request's region, if any.
    pub region: Option<&'a str>,
    /// The caller's address.
    pub ip: Option<IpAddr>,
    /// The server clock.
    pub now: i64,
    /// For the denial's message.
    pub request_id: &'a str,
}

impl Access {
    /// A check reading identities from `store`.
    pub fn new(store: Store, mode: Enforce) -> Access {
        Access {
            store,
            mode,
            cache: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of an authenticated request, once CAM allows the call:
    /// `InternalError.InvalidUser` when the key's sub-account no longer
    /// exists, `AuthFailure.UnauthorizedOperation` when its policies (and
    /// a federation token's own policy) do not allow it.
    pub async fn authorize(&self, principal: &Principal, call: &Call<'_>) -> ApiResult<Caller> {
        let grants = self
            .grants((principal.account, principal.user_id, principal.role_id))
            .await?;
        let caller = Caller {
            account: principal.account,
            owner_uin: grants.owner_uin.clone(),
            app_id: grants.app_id,
            user: grants.user.clone(),
            role: grants.role.clone(),
            secret_id: principal.secret_id.clone(),
            temporary: principal.temporary,
            session_name: principal.session_name.clone(),
        };
        let session = principal
            .session_policy
            .as_deref()
            .map(|doc| self.session_policy(doc));
        let root = grants.user.is_none() && grants.role.is_none();
        if self.mode == Enforce::Off || (root && session.is_none()) {
            return Ok(caller);
        }
        let action = format!("{}:{}", call.service.name, call.action);
        // Who am I needs no permission (STS documents it so).
        if action == "sts:GetCallerIdentity" {
            return Ok(caller);
        }
        let region = call.region.unwrap_or("");
        let resources = if call.service.name == "live" {
            live_resources(call.params, region, &grants.owner_uin)
        } else {
            vec!["*".to_owned()]
        };
        let request = cam::Request {
            action: &action,
            resources: &resources,
            owner_uin: &grants.owner_uin,
            app_id: grants.app_id,
            ip: call.ip,
            now: call.now,
        };
        let mut verdict = None;
        if !root {
            let policies: Vec<(&str, &Policy)> = grants
                .policies
                .iter()
                .map(|(n, p)| (n.as_str(), p.as_ref()))
                .collect();
            let v = cam::evaluate(&policies, &request);
            if !v.allowed {
                verdict = Some(v);
            }
        }
        if verdict.is_none() {
            if let Some(session) = &session {
                let v = cam::evaluate(&[("(federation token policy)", session)], &request);
                if !v.allowed {
                    verdict = Some(v);
                }
            }
        }
        let Some(verdict) = verdict else {
            return Ok(caller);
        };
        let resource = verdict.refused.clone().unwrap_or_else(|| "*".to_owned());
        let deciding = match &verdict.deciding {
            Some(d) => format!("statement {} of policy {} denies it", d.statement, d.policy),
            None => "no statement allows it".to_owned(),
        };
        if self.mode == Enforce::Soft {
            tracing::warn!(
                action = %action,
                resource = %resource,
                uin = %caller.uin(),
                "CAM would deny this call ({deciding}); let through because [cam] enforce = \"soft\""
            );
            return Ok(caller);
        }
        tracing::info!(action = %action, resource = %resource, uin = %caller.uin(), "CAM denies the call: {deciding}");
        let tail = format!(
            "[[request id:{}]you are not authorized to perform operation ({action})\nresource ({resource}) has no permission",
            call.request_id
        );
        Err(ApiError::new(
            ErrorCode::AuthFailureUnauthorizedOperation,
            format!("You are not authorized to perform this operation. Check your CAM policies, and ensure that you are using the correct access keys. {tail}"),
            format!("操作未授权，请检查CAM策略。{tail}"),
        ))
    }

    /// Forgets every cached identity, after a CAM write on this node, so
    /// that its effect is seen by the next call here (other nodes see it
    /// within [`GRANTS_TTL`]).
    pub fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn session_policy(&self, doc: &str) -> Arc<Policy> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = sessions.get(doc) {
            return Arc::clone(p);
        }
        let policy = Arc::new(stored_policy(doc));
        if sessions.len() >= 10_000 {
            sessions.clear();
        }
        sessions.insert(doc.to_owned(), Arc::clone(&policy));
        policy
    }

    async fn grants(&self, identity: Identity) -> ApiResult<Arc<Grants>> {
        let (account, user_id, role_id) = identity;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, g)) = cache.get(&identity) {
                if at.elapsed() < GRANTS_TTL {
                    return Ok(Arc::clone(g));
                }
            }
        }
        let loaded = self
            .store
            .run(move |conn| {
                let owner = accounts::get(conn, account)?;
                let user = match user_id {
                    Some(id) => livestack_store::cam::user(conn, account, id)?.map(Some),
                    None => Some(None),
                };
                let role = match role_id {
                    Some(id) => livestack_store::cam::role(conn, account, id)?.map(Some),
                    None => Some(None),
                };
                let mut ids = Vec::new();
                if let Some(Some(user)) = &user {
                    ids = livestack_store::cam::policies_of_user(conn, account, user.id)?;
                }
                if let Some(Some(role)) = &role {
                    ids = livestack_store::cam::attached(conn, account, Target::Role(role.id))?
                        .into_iter()
                        .map(|(id, _)| id)
                        .collect();
                }
                let mut documents = Vec::new();
                for id in ids {
                    let wire = id.unsigned_abs();
                    if let Some(p) = preset(wire) {
                        documents.push((p.name.to_owned(), p.document.to_owned()));
                    } else if let Some(row) = wire
                        .checked_sub(CUSTOM_POLICY_BASE)
                        .and_then(|r| i64::try_from(r).ok())
                        .map(|r| livestack_store::cam::policy(conn, account, r))
                        .transpose()?
                        .flatten()
                    {
                        documents.push((row.name, row.document));
                    }
                }
                Ok((owner, user, role, documents))
            })
            .await?;
        let (owner, user, role, documents) = loaded;
        let invalid = || {
            ApiError::new(
                ErrorCode::InternalErrorInvalidUser,
                "The identity this key belongs to no longer exists (its sub-account or role was deleted).",
                "账号信息错误：该密钥所属的子账号或角色已不存在。",
            )
        };
        let owner = owner.ok_or_else(invalid)?;
        let user = user.ok_or_else(invalid)?;
        let role = role.ok_or_else(invalid)?;
        let policies = documents
            .into_iter()
            .map(|(name, doc)| (name, Arc::new(stored_policy(&doc))))
            .collect();
        let grants = Arc::new(Grants {
            owner_uin: owner.uin,
            app_id: owner.app_id,
            user,
            role,
            policies,
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < GRANTS_TTL);
        }
        cache.insert(identity, (Instant::now(), Arc::clone(&grants)));
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_names_every_domain_it_carries_or_star() {
        let r = live_resources(
            &json!({"PlayDomains": ["b.example.com", "A.example.com"], "DomainName": "a.example.com"}),
            "ap-guangzhou",
            "100000000001",
        );
        assert_eq!(
            r,
            [
                "qcs::live:ap-guangzhou:uin/100000000001:domain/a.example.com",
                "qcs::live:ap-guangzhou:uin/100000000001:domain/b.example.com"
            ]
        );
        assert_eq!(live_resources(&json!({"PageSize": 10}), "", "1"), ["*"]);
        assert_eq!(live_resources(&json!({"DomainName": ""}), "", "1"), ["*"]);
    }

    #[test]
    fn sub_account_numbers_round_trip_and_never_meet_root_ones() {
        assert_eq!(user_id_of_uin(user_uin(7)), Some(7));
        assert_eq!(user_id_of_uid(user_uid(7)), Some(7));
        assert_eq!(user_id_of_uin(100_000_000_001), None);
        for p in PRESETS {
            assert!(p.id < CUSTOM_POLICY_BASE);
            Policy::parse(p.document).expect("preset parses");
        }
    }
}
