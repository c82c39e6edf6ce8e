//! CAM policies: the grammar livestack accepts and the one evaluation
//! function every signed call by a sub-account or temporary credential
//! goes through.
//!
//! Owns: [`Policy::parse`] (a document is understood whole or refused,
//! never half-applied) and [`evaluate`] (default deny; an explicit deny
//! wins over any allow; every resource a call names must be allowed).
//! Must not: do I/O, know who is calling or which policies a user has (the
//! API layer gathers them), or know Tencent error codes ([`PolicyError`]
//! says what is wrong; the API layer names the code).
//!
//! The grammar is CAM's (<https://cloud.tencent.com/document/product/598/10603>):
//! `{"version":"2.0","statement":[{"effect","action","resource","condition"}]}`,
//! where `statement`, `action` and `resource` may be one value or a list,
//! actions are `service:Name` globs (`live:Describe*`, `*`, with an optional
//! `name/` prefix), resources are six-segment `qcs:project:service:region:account:resource`
//! strings or `*`, and conditions take the operators in [`Operator`], each
//! with `_if_exist`, on the keys `qcs:ip` and `qcs:current_time`. A
//! condition on any other key, an operator outside that list or a
//! `principal` is refused: an engine that ignored what it did not
//! understand would let a `deny` fail open.

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// Why a policy document is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Not a JSON object.
    Document(String),
    /// `version` is missing or not `"2.0"`.
    Version,
    /// `statement` is missing, empty or not objects.
    Statement(String),
    /// An `effect` other than `allow` / `deny`.
    Effect(String),
    /// An action that is not `*` or `service:pattern`.
    Action(String),
    /// A resource that is not `*` or six `:`-separated segments.
    Resource(String),
    /// A `principal` element (only trust policies have one).
    Principal,
    /// An operator the engine does not know.
    ConditionType(String),
    /// A key the engine does not know, or a value that does not fit its
    /// operator (an IP that is not an address or CIDR block, a date that is
    /// not ISO 8601).
    ConditionContent(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Document(why) => write!(f, "the policy is not a JSON object: {why}"),
            PolicyError::Version => f.write_str("the policy's version must be \"2.0\""),
            PolicyError::Statement(why) => write!(f, "the policy's statement is not valid: {why}"),
            PolicyError::Effect(e) => write!(f, "the effect {e:?} is neither allow nor deny"),
            PolicyError::Action(a) => {
                write!(f, "the action {a:?} is not `*` or `service:ActionName`")
            }
            PolicyError::Resource(r) => write!(
                f,
                "the resource {r:?} is not `*` or `qcs:project:service:region:account:resource`"
            ),
            PolicyError::Principal => {
                f.write_str("a principal is only allowed in a role's trust policy")
            }
            PolicyError::ConditionType(op) => {
                write!(f, "the condition operator {op:?} is not supported")
            }
            PolicyError::ConditionContent(why) => write!(f, "the condition is not valid: {why}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// What a statement does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// The condition operators understood (each also with `_if_exist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `string_equal`.
    StringEqual,
    /// `string_not_equal`.
    StringNotEqual,
    /// `string_like` (`*` globs).
    StringLike,
    /// `string_not_like`.
    StringNotLike,
    /// `ip_equal`: the address is in one of the blocks.
    IpEqual,
    /// `ip_not_equal`: the address is in none of the blocks.
    IpNotEqual,
    /// `date_equal`.
    DateEqual,
    /// `date_not_equal`.
    DateNotEqual,
    /// `date_greater_than`.
    DateGreaterThan,
    /// `date_greater_than_equal`.
    DateGreaterThanEqual,
    /// `date_less_than`.
    DateLessThan,
    /// `date_less_than_equal`.
    DateLessThanEqual,
}

impl Operator {
    const ALL: &'static [(&'static str, Operator)] = &[
        ("string_equal", Operator::StringEqual),
        ("string_not_equal", Operator::StringNotEqual),
        ("string_like", Operator::StringLike),
        ("string_not_like", Operator::StringNotLike),
        ("ip_equal", Operator::IpEqual),
        ("ip_not_equal", Operator::IpNotEqual),
        ("date_equal", Operator::DateEqual),
        ("date_not_equal", Operator::DateNotEqual),
        ("date_greater_than", Operator::DateGreaterThan),
        ("date_greater_than_equal", Operator::DateGreaterThanEqual),
        ("date_less_than", Operator::DateLessThan),
        ("date_less_than_equal", Operator::DateLessThanEqual),
    ];

    /// `(operator, if_exist)` for a written operator name.
    fn parse(name: &str) -> Option<(Operator, bool)> {
        let lower = name.to_ascii_lowercase();
        // For the single-valued keys understood here, `for_any_value:` and
        // `for_all_value:` mean the same as the bare operator.
        let bare = lower
            .strip_prefix("for_any_value:")
            .or_else(|| lower.strip_prefix("for_all_value:"))
            .unwrap_or(&lower);
        let (bare, if_exist) = match bare.strip_suffix("_if_exist") {
            Some(b) => (b, true),
            None => (bare, false),
        };
        Operator::ALL
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, op)| (*op, if_exist))
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEqual
                | Operator::StringNotLike
                | Operator::IpNotEqual
                | Operator::DateNotEqual
        )
    }
}

