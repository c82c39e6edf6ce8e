//! `docs/api-coverage.md`: what livestack implements of each model and
//! the status of every seed code.
//!
//! Owns: the document's generation and the seed codes' explanations. Must
//! not: decide anything a request sees.

/// `docs/api-coverage.md`: every action of the three models and whether
/// livestack implements it, generated from the same tables the gateway
/// uses, and the status of every code of the seed: the integration tests
/// (`tests`: module name and source) that provoke it, or why the real
/// service never answers it for these APIs.
pub fn coverage_markdown(tests: &[(String, String)]) -> String {
    use std::fmt::Write as _;
    let actions = livestack_model::schema::ACTIONS;
    let done = actions
        .iter()
        .filter(|a| crate::dispatch::IMPLEMENTED.contains(&a.name))
        .count();
    let mut out = String::new();
    let _ = writeln!(out, "# API coverage\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the dispatch table by `UPDATE_EXPECT=1 cargo test -p livestack-api coverage`. Do not edit. -->\n"
    );
    let _ = writeln!(
        out,
        "livestack implements {done} of the {} actions of the Live API model (current and legacy). \
         Every other action is known: its parameters are checked against the model, then it answers \
         `UnsupportedOperation`.\n",
        actions.len()
    );
    let core_done = crate::dispatch::CORE
        .iter()
        .filter(|a| crate::dispatch::IMPLEMENTED.contains(a))
        .count();
    let _ = writeln!(
        out,
        "Of the {} actions of the classic Live core (domains, keys, certificates, streams, templates \
         and rules, recording and snapshot tasks, callbacks, relay tasks, mixing, primary and backup \
         streams, bookkeeping; marked *core* below), {core_done} are implemented.\n",
        crate::dispatch::CORE.len()
    );
    let _ = writeln!(out, "| Action | Implemented | Note |\n|---|---|---|");
    for a in actions {
        let mark = if crate::dispatch::IMPLEMENTED.contains(&a.name) {
            "yes"
        } else {
            ""
        };
        let note = if a.legacy {
            "legacy (no longer in the current model)"
        } else if crate::dispatch::CORE.contains(&a.name) {
            "core"
        } else {
            ""
        };
        let _ = writeln!(out, "| {} | {mark} | {note} |", a.name);
    }
    for (service, table, title) in [
        (
            &livestack_model::schema::CAM,
            crate::dispatch::CAM_IMPLEMENTED,
            "CAM (access management)",
        ),
        (
            &livestack_model::schema::STS,
            crate::dispatch::STS_IMPLEMENTED,
            "STS (temporary credentials)",
        ),
    ] {
        let done = service
            .actions
            .iter()
            .filter(|a| table.contains(&a.name))
            .count();
        let _ = writeln!(out, "\n## {title}, {} {}\n", service.name, service.version);
        let _ = writeln!(
            out,
            "Served on the same endpoint (the version names the service). livestack implements {done} of \
             the {} actions of tccli's model; the others answer `UnsupportedOperation`.\n",
            service.actions.len()
        );
        let _ = writeln!(out, "| Action | Implemented |\n|---|---|");
        for a in service.actions {
            let mark = if table.contains(&a.name) { "yes" } else { "" };
            let _ = writeln!(out, "| {} | {mark} |", a.name);
        }
    }
    seed_section(&mut out, tests);
    out
}

/// Every code of the seed's tables (public codes and Live business codes).
pub const SEED_CODES: &[&str] = &[
    "AuthFailure.InvalidSecretId",
    "AuthFailure.MFAFailure",
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure",
    "AuthFailure.TokenFailure",
    "AuthFailure.UnauthorizedOperation",
    "DryRunOperation",
    "FailedOperation",
    "FailedOperation.InvokeVideoApiFail",
    "InternalError",
    "InternalError.ArgsNotMatch",
    "InternalError.CallOtherSvrError",
    "InternalError.ConfInUsed",
    "InternalError.ConfNotFound",
    "InternalError.ConfOutLimit",
    "InternalError.ConfigNotExist",
    "InternalError.ConnectDbError",
    "InternalError.CrtDateInUsing",
    "InternalError.CrtDateNotFound",
    "InternalError.CrtDateNotLegal",
    "InternalError.CrtDateOverdue",
    "InternalError.CrtDomainNotFound",
    "InternalError.CrtKeyNotMatch",
    "InternalError.DBError",
    "InternalError.GetBizidError",
    "InternalError.GetStreamInfoError",
    "InternalError.GetUpstreamInfoError",
    "InternalError.GetWatermarkError",
    "InternalError.InvalidInput",
    "InternalError.InvalidUser",
    "InternalError.NotFound",
    "InternalError.NotPermmitOperat",
    "InternalError.PlayDomainNoRecord",
    "InternalError.ProcessorAlreadyExist",
    "InternalError.PushDomainNoRecord",
    "InternalError.RuleAlreadyExist",
    "InternalError.RuleInUsing",
    "InternalError.RuleNotFound",
    "InternalError.RuleOutLimit",
    "InternalError.StreamStatusError",
    "InternalError.SystemError",
    "InternalError.UpdateDataError",
    "InternalError.WatermarkEditError",
    "InternalError.WatermarkNotExist",
    "InvalidAction",
    "InvalidParameter",
    "InvalidParameterValue",
    "LimitExceeded",
    "MissingParameter",
    "NoSuchVersion",
    "RequestLimitExceeded",
    "ResourceInUse",
    "ResourceInsufficient",
    "ResourceNotFound",
    "ResourceNotFound.TaskId",
    "ResourceUnavailable",
    "UnauthorizedOperation",
    "UnknownParameter",
    "UnsupportedOperation",
    "UnsupportedProtocol",
    "UnsupportedRegion",
];

