//! CAM 2019-01-16: sub-accounts, groups, policies, their attachments and
//! access keys, on the same endpoint as Live.
//!
//! Owns: the CAM actions' rules (names, limits, who may manage whose keys)
//! and their codes. Must not: evaluate policies (the gateway's `access`
//! check ran before any of these) or reach another root account's rows:
//! every query is scoped by the caller's root account, and a sub-account
//! manages its root account's users as the root would, if its policies
//! allow the action.
//!
//! Not kept: console passwords and login (livestack has no console
//! sign-in by password; `Password` is accepted and a generated one
//! returned when asked, as CAM does, but never stored), policy versions,
//! tags on policies (refused, not dropped), roles and SAML/OIDC.

use livestack_core::cam::{Policy, PolicyError};
use livestack_model::cam::*;
use livestack_store::cam::{self as store, Group, PolicyRow, Target, User, UserChange};
use livestack_store::keys::{self, NewKey};
use livestack_store::StoreError;
use rand::distributions::{Alphanumeric, DistString};

use crate::access::{self, preset, user_id_of_uid, user_id_of_uin, user_uid, user_uin, PRESETS};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::beijing;

/// Sub-accounts per root account (CAM's documented quota).
pub const MAX_USERS: usize = 1000;
/// Custom policies per root account.
pub const MAX_POLICIES: usize = 1500;
/// Policies attached to one user or group.
pub const MAX_ATTACHED: usize = 200;
/// Groups per root account.
pub const MAX_GROUPS: usize = 300;
/// Permanent keys per identity.
pub const MAX_KEYS: usize = 2;
/// The longest policy document, in bytes.
pub const MAX_DOCUMENT: usize = 6144;

/// A wire id as the store keeps it (ids above `i64::MAX` match nothing).
fn signed(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn err(code: ErrorCode, en: impl Into<String>, zh: impl Into<String>) -> ApiError {
    ApiError::new(code, en.into(), zh.into())
}

fn no_user(name: &str) -> ApiError {
    err(
        ErrorCode::ResourceNotFoundUserNotExist,
        format!("The sub-user `{name}` does not exist."),
        format!("子用户 `{name}` 不存在。"),
    )
}

fn no_user_uin(uin: u64) -> ApiError {
    err(
        ErrorCode::ResourceNotFoundUserNotExist,
        format!("No sub-user of this account has the UIN {uin}."),
        format!("本账号下不存在 UIN 为 {uin} 的子用户。"),
    )
}

fn no_policy(id: u64) -> ApiError {
    err(
        ErrorCode::ResourceNotFoundPolicyIdNotFound,
        format!("The policy {id} does not exist."),
        format!("策略 {id} 不存在。"),
    )
}

fn no_group(id: u64) -> ApiError {
    err(
        ErrorCode::ResourceNotFoundGroupNotExist,
        format!("The group {id} does not exist."),
        format!("用户组 {id} 不存在。"),
    )
}

/// `[A-Za-z0-9+=,.@_-]{1,max}`, CAM's rule for user, group, role and
/// policy names, and STS's for session names.
pub(crate) fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn bool01(v: Option<u64>, name: &str) -> ApiResult<i64> {
    match v.unwrap_or(0) {
        0 => Ok(0),
        1 => Ok(1),
        other => Err(err(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be 0 or 1, not {other}."),
            format!("{name} 的取值须为 0 或 1，而不是 {other}。"),
        )),
    }
}

/// A user row, scoped to the caller's account, found by `uin`.
fn user_by_uin(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    uin: u64,
) -> Result<User, ApiError> {
    let id = user_id_of_uin(uin).ok_or_else(|| no_user_uin(uin))?;
    store::user(conn, cx.account, id)?.ok_or_else(|| no_user_uin(uin))
}

// ------------------------------------------------------------ sub-accounts

/// `AddUser`: a sub-account, with a permanent key when `UseApi` is 1.
pub async fn add_user(cx: Cx, req: AddUserRequest) -> ApiResult<AddUserResponse> {
    if !valid_name(&req.name, 64) {
        return Err(err(
            ErrorCode::InvalidParameterUserNameIllegal,
            format!(
                "The user name {:?} is not valid: 1 to 64 letters, digits or +=,.@_-.",
                req.name
            ),
            format!(
                "用户名 {:?} 不合法：须为 1 到 64 个字母、数字或 +=,.@_-。",
                req.name
            ),
        ));
    }
    let console_login = bool01(req.console_login, "ConsoleLogin")?;
    let use_api = bool01(req.use_api, "UseApi")? == 1;
    bool01(req.need_reset_password, "NeedResetPassword")?;
    // CAM returns a generated password when console login is allowed and
    // none was given; livestack has no password sign-in and stores none.
    let password = if console_login == 1 && req.password.as_deref().unwrap_or("").is_empty() {
        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
    } else {
        String::new()
    };
    cx.commit_point()?;
    let user = User {
        id: 0,
        account: cx.account,
        name: req.name.clone(),
        remark: req.remark.unwrap_or_default(),
        console_login,
        phone_num: req.phone_num.unwrap_or_default(),
        country_code: req.country_code.unwrap_or_default(),
        email: req.email.unwrap_or_default(),
        created_at: cx.now,
    };
    let account = cx.account;
    let name = req.name.clone();
    let (user, key) = cx
        .store
        .transaction(move |conn| {
            if store::users(conn, account)?.len() >= MAX_USERS {
                return Err(err(
                    ErrorCode::InvalidParameterSubUserFull,
                    format!("An account may have at most {MAX_USERS} sub-users."),
                    format!("每个账号最多可创建 {MAX_USERS} 个子用户。"),
                ));
            }
            let user = store::insert_user(conn, &user).map_err(|e| match e {
                StoreError::Conflict { .. } => err(
                    ErrorCode::InvalidParameterSubUserNameInUse,
                    format!("A sub-user named `{name}` already exists."),
                    format!("子用户名称 `{name}` 已存在。"),
                ),
                e => e.into(),
            })?;
            let key = if use_api {
                let key = NewKey::generate(account, None).for_user(Some(user.id));
                keys::insert(conn, &key)?;
                Some(key)
            } else {
                None
            };
            Ok::<_, ApiError>((user, key))
        })
        .await?;
    tracing::info!(user = %user.name, uin = user_uin(user.id), "sub-user added");
    let (secret_id, secret_key) =
        key.map_or_else(Default::default, |k| (k.secret_id, k.secret_key));
    Ok(AddUserResponse {
        uin: user_uin(user.id),
        name: user.name,
        password,
        secret_id,
        secret_key,
        uid: user_uid(user.id),
        phone_num_verify_link: None,
    })
}

/// `GetUser`.
pub async fn get_user(cx: Cx, req: GetUserRequest) -> ApiResult<GetUserResponse> {
    let account = cx.account;
    let name = req.name.clone();
    let user = cx
        .store
        .run(move |conn| store::user_by_name(conn, account, &name))
        .await?
        .ok_or_else(|| no_user(&req.name))?;
    Ok(GetUserResponse {
        uin: user_uin(user.id),
        uid: user_uid(user.id),
        remark: Some(user.remark),
        console_login: user.console_login.unsigned_abs(),
        phone_num: user.phone_num,
        country_code: user.country_code,
        email: user.email,
        recently_login_ip: String::new(),
        recently_login_time: String::new(),
        name: user.name,
    })
}

fn sub_account_info(u: User) -> SubAccountInfo {
    SubAccountInfo {
        uin: user_uin(u.id),
        uid: user_uid(u.id),
        remark: u.remark,
        console_login: u.console_login.unsigned_abs(),
        phone_num: u.phone_num,
        country_code: u.country_code,
        email: u.email,
        create_time: beijing(u.created_at),
        nick_name: u.name.clone(),
        name: u.name,
    }
}

/// `ListUsers`.
pub async fn list_users(cx: Cx, _req: ListUsersRequest) -> ApiResult<ListUsersResponse> {
    let account = cx.account;
    let users = cx
        .store
        .run(move |conn| store::users(conn, account))
        .await?;
    Ok(ListUsersResponse {
        data: users.into_iter().map(sub_account_info).collect(),
    })
}

/// `UpdateUser`.
pub async fn update_user(cx: Cx, req: UpdateUserRequest) -> ApiResult<UpdateUserResponse> {
    let change = UserChange {
        name: None,
        remark: req.remark,
        console_login: req
            .console_login
            .map(|v| bool01(Some(v), "ConsoleLogin"))
            .transpose()?,
        phone_num: req.phone_num,
        country_code: req.country_code,
        email: req.email,
    };
    bool01(req.need_reset_password, "NeedResetPassword")?;
    let account = cx.account;
    let name = req.name.clone();
    let found = cx
        .store
        .run(move |conn| store::user_by_name(conn, account, &name))
        .await?
        .ok_or_else(|| no_user(&req.name))?;
    cx.commit_point()?;
    cx.store
        .run(move |conn| store::update_user(conn, account, found.id, &change))
        .await?;
    Ok(UpdateUserResponse {})
}

/// `DeleteUser`: with `Force` 0 a user who still has keys stays.
pub async fn delete_user(cx: Cx, req: DeleteUserRequest) -> ApiResult<DeleteUserResponse> {
    let force = bool01(req.force, "Force")? == 1;
    let account = cx.account;
    let name = req.name.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let user = store::user_by_name(conn, account, &name)?.ok_or_else(|| no_user(&name))?;
            let keys = keys::list_permanent(conn, account, Some(user.id))?;
            if !keys.is_empty() && !force {
                return Err(err(
                    ErrorCode::OperationDeniedHaveKeys,
                    format!("The sub-user `{name}` still has {} API key(s): delete them first, or pass Force=1.", keys.len()),
                    format!("子用户 `{name}` 仍有 {} 个 API 密钥：请先删除，或传 Force=1。", keys.len()),
                ));
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::delete_user(conn, account, user.id)?;
            Ok(())
        })
        .await?;
    tracing::info!(user = %req.name, "sub-user deleted");
    Ok(DeleteUserResponse {})
}

