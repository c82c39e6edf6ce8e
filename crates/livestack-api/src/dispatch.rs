//! The table of implemented actions and the glue that runs one.
//!
//! Owns: the one-line-per-action registry and the typed call of a handler
//! (JSON → request struct → handler → response struct → JSON). Must not:
//! authenticate or check parameters against the model; the gateway has done
//! both before [`dispatch`] runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use livestack_model::schema::Service;

use crate::actions::{domain, stream};
pub use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

macro_rules! actions {
    ($(#[$doc:meta])* $table:ident, $runners:ident, $service:path; $($name:ident => $handler:path,)*) => {
        $(#[$doc])*
        pub const $table: &[&str] = &[$(stringify!($name),)*];

        /// The runners of the table above, in its order.
        static $runners: Runners = Runners::new(&$service, $table, &[$({
            fn run(cx: Cx, params: Value) -> Running {
                Box::pin(call(cx, params, $handler))
            }
            run
        },)*]);
    };
}

/// A running action: the handler's own future, boxed at its own size.
type Running = Pin<Box<dyn Future<Output = ApiResult<Vec<u8>>> + Send>>;
/// Starts one action on checked parameters.
type Run = fn(Cx, Value) -> Running;

/// One service's runners: each implemented action's name and runner, and
/// (built on first use) the runners indexed like the service's (sorted)
/// action list, so a request that found its action in the model finds its
/// handler by that index: no second search by name.
struct Runners {
    service: &'static Service,
    names: &'static [&'static str],
    runs: &'static [Run],
    by_index: OnceLock<Vec<Option<Run>>>,
}

impl Runners {
    const fn new(
        service: &'static Service,
        names: &'static [&'static str],
        runs: &'static [Run],
    ) -> Runners {
        Runners {
            service,
            names,
            runs,
            by_index: OnceLock::new(),
        }
    }

    /// The runner of the action at `index` in the service's model; `None`
    /// for an action of the model that livestack does not implement.
    fn get(&self, index: usize) -> Option<Run> {
        let table = self.by_index.get_or_init(|| {
            let mut table = vec![None; self.service.actions.len()];
            for (name, run) in self.names.iter().zip(self.runs) {
                // The tests below check that every name is in its model.
                if let Some(i) = self.service.action_index(name) {
                    table[i] = Some(*run);
                }
            }
            table
        });
        table.get(index).copied().flatten()
    }
}

fn unsupported(action: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedOperation,
        format!("livestack does not implement the action {action} yet."),
        format!("livestack 暂未实现接口 {action}。"),
    )
}

/// Starts the handler of the action at `index` in `service`'s model on
/// checked parameters; its output is the response as a serialized JSON
/// object.
///
/// Not an `async fn`: a future that matched on the action would hold the
/// largest handler's future inline (over 6 KB), which every request then
/// copied; each handler's future is boxed at its own size instead.
pub(crate) fn dispatch(cx: Cx, service: &'static Service, index: usize, params: Value) -> Running {
    let run = [&LIVE_RUNNERS, &CAM_RUNNERS, &STS_RUNNERS]
        .into_iter()
        .find(|runners| std::ptr::eq(runners.service, service))
        .and_then(|runners| runners.get(index));
    match run {
        Some(run) => run(cx, params),
        None => {
            let action = service.actions.get(index).map_or("", |a| a.name);
            let e = unsupported(action);
            Box::pin(async move { Err(e) })
        }
    }
}