/// The request keys conditions may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `qcs:ip`: the caller's address.
    Ip,
    /// `qcs:current_time`: the server clock.
    CurrentTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Text(String),
    Net(IpNet),
    Time(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    op: Operator,
    if_exist: bool,
    key: Key,
    values: Vec<Expected>,
}

/// One statement, as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Allow or deny.
    pub effect: Effect,
    /// Action globs, lower-cased, `name/` prefix removed.
    actions: Vec<String>,
    /// Resource patterns as written.
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

/// A policy document, understood whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The statements in document order.
    pub statements: Vec<Statement>,
}

/// An IP block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `192.168.1.7`, `2001:db8::/32`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn one_or_many<'v>(value: &'v Value, what: &str) -> Result<Vec<&'v str>, String> {
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| format!("{what} must be strings")))
            .collect(),
        Value::Array(_) => Err(format!("{what} is empty")),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

/// Member `name` of `object`, whatever the case of its first letter (the
/// documentation writes `statement`, some tools `Statement`).
fn member<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Unix seconds of an ISO 8601 / RFC 3339 date (`2026-12-01T00:00:00Z`).
pub fn parse_date(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

impl Policy {
    /// Parses and checks a policy document.
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        let value: Value =
            serde_json::from_str(document).map_err(|e| PolicyError::Document(e.to_string()))?;
        let Value::Object(root) = value else {
            return Err(PolicyError::Document("not an object".into()));
        };
        if member(&root, "version").and_then(Value::as_str) != Some("2.0") {
            return Err(PolicyError::Version);
        }
        if member(&root, "principal").is_some() {
            return Err(PolicyError::Principal);
        }
        let statements = match member(&root, "statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().collect::<Vec<_>>(),
            Some(Value::Array(_)) => return Err(PolicyError::Statement("it is empty".into())),
            Some(object @ Value::Object(_)) => vec![object],
            Some(_) => {
                return Err(PolicyError::Statement(
                    "it must be an object or a list of objects".into(),
                ))
            }
            None => return Err(PolicyError::Statement("it is missing".into())),
        };
        let statements = statements
            .into_iter()
            .map(Statement::parse)
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// Every `live:` action name this policy writes without a wildcard, so
    /// the caller can check that each exists.
    pub fn exact_actions(&self, service: &str) -> Vec<String> {
        let prefix = format!("{}:", service.to_ascii_lowercase());
        self.statements
            .iter()
            .flat_map(|s| s.actions.iter())
            .filter(|a| !a.contains('*'))
            .filter_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

impl Statement {
    fn parse(value: &Value) -> Result<Statement, PolicyError> {
        Statement::parse_with(value, false).map(|(s, _)| s)
    }

    /// A statement, and its `principal`'s `qcs` entries when `principals`
    /// are allowed (a role's trust policy).
    fn parse_with(
        value: &Value,
        principals: bool,
    ) -> Result<(Statement, Vec<String>), PolicyError> {
        let Value::Object(object) = value else {
            return Err(PolicyError::Statement(
                "each statement must be an object".into(),
            ));
        };
        for (key, _) in object {
            match key.to_ascii_lowercase().as_str() {
                "effect" | "action" | "resource" | "condition" | "sid" => {}
                "principal" if principals => {}
                "principal" => return Err(PolicyError::Principal),
                other => {
                    return Err(PolicyError::Statement(format!(
                        "it has an element {other:?} the engine does not know"
                    )))
                }
            }
        }
        let effect = match member(object, "effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("allow") => Effect::Allow,
            Some(e) if e.eq_ignore_ascii_case("deny") => Effect::Deny,
            Some(e) => return Err(PolicyError::Effect(e.to_owned())),
            None => return Err(PolicyError::Effect(String::new())),
        };
        let actions = member(object, "action")
            .ok_or_else(|| PolicyError::Action(String::new()))
            .and_then(|v| one_or_many(v, "action").map_err(PolicyError::Action))?
            .into_iter()
            .map(parse_action)
            .collect::<Result<_, _>>()?;
        let resources = match member(object, "resource") {
            // A trust policy's statements name the role by where they are.
            None if principals => vec!["*".to_owned()],
            None => return Err(PolicyError::Resource(String::new())),
            Some(v) => one_or_many(v, "resource")
                .map_err(PolicyError::Resource)?
                .into_iter()
                .map(parse_resource)
                .collect::<Result<_, _>>()?,
        };
        let principal = if principals {
            parse_principal(member(object, "principal"))?
        } else {
            Vec::new()
        };
        let conditions = match member(object, "condition") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(ops)) => parse_conditions(ops)?,
            Some(_) => {
                return Err(PolicyError::ConditionContent(
                    "condition must be an object".into(),
                ))
            }
        };
        Ok((
            Statement {
                effect,
                actions,
                resources,
                conditions,
            },
            principal,
        ))
    }
}

/// `{"qcs": [...]}`: account (`qcs::cam::uin/<uin>:root`) and user
/// (`qcs::cam::uin/<uin>:uin/<sub>`) principals. Service and federated
/// principals are refused: nothing here could ever be one.
fn parse_principal(value: Option<&Value>) -> Result<Vec<String>, PolicyError> {
    let Some(Value::Object(map)) = value else {
        return Err(PolicyError::Principal);
    };
    let mut out = Vec::new();
    for (kind, v) in map {
        if !kind.eq_ignore_ascii_case("qcs") {
            return Err(PolicyError::Principal);
        }
        for p in one_or_many(v, "principal").map_err(|_| PolicyError::Principal)? {
            let p = p.trim();
            let ok = p == "*"
                || p.strip_prefix("qcs::cam::uin/").is_some_and(|rest| {
                    rest.split_once(':').is_some_and(|(uin, who)| {
                        !uin.is_empty()
                            && uin.bytes().all(|b| b.is_ascii_digit())
                            && (who == "root"
                                || who.strip_prefix("uin/").is_some_and(|u| {
                                    !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit())
                                }))
                    })
                });
            if !ok {
                return Err(PolicyError::Principal);
            }
            out.push(p.to_owned());
        }
    }
    if out.is_empty() {
        return Err(PolicyError::Principal);
    }
    Ok(out)
}