// ---------------------------------------------------------------- policies

fn policy_error(e: &PolicyError) -> ApiError {
    let code = match e {
        PolicyError::Document(_) => ErrorCode::InvalidParameterPolicyDocumentError,
        PolicyError::Version => ErrorCode::InvalidParameterVersionError,
        PolicyError::Statement(_) => ErrorCode::InvalidParameterStatementError,
        PolicyError::Effect(_) => ErrorCode::InvalidParameterEffectError,
        PolicyError::Action(_) => ErrorCode::InvalidParameterActionError,
        PolicyError::Resource(_) => ErrorCode::InvalidParameterResourceError,
        PolicyError::Principal => ErrorCode::InvalidParameterPrincipalError,
        PolicyError::ConditionType(_) => ErrorCode::InvalidParameterConditionTypeError,
        PolicyError::ConditionContent(_) => ErrorCode::InvalidParameterConditionContentError,
    };
    err(
        code,
        format!("The policy document is refused: {e}."),
        format!("策略文档不合法：{e}。"),
    )
}

/// `PolicyDocumentLengthOverLimit` for a document over [`MAX_DOCUMENT`].
fn check_length(document: &str) -> ApiResult<()> {
    if document.len() > MAX_DOCUMENT {
        return Err(err(
            ErrorCode::InvalidParameterPolicyDocumentLengthOverLimit,
            format!(
                "The policy document is {} bytes; at most {MAX_DOCUMENT} are allowed.",
                document.len()
            ),
            format!(
                "策略文档长度为 {} 字节，超过 {MAX_DOCUMENT} 字节的限制。",
                document.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a policy document whole: grammar, size, and that every action
/// it names without a wildcard exists in the model of its service.
pub(crate) fn check_document(document: &str) -> ApiResult<Policy> {
    check_length(document)?;
    let policy = Policy::parse(document).map_err(|e| policy_error(&e))?;
    for service in livestack_model::schema::SERVICES {
        for name in policy.exact_actions(service.name) {
            let known = service
                .actions
                .iter()
                .any(|a| a.name.eq_ignore_ascii_case(&name));
            if !known {
                return Err(err(
                    ErrorCode::InvalidParameterActionNotExist,
                    format!(
                        "The action {}:{name} in the policy does not exist.",
                        service.name
                    ),
                    format!("策略中的操作 {}:{name} 不存在。", service.name),
                ));
            }
        }
    }
    Ok(policy)
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.len() > 300 {
        return Err(err(
            ErrorCode::InvalidParameterDescriptionLengthOverlimit,
            "The Description may be at most 300 bytes.",
            "Description 入参长度不能大于 300 字节。",
        ));
    }
    Ok(())
}

fn check_policy_name(name: &str) -> ApiResult<()> {
    if !valid_name(name, 128) || PRESETS.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
        return Err(err(
            ErrorCode::InvalidParameterPolicyNameError,
            format!("The policy name {name:?} is not valid: 1 to 128 letters, digits or +=,.@_-, and not a preset policy's name."),
            format!("策略名 {name:?} 不合法：须为 1 到 128 个字母、数字或 +=,.@_-，且不能与预设策略重名。"),
        ));
    }
    Ok(())
}

fn wire_policy_id(row_id: i64) -> u64 {
    access::CUSTOM_POLICY_BASE + row_id.unsigned_abs()
}

fn row_id_of(policy_id: u64) -> Option<i64> {
    policy_id
        .checked_sub(access::CUSTOM_POLICY_BASE)
        .filter(|&r| r > 0)
        .and_then(|r| i64::try_from(r).ok())
}

/// A policy as CAM lists it: a preset or one of the account's own.
enum AnyPolicy {
    Preset(&'static access::Preset),
    Custom(PolicyRow),
}

impl AnyPolicy {
    fn id(&self) -> u64 {
        match self {
            AnyPolicy::Preset(p) => p.id,
            AnyPolicy::Custom(r) => wire_policy_id(r.id),
        }
    }
    fn name(&self) -> &str {
        match self {
            AnyPolicy::Preset(p) => p.name,
            AnyPolicy::Custom(r) => &r.name,
        }
    }
    fn description(&self) -> &str {
        match self {
            AnyPolicy::Preset(p) => p.description,
            AnyPolicy::Custom(r) => &r.description,
        }
    }
    /// `Type` / `CreateMode`: 1 custom, 2 preset.
    fn kind(&self) -> u64 {
        match self {
            AnyPolicy::Preset(_) => 2,
            AnyPolicy::Custom(_) => 1,
        }
    }
    /// `PolicyType`: `QCS` for a preset, `User` for a custom policy.
    fn policy_type(&self) -> &'static str {
        match self {
            AnyPolicy::Preset(_) => "QCS",
            AnyPolicy::Custom(_) => "User",
        }
    }
    fn added(&self) -> i64 {
        match self {
            AnyPolicy::Preset(_) => 1_546_272_000, // 2019-01-01, the API's version date
            AnyPolicy::Custom(r) => r.created_at,
        }
    }
}

fn find_policy(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    id: u64,
) -> Result<Option<AnyPolicy>, ApiError> {
    if let Some(p) = preset(id) {
        return Ok(Some(AnyPolicy::Preset(p)));
    }
    match row_id_of(id) {
        Some(row) => Ok(store::policy(conn, cx.account, row)?.map(AnyPolicy::Custom)),
        None => Ok(None),
    }
}

/// `CreatePolicy`: refused whole unless every part is understood.
pub async fn create_policy(cx: Cx, req: CreatePolicyRequest) -> ApiResult<CreatePolicyResponse> {
    check_policy_name(&req.policy_name)?;
    check_document(&req.policy_document)?;
    let description = req.description.unwrap_or_default();
    check_description(&description)?;
    if req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(err(
            ErrorCode::UnsupportedOperation,
            "livestack does not keep tags on policies; create the policy without Tags.",
            "livestack 暂不支持策略标签，请不传 Tags 创建策略。",
        ));
    }
    cx.commit_point()?;
    let account = cx.account;
    let (name, document, now) = (req.policy_name.clone(), req.policy_document, cx.now);
    let id = cx
        .store
        .transaction(move |conn| {
            if store::policies(conn, account)?.len() >= MAX_POLICIES {
                return Err(err(
                    ErrorCode::FailedOperationPolicyFull,
                    format!("An account may have at most {MAX_POLICIES} custom policies."),
                    format!("每个账号最多可创建 {MAX_POLICIES} 个自定义策略。"),
                ));
            }
            store::insert_policy(conn, account, &name, &description, &document, now).map_err(|e| {
                match e {
                    StoreError::Conflict { .. } => err(
                        ErrorCode::FailedOperationPolicyNameInUse,
                        format!("A policy named `{name}` already exists."),
                        format!("策略名 `{name}` 已存在。"),
                    ),
                    e => e.into(),
                }
            })
        })
        .await?;
    tracing::info!(policy = %req.policy_name, id = wire_policy_id(id), "policy created");
    Ok(CreatePolicyResponse {
        policy_id: wire_policy_id(id),
    })
}

/// `GetPolicy`.
pub async fn get_policy(cx: Cx, req: GetPolicyRequest) -> ApiResult<GetPolicyResponse> {
    let id = req.policy_id;
    let c = cx.clone();
    let policy = cx
        .store
        .run(move |conn| Ok(find_policy(conn, &c, id)))
        .await??
        .ok_or_else(|| no_policy(id))?;
    let (document, updated) = match &policy {
        AnyPolicy::Preset(p) => (p.document.to_owned(), policy.added()),
        AnyPolicy::Custom(r) => (r.document.clone(), r.updated_at),
    };
    Ok(GetPolicyResponse {
        policy_name: policy.name().to_owned(),
        description: policy.description().to_owned(),
        r#type: policy.kind(),
        add_time: beijing(policy.added()),
        update_time: beijing(updated),
        policy_document: document,
        preset_alias: None,
        is_service_linked_role_policy: 0,
        tags: None,
    })
}

/// `ListPolicies`: presets (`QCS`) and the account's own (`Local`).
pub async fn list_policies(cx: Cx, req: ListPoliciesRequest) -> ApiResult<ListPoliciesResponse> {
    let scope = req.scope.clone().unwrap_or_else(|| "All".to_owned());
    if !matches!(scope.as_str(), "All" | "QCS" | "Local") {
        return Err(err(
            ErrorCode::InvalidParameterValue,
            format!("Scope must be All, QCS or Local, not {scope:?}."),
            format!("Scope 的取值须为 All、QCS 或 Local，而不是 {scope:?}。"),
        ));
    }
    let (page, rp) = paging(req.page, req.rp)?;
    let account = cx.account;
    let rows = cx
        .store
        .run(move |conn| {
            let mut out = Vec::new();
            let mut push =
                |p: AnyPolicy, conn: &livestack_store::db::Connection| -> Result<(), StoreError> {
                    let n = store::attachment_count(conn, account, signed(p.id()))?;
                    out.push((p, n));
                    Ok(())
                };
            if scope != "Local" {
                for p in PRESETS {
                    push(AnyPolicy::Preset(p), conn)?;
                }
            }
            if scope != "QCS" {
                for r in store::policies(conn, account)? {
                    push(AnyPolicy::Custom(r), conn)?;
                }
            }
            Ok(out)
        })
        .await?;
    let keyword = req.keyword.unwrap_or_default().to_ascii_lowercase();
    let matching: Vec<_> = rows
        .into_iter()
        .filter(|(p, _)| keyword.is_empty() || p.name().to_ascii_lowercase().contains(&keyword))
        .collect();
    let total = matching.len() as u64;
    let mut service_types: Vec<String> = Vec::new();
    let list = matching
        .into_iter()
        .skip((page - 1) * rp)
        .take(rp)
        .map(|(p, attached)| {
            let service_type = match &p {
                AnyPolicy::Preset(pr) => pr.service_type.to_owned(),
                AnyPolicy::Custom(_) => String::new(),
            };
            if !service_type.is_empty() && !service_types.contains(&service_type) {
                service_types.push(service_type.clone());
            }
            StrategyInfo {
                policy_id: p.id(),
                policy_name: p.name().to_owned(),
                add_time: beijing(p.added()),
                r#type: p.kind(),
                description: Some(p.description().to_owned()),
                create_mode: p.kind(),
                attachments: attached.unsigned_abs(),
                service_type: Some(service_type),
                is_attached: Some(u64::from(attached > 0)),
                deactived: Some(0),
                deactived_detail: Some(Vec::new()),
                is_service_linked_policy: Some(0),
                attach_entity_count: Some(attached),
                attach_entity_boundary_count: Some(0),
                update_time: Some(beijing(match &p {
                    AnyPolicy::Custom(r) => r.updated_at,
                    AnyPolicy::Preset(_) => p.added(),
                })),
                tags: None,
                permission_level: None,
            }
        })
        .collect();
    Ok(ListPoliciesResponse {
        total_num: total,
        list,
        service_type_list: service_types,
    })
}

/// `(page, rp)` from CAM's optional paging members: page from 1, at most 200 per page.
fn paging(page: Option<u64>, rp: Option<u64>) -> ApiResult<(usize, usize)> {
    let page = page.unwrap_or(1);
    let rp = rp.unwrap_or(20);
    if page == 0 || rp == 0 || rp > 200 {
        return Err(err(
            ErrorCode::InvalidParameterValue,
            "Page starts at 1 and Rp is between 1 and 200.",
            "Page 从 1 开始，Rp 的取值范围为 1 到 200。",
        ));
    }
    Ok((
        usize::try_from(page).unwrap_or(usize::MAX),
        usize::try_from(rp).unwrap_or(200),
    ))
}

/// `UpdatePolicy`: name, description or document of a custom policy,
/// found by `PolicyId` or else `PolicyName`.
pub async fn update_policy(cx: Cx, req: UpdatePolicyRequest) -> ApiResult<UpdatePolicyResponse> {
    if let Some(d) = &req.policy_document {
        check_document(d)?;
    }
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let account = cx.account;
    let now = cx.now;
    let dry_run = cx.dry_run;
    let c = cx.clone();
    let id = cx
        .store
        .transaction(move |conn| {
            let row = match (req.policy_id, req.policy_name.as_deref()) {
                (Some(id), _) => match find_policy(conn, &c, id)? {
                    Some(AnyPolicy::Custom(row)) => row,
                    Some(AnyPolicy::Preset(p)) => {
                        return Err(err(
                            ErrorCode::InvalidParameterPolicyIdError,
                            format!("{} is a preset policy, which cannot be changed.", p.name),
                            format!("{} 是预设策略，不能修改。", p.name),
                        ))
                    }
                    None => return Err(no_policy(id)),
                },
                (None, Some(name)) => {
                    store::policy_by_name(conn, account, name)?.ok_or_else(|| {
                        err(
                            ErrorCode::ResourceNotFoundPolicyIdNotFound,
                            format!("No custom policy is named `{name}`."),
                            format!("不存在名为 `{name}` 的自定义策略。"),
                        )
                    })?
                }
                (None, None) => {
                    return Err(err(
                        ErrorCode::InvalidParameterPolicyIdError,
                        "Give PolicyId or PolicyName.",
                        "PolicyId 和 PolicyName 必须填一个。",
                    ))
                }
            };
            let mut new = row.clone();
            if req.policy_id.is_some() {
                if let Some(name) = &req.policy_name {
                    check_policy_name(name)?;
                    new.name = name.clone();
                }
            }
            if let Some(d) = req.description {
                new.description = d;
            }
            if let Some(d) = req.policy_document {
                new.document = d;
            }
            new.updated_at = now;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::update_policy(conn, &new).map_err(|e| match e {
                StoreError::Conflict { .. } => err(
                    ErrorCode::FailedOperationPolicyNameInUse,
                    format!("A policy named `{}` already exists.", new.name),
                    format!("策略名 `{}` 已存在。", new.name),
                ),
                e => e.into(),
            })?;
            Ok(wire_policy_id(row.id))
        })
        .await?;
    Ok(UpdatePolicyResponse { policy_id: id })
}

/// `DeletePolicy`: every id or none.
pub async fn delete_policy(cx: Cx, req: DeletePolicyRequest) -> ApiResult<DeletePolicyResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let mut rows = Vec::new();
            for &id in &req.policy_id {
                match find_policy(conn, &c, id)? {
                    Some(AnyPolicy::Custom(row)) => rows.push((row.id, id)),
                    Some(AnyPolicy::Preset(p)) => {
                        return Err(err(
                            ErrorCode::InvalidParameterPolicyIdError,
                            format!("{} is a preset policy, which cannot be deleted.", p.name),
                            format!("{} 是预设策略，不能删除。", p.name),
                        ))
                    }
                    None => return Err(no_policy(id)),
                }
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            for (row, id) in rows {
                store::delete_policy(conn, c.account, row, signed(id))?;
            }
            Ok(())
        })
        .await?;
    Ok(DeletePolicyResponse {})
}

/// Attaches the policy `policy` (id, or name for roles) to `target`.
async fn attach(cx: Cx, policy: (Option<u64>, Option<String>), target: TargetRef) -> ApiResult<()> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let target = resolve_target(conn, &c, &target)?;
            let policy_id = policy_named(conn, &c, policy.0, policy.1.as_deref())?;
            let attached = store::attached(conn, c.account, target)?;
            if attached.len() >= MAX_ATTACHED
                && !attached.iter().any(|(p, _)| p.unsigned_abs() == policy_id)
            {
                return Err(err(
                    ErrorCode::InvalidParameterAttachmentFull,
                    format!("At most {MAX_ATTACHED} policies may be attached to one user, group or role."),
                    format!("每个用户、用户组或角色最多关联 {MAX_ATTACHED} 个策略。"),
                ));
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::attach(conn, c.account, signed(policy_id), target, c.now)?;
            Ok(())
        })
        .await
}

