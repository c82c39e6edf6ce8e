//! Primary and backup streams (主备流): `DescribeBackupStreamList`,
//! `SwitchBackupStream` and `EnableOptimalSwitching`.
//!
//! Owns: how the media plane's pushes of each stream read on the wire
//! (`MasterFlag`, `UpstreamSequence`, `SourceFrom` with a relay task's
//! TaskId) and the codes of a refused switch. Must not: keep any state:
//! which push feeds the players, and whether optimal switching is on,
//! live in the media plane with the pushes, and end with them (as CSS's
//! "当主备流结束后自动失效").
//!
//! Which push domains take a backup push is the operator's setting
//! (`[media] backup_domains`), as CSS's domain groups are console
//! configuration; elsewhere a second push replaces the first, each
//! stream lists one push, and a switch to it is a no-op.

use livestack_core::media::{StreamKey, SwitchError};
use livestack_model::{
    BackupStreamDetailData, BackupStreamGroupInfo, DescribeBackupStreamListRequest,
    DescribeBackupStreamListResponse, EnableOptimalSwitchingRequest,
    EnableOptimalSwitchingResponse, SwitchBackupStreamRequest, SwitchBackupStreamResponse,
};
use livestack_store::pull_tasks;

use crate::actions::check::{check_enum, dry_run_stop};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::task_id;
use crate::time::utc_iso;

/// Every live stream of the caller (or the one named) with its pushes:
/// the primary (`MasterFlag` 1) first, then its backup.
pub async fn describe_backup_stream_list(
    cx: Cx,
    req: DescribeBackupStreamListRequest,
) -> ApiResult<DescribeBackupStreamListResponse> {
    let name = req
        .stream_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let mut streams = cx.media.pushes(cx.account);
    streams.retain(|s| {
        name.as_deref()
            .is_none_or(|n| s.pushes.first().is_some_and(|p| p.key.stream == n))
    });
    streams.sort_by(|a, b| {
        let key = |s: &livestack_core::media::StreamPushes| {
            s.pushes
                .first()
                .map(|p| (p.key.stream.clone(), p.domain.clone()))
        };
        key(a).cmp(&key(b))
    });
    // A relay task's push names its TaskId.
    let tasks: Vec<i64> = streams
        .iter()
        .flat_map(|s| s.pushes.iter().filter_map(|p| p.relay_task))
        .collect();
    let account = cx.account;
    let task_ids: std::collections::HashMap<i64, String> = cx
        .store
        .run(move |c| {
            let mut out = std::collections::HashMap::new();
            for id in tasks {
                for legacy in [false, true] {
                    if let Some(row) = pull_tasks::find(c, account, legacy, id)? {
                        let public = if legacy {
                            row.id.to_string()
                        } else {
                            task_id(row.id, row.token)
                        };
                        out.insert(id, public);
                    }
                }
            }
            Ok(out)
        })
        .await?;
    let stream_info_list = streams
        .into_iter()
        .filter_map(|s| {
            let stream_name = s.pushes.first()?.key.stream.clone();
            let backup_list = s
                .pushes
                .into_iter()
                .map(|p| BackupStreamDetailData {
                    domain_name: p.domain,
                    app_name: p.key.app,
                    publish_time: utc_iso(p.started),
                    upstream_sequence: p.sequence,
                    source_from: match p.relay_task {
                        Some(t) => format!(
                            "拉流转推({})",
                            task_ids.get(&t).cloned().unwrap_or_else(|| t.to_string())
                        ),
                        None => "直推流".to_owned(),
                    },
                    master_flag: i64::from(p.primary),
                })
                .collect();
            Some(BackupStreamGroupInfo {
                stream_name,
                backup_list,
                optimal_enable: i64::from(s.optimal),
                host_group_name: String::new(),
            })
        })
        .collect();
    Ok(DescribeBackupStreamListResponse { stream_info_list })
}

/// Makes the push with `UpstreamSequence` the one players get, at its
/// next keyframe; the other becomes the backup.
pub async fn switch_backup_stream(
    cx: Cx,
    req: SwitchBackupStreamRequest,
) -> ApiResult<SwitchBackupStreamResponse> {
    let domain = req.push_domain_name.trim().to_ascii_lowercase();
    let key = StreamKey {
        account: cx.account,
        app: req.app_name.trim().to_owned(),
        stream: req.stream_name.trim().to_owned(),
    };
    let sequence = req.upstream_sequence.trim();
    let shown = format!("{domain}/{}/{}", key.app, key.stream);
    dry_run_stop(cx.dry_run)?;
    cx.media
        .switch_push(&key, &domain, sequence)
        .map_err(|e| match e {
            SwitchError::NotLive => ApiError::new(
                ErrorCode::FailedOperation,
                format!("{shown} is not being pushed."),
                format!("{shown} 当前没有推流。"),
            ),
            SwitchError::NoSuchPush => ApiError::new(
                ErrorCode::FailedOperation,
                format!("No push of {shown} has the UpstreamSequence `{sequence}` (DescribeBackupStreamList lists them)."),
                format!("{shown} 没有 UpstreamSequence 为 `{sequence}` 的推流（可用 DescribeBackupStreamList 查询）。"),
            ),
        })?;
    Ok(SwitchBackupStreamResponse {})
}

/// Turns optimal switching of a live stream on or off, until its pushes
/// end.
pub async fn enable_optimal_switching(
    cx: Cx,
    req: EnableOptimalSwitchingRequest,
) -> ApiResult<EnableOptimalSwitchingResponse> {
    let on = check_enum("EnableSwitch", req.enable_switch, &[0, 1])?.unwrap_or(1) == 1;
    let stream = req.stream_name.trim();
    dry_run_stop(cx.dry_run)?;
    if !cx.media.set_optimal_switching(cx.account, stream, on) {
        return Err(ApiError::new(
            ErrorCode::ResourceNotFound,
            format!("The stream `{stream}` is not being pushed: optimal switching is set on a live stream and ends with it."),
            format!("流 `{stream}` 当前没有推流：择优调度针对在推的流开启，主备流结束后自动失效。"),
        ));
    }
    Ok(EnableOptimalSwitchingResponse {})
}