/// Where the per-action codes come from.
const ACTION_CODES: &str = "spec/live-action-errors.json (each action's page of https://cloud.tencent.com/document/api/267)";

/// Seed codes that no test provokes, and why a faithful server does not
/// answer them for the actions livestack implements.
const NOT_ANSWERED: &[(&str, &str)] = &[
    ("AuthFailure.MFAFailure", "Belongs to the console's operation protection. For API keys Tencent's path is a policy condition on `qcs:mfaPresent` met by temporary credentials from `sts:GetSessionToken` with a virtual MFA device (https://cloud.tencent.com/document/practice/598/117845); binding such a device is a console step with no API in the CAM model, and an unmet condition is a CAM denial (`AuthFailure.UnauthorizedOperation`). livestack has no MFA devices yet, so it refuses a policy that tests `qcs:mfaPresent` when it is created (`InvalidParameter.ConditionContentError`) rather than let it fail open."),
    ("InternalError.GetBizidError", "\"获取用户账号错误\": the failure of Tencent's internal account lookup. Here the account comes with the key's row in the same query, so the only way that lookup fails is the database's (`InternalError.ConnectDbError` / `InternalError.DBError`, provoked by the cluster tests)."),
    ("InternalError.NotFound", "\"记录不存在\", the generic not-found. Every action livestack implements answers the specific code its page documents instead (`InternalError.ConfNotFound`, `InternalError.RuleNotFound`, `ResourceNotFound.DomainNotExist`, ...; see spec/live-action-errors.json)."),
    ("InternalError.NotPermmitOperat", "\"无权限操作\": Tencent's internal check. livestack's permission decisions are CAM's (`AuthFailure.UnauthorizedOperation`) and tenancy's: another account's domain or stream does not exist for the caller (`ResourceNotFound.DomainNotExist`, ...)."),
    ("InternalError.SystemError", "Documented for StopRecordTask and StopScreenshotTask without a condition; an unexpected failure in livestack is `InternalError` with the RequestId in the log (the house rule), so a client's retry logic sees one code."),
    ("LimitExceeded", "Of the implemented actions only ResumeDelayLiveStream lists it, on a page that lists every public code without a condition; the quotas livestack enforces have their own documented codes (`FailedOperation.HostOutLimit`, `InternalError.ConfOutLimit`, `LimitExceeded.MaximumRunningTask`, ...)."),
    ("ResourceInUse", "Listed for ModifyLivePlayDomain and ResumeDelayLiveStream without a condition; neither has a resource another call could hold in livestack (a domain's play type changes in place)."),
    ("ResourceInsufficient", "Listed only for ResumeDelayLiveStream, without a condition; resuming a delayed stream takes no resource here."),
    ("ResourceUnavailable", "Listed only for ResumeDelayLiveStream among the implemented actions, without a condition; unavailable streams have their own code (`ResourceUnavailable.StreamNotExist`)."),
];

/// The tests (`module::function`) whose source names `code` in quotes.
fn tests_naming(code: &str, tests: &[(String, String)]) -> Vec<String> {
    let quoted = format!("\"{code}\"");
    let mut found = Vec::new();
    for (module, source) in tests {
        let mut current: Option<&str> = None;
        let mut is_test = false;
        let mut pending_attr = false;
        for line in source.lines() {
            let t = line.trim_start();
            if t.starts_with("#[test]") {
                pending_attr = true;
            }
            if let Some(rest) = t
                .strip_prefix("fn ")
                .or_else(|| t.strip_prefix("pub fn "))
                .or_else(|| t.strip_prefix("pub(crate) fn "))
            {
                current = rest.split(['(', '<']).next();
                is_test = pending_attr;
                pending_attr = false;
            }
            if is_test && line.contains(&quoted) {
                if let Some(f) = current {
                    let name = format!("{module}::{f}");
                    if !found.contains(&name) {
                        found.push(name);
                    }
                }
            }
        }
    }
    found
}

fn seed_section(out: &mut String, tests: &[(String, String)]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n## The seed's error codes\n");
    let _ = writeln!(
        out,
        "Every code of the seed's tables, with the integration tests that expect it (`#[test]` functions of \
         `crates/livestack/tests/it` naming the code, found by the test that writes this file; most \
         provoke it, a few check that a neighbouring condition does not answer it), or why the real \
         service does not answer it for the actions livestack implements. A code has one or the other, \
         never both and never neither (that test fails). Per-action codes: {ACTION_CODES}.\n"
    );
    let _ = writeln!(out, "| Code | Provoked by | Or why not |\n|---|---|---|");
    for code in SEED_CODES {
        let found = tests_naming(code, tests);
        let shown: Vec<String> = found.iter().take(3).map(|t| format!("`{t}`")).collect();
        let more = if found.len() > 3 {
            format!(" and {} more", found.len() - 3)
        } else {
            String::new()
        };
        let why = NOT_ANSWERED
            .iter()
            .find(|(c, _)| c == code)
            .map_or("", |(_, w)| *w);
        let _ = writeln!(out, "| {code} | {}{more} | {why} |", shown.join(", "));
    }
}

/// Codes neither provoked by a test nor explained, and codes explained
/// although a test provokes them: both must be empty.
pub fn seed_gaps(tests: &[(String, String)]) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut untested = Vec::new();
    let mut stale = Vec::new();
    for code in SEED_CODES {
        let tested = !tests_naming(code, tests).is_empty();
        let explained = NOT_ANSWERED.iter().any(|(c, _)| c == code);
        if !tested && !explained {
            untested.push(*code);
        }
        if tested && explained {
            stale.push(*code);
        }
    }
    (untested, stale)
}