/// Detaches the policy `policy` (id, or name for roles) from `target`.
async fn detach(cx: Cx, policy: (Option<u64>, Option<String>), target: TargetRef) -> ApiResult<()> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let target = resolve_target(conn, &c, &target)?;
            let policy_id = policy_named(conn, &c, policy.0, policy.1.as_deref())?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::detach(conn, c.account, signed(policy_id), target)?;
            Ok(())
        })
        .await
}

enum TargetRef {
    UserUin(u64),
    Group(u64),
    /// By RoleId, else RoleName.
    Role(Option<String>, Option<String>),
}

fn resolve_target(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    target: &TargetRef,
) -> Result<Target, ApiError> {
    match *target {
        TargetRef::UserUin(uin) => Ok(Target::User(user_by_uin(conn, cx, uin)?.id)),
        TargetRef::Role(ref id, ref name) => Ok(Target::Role(
            find_role(conn, cx, id.as_deref(), name.as_deref())?.id,
        )),
        TargetRef::Group(id) => {
            let g = i64::try_from(id)
                .ok()
                .map(|g| store::group(conn, cx.account, g))
                .transpose()?
                .flatten()
                .ok_or_else(|| no_group(id))?;
            Ok(Target::Group(g.id))
        }
    }
}

/// The policies attached to `target` whose name contains `keyword`
/// (any case), with when each was attached, in the order they were.
async fn attached_policies(
    cx: &Cx,
    target: TargetRef,
    keyword: Option<String>,
) -> ApiResult<Vec<(AnyPolicy, i64)>> {
    let c = cx.clone();
    let rows = cx
        .store
        .run(move |conn| {
            let t = match resolve_target(conn, &c, &target) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let mut out = Vec::new();
            for (id, at) in store::attached(conn, c.account, t)? {
                if let Ok(Some(p)) = find_policy(conn, &c, id.unsigned_abs()) {
                    out.push((p, at));
                }
            }
            Ok(Ok(out))
        })
        .await??;
    let keyword = keyword.unwrap_or_default().to_ascii_lowercase();
    Ok(rows
        .into_iter()
        .filter(|(p, _)| keyword.is_empty() || p.name().to_ascii_lowercase().contains(&keyword))
        .collect())
}