/// A role's trust policy: who may assume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    statements: Vec<(Statement, Vec<String>)>,
}

impl Trust {
    /// Parses a trust policy: statements with a `principal`, actions
    /// `sts:AssumeRole` (`name/` prefix allowed) or `*`.
    pub fn parse(document: &str) -> Result<Trust, PolicyError> {
        let value: Value =
            serde_json::from_str(document).map_err(|e| PolicyError::Document(e.to_string()))?;
        let Value::Object(root) = value else {
            return Err(PolicyError::Document("not an object".into()));
        };
        if member(&root, "version").and_then(Value::as_str) != Some("2.0") {
            return Err(PolicyError::Version);
        }
        let items: Vec<&Value> = match member(&root, "statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
            Some(object @ Value::Object(_)) => vec![object],
            _ => {
                return Err(PolicyError::Statement(
                    "it must be a non-empty list of statements".into(),
                ))
            }
        };
        let mut statements = Vec::new();
        for item in items {
            let (statement, principals) = Statement::parse_with(item, true)?;
            for a in &statement.actions {
                if a != "*" && a != "sts:assumerole" && a != "sts:*" {
                    return Err(PolicyError::Action(a.clone()));
                }
            }
            statements.push((statement, principals));
        }
        Ok(Trust { statements })
    }