actions! {
    /// Every CAM action livestack implements, in table order.
    CAM_IMPLEMENTED, CAM_RUNNERS, livestack_model::schema::CAM;
    // sub-accounts
    AddUser => crate::actions::cam::add_user,
    GetUser => crate::actions::cam::get_user,
    ListUsers => crate::actions::cam::list_users,
    UpdateUser => crate::actions::cam::update_user,
    DeleteUser => crate::actions::cam::delete_user,
    // policies
    CreatePolicy => crate::actions::cam::create_policy,
    GetPolicy => crate::actions::cam::get_policy,
    ListPolicies => crate::actions::cam::list_policies,
    UpdatePolicy => crate::actions::cam::update_policy,
    DeletePolicy => crate::actions::cam::delete_policy,
    AttachUserPolicy => crate::actions::cam::attach_user_policy,
    DetachUserPolicy => crate::actions::cam::detach_user_policy,
    ListAttachedUserPolicies => crate::actions::cam::list_attached_user_policies,
    // access keys
    CreateAccessKey => crate::actions::cam::create_access_key,
    ListAccessKeys => crate::actions::cam::list_access_keys,
    UpdateAccessKey => crate::actions::cam::update_access_key,
    DeleteAccessKey => crate::actions::cam::delete_access_key,
    // groups
    CreateGroup => crate::actions::cam::create_group,
    GetGroup => crate::actions::cam::get_group,
    ListGroups => crate::actions::cam::list_groups,
    UpdateGroup => crate::actions::cam::update_group,
    DeleteGroup => crate::actions::cam::delete_group,
    AddUserToGroup => crate::actions::cam::add_user_to_group,
    RemoveUserFromGroup => crate::actions::cam::remove_user_from_group,
    ListUsersForGroup => crate::actions::cam::list_users_for_group,
    ListGroupsForUser => crate::actions::cam::list_groups_for_user,
    AttachGroupPolicy => crate::actions::cam::attach_group_policy,
    DetachGroupPolicy => crate::actions::cam::detach_group_policy,
    ListAttachedGroupPolicies => crate::actions::cam::list_attached_group_policies,
    // roles (assumed through STS AssumeRole)
    CreateRole => crate::actions::cam::create_role,
    GetRole => crate::actions::cam::get_role,
    DescribeRoleList => crate::actions::cam::describe_role_list,
    DeleteRole => crate::actions::cam::delete_role,
    AttachRolePolicy => crate::actions::cam::attach_role_policy,
    DetachRolePolicy => crate::actions::cam::detach_role_policy,
    ListAttachedRolePolicies => crate::actions::cam::list_attached_role_policies,
}

actions! {
    /// Every STS action livestack implements, in table order.
    STS_IMPLEMENTED, STS_RUNNERS, livestack_model::schema::STS;
    GetFederationToken => crate::actions::sts::get_federation_token,
    AssumeRole => crate::actions::sts::assume_role,
    GetCallerIdentity => crate::actions::sts::get_caller_identity,
}