async fn attached_list(
    cx: Cx,
    target: TargetRef,
    page: Option<u64>,
    rp: Option<u64>,
    keyword: Option<String>,
) -> ApiResult<(u64, Vec<AttachPolicyInfo>)> {
    let (page, rp) = paging(page, rp)?;
    let rows = attached_policies(&cx, target, keyword).await?;
    let total = rows.len() as u64;
    let list = rows
        .into_iter()
        .skip((page - 1) * rp)
        .take(rp)
        .map(|(p, at)| AttachPolicyInfo {
            policy_id: p.id(),
            policy_name: p.name().to_owned(),
            add_time: beijing(at),
            create_mode: p.kind(),
            policy_type: p.policy_type().to_owned(),
            remark: p.description().to_owned(),
            operate_owner_uin: Some(cx.caller.owner_uin.clone()),
            operate_uin: Some(cx.caller.uin()),
            operate_uin_type: Some(u64::from(cx.caller.user.is_some())),
            deactived: 0,
            deactived_detail: Vec::new(),
        })
        .collect();
    Ok((total, list))
}

/// `AttachUserPolicy`.
pub async fn attach_user_policy(
    cx: Cx,
    req: AttachUserPolicyRequest,
) -> ApiResult<AttachUserPolicyResponse> {
    attach(
        cx,
        (Some(req.policy_id), None),
        TargetRef::UserUin(req.attach_uin),
    )
    .await?;
    Ok(AttachUserPolicyResponse {})
}

