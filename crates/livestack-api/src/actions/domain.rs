//! Live domains: `DescribeLiveDomains` (the rest of the family arrives with
//! the domain issue).

use livestack_model::{DescribeLiveDomainsRequest, DescribeLiveDomainsResponse, DomainInfo};
use livestack_store::domains::{self, Domain, DomainFilter};

use crate::dispatch::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How many domains one account may have (`FailedOperation.HostOutLimit`).
pub const DOMAIN_QUOTA: u64 = 100;

/// `InvalidParameterValue` unless `value` is in `allowed`.
pub(crate) fn check_enum(
    name: &str,
    value: Option<i64>,
    allowed: &[i64],
) -> ApiResult<Option<i64>> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be one of {allowed:?}, not {v}."),
            format!("{name} 的取值须为 {allowed:?} 之一，当前为 {v}。"),
        )),
        other => Ok(other),
    }
}

/// `InvalidParameterValue` unless `value` is within `min..=max`.
pub(crate) fn check_range(name: &str, value: i64, min: i64, max: i64) -> ApiResult<i64> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be between {min} and {max}, not {value}."),
            format!("{name} 的取值范围为 {min}~{max}，当前为 {value}。"),
        ))
    }
}

/// Lists the caller's domains, filtered and paged.
pub async fn describe_live_domains(
    cx: Cx,
    req: DescribeLiveDomainsRequest,
) -> ApiResult<DescribeLiveDomainsResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(10, to_i64), 10, 100)?;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, 100_000)?;
    let filter = DomainFilter {
        status: check_enum("DomainStatus", req.domain_status.map(to_i64), &[0, 1])?,
        domain_type: check_enum("DomainType", req.domain_type.map(to_i64), &[0, 1])?,
        is_delay_live: check_enum("IsDelayLive", req.is_delay_live.map(to_i64), &[0, 1])?,
        play_type: check_enum("PlayType", req.play_type.map(to_i64), &[1, 2, 3])?,
        prefix: req.domain_prefix.filter(|p| !p.is_empty()),
    };
    let account = cx.account;
    let offset = (page_num as u64 - 1) * page_size as u64;
    let (total, rows, owned, play_type_count) = cx
        .store
        .run(move |c| {
            let (total, rows) = domains::list(c, account, &filter, offset, page_size as u64)?;
            let owned = domains::count(c, account)?;
            let by_area = domains::enabled_play_domains_by_area(c, account)?;
            Ok((total, rows, owned, by_area))
        })
        .await?;
    Ok(DescribeLiveDomainsResponse {
        all_count: total,
        domain_list: rows.into_iter().map(domain_info).collect(),
        create_limit_count: DOMAIN_QUOTA.saturating_sub(owned) as i64,
        play_type_count: play_type_count.to_vec(),
    })
}

/// A stored domain on the wire.
pub(crate) fn domain_info(d: Domain) -> DomainInfo {
    DomainInfo {
        name: d.name.clone(),
        r#type: d.domain_type as u64,
        status: d.status as u64,
        create_time: crate::time::beijing(d.created_at),
        bc_name: 0,
        target_domain: d.name.clone(),
        play_type: d.play_type,
        is_delay_live: d.is_delay_live,
        current_c_name: d.name,
        rent_tag: 0,
        rent_expire_time: "0000-00-00 00:00:00".to_owned(),
        is_mini_program_live: d.is_mini_program_live,
    }
}

fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}
