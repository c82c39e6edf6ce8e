//! The public ids the API hands out: TaskIds and ScrollTokens.
//!
//! Owns: their encoding (base 62, the row id hidden behind the task's
//! random token) and decoding. Shared by the task actions and the policy
//! (record callbacks carry the TaskId the create call returned). Must not:
//! read the store.

use livestack_store::tasks::TaskRow;

use crate::error::{ApiError, ApiResult, ErrorCode};

pub(crate) const CHUNK: usize = 11;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn push_base62(mut v: u64, out: &mut String) {
    let mut digits = [0u8; CHUNK];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out.extend(digits.iter().map(|&b| char::from(b)));
}

fn parse_base62(s: &str) -> Option<u64> {
    s.bytes().try_fold(0u64, |acc, b| {
        let d = ALPHABET.iter().position(|&a| a == b)? as u64;
        acc.checked_mul(62)?.checked_add(d)
    })
}

/// Hides the row id in the TaskId behind the task's token, so TaskIds look
/// alike and reveal nothing of how many tasks there are.
fn mask(token: i64) -> u64 {
    (token as u64).rotate_left(29) ^ 0x5bd1_e995_9e37_79b9
}

/// The public TaskId of a current task: 22 letters and digits, from which
/// the row id and its random token are read back. A TaskId of another
/// account names a row that is not the caller's, and one made up without
/// the token names no row at all: both are "not there".
pub(crate) fn task_id(id: i64, token: i64) -> String {
    let mut out = String::with_capacity(2 * CHUNK);
    push_base62((id as u64) ^ mask(token), &mut out);
    push_base62(token as u64, &mut out);
    out
}

/// The id a caller was given for the task `row`: the TaskId of a current
/// task ([`task_id`]), the integer TaskId of a legacy one
/// (`CreateLiveRecord` answers the row id).
pub(crate) fn public_task_id(row: &TaskRow) -> String {
    if row.task.legacy.is_some() {
        row.task.id.to_string()
    } else {
        task_id(row.task.id, row.token)
    }
}

/// The row id and token of a TaskId made by [`task_id`].
pub(crate) fn parse_task_id(s: &str) -> Option<(i64, i64)> {
    if s.len() != 2 * CHUNK || !s.is_ascii() {
        return None;
    }
    let token = parse_base62(&s[CHUNK..])? as i64;
    let id = (parse_base62(&s[..CHUNK])? ^ mask(token)) as i64;
    (id > 0 && token != 0).then_some((id, token))
}

/// The ScrollToken of the page after the task with row id `last`.
pub(crate) fn scroll_token(last: i64) -> String {
    let mut out = String::with_capacity(CHUNK);
    push_base62((last as u64) ^ 0x2545_f491_4f6c_dd1d, &mut out);
    out
}

pub(crate) fn parse_scroll_token(s: &str) -> ApiResult<i64> {
    if s.is_empty() {
        return Ok(0);
    }
    match (s.len() == CHUNK)
        .then(|| parse_base62(s))
        .flatten()
        .map(|v| (v ^ 0x2545_f491_4f6c_dd1d) as i64)
    {
        Some(id) if id > 0 => Ok(id),
        _ => Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("ScrollToken `{s}` is not one this API returned."),
            format!("ScrollToken `{s}` 无效，请使用上一页返回的值。"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_read_back_and_reject_anything_else() {
        for (id, token) in [(1, 1), (42, -7), (i64::MAX, i64::MIN), (1001, 0x1234_5678)] {
            let s = task_id(id, token);
            assert_eq!(s.len(), 22);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
            assert_eq!(parse_task_id(&s), Some((id, token)), "{s}");
        }
        assert_ne!(
            &task_id(1, 99)[..CHUNK],
            &task_id(2, 99)[..CHUNK],
            "ids differ"
        );
        for bad in [
            "",
            "1",
            "1234567",
            &"z".repeat(22),
            &"0".repeat(22),
            "UpTbk5RSVhRQFkAAfHwQ-C",
        ] {
            assert_eq!(parse_task_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn scroll_tokens_read_back() {
        assert_eq!(parse_scroll_token("").ok(), Some(0));
        assert_eq!(parse_scroll_token(&scroll_token(77)).ok(), Some(77));
        assert!(parse_scroll_token("nonsense").is_err());
    }
}