/// `DetachUserPolicy`.
pub async fn detach_user_policy(
    cx: Cx,
    req: DetachUserPolicyRequest,
) -> ApiResult<DetachUserPolicyResponse> {
    detach(
        cx,
        (Some(req.policy_id), None),
        TargetRef::UserUin(req.detach_uin),
    )
    .await?;
    Ok(DetachUserPolicyResponse {})
}

/// `ListAttachedUserPolicies`.
pub async fn list_attached_user_policies(
    cx: Cx,
    req: ListAttachedUserPoliciesRequest,
) -> ApiResult<ListAttachedUserPoliciesResponse> {
    let (total_num, list) = attached_list(
        cx,
        TargetRef::UserUin(req.target_uin),
        req.page,
        req.rp,
        None,
    )
    .await?;
    Ok(ListAttachedUserPoliciesResponse { total_num, list })
}

/// `AttachGroupPolicy`.
pub async fn attach_group_policy(
    cx: Cx,
    req: AttachGroupPolicyRequest,
) -> ApiResult<AttachGroupPolicyResponse> {
    attach(
        cx,
        (Some(req.policy_id), None),
        TargetRef::Group(req.attach_group_id),
    )
    .await?;
    Ok(AttachGroupPolicyResponse {})
}

/// `DetachGroupPolicy`.
pub async fn detach_group_policy(
    cx: Cx,
    req: DetachGroupPolicyRequest,
) -> ApiResult<DetachGroupPolicyResponse> {
    detach(
        cx,
        (Some(req.policy_id), None),
        TargetRef::Group(req.detach_group_id),
    )
    .await?;
    Ok(DetachGroupPolicyResponse {})
}

/// `ListAttachedGroupPolicies`.
pub async fn list_attached_group_policies(
    cx: Cx,
    req: ListAttachedGroupPoliciesRequest,
) -> ApiResult<ListAttachedGroupPoliciesResponse> {
    let (total_num, list) = attached_list(
        cx,
        TargetRef::Group(req.target_group_id),
        req.page,
        req.rp,
        req.keyword,
    )
    .await?;
    Ok(ListAttachedGroupPoliciesResponse { total_num, list })
}

// ------------------------------------------------------------- access keys

fn sub_uin_denied() -> ApiError {
    err(
        ErrorCode::OperationDeniedSubUin,
        "A sub-user may not manage the root account's keys.",
        "子用户不允许操作主账号密钥。",
    )
}

/// Whose keys a call manages: `TargetUin` (the root's or a sub-user's),
/// else the caller's own. A sub-user may not manage the root's keys.
fn key_owner(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    target: Option<u64>,
) -> Result<Option<i64>, ApiError> {
    let Some(target) = target else {
        return Ok(cx.caller.user.as_ref().map(|u| u.id));
    };
    if target.to_string() == cx.caller.owner_uin {
        if cx.caller.user.is_some() {
            return Err(sub_uin_denied());
        }
        return Ok(None);
    }
    Ok(Some(user_by_uin(conn, cx, target)?.id))
}

fn status(enabled: bool) -> &'static str {
    if enabled {
        "Active"
    } else {
        "Inactive"
    }
}

/// `CreateAccessKey`: at most two permanent keys per identity.
pub async fn create_access_key(
    cx: Cx,
    req: CreateAccessKeyRequest,
) -> ApiResult<CreateAccessKeyResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    let key = cx
        .store
        .transaction(move |conn| {
            let owner = key_owner(conn, &c, req.target_uin)?;
            if keys::list_permanent(conn, c.account, owner)?.len() >= MAX_KEYS {
                return Err(err(
                    ErrorCode::OperationDeniedAccessKeyOverLimit,
                    format!("An identity may have at most {MAX_KEYS} access keys."),
                    format!("每个账号最多支持 {MAX_KEYS} 个 AccessKey。"),
                ));
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            let key = NewKey::generate(c.account, None).for_user(owner);
            keys::insert(conn, &key)?;
            Ok(key)
        })
        .await?;
    Ok(CreateAccessKeyResponse {
        access_key: Some(AccessKeyDetail {
            access_key_id: key.secret_id,
            secret_access_key: key.secret_key,
            status: "Active".to_owned(),
            create_time: beijing(cx.now),
            description: req.description,
        }),
    })
}

/// `ListAccessKeys`.
pub async fn list_access_keys(
    cx: Cx,
    req: ListAccessKeysRequest,
) -> ApiResult<ListAccessKeysResponse> {
    let c = cx.clone();
    let rows = cx
        .store
        .run(move |conn| {
            let owner = match key_owner(conn, &c, req.target_uin) {
                Ok(o) => o,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok(keys::list_permanent(conn, c.account, owner)?))
        })
        .await??;
    Ok(ListAccessKeysResponse {
        access_keys: Some(
            rows.into_iter()
                .map(|k| AccessKey {
                    access_key_id: k.secret_id,
                    status: status(k.enabled).to_owned(),
                    create_time: beijing(k.created_at),
                    description: None,
                })
                .collect(),
        ),
    })
}