actions! {
    /// Every Live action livestack implements, in table order.
    IMPLEMENTED, LIVE_RUNNERS, livestack_model::schema::LIVE;
    // domains
    AddLiveDomain => domain::add_live_domain,
    DeleteLiveDomain => domain::delete_live_domain,
    DescribeLiveDomain => domain::describe_live_domain,
    DescribeLiveDomains => domain::describe_live_domains,
    EnableLiveDomain => domain::enable_live_domain,
    ForbidLiveDomain => domain::forbid_live_domain,
    ModifyLivePlayDomain => domain::modify_live_play_domain,
    DescribeLiveDomainReferer => domain::describe_live_domain_referer,
    ModifyLiveDomainReferer => domain::modify_live_domain_referer,
    // push and play URL signing keys
    DescribeLivePushAuthKey => domain::describe_live_push_auth_key,
    ModifyLivePushAuthKey => domain::modify_live_push_auth_key,
    DescribeLivePlayAuthKey => domain::describe_live_play_auth_key,
    ModifyLivePlayAuthKey => domain::modify_live_play_auth_key,
    // live streams
    DescribeLiveStreamOnlineList => stream::describe_live_stream_online_list,
    DescribeLiveStreamPublishedList => stream::describe_live_stream_published_list,
    DescribeLiveStreamState => stream::describe_live_stream_state,
    DescribeLiveStreamEventList => stream::describe_live_stream_event_list,
    DescribeLiveStreamPushInfoList => stream::describe_live_stream_push_info_list,
    DropLiveStream => stream::drop_live_stream,
    ForbidLiveStream => stream::forbid_live_stream,
    ResumeLiveStream => stream::resume_live_stream,
    AddDelayLiveStream => stream::add_delay_live_stream,
    ResumeDelayLiveStream => stream::resume_delay_live_stream,
    DescribeLiveDelayInfoList => stream::describe_live_delay_info_list,
    // certificates
    CreateLiveCert => crate::actions::cert::create_live_cert,
    ModifyLiveCert => crate::actions::cert::modify_live_cert,
    DeleteLiveCert => crate::actions::cert::delete_live_cert,
    DescribeLiveCert => crate::actions::cert::describe_live_cert,
    DescribeLiveCerts => crate::actions::cert::describe_live_certs,
    BindLiveDomainCert => crate::actions::cert::bind_live_domain_cert,
    ModifyLiveDomainCert => crate::actions::cert::modify_live_domain_cert,
    UnBindLiveDomainCert => crate::actions::cert::un_bind_live_domain_cert,
    DescribeLiveDomainCert => crate::actions::cert::describe_live_domain_cert,
    ModifyLiveDomainCertBindings => crate::actions::cert::modify_live_domain_cert_bindings,
    DescribeLiveDomainCertBindings => crate::actions::cert::describe_live_domain_cert_bindings,
    // templates and rules: transcode
    CreateLiveTranscodeTemplate => crate::actions::transcode::create_live_transcode_template,
    ModifyLiveTranscodeTemplate => crate::actions::transcode::modify_live_transcode_template,
    DeleteLiveTranscodeTemplate => crate::actions::transcode::delete_live_transcode_template,
    DescribeLiveTranscodeTemplate => crate::actions::transcode::describe_live_transcode_template,
    DescribeLiveTranscodeTemplates => crate::actions::transcode::describe_live_transcode_templates,
    CreateLiveTranscodeRule => crate::actions::transcode::create_live_transcode_rule,
    DeleteLiveTranscodeRule => crate::actions::transcode::delete_live_transcode_rule,
    DescribeLiveTranscodeRules => crate::actions::transcode::describe_live_transcode_rules,
    // templates and rules: watermark
    AddLiveWatermark => crate::actions::watermark::add_live_watermark,
    UpdateLiveWatermark => crate::actions::watermark::update_live_watermark,
    DeleteLiveWatermark => crate::actions::watermark::delete_live_watermark,
    DescribeLiveWatermark => crate::actions::watermark::describe_live_watermark,
    DescribeLiveWatermarks => crate::actions::watermark::describe_live_watermarks,
    CreateLiveWatermarkRule => crate::actions::watermark::create_live_watermark_rule,
    DeleteLiveWatermarkRule => crate::actions::watermark::delete_live_watermark_rule,
    DescribeLiveWatermarkRules => crate::actions::watermark::describe_live_watermark_rules,
    // templates and rules: record
    CreateLiveRecordTemplate => crate::actions::record::create_live_record_template,
    ModifyLiveRecordTemplate => crate::actions::record::modify_live_record_template,
    DeleteLiveRecordTemplate => crate::actions::record::delete_live_record_template,
    DescribeLiveRecordTemplate => crate::actions::record::describe_live_record_template,
    DescribeLiveRecordTemplates => crate::actions::record::describe_live_record_templates,
    CreateLiveRecordRule => crate::actions::record::create_live_record_rule,
    DeleteLiveRecordRule => crate::actions::record::delete_live_record_rule,
    DescribeLiveRecordRules => crate::actions::record::describe_live_record_rules,
    // templates and rules: snapshot
    CreateLiveSnapshotTemplate => crate::actions::snapshot::create_live_snapshot_template,
    ModifyLiveSnapshotTemplate => crate::actions::snapshot::modify_live_snapshot_template,
    DeleteLiveSnapshotTemplate => crate::actions::snapshot::delete_live_snapshot_template,
    DescribeLiveSnapshotTemplate => crate::actions::snapshot::describe_live_snapshot_template,
    DescribeLiveSnapshotTemplates => crate::actions::snapshot::describe_live_snapshot_templates,
    CreateLiveSnapshotRule => crate::actions::snapshot::create_live_snapshot_rule,
    DeleteLiveSnapshotRule => crate::actions::snapshot::delete_live_snapshot_rule,
    DescribeLiveSnapshotRules => crate::actions::snapshot::describe_live_snapshot_rules,
    // templates and rules: callback
    CreateLiveCallbackTemplate => crate::actions::callback::create_live_callback_template,
    ModifyLiveCallbackTemplate => crate::actions::callback::modify_live_callback_template,
    DeleteLiveCallbackTemplate => crate::actions::callback::delete_live_callback_template,
    DescribeLiveCallbackTemplate => crate::actions::callback::describe_live_callback_template,
    DescribeLiveCallbackTemplates => crate::actions::callback::describe_live_callback_templates,
    CreateLiveCallbackRule => crate::actions::callback::create_live_callback_rule,
    DeleteLiveCallbackRule => crate::actions::callback::delete_live_callback_rule,
    DescribeLiveCallbackRules => crate::actions::callback::describe_live_callback_rules,
    DescribeCallbackRecordsList => crate::actions::callback::describe_callback_records_list,
    // templates and rules: time-shift, and what it kept
    CreateLiveTimeShiftTemplate => crate::actions::timeshift::create_live_time_shift_template,
    ModifyLiveTimeShiftTemplate => crate::actions::timeshift::modify_live_time_shift_template,
    DeleteLiveTimeShiftTemplate => crate::actions::timeshift::delete_live_time_shift_template,
    DescribeLiveTimeShiftTemplates => crate::actions::timeshift::describe_live_time_shift_templates,
    CreateLiveTimeShiftRule => crate::actions::timeshift::create_live_time_shift_rule,
    DeleteLiveTimeShiftRule => crate::actions::timeshift::delete_live_time_shift_rule,
    DescribeLiveTimeShiftRules => crate::actions::timeshift::describe_live_time_shift_rules,
    DescribeTimeShiftStreamList => crate::actions::timeshift::describe_time_shift_stream_list,
    DescribeTimeShiftRecordDetail => crate::actions::timeshift::describe_time_shift_record_detail,
    // statistics from real traffic
    DescribeStreamPlayInfoList => crate::actions::stats::describe_stream_play_info_list,
    DescribeAllStreamPlayInfoList => crate::actions::stats::describe_all_stream_play_info_list,
    DescribeLiveDomainPlayInfoList => crate::actions::stats::describe_live_domain_play_info_list,
    DescribeStreamDayPlayInfoList => crate::actions::stats::describe_stream_day_play_info_list,
    DescribeBillBandwidthAndFluxList => crate::actions::stats::describe_bill_bandwidth_and_flux_list,
    DescribeVisitTopSumInfoList => crate::actions::stats::describe_visit_top_sum_info_list,
    DescribeTopClientIpSumInfoList => crate::actions::stats::describe_top_client_ip_sum_info_list,
    DescribeHttpStatusInfoList => crate::actions::stats::describe_http_status_info_list,
    DescribePlayErrorCodeDetailInfoList => crate::actions::stats::describe_play_error_code_detail_info_list,
    DescribePlayErrorCodeSumInfoList => crate::actions::stats::describe_play_error_code_sum_info_list,
    DescribeProIspPlaySumInfoList => crate::actions::stats::describe_pro_isp_play_sum_info_list,
    DescribeGroupProIspPlayInfoList => crate::actions::stats::describe_group_pro_isp_play_info_list,
    DescribeProvinceIspPlayInfoList => crate::actions::stats::describe_province_isp_play_info_list,
    DescribePushBandwidthAndFluxList => crate::actions::stats::describe_push_bandwidth_and_flux_list,
    DescribeUploadStreamNums => crate::actions::stats::describe_upload_stream_nums,
    DescribeLiveTranscodeDetailInfo => crate::actions::stats::describe_live_transcode_detail_info,
    DescribeLiveTranscodeTotalInfo => crate::actions::stats::describe_live_transcode_total_info,
    DescribeTranscodeTaskNum => crate::actions::stats::describe_transcode_task_num,
    DescribeLogDownloadList => crate::actions::stats::describe_log_download_list,
    DescribeDeliverBandwidthList => crate::actions::stats::describe_deliver_bandwidth_list,
    // bookkeeping of processing
    DescribeScreenShotSheetNumList => crate::actions::usage::describe_screen_shot_sheet_num_list,
    DescribeConcurrentRecordStreamNum => crate::actions::usage::describe_concurrent_record_stream_num,
    DescribeStreamPushInfoList => crate::actions::usage::describe_stream_push_info_list,
    // record and screenshot tasks
    CreateRecordTask => crate::actions::task::create_record_task,
    StopRecordTask => crate::actions::task::stop_record_task,
    DeleteRecordTask => crate::actions::task::delete_record_task,
    DescribeRecordTask => crate::actions::task::describe_record_task,
    CreateScreenshotTask => crate::actions::task::create_screenshot_task,
    StopScreenshotTask => crate::actions::task::stop_screenshot_task,
    DeleteScreenshotTask => crate::actions::task::delete_screenshot_task,
    DescribeScreenshotTask => crate::actions::task::describe_screenshot_task,
    CreateLiveRecord => crate::actions::task::create_live_record,
    StopLiveRecord => crate::actions::task::stop_live_record,
    DeleteLiveRecord => crate::actions::task::delete_live_record,
    // domain ownership
    AuthenticateDomainOwner => crate::actions::owner::authenticate_domain_owner,
    // primary and backup streams
    DescribeBackupStreamList => crate::actions::backup::describe_backup_stream_list,
    SwitchBackupStream => crate::actions::backup::switch_backup_stream,
    EnableOptimalSwitching => crate::actions::backup::enable_optimal_switching,
    // stream mixing
    CreateCommonMixStream => crate::actions::mix::create_common_mix_stream,
    CancelCommonMixStream => crate::actions::mix::cancel_common_mix_stream,
    // relay (pull-stream) tasks
    CreateLivePullStreamTask => crate::actions::pull::create_live_pull_stream_task,
    ModifyLivePullStreamTask => crate::actions::pull::modify_live_pull_stream_task,
    DeleteLivePullStreamTask => crate::actions::pull::delete_live_pull_stream_task,
    RestartLivePullStreamTask => crate::actions::pull::restart_live_pull_stream_task,
    DescribeLivePullStreamTasks => crate::actions::pull::describe_live_pull_stream_tasks,
    DescribeLivePullStreamTaskStatus => crate::actions::pull::describe_live_pull_stream_task_status,
    InsertTaskTemporaryFiles => crate::actions::pull::insert_task_temporary_files,
    DescribePullTransformPushInfoList => crate::actions::pull::describe_pull_transform_push_info_list,
    DescribePullTransformPushInfo => crate::actions::usage::describe_pull_transform_push_info,
    CreatePullStreamConfig => crate::actions::pull::create_pull_stream_config,
    ModifyPullStreamConfig => crate::actions::pull::modify_pull_stream_config,
    DeletePullStreamConfig => crate::actions::pull::delete_pull_stream_config,
    DescribePullStreamConfigs => crate::actions::pull::describe_pull_stream_configs,
    ModifyPullStreamStatus => crate::actions::pull::modify_pull_stream_status,
}