    /// Whether a caller known by `principals` (its account's
    /// `qcs::cam::uin/<uin>:root` and, for a sub-account, its own
    /// `qcs::cam::uin/<uin>:uin/<sub>`) may assume the role: a matching
    /// deny refuses, else a matching allow grants.
    pub fn allows(&self, principals: &[String], request: &Request<'_>) -> bool {
        let mut allowed = false;
        for (statement, who) in &self.statements {
            let names_caller = who
                .iter()
                .any(|w| w == "*" || principals.iter().any(|p| p == w));
            if !names_caller || !statement.matches(request, "*") {
                continue;
            }
            match statement.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
        allowed
    }
}

fn parse_action(action: &str) -> Result<String, PolicyError> {
    let bare = action.trim();
    let bare = bare.strip_prefix("name/").unwrap_or(bare);
    let ok = bare == "*"
        || bare.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && !name.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'*')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'_')
        });
    if ok {
        Ok(bare.to_ascii_lowercase())
    } else {
        Err(PolicyError::Action(action.to_owned()))
    }
}

fn parse_resource(resource: &str) -> Result<String, PolicyError> {
    let r = resource.trim();
    if r == "*" {
        return Ok(r.to_owned());
    }
    let segments: Vec<&str> = r.splitn(6, ':').collect();
    if segments.len() == 6 && segments[0] == "qcs" && !segments[5].is_empty() {
        Ok(r.to_owned())
    } else {
        Err(PolicyError::Resource(resource.to_owned()))
    }
}

fn parse_conditions(ops: &Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::new();
    for (name, keys) in ops {
        let (op, if_exist) =
            Operator::parse(name).ok_or_else(|| PolicyError::ConditionType(name.clone()))?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::ConditionContent(format!(
                "{name} must map keys to values"
            )));
        };
        for (key_name, values) in keys {
            let key = match key_name.to_ascii_lowercase().as_str() {
                "qcs:ip" => Key::Ip,
                "qcs:current_time" => Key::CurrentTime,
                _ => {
                    return Err(PolicyError::ConditionContent(format!(
                        "the condition key {key_name:?} is not supported (only qcs:ip and qcs:current_time are)"
                    )))
                }
            };
            let texts: Vec<String> = match values {
                Value::Array(items) if !items.is_empty() => {
                    items.iter().map(text_of).collect::<Option<_>>()
                }
                Value::Array(_) => None,
                v => text_of(v).map(|t| vec![t]),
            }
            .ok_or_else(|| {
                PolicyError::ConditionContent(format!(
                    "the values of {key_name} must be strings or numbers"
                ))
            })?;
            let values = texts
                .into_iter()
                .map(|t| expected(op, key, &t))
                .collect::<Result<_, _>>()?;
            out.push(Condition {
                op,
                if_exist,
                key,
                values,
            });
        }
    }
    Ok(out)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn expected(op: Operator, key: Key, text: &str) -> Result<Expected, PolicyError> {
    use Operator::*;
    match op {
        StringEqual | StringNotEqual | StringLike | StringNotLike => {
            Ok(Expected::Text(text.to_owned()))
        }
        IpEqual | IpNotEqual => {
            if key != Key::Ip {
                return Err(PolicyError::ConditionContent(
                    "ip operators apply to qcs:ip only".into(),
                ));
            }
            IpNet::parse(text).map(Expected::Net).ok_or_else(|| {
                PolicyError::ConditionContent(format!(
                    "{text:?} is not an IP address or CIDR block"
                ))
            })
        }
        DateEqual | DateNotEqual | DateGreaterThan | DateGreaterThanEqual | DateLessThan
        | DateLessThanEqual => {
            if key != Key::CurrentTime {
                return Err(PolicyError::ConditionContent(
                    "date operators apply to qcs:current_time only".into(),
                ));
            }
            parse_date(text)
                .or_else(|| text.trim().parse::<i64>().ok())
                .map(Expected::Time)
                .ok_or_else(|| {
                    PolicyError::ConditionContent(format!(
                        "{text:?} is not an ISO 8601 date such as 2026-12-01T00:00:00Z"
                    ))
                })
        }
    }
}