/// The permanent key `id` of the identity a call targets.
fn owned_key(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    target: Option<u64>,
    id: &str,
) -> Result<keys::ApiKey, ApiError> {
    let owner = key_owner(conn, cx, target)?;
    let key = keys::find(conn, id)?.filter(|k| k.account_id == cx.account && k.token.is_none());
    match key {
        Some(k) if k.user_id == owner => Ok(k),
        Some(k) if k.user_id.is_none() && cx.caller.user.is_some() => Err(sub_uin_denied()),
        Some(_) => Err(err(
            ErrorCode::OperationDeniedUinNotMatch,
            format!("The key {id} does not belong to that account."),
            format!("密钥 {id} 不属于该账号。"),
        )),
        None => Err(err(
            ErrorCode::ResourceNotFoundSecretNotExist,
            format!("The key {id} does not exist."),
            format!("密钥 {id} 不存在。"),
        )),
    }
}

/// `UpdateAccessKey`: `Active` or `Inactive`.
pub async fn update_access_key(
    cx: Cx,
    req: UpdateAccessKeyRequest,
) -> ApiResult<UpdateAccessKeyResponse> {
    let enabled = match req.status.as_str() {
        "Active" => true,
        "Inactive" => false,
        other => {
            return Err(err(
                ErrorCode::InvalidParameterParamError,
                format!("Status must be Active or Inactive, not {other:?}."),
                format!("Status 的取值须为 Active 或 Inactive，而不是 {other:?}。"),
            ))
        }
    };
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let key = owned_key(conn, &c, req.target_uin, &req.access_key_id)?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            keys::set_enabled(conn, &key.secret_id, enabled)?;
            Ok(())
        })
        .await?;
    Ok(UpdateAccessKeyResponse {})
}

/// `DeleteAccessKey`.
pub async fn delete_access_key(
    cx: Cx,
    req: DeleteAccessKeyRequest,
) -> ApiResult<DeleteAccessKeyResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let key = owned_key(conn, &c, req.target_uin, &req.access_key_id)?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            keys::delete(conn, &key.secret_id)?;
            Ok(())
        })
        .await?;
    Ok(DeleteAccessKeyResponse {})
}

// ------------------------------------------------------------------ groups

fn group_info(g: Group) -> GroupInfo {
    GroupInfo {
        group_id: g.id.unsigned_abs(),
        group_name: g.name,
        create_time: beijing(g.created_at),
        remark: g.remark,
    }
}

fn group_row(conn: &livestack_store::db::Connection, cx: &Cx, id: u64) -> Result<Group, ApiError> {
    i64::try_from(id)
        .ok()
        .map(|g| store::group(conn, cx.account, g))
        .transpose()?
        .flatten()
        .ok_or_else(|| no_group(id))
}

fn check_group_name(name: &str) -> ApiResult<()> {
    if !valid_name(name, 64) {
        return Err(err(
            ErrorCode::InvalidParameterValue,
            format!("The group name {name:?} is not valid: 1 to 64 letters, digits or +=,.@_-."),
            format!("用户组名 {name:?} 不合法：须为 1 到 64 个字母、数字或 +=,.@_-。"),
        ));
    }
    Ok(())
}

fn name_in_use(name: &str) -> ApiError {
    err(
        ErrorCode::InvalidParameterGroupNameInUse,
        format!("A group named `{name}` already exists."),
        format!("用户组名称 `{name}` 已存在。"),
    )
}

/// `CreateGroup`.
pub async fn create_group(cx: Cx, req: CreateGroupRequest) -> ApiResult<CreateGroupResponse> {
    check_group_name(&req.group_name)?;
    cx.commit_point()?;
    let account = cx.account;
    let now = cx.now;
    let id = cx
        .store
        .transaction(move |conn| {
            if store::groups(conn, account)?.len() >= MAX_GROUPS {
                return Err(err(
                    ErrorCode::InvalidParameterGroupFull,
                    format!("An account may have at most {MAX_GROUPS} groups."),
                    format!("每个账号最多可创建 {MAX_GROUPS} 个用户组。"),
                ));
            }
            let remark = req.remark.unwrap_or_default();
            store::insert_group(conn, account, &req.group_name, &remark, now).map_err(|e| match e {
                StoreError::Conflict { .. } => name_in_use(&req.group_name),
                e => e.into(),
            })
        })
        .await?;
    Ok(CreateGroupResponse {
        group_id: Some(id.unsigned_abs()),
    })
}

fn member_info(u: User, joined: i64) -> GroupMemberInfo {
    GroupMemberInfo {
        uid: user_uid(u.id),
        uin: user_uin(u.id),
        name: u.name,
        phone_num: u.phone_num,
        country_code: u.country_code,
        phone_flag: 0,
        email: u.email,
        email_flag: 0,
        user_type: 1,
        create_time: beijing(joined),
        is_receiver_owner: 0,
        remark: Some(u.remark),
    }
}

fn group_members(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    group: i64,
) -> Result<Vec<GroupMemberInfo>, StoreError> {
    let mut out = Vec::new();
    for (user_id, joined) in store::members(conn, group)? {
        if let Some(u) = store::user(conn, cx.account, user_id)? {
            out.push(member_info(u, joined));
        }
    }
    Ok(out)
}

/// `GetGroup`.
pub async fn get_group(cx: Cx, req: GetGroupRequest) -> ApiResult<GetGroupResponse> {
    let c = cx.clone();
    let (g, members) = cx
        .store
        .run(move |conn| {
            let g = match group_row(conn, &c, req.group_id) {
                Ok(g) => g,
                Err(e) => return Ok(Err(e)),
            };
            let members = group_members(conn, &c, g.id)?;
            Ok(Ok((g, members)))
        })
        .await??;
    Ok(GetGroupResponse {
        group_id: g.id.unsigned_abs(),
        group_name: g.name,
        group_num: members.len() as u64,
        remark: g.remark,
        create_time: beijing(g.created_at),
        user_info: members,
    })
}

/// `ListGroups`.
pub async fn list_groups(cx: Cx, req: ListGroupsRequest) -> ApiResult<ListGroupsResponse> {
    let (page, rp) = paging(req.page, req.rp)?;
    let account = cx.account;
    let keyword = req.keyword.unwrap_or_default().to_ascii_lowercase();
    let groups: Vec<Group> = cx
        .store
        .run(move |conn| store::groups(conn, account))
        .await?
        .into_iter()
        .filter(|g| keyword.is_empty() || g.name.to_ascii_lowercase().contains(&keyword))
        .collect();
    Ok(ListGroupsResponse {
        total_num: groups.len() as u64,
        group_info: groups
            .into_iter()
            .skip((page - 1) * rp)
            .take(rp)
            .map(group_info)
            .collect(),
    })
}

/// `UpdateGroup`.
pub async fn update_group(cx: Cx, req: UpdateGroupRequest) -> ApiResult<UpdateGroupResponse> {
    if let Some(n) = &req.group_name {
        check_group_name(n)?;
    }
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let g = group_row(conn, &c, req.group_id)?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::update_group(
                conn,
                c.account,
                g.id,
                req.group_name.as_deref(),
                req.remark.as_deref(),
            )
            .map_err(|e| match e {
                StoreError::Conflict { .. } => name_in_use(req.group_name.as_deref().unwrap_or("")),
                e => e.into(),
            })?;
            Ok(())
        })
        .await?;
    Ok(UpdateGroupResponse {})
}