/// The classic Live core (issue 12's 105 actions): domains, keys and
/// certificates, streams and their state, templates and rules, recording
/// and snapshot tasks, callbacks, relay tasks, mixing, primary and backup
/// streams and the bookkeeping queries; not the separate products of the
/// model (导播台 casters, avatars, audit, smart erase, pads, cloud
/// effects, monitors, time-shift, AIGC) nor the play and bill statistics.
pub const CORE: &[&str] = &[
    "AddDelayLiveStream",
    "AddLiveDomain",
    "AddLiveWatermark",
    "AuthenticateDomainOwner",
    "CancelCommonMixStream",
    "CreateCommonMixStream",
    "CreateLiveCallbackRule",
    "CreateLiveCallbackTemplate",
    "CreateLivePullStreamTask",
    "CreateLiveRecord",
    "CreateLiveRecordRule",
    "CreateLiveRecordTemplate",
    "CreateLiveSnapshotRule",
    "CreateLiveSnapshotTemplate",
    "CreateLiveTranscodeRule",
    "CreateLiveTranscodeTemplate",
    "CreateLiveWatermarkRule",
    "CreatePullStreamConfig",
    "CreateRecordTask",
    "CreateScreenshotTask",
    "DeleteLiveCallbackRule",
    "DeleteLiveCallbackTemplate",
    "DeleteLiveDomain",
    "DeleteLivePullStreamTask",
    "DeleteLiveRecord",
    "DeleteLiveRecordRule",
    "DeleteLiveRecordTemplate",
    "DeleteLiveSnapshotRule",
    "DeleteLiveSnapshotTemplate",
    "DeleteLiveTranscodeRule",
    "DeleteLiveTranscodeTemplate",
    "DeleteLiveWatermark",
    "DeleteLiveWatermarkRule",
    "DeletePullStreamConfig",
    "DeleteRecordTask",
    "DeleteScreenshotTask",
    "DescribeBackupStreamList",
    "DescribeCallbackRecordsList",
    "DescribeConcurrentRecordStreamNum",
    "DescribeLiveCallbackRules",
    "DescribeLiveCallbackTemplate",
    "DescribeLiveCallbackTemplates",
    "DescribeLiveCert",
    "DescribeLiveCerts",
    "DescribeLiveDelayInfoList",
    "DescribeLiveDomain",
    "DescribeLiveDomainCert",
    "DescribeLiveDomainCertBindings",
    "DescribeLiveDomainReferer",
    "DescribeLiveDomains",
    "DescribeLivePlayAuthKey",
    "DescribeLivePullStreamTaskStatus",
    "DescribeLivePullStreamTasks",
    "DescribeLivePushAuthKey",
    "DescribeLiveRecordRules",
    "DescribeLiveRecordTemplate",
    "DescribeLiveRecordTemplates",
    "DescribeLiveSnapshotRules",
    "DescribeLiveSnapshotTemplate",
    "DescribeLiveSnapshotTemplates",
    "DescribeLiveStreamEventList",
    "DescribeLiveStreamOnlineList",
    "DescribeLiveStreamPublishedList",
    "DescribeLiveStreamPushInfoList",
    "DescribeLiveStreamState",
    "DescribeLiveTranscodeRules",
    "DescribeLiveTranscodeTemplate",
    "DescribeLiveTranscodeTemplates",
    "DescribeLiveWatermark",
    "DescribeLiveWatermarkRules",
    "DescribeLiveWatermarks",
    "DescribePullStreamConfigs",
    "DescribePullTransformPushInfo",
    "DescribePullTransformPushInfoList",
    "DescribeRecordTask",
    "DescribeScreenShotSheetNumList",
    "DescribeScreenshotTask",
    "DescribeStreamPushInfoList",
    "DropLiveStream",
    "EnableLiveDomain",
    "EnableOptimalSwitching",
    "ForbidLiveDomain",
    "ForbidLiveStream",
    "InsertTaskTemporaryFiles",
    "ModifyLiveCallbackTemplate",
    "ModifyLiveDomainCertBindings",
    "ModifyLiveDomainReferer",
    "ModifyLivePlayAuthKey",
    "ModifyLivePlayDomain",
    "ModifyLivePullStreamTask",
    "ModifyLivePushAuthKey",
    "ModifyLiveRecordTemplate",
    "ModifyLiveSnapshotTemplate",
    "ModifyLiveTranscodeTemplate",
    "ModifyPullStreamConfig",
    "ModifyPullStreamStatus",
    "RestartLivePullStreamTask",
    "ResumeDelayLiveStream",
    "ResumeLiveStream",
    "StopLiveRecord",
    "StopRecordTask",
    "StopScreenshotTask",
    "SwitchBackupStream",
    "UnBindLiveDomainCert",
    "UpdateLiveWatermark",
];

