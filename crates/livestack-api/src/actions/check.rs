//! The validators every action family shares.
//!
//! Owns: the checks of enumerations, ranges and switches and the error
//! each gives (`InvalidParameterValue`, `InternalError.InvalidInput`), the
//! checks of stream names and push domains that tasks of every kind make,
//! the dry-run stop, and how a bad value is shown back in a message. Must not: know any one
//! family's rules (those stay in the family's module).

use crate::error::{ApiError, ApiResult, ErrorCode};
use livestack_store::Connection;
use livestack_store::{domains, StoreResult};

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

/// An unsigned wire integer as i64 (values past i64 saturate, and fail
/// any range check after).
pub(crate) fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// An error with the same message under another code: the per-action
/// codes of `spec/live-action-errors.json` for the same failure.
pub(crate) fn recode(e: ApiError, code: ErrorCode) -> ApiError {
    ApiError { code, ..e }
}

/// `InternalError.InvalidInput`: a text parameter breaks its documented rules.
pub(crate) fn invalid_input(en: String, zh: String) -> ApiError {
    ApiError::new(ErrorCode::InternalErrorInvalidInput, en, zh)
}

/// A bucket and its region as a template names them: the bucket by S3's
/// rules ([`livestack_core::naming::check_bucket`]; it becomes a host name
/// and a path level), the region as lower-case letters, digits and `-`.
/// `InternalError.InvalidInput` otherwise, as the template actions document.
pub(crate) fn check_bucket(
    bucket_field: &str,
    bucket: &str,
    region_field: &str,
    region: &str,
) -> ApiResult<()> {
    if let Err(why) = livestack_core::naming::check_bucket(bucket) {
        let value = shown(bucket);
        return Err(invalid_input(
            format!("{bucket_field} `{value}` is not a bucket name: {why}."),
            format!("{bucket_field} `{value}` 不是合法的存储桶名称：仅支持小写字母、数字、- 与 .，长度 3~63，须以字母或数字开头和结尾。"),
        ));
    }
    let region_ok = (1..=63).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        let value = shown(region);
        return Err(invalid_input(
            format!("{region_field} `{value}` is not a region name (lower-case letters, digits and `-`)."),
            format!("{region_field} `{value}` 不是合法的地域名称（仅支持小写字母、数字与 -）。"),
        ));
    }
    Ok(())
}

/// A client's value as a message shows it: at most 64 characters, then
/// how long it was.
pub(crate) fn shown(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        None => value.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &value[..end], value.len()),
    }
}

/// `InvalidParameterValue` for a value outside its documented set.
pub(crate) fn not_one_of(name: &str, value: &str, allowed: &[&str]) -> ApiError {
    let list = allowed.join(", ");
    let value = shown(value);
    ApiError::new(
        ErrorCode::InvalidParameterValue,
        format!("{name} must be one of {list}, not `{value}`."),
        format!("{name} 的取值须为 {list} 之一，当前为 `{value}`。"),
    )
}

/// An optional 0/1 switch.
pub(crate) fn flag(name: &str, value: Option<i64>) -> ApiResult<Option<bool>> {
    Ok(check_enum(name, value, &[0, 1])?.map(|v| v == 1))
}

/// A non-negative integer within `min..=max` (`InvalidParameterValue`).
pub(crate) fn ranged(name: &str, value: i64, min: u32, max: u32) -> ApiResult<u32> {
    check_range(name, value, i64::from(min), i64::from(max))
        .map(|v| u32::try_from(v).unwrap_or(max))
}

/// Whether `value` is at most 256 of the characters a stream or app name
/// may hold: letters, digits, `_`, `-` and `.`.
pub(crate) fn name_chars(value: &str) -> bool {
    value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// An AppName or StreamName a push could use: 1 to 256 letters, digits,
/// `_`, `-` and `.`.
pub(crate) fn check_name(code: ErrorCode, label: &str, value: &str) -> ApiResult<()> {
    if !value.is_empty() && name_chars(value) {
        Ok(())
    } else {
        Err(ApiError::new(
            code,
            format!("{label} `{value}` must be 1 to 256 letters, digits, `_`, `-` or `.`."),
            format!("{label} `{value}` 须为 1~256 个字母、数字、_、-、. 组成的名称。"),
        ))
    }
}

/// Whether `domain` (lower-case) is one of the caller's push domains.
pub(crate) fn is_push_domain(
    c: &Connection,
    account: livestack_core::AccountId,
    domain: &str,
) -> StoreResult<bool> {
    Ok(domains::find(c, account, domain)?
        .is_some_and(|d| d.kind == livestack_core::DomainKind::Push))
}

pub(crate) fn not_push_domain(domain: &str, code: ErrorCode) -> ApiError {
    ApiError::new(
        code,
        format!("`{domain}` is not a push domain of this account."),
        format!("`{domain}` 不是本账号的推流域名。"),
    )
}

/// Checks, in a transaction, that `domain` (lower-case) is one of the
/// caller's push domains.
pub(crate) fn check_push_domain(
    c: &Connection,
    account: livestack_core::AccountId,
    domain: &str,
    code: ErrorCode,
) -> ApiResult<()> {
    if is_push_domain(c, account, domain)? {
        Ok(())
    } else {
        Err(not_push_domain(domain, code))
    }
}

/// `DryRunOperation` once a dry run has passed every check.
pub(crate) fn dry_run_stop(dry_run: bool) -> ApiResult<()> {
    if dry_run {
        Err(ApiError::bare(ErrorCode::DryRunOperation))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_shown_cut_with_its_length() {
        assert_eq!(shown("short"), "short");
        let long = "x".repeat(10_000);
        let s = shown(&long);
        assert!(
            s.starts_with(&"x".repeat(64)) && s.ends_with("… (10000 bytes)"),
            "{s}"
        );
    }

    #[test]
    fn no_message_grows_with_the_value_it_echoes() {
        let e = not_one_of("Format", &"名".repeat(1_000_000), &["a", "b"]);
        assert!(e.message(crate::error::Lang::En).len() < 1024);
        let e = ApiError::new(ErrorCode::InvalidParameterValue, "x".repeat(9 << 20), "y");
        let en = e.message(crate::error::Lang::En);
        assert!(
            en.len() < 1024 && en.ends_with(&format!("({} bytes)", 9 << 20)),
            "{en}"
        );
    }
}