/// `DeleteGroup`.
pub async fn delete_group(cx: Cx, req: DeleteGroupRequest) -> ApiResult<DeleteGroupResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let g = group_row(conn, &c, req.group_id)?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::delete_group(conn, c.account, g.id)?;
            Ok(())
        })
        .await?;
    Ok(DeleteGroupResponse {})
}

/// The user a `GroupIdOfUidInfo` names, by `Uin` or else `Uid`.
fn member_of(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    info: &GroupIdOfUidInfo,
) -> Result<User, ApiError> {
    let missing = || {
        err(
            ErrorCode::InvalidParameterUserNotExist,
            "The user named by Uin or Uid does not exist.",
            "Uin 或 Uid 指定的用户不存在。",
        )
    };
    let id = match (info.uin, info.uid) {
        (Some(uin), _) => user_id_of_uin(uin),
        (None, Some(uid)) => user_id_of_uid(uid),
        (None, None) => None,
    }
    .ok_or_else(missing)?;
    store::user(conn, cx.account, id)?.ok_or_else(missing)
}

/// `AddUserToGroup`: all the pairs or none.
pub async fn add_user_to_group(
    cx: Cx,
    req: AddUserToGroupRequest,
) -> ApiResult<AddUserToGroupResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let mut pairs = Vec::new();
            for info in &req.info {
                let g = group_row(conn, &c, info.group_id)?;
                let u = member_of(conn, &c, info)?;
                pairs.push((g.id, u.id));
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            for (g, u) in pairs {
                store::add_member(conn, g, u, c.now)?;
            }
            Ok(())
        })
        .await?;
    Ok(AddUserToGroupResponse {})
}

/// `RemoveUserFromGroup`.
pub async fn remove_user_from_group(
    cx: Cx,
    req: RemoveUserFromGroupRequest,
) -> ApiResult<RemoveUserFromGroupResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let mut pairs = Vec::new();
            for info in &req.info {
                let g = group_row(conn, &c, info.group_id)?;
                let u = member_of(conn, &c, info)?;
                pairs.push((g.id, u.id));
            }
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            for (g, u) in pairs {
                store::remove_member(conn, g, u)?;
            }
            Ok(())
        })
        .await?;
    Ok(RemoveUserFromGroupResponse {})
}

/// `ListUsersForGroup`.
pub async fn list_users_for_group(
    cx: Cx,
    req: ListUsersForGroupRequest,
) -> ApiResult<ListUsersForGroupResponse> {
    let (page, rp) = paging(req.page, req.rp)?;
    let c = cx.clone();
    let members = cx
        .store
        .run(move |conn| {
            let g = match group_row(conn, &c, req.group_id) {
                Ok(g) => g,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok(group_members(conn, &c, g.id)?))
        })
        .await??;
    Ok(ListUsersForGroupResponse {
        total_num: members.len() as u64,
        user_info: members.into_iter().skip((page - 1) * rp).take(rp).collect(),
    })
}

/// `ListGroupsForUser`: by `SubUin`, else `Uid`, else the caller's own.
pub async fn list_groups_for_user(
    cx: Cx,
    req: ListGroupsForUserRequest,
) -> ApiResult<ListGroupsForUserResponse> {
    let (page, rp) = paging(req.page, req.rp)?;
    let c = cx.clone();
    let groups = cx
        .store
        .run(move |conn| {
            let user = match (req.sub_uin, req.uid) {
                (Some(uin), _) => user_id_of_uin(uin),
                (None, Some(uid)) => user_id_of_uid(uid),
                (None, None) => c.caller.user.as_ref().map(|u| u.id),
            }
            .map(|id| store::user(conn, c.account, id))
            .transpose()?
            .flatten();
            let Some(user) = user else {
                return Ok(Err(err(
                    ErrorCode::ResourceNotFoundUserNotExist,
                    "The user named by SubUin or Uid does not exist.",
                    "SubUin 或 Uid 指定的用户不存在。",
                )));
            };
            let mut out = Vec::new();
            for g in store::groups_of_user(conn, user.id)? {
                if let Some(g) = store::group(conn, c.account, g)? {
                    out.push(g);
                }
            }
            Ok(Ok(out))
        })
        .await??;
    Ok(ListGroupsForUserResponse {
        total_num: groups.len() as u64,
        group_info: groups
            .into_iter()
            .skip((page - 1) * rp)
            .take(rp)
            .map(group_info)
            .collect(),
    })
}

// ------------------------------------------------------------------- roles

/// Roles per root account.
pub const MAX_ROLES: usize = 1000;
/// The longest `SessionDuration` a role may set (s).
pub const MAX_ROLE_SESSION: u64 = 43_200;

fn role_arn(owner_uin: &str, name: &str) -> String {
    format!("qcs::cam::uin/{owner_uin}:roleName/{name}")
}

fn role_info(r: store::Role, owner_uin: &str) -> RoleInfo {
    RoleInfo {
        role_id: access::role_id(r.id),
        role_arn: Some(role_arn(owner_uin, &r.name)),
        role_name: r.name,
        policy_document: r.trust_policy,
        description: r.description,
        add_time: beijing(r.created_at),
        update_time: beijing(r.updated_at),
        console_login: r.console_login.unsigned_abs(),
        role_type: Some("user".to_owned()),
        session_duration: Some(r.session_duration.unsigned_abs()),
        deletion_task_id: None,
        tags: None,
    }
}

fn no_role(what: &str) -> ApiError {
    err(
        ErrorCode::InvalidParameterRoleNotExist,
        format!("The role {what} does not exist."),
        format!("角色 {what} 不存在。"),
    )
}

/// The role a call names by id or else by name.
fn find_role(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    id: Option<&str>,
    name: Option<&str>,
) -> Result<store::Role, ApiError> {
    match (id.filter(|s| !s.is_empty()), name.filter(|s| !s.is_empty())) {
        (Some(id), _) => access::role_row_of(id)
            .map(|r| store::role(conn, cx.account, r))
            .transpose()?
            .flatten()
            .ok_or_else(|| no_role(id)),
        (None, Some(name)) => {
            store::role_by_name(conn, cx.account, name)?.ok_or_else(|| no_role(name))
        }
        (None, None) => Err(err(
            ErrorCode::InvalidParameterRoleNotExist,
            "Name the role by its RoleId or its RoleName.",
            "入参 RoleId 与 RoleName 二选一。",
        )),
    }
}

/// Checks a trust policy whole (CAM's codes, as for other policies).
fn check_trust(document: &str) -> ApiResult<()> {
    check_length(document)?;
    livestack_core::cam::Trust::parse(document)
        .map(|_| ())
        .map_err(|e| policy_error(&e))
}