/// Runs `handler` on `params` and answers its response as a serialized
/// JSON object, straight from the typed value (no `Value` in between).
async fn call<Req, Resp, F, Fut>(cx: Cx, params: Value, handler: F) -> ApiResult<Vec<u8>>
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
    serde_json::to_vec(&resp).map_err(|e| ApiError::internal(ErrorCode::InternalError, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_action_is_a_current_action_of_the_model_and_implemented() {
        assert_eq!(CORE.len(), 105);
        for name in CORE {
            let a = livestack_model::schema::find_action(name);
            assert!(
                a.is_some_and(|a| !a.legacy),
                "{name} is not a current action"
            );
            assert!(
                IMPLEMENTED.contains(name),
                "the core action {name} is not implemented"
            );
        }
    }

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
        let it = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../livestack/tests/it");
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(&it).expect("the integration tests") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let module = path
                    .file_stem()
                    .expect("stem")
                    .to_string_lossy()
                    .into_owned();
                sources.push((module, std::fs::read_to_string(&path).expect("read")));
            }
        }
        sources.sort();
        let (untested, stale) = crate::coverage::seed_gaps(&sources);
        assert!(
            untested.is_empty(),
            "seed codes no test provokes and no line explains: {untested:?}"
        );
        assert!(
            stale.is_empty(),
            "seed codes explained as never answered that a test provokes: {stale:?}"
        );
        let want = crate::coverage::coverage_markdown(&sources);
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
    fn every_implemented_cam_and_sts_action_is_in_its_model() {
        for (table, service) in [
            (CAM_IMPLEMENTED, &livestack_model::schema::CAM),
            (STS_IMPLEMENTED, &livestack_model::schema::STS),
        ] {
            for name in table {
                assert!(
                    service.find_action(name).is_some(),
                    "{name} is not a {} action",
                    service.name
                );
            }
        }
    }

    #[test]
    fn each_implemented_action_finds_its_own_runner_by_its_model_index() {
        use livestack_model::schema::{CAM, LIVE, STS};
        for (service, runners) in [
            (&LIVE, &LIVE_RUNNERS),
            (&CAM, &CAM_RUNNERS),
            (&STS, &STS_RUNNERS),
        ] {
            assert!(std::ptr::eq(runners.service, service));
            assert_eq!(runners.names.len(), runners.runs.len());
            for (name, run) in runners.names.iter().zip(runners.runs) {
                let index = service.action_index(name).expect("in the model");
                let found = runners.get(index);
                assert!(
                    found.is_some_and(|f| std::ptr::fn_addr_eq(f, *run)),
                    "{name} runs another action's handler"
                );
            }
            for (index, action) in service.actions.iter().enumerate() {
                if !runners.names.contains(&action.name) {
                    assert!(runners.get(index).is_none());
                }
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