// ------------------------------------------------------------- evaluation

/// What a call asks, as CAM sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `service:Action`, e.g. `live:DescribeLiveDomains`.
    pub action: &'a str,
    /// The resources the call names, each `*` (an operation-level action)
    /// or a six-segment string such as
    /// `qcs::live:ap-guangzhou:uin/100000000001:domain/push.example.com`.
    pub resources: &'a [String],
    /// The root account's UIN (`${uin}`, `${owner_uin}` in patterns).
    pub owner_uin: &'a str,
    /// The root account's AppId (`${app_id}`).
    pub app_id: i64,
    /// `qcs:ip`: the caller's address, when known.
    pub ip: Option<IpAddr>,
    /// `qcs:current_time`: Unix seconds.
    pub now: i64,
}

/// The statement that decided, for logs and soft mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deciding {
    /// The policy's name.
    pub policy: String,
    /// The statement's index in it (from 0).
    pub statement: usize,
    /// Its effect.
    pub effect: Effect,
}

/// The answer for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether every resource is allowed.
    pub allowed: bool,
    /// The first resource refused.
    pub refused: Option<String>,
    /// The statement behind the answer: the deny that matched, or the
    /// allow that granted the last resource; `None` for an implicit deny
    /// (nothing matched).
    pub deciding: Option<Deciding>,
}

/// Evaluates `policies` (name, document) for `request`: for each resource,
/// a matching deny refuses, else a matching allow grants, else it is
/// refused by default. The call is allowed when every resource is.
pub fn evaluate(policies: &[(&str, &Policy)], request: &Request<'_>) -> Verdict {
    let star = ["*".to_owned()];
    let resources: &[String] = if request.resources.is_empty() {
        &star
    } else {
        request.resources
    };
    let mut last_allow = None;
    for resource in resources {
        let mut allow = None;
        let mut deny = None;
        'policies: for (name, policy) in policies {
            for (index, statement) in policy.statements.iter().enumerate() {
                if !statement.matches(request, resource) {
                    continue;
                }
                let deciding = Deciding {
                    policy: (*name).to_owned(),
                    statement: index,
                    effect: statement.effect,
                };
                match statement.effect {
                    Effect::Deny => {
                        deny = Some(deciding);
                        break 'policies;
                    }
                    Effect::Allow => {
                        allow.get_or_insert(deciding);
                    }
                }
            }
        }
        if deny.is_some() || allow.is_none() {
            return Verdict {
                allowed: false,
                refused: Some(resource.clone()),
                deciding: deny,
            };
        }
        last_allow = allow;
    }
    Verdict {
        allowed: true,
        refused: None,
        deciding: last_allow,
    }
}