/// `CreateRole`: a role and its trust policy.
pub async fn create_role(cx: Cx, req: CreateRoleRequest) -> ApiResult<CreateRoleResponse> {
    if !valid_name(&req.role_name, 128) {
        return Err(err(
            ErrorCode::InvalidParameterRoleNameError,
            format!(
                "The role name {:?} is not valid: 1 to 128 letters, digits or +=,.@_-.",
                req.role_name
            ),
            format!(
                "角色名 {:?} 不合法：须为 1 到 128 个字母、数字或 +=,.@_-。",
                req.role_name
            ),
        ));
    }
    check_trust(&req.policy_document)?;
    let session = req.session_duration.unwrap_or(0);
    if session > MAX_ROLE_SESSION {
        return Err(err(
            ErrorCode::InvalidParameterValue,
            format!("SessionDuration must be between 0 and {MAX_ROLE_SESSION}."),
            format!("SessionDuration 的取值范围为 0 到 {MAX_ROLE_SESSION}。"),
        ));
    }
    if req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(err(
            ErrorCode::UnsupportedOperation,
            "livestack does not keep tags on roles; create the role without Tags.",
            "livestack 暂不支持角色标签，请不传 Tags 创建角色。",
        ));
    }
    let console_login = bool01(req.console_login, "ConsoleLogin")?;
    cx.commit_point()?;
    let role = store::Role {
        id: 0,
        account: cx.account,
        name: req.role_name.clone(),
        description: req.description.unwrap_or_default(),
        trust_policy: req.policy_document,
        console_login,
        session_duration: i64::try_from(session).unwrap_or(0),
        created_at: cx.now,
        updated_at: cx.now,
    };
    let account = cx.account;
    let id = cx
        .store
        .transaction(move |conn| {
            if store::roles(conn, account)?.len() >= MAX_ROLES {
                return Err(err(
                    ErrorCode::InvalidParameterRoleFull,
                    format!("An account may have at most {MAX_ROLES} roles."),
                    format!("每个账号最多可创建 {MAX_ROLES} 个角色。"),
                ));
            }
            store::insert_role(conn, &role).map_err(|e| match e {
                StoreError::Conflict { .. } => err(
                    ErrorCode::InvalidParameterRoleNameInUse,
                    format!("A role named `{}` already exists.", role.name),
                    format!("角色名 `{}` 已存在。", role.name),
                ),
                e => e.into(),
            })
        })
        .await?;
    Ok(CreateRoleResponse {
        role_id: access::role_id(id),
    })
}

/// `GetRole`.
pub async fn get_role(cx: Cx, req: GetRoleRequest) -> ApiResult<GetRoleResponse> {
    let c = cx.clone();
    let role = cx
        .store
        .run(move |conn| {
            Ok(find_role(
                conn,
                &c,
                req.role_id.as_deref(),
                req.role_name.as_deref(),
            ))
        })
        .await??;
    Ok(GetRoleResponse {
        role_info: role_info(role, &cx.caller.owner_uin),
    })
}

/// `DescribeRoleList`.
pub async fn describe_role_list(
    cx: Cx,
    req: DescribeRoleListRequest,
) -> ApiResult<DescribeRoleListResponse> {
    let (page, rp) = paging(Some(req.page), Some(req.rp))?;
    let account = cx.account;
    let roles = cx
        .store
        .run(move |conn| store::roles(conn, account))
        .await?;
    Ok(DescribeRoleListResponse {
        total_num: roles.len() as u64,
        list: roles
            .into_iter()
            .skip((page - 1) * rp)
            .take(rp)
            .map(|r| role_info(r, &cx.caller.owner_uin))
            .collect(),
    })
}

/// `DeleteRole`: credentials it handed out are refused from then on.
pub async fn delete_role(cx: Cx, req: DeleteRoleRequest) -> ApiResult<DeleteRoleResponse> {
    let c = cx.clone();
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |conn| {
            let role = find_role(conn, &c, req.role_id.as_deref(), req.role_name.as_deref())?;
            if dry_run {
                return Err(ApiError::bare(ErrorCode::DryRunOperation));
            }
            store::delete_role(conn, c.account, role.id)?;
            Ok(())
        })
        .await?;
    Ok(DeleteRoleResponse {})
}

/// The policy a role call names by id or else by name.
fn policy_named(
    conn: &livestack_store::db::Connection,
    cx: &Cx,
    id: Option<u64>,
    name: Option<&str>,
) -> Result<u64, ApiError> {
    let missing = || {
        err(
            ErrorCode::InvalidParameterPolicyIdNotExist,
            "The policy named by PolicyId or PolicyName does not exist.",
            "PolicyId 或 PolicyName 指定的策略不存在。",
        )
    };
    if let Some(id) = id {
        return find_policy(conn, cx, id)?
            .map(|p| p.id())
            .ok_or_else(missing);
    }
    let name = name.ok_or_else(missing)?;
    if let Some(p) = PRESETS.iter().find(|p| p.name == name) {
        return Ok(p.id);
    }
    store::policy_by_name(conn, cx.account, name)?
        .map(|r| wire_policy_id(r.id))
        .ok_or_else(missing)
}

/// `AttachRolePolicy`.
pub async fn attach_role_policy(
    cx: Cx,
    req: AttachRolePolicyRequest,
) -> ApiResult<AttachRolePolicyResponse> {
    let role = TargetRef::Role(req.attach_role_id, req.attach_role_name);
    attach(cx, (req.policy_id, req.policy_name), role).await?;
    Ok(AttachRolePolicyResponse {})
}

/// `DetachRolePolicy`.
pub async fn detach_role_policy(
    cx: Cx,
    req: DetachRolePolicyRequest,
) -> ApiResult<DetachRolePolicyResponse> {
    let role = TargetRef::Role(req.detach_role_id, req.detach_role_name);
    detach(cx, (req.policy_id, req.policy_name), role).await?;
    Ok(DetachRolePolicyResponse {})
}

/// `ListAttachedRolePolicies`.
pub async fn list_attached_role_policies(
    cx: Cx,
    req: ListAttachedRolePoliciesRequest,
) -> ApiResult<ListAttachedRolePoliciesResponse> {
    let (page, rp) = paging(Some(req.page), Some(req.rp))?;
    let role = TargetRef::Role(req.role_id, req.role_name);
    let rows = attached_policies(&cx, role, req.keyword).await?;
    let kind = req.policy_type.unwrap_or_default();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(p, _)| match kind.as_str() {
            "User" | "QCS" => p.policy_type() == kind,
            _ => true,
        })
        .collect();
    Ok(ListAttachedRolePoliciesResponse {
        total_num: rows.len() as u64,
        list: rows
            .into_iter()
            .skip((page - 1) * rp)
            .take(rp)
            .map(|(p, at)| AttachedPolicyOfRole {
                policy_id: p.id(),
                policy_name: p.name().to_owned(),
                add_time: beijing(at),
                policy_type: p.policy_type().to_owned(),
                create_mode: p.kind(),
                deactived: 0,
                deactived_detail: Vec::new(),
                description: p.description().to_owned(),
            })
            .collect(),
    })
}
