//! The table of implemented actions and the glue that runs one.
//!
//! Owns: the one-line-per-action registry and the typed call of a handler
//! (JSON → request struct → handler → response struct → JSON). Must not:
//! authenticate or check parameters against the model; the gateway has done
//! both before [`dispatch`] runs.

use std::future::Future;
use std::sync::Arc;

use livestack_core::AccountId;
use livestack_store::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::actions::domain;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// What a handler gets besides its request: the caller and shared services.
#[derive(Clone)]
pub struct Cx {
    /// The database.
    pub store: Store,
    /// The calling account; every query a handler makes is scoped by it.
    pub account: AccountId,
    /// The request's id, for log lines.
    pub request_id: Arc<str>,
    /// `DryRun=true`: check everything, change nothing.
    pub dry_run: bool,
    /// The server clock at the start of the request (Unix seconds).
    pub now: i64,
}

impl Cx {
    /// Marks the point where a handler starts changing state. A dry run
    /// stops here with `DryRunOperation`: everything before it was checked,
    /// nothing after it happens.
    pub fn commit_point(&self) -> ApiResult<()> {
        if self.dry_run {
            Err(ApiError::bare(ErrorCode::DryRunOperation))
        } else {
            Ok(())
        }
    }
}

macro_rules! actions {
    ($($name:ident => $handler:path,)*) => {
        /// Every action livestack implements, in table order.
        pub const IMPLEMENTED: &[&str] = &[$(stringify!($name),)*];

        /// Runs the handler of `action` on checked parameters.
        pub(crate) async fn dispatch(cx: Cx, action: &str, params: Value) -> ApiResult<Value> {
            match action {
                $(stringify!($name) => call(cx, params, $handler).await,)*
                _ => Err(ApiError::new(
                    ErrorCode::UnsupportedOperation,
                    format!("livestack does not implement the action {action} yet."),
                    format!("livestack 暂未实现接口 {action}。"),
                )),
            }
        }
    };
}

actions! {
    DescribeLiveDomains => domain::describe_live_domains,
}

/// `docs/api-coverage.md`: every action of the model, and whether
/// livestack implements it, generated from the same tables the gateway uses.
pub fn coverage_markdown() -> String {
    use std::fmt::Write as _;
    let actions = livestack_model::schema::ACTIONS;
    let done = actions
        .iter()
        .filter(|a| IMPLEMENTED.contains(&a.name))
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
    let _ = writeln!(out, "| Action | Implemented | Note |\n|---|---|---|");
    for a in actions {
        let mark = if IMPLEMENTED.contains(&a.name) {
            "yes"
        } else {
            ""
        };
        let note = if a.legacy {
            "legacy (no longer in the current model)"
        } else {
            ""
        };
        let _ = writeln!(out, "| {} | {mark} | {note} |", a.name);
    }
    out
}

async fn call<Req, Resp, F, Fut>(cx: Cx, params: Value, handler: F) -> ApiResult<Value>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Cx, Req) -> Fut,
    Fut: Future<Output = ApiResult<Resp>>,
{
    // The gateway checked `params` against the same model, so a failure
    // here is a bug in livestack, not in the request.
    let req: Req = serde_json::from_value(params)
        .map_err(|e| ApiError::internal(ErrorCode::InternalError, e))?;
    let dry_run = cx.dry_run;
    let resp = handler(cx, req).await?;
    if dry_run {
        // A read-only action ran to completion: it would have succeeded.
        return Err(ApiError::bare(ErrorCode::DryRunOperation));
    }
    serde_json::to_value(resp).map_err(|e| ApiError::internal(ErrorCode::InternalError, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_action_is_in_the_model() {
        for name in IMPLEMENTED {
            assert!(
                livestack_model::schema::find_action(name).is_some(),
                "{name} is not an action of the Live API model"
            );
        }
    }

    #[test]
    fn api_coverage_doc_is_up_to_date() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api-coverage.md");
        let want = coverage_markdown();
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if std::env::var_os("UPDATE_EXPECT").is_some() {
                std::fs::write(&path, &want).expect("write docs/api-coverage.md");
            } else {
                panic!("docs/api-coverage.md is stale: run `UPDATE_EXPECT=1 cargo test -p livestack-api coverage`");
            }
        }
    }

    #[test]
    fn the_table_names_each_action_once() {
        let mut names = IMPLEMENTED.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IMPLEMENTED.len());
    }
}