impl Statement {
    fn matches(&self, request: &Request<'_>, resource: &str) -> bool {
        let action = request.action.to_ascii_lowercase();
        self.actions.iter().any(|p| glob(p, &action))
            && self
                .resources
                .iter()
                .any(|p| resource_matches(p, resource, request))
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

fn resource_matches(pattern: &str, resource: &str, request: &Request<'_>) -> bool {
    if pattern == "*" {
        return true;
    }
    // An operation-level action is only granted by `*`: naming a resource
    // for it grants nothing (CAM: "if a policy names a resource for an
    // operation-level-only API, the call is denied").
    if resource == "*" {
        return false;
    }
    let pattern = pattern
        .replace("${uin}", request.owner_uin)
        .replace("${owner_uin}", request.owner_uin)
        .replace("${app_id}", &request.app_id.to_string());
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    if p.len() != 6 || r.len() != 6 {
        return false;
    }
    // qcs, project, service, region, account, resource: an empty project,
    // region or account in the pattern matches any.
    p[0] == r[0]
        && (p[1].is_empty() || glob(p[1], r[1]))
        && glob(p[2], r[2])
        && (p[3].is_empty() || glob(p[3], r[3]))
        && (p[4].is_empty() || glob(p[4], r[4]))
        && glob(p[5], r[5])
}

impl Condition {
    fn holds(&self, request: &Request<'_>) -> bool {
        let present = match self.key {
            Key::Ip => request.ip.is_some(),
            Key::CurrentTime => true,
        };
        if !present {
            return self.if_exist;
        }
        let any = self.values.iter().any(|v| self.test(v, request));
        if self.op.negated() {
            !any
        } else {
            any
        }
    }

    /// Whether the positive form of the operator holds for `value`.
    fn test(&self, value: &Expected, request: &Request<'_>) -> bool {
        use Operator::*;
        let text = || match self.key {
            Key::Ip => request.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            Key::CurrentTime => request.now.to_string(),
        };
        match (self.op, value) {
            (StringEqual | StringNotEqual, Expected::Text(t)) => text() == *t,
            (StringLike | StringNotLike, Expected::Text(t)) => glob(t, &text()),
            (IpEqual | IpNotEqual, Expected::Net(net)) => {
                request.ip.is_some_and(|ip| net.contains(ip))
            }
            (DateEqual | DateNotEqual, Expected::Time(t)) => request.now == *t,
            (DateGreaterThan, Expected::Time(t)) => request.now > *t,
            (DateGreaterThanEqual, Expected::Time(t)) => request.now >= *t,
            (DateLessThan, Expected::Time(t)) => request.now < *t,
            (DateLessThanEqual, Expected::Time(t)) => request.now <= *t,
            _ => false,
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The resource string of a Live domain.
pub fn live_domain_resource(region: &str, owner_uin: &str, domain: &str) -> String {
    format!("qcs::live:{region}:uin/{owner_uin}:domain/{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UIN: &str = "100000000001";

    fn request<'a>(action: &'a str, resources: &'a [String]) -> Request<'a> {
        Request {
            action,
            resources,
            owner_uin: UIN,
            app_id: 1250000001,
            ip: Some("127.0.0.1".parse().unwrap()),
            now: 1_800_000_000,
        }
    }

    fn domain(d: &str) -> String {
        live_domain_resource("ap-guangzhou", UIN, d)
    }

    fn allowed(doc: &str, action: &str, resources: &[String]) -> bool {
        let policy = Policy::parse(doc).expect("policy parses");
        evaluate(&[("p", &policy)], &request(action, resources)).allowed
    }

    #[test]
    fn documented_examples_decide_as_cam_does() {
        let full = r#"{"version":"2.0","statement":[{"effect":"allow","action":["live:*"],"resource":"*"}]}"#;
        let read = r#"{"version":"2.0","statement":[{"effect":"allow","action":["live:Describe*"],"resource":"*"}]}"#;
        let one_domain = r#"{"version":"2.0","statement":[{"effect":"allow","action":["live:*"],"resource":["qcs::live::uin/${uin}:domain/a.example.com"]}]}"#;
        let deny_wins = r#"{"version":"2.0","statement":[
            {"effect":"allow","action":"live:*","resource":"*"},
            {"effect":"deny","action":"live:DeleteLiveDomain","resource":"*"}]}"#;
        let a = [domain("a.example.com")];
        let b = [domain("b.example.com")];
        let both = [domain("a.example.com"), domain("b.example.com")];
        let op = ["*".to_owned()];
        let cases: &[(&str, &str, &[String], bool)] = &[
            (full, "live:DescribeLiveDomains", &op, true),
            (full, "live:DeleteLiveDomain", &a, true),
            (full, "cvm:RunInstances", &op, false),
            (read, "live:DescribeLiveDomains", &op, true),
            (read, "live:describelivedomains", &op, true),
            (read, "live:AddLiveDomain", &a, false),
            // An empty region matches every region.
            (one_domain, "live:DescribeLiveDomain", &a, true),
            (one_domain, "live:DescribeLiveDomain", &b, false),
            // Every domain a call names must be allowed.
            (one_domain, "live:DescribePlayInfo", &both, false),
            // A named resource grants nothing to an operation-level action.
            (one_domain, "live:DescribeLiveDomains", &op, false),
            (deny_wins, "live:DescribeLiveDomains", &op, true),
            (deny_wins, "live:DeleteLiveDomain", &a, false),
        ];
        for (doc, action, resources, want) in cases {
            assert_eq!(
                allowed(doc, action, resources),
                *want,
                "{action} {resources:?} under {doc}"
            );
        }
    }

    #[test]
    fn an_explicit_deny_in_any_policy_wins_and_is_named() {
        let allow = Policy::parse(
            r#"{"version":"2.0","statement":{"effect":"allow","action":"*","resource":"*"}}"#,
        )
        .unwrap();
        let deny = Policy::parse(r#"{"version":"2.0","statement":[{"effect":"deny","action":"name/live:Drop*","resource":"*"}]}"#).unwrap();
        let op = ["*".to_owned()];
        let v = evaluate(
            &[("all", &allow), ("nodrop", &deny)],
            &request("live:DropLiveStream", &op),
        );
        assert!(!v.allowed);
        let d = v.deciding.unwrap();
        assert_eq!(
            (d.policy.as_str(), d.statement, d.effect),
            ("nodrop", 0, Effect::Deny)
        );
        let v = evaluate(&[], &request("live:DropLiveStream", &op));
        assert_eq!(
            v,
            Verdict {
                allowed: false,
                refused: Some("*".into()),
                deciding: None
            }
        );
    }

    #[test]
    fn ip_and_date_conditions_test_the_caller_and_the_clock() {
        let op = ["*".to_owned()];
        let with = |cond: &str| {
            format!(
                r#"{{"version":"2.0","statement":[{{"effect":"allow","action":"live:*","resource":"*","condition":{cond}}}]}}"#
            )
        };
        let cases = [
            (r#"{"ip_equal":{"qcs:ip":"127.0.0.0/8"}}"#, true),
            (
                r#"{"ip_equal":{"qcs:ip":["10.0.0.0/8","192.168.0.1"]}}"#,
                false,
            ),
            (r#"{"ip_not_equal":{"qcs:ip":["10.0.0.0/8"]}}"#, true),
            (r#"{"ip_not_equal":{"qcs:ip":"127.0.0.1"}}"#, false),
            (
                r#"{"date_less_than":{"qcs:current_time":"2027-06-01T00:00:00Z"}}"#,
                true,
            ),
            (
                r#"{"date_greater_than":{"qcs:current_time":"2027-06-01T00:00:00Z"}}"#,
                false,
            ),
            (
                // The clock reads exactly 2027-01-15T08:00:00Z.
                r#"{"date_greater_than_equal":{"qcs:current_time":"2027-01-15T08:00:00Z"}}"#,
                true,
            ),
            (
                r#"{"date_less_than_equal_if_exist":{"qcs:current_time":"2027-01-15T08:00:00Z"}}"#,
                true,
            ),
            // Operators are ANDed.
            (
                r#"{"ip_equal":{"qcs:ip":"127.0.0.1"},"date_greater_than":{"qcs:current_time":"2027-06-01T00:00:00Z"}}"#,
                false,
            ),
        ];
        for (cond, want) in cases {
            assert_eq!(
                allowed(&with(cond), "live:DescribeLiveDomains", &op),
                want,
                "{cond}"
            );
        }
        // Without a known address, only `_if_exist` holds.
        let policy =
            Policy::parse(&with(r#"{"ip_equal_if_exist":{"qcs:ip":"10.0.0.0/8"}}"#)).unwrap();
        let mut r = request("live:DescribeLiveDomains", &op);
        r.ip = None;
        assert!(evaluate(&[("p", &policy)], &r).allowed);
        let policy = Policy::parse(&with(r#"{"ip_equal":{"qcs:ip":"10.0.0.0/8"}}"#)).unwrap();
        assert!(!evaluate(&[("p", &policy)], &r).allowed);
    }

    #[test]
    fn what_the_engine_does_not_understand_is_refused_whole() {
        let bad = [
            ("not json", PolicyError::Document(String::new())),
            (r#"{"version":"1.0","statement":[]}"#, PolicyError::Version),
            (
                r#"{"version":"2.0"}"#,
                PolicyError::Statement(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"maybe","action":"*","resource":"*"}]}"#,
                PolicyError::Effect(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"DescribeLiveDomains","resource":"*"}]}"#,
                PolicyError::Action(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"*","resource":"domain/x"}]}"#,
                PolicyError::Resource(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"*","resource":"*","principal":{"qcs":["*"]}}]}"#,
                PolicyError::Principal,
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"*","resource":"*","condition":{"numeric_equal":{"qcs:ip":"1"}}}]}"#,
                PolicyError::ConditionType(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"deny","action":"*","resource":"*","condition":{"string_equal":{"qcs:resource_tag":"a&b"}}}]}"#,
                PolicyError::ConditionContent(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"*","resource":"*","condition":{"ip_equal":{"qcs:ip":"10.0.0.300"}}}]}"#,
                PolicyError::ConditionContent(String::new()),
            ),
            (
                r#"{"version":"2.0","statement":[{"effect":"allow","action":"*","resource":"*","condition":{"date_less_than":{"qcs:current_time":"tomorrow"}}}]}"#,
                PolicyError::ConditionContent(String::new()),
            ),
        ];
        for (doc, want) in bad {
            let got = Policy::parse(doc).expect_err(doc);
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{doc}: {got}"
            );
        }
    }

    #[test]
    fn a_trust_policy_names_who_may_assume_the_role() {
        let trust = Trust::parse(
            r#"{"version":"2.0","statement":[{"action":"name/sts:AssumeRole","effect":"allow","principal":{"qcs":["qcs::cam::uin/100000000001:uin/200000000007"]}}]}"#,
        )
        .unwrap();
        let op = ["*".to_owned()];
        let r = request("sts:AssumeRole", &op);
        let user = |sub: &str| {
            vec![
                format!("qcs::cam::uin/{UIN}:root"),
                format!("qcs::cam::uin/{UIN}:uin/{sub}"),
            ]
        };
        assert!(trust.allows(&user("200000000007"), &r));
        assert!(!trust.allows(&user("200000000008"), &r));
        let account = Trust::parse(
            r#"{"version":"2.0","statement":[{"action":"sts:AssumeRole","effect":"allow","principal":{"qcs":"qcs::cam::uin/100000000001:root"}},
               {"action":"sts:AssumeRole","effect":"deny","principal":{"qcs":["qcs::cam::uin/100000000001:uin/200000000009"]}}]}"#,
        )
        .unwrap();
        assert!(account.allows(&user("200000000008"), &r));
        assert!(!account.allows(&user("200000000009"), &r));
        for bad in [
            r#"{"version":"2.0","statement":[{"action":"sts:AssumeRole","effect":"allow"}]}"#,
            r#"{"version":"2.0","statement":[{"action":"sts:AssumeRole","effect":"allow","principal":{"service":"cvm.qcloud.com"}}]}"#,
            r#"{"version":"2.0","statement":[{"action":"live:*","effect":"allow","principal":{"qcs":"qcs::cam::uin/1:root"}}]}"#,
        ] {
            assert!(Trust::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_and_blocks_match_as_written() {
        assert!(glob("describe*", "describelivedomains"));
        assert!(glob("*domain*", "describelivedomains"));
        assert!(!glob("describe*s", "describelivedomain"));
        assert!(glob("*", ""));
        let net = IpNet::parse("192.168.0.0/16").unwrap();
        assert!(net.contains("192.168.7.9".parse().unwrap()));
        assert!(!net.contains("192.169.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:192.168.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
    }
}
