//! Domain ownership: `AuthenticateDomainOwner`, and the rule
//! `AddLiveDomain` applies with it ([`needs_verification`]).
//!
//! Owns: a domain's main domain (its registrable domain, from the public
//! suffix list: one proof covers every domain under it, as on CSS), the
//! content an account must publish to prove it controls one (the same
//! for every call, different for every account), and the checks: a TXT
//! record (`dnsCheck`), a file on the domain's web server (`fileCheck`)
//! or a past success (`dbCheck`). Must not: reach a private address (the
//! file is fetched by the API's guarded fetcher).
//!
//! Where CSS puts the record and the file is not in the API's documents;
//! livestack uses `_cssauth.<main domain>` and `http://<domain>/cssauth.html`
//! by default, and the operator can change both (`[api] owner_txt_name`,
//! `owner_file_url`), and the name server asked (`owner_dns_server`).

use livestack_core::AccountId;
use livestack_model::{AuthenticateDomainOwnerRequest, AuthenticateDomainOwnerResponse};
use livestack_store::domains;
use sha2::{Digest, Sha256};

use super::domain::parse_domain_name;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Bytes of a verification file read at most.
const MAX_FILE: usize = 4096;

/// The registrable domain of `name` (`example.com` for
/// `play.example.com`, `example.com.cn` for `a.example.com.cn`); `None`
/// for a public suffix itself or a name under no known suffix.
pub(crate) fn main_domain(name: &str) -> Option<String> {
    psl::domain_str(name).map(str::to_owned)
}

/// What `account` publishes to prove it controls `main`:
/// `cssauth_` and 23 hex digits, as CSS's look.
pub(crate) fn content(account: AccountId, main: &str) -> String {
    let digest = Sha256::digest(format!("livestack domain owner\0{}\0{main}", account.0));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cssauth_{}", &hex[..23])
}

/// Whether `AddLiveDomain` must refuse `name` for `account` until it
/// verifies its main domain: when the operator requires it and another
/// account already has a domain under the same main domain.
pub(crate) fn needs_verification(
    c: &livestack_store::Connection,
    required: bool,
    account: AccountId,
    name: &str,
) -> livestack_store::StoreResult<bool> {
    let Some(main) = main_domain(name).filter(|_| required) else {
        return Ok(false);
    };
    Ok(
        domains::held_by_another(c, account, &main)?
            && !domains::owner_verified(c, account, &main)?,
    )
}

/// Checks (or looks up) that the caller controls the domain's main domain.
pub async fn authenticate_domain_owner(
    cx: Cx,
    req: AuthenticateDomainOwnerRequest,
) -> ApiResult<AuthenticateDomainOwnerResponse> {
    let name = parse_domain_name(req.domain_name.trim())?;
    let main = main_domain(&name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameterDomainFormatError,
            format!("`{name}` is not under a registrable domain (it is a public suffix, or under none)."),
            format!("`{name}` 没有可注册的主域名（本身为公共后缀或不在已知后缀下）。"),
        )
    })?;
    let content = content(cx.account, &main);
    let method = req.verify_type.as_str();
    let proven = match method {
        "dbCheck" => false,
        "dnsCheck" => {
            let record = cx.owner.txt_name.replace("{domain}", &main);
            let found = livestack_net::dns::txt_records(&record, cx.owner.dns_server)
                .await
                .map_err(|e| {
                    tracing::info!("domain owner check: {e}");
                    ApiError::new(
                        ErrorCode::FailedOperation,
                        format!("The TXT record {record} could not be looked up; try again later."),
                        format!("无法查询 TXT 记录 {record}，请稍后重试。"),
                    )
                })?;
            found.iter().any(|t| t.trim() == content)
        }
        "fileCheck" => {
            let url = cx.owner.file_url.replace("{domain}", &name);
            fetch_file(&cx.fetch, &url).await.trim() == content
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("VerifyType must be dnsCheck, fileCheck or dbCheck, not `{other}`."),
                format!("VerifyType 的取值须为 dnsCheck、fileCheck 或 dbCheck，当前为 `{other}`。"),
            ))
        }
    };
    let (account, now, m) = (cx.account, cx.now, main.clone());
    let method = method.to_owned();
    let verified = cx
        .store
        .run(move |c| {
            if proven {
                domains::record_owner(c, account, &m, &method, now)?;
                return Ok(true);
            }
            domains::owner_verified(c, account, &m)
        })
        .await?;
    Ok(AuthenticateDomainOwnerResponse {
        content,
        status: if verified { 0 } else { -1 },
        main_domain: main,
    })
}

/// `url`'s body (at most [`MAX_FILE`] bytes), or nothing when it cannot
/// be fetched (refused, unreachable, not 2xx, too long): then the file
/// does not prove anything.
async fn fetch_file(fetch: &livestack_net::Fetcher, url: &str) -> String {
    match fetch.get_bounded(url, MAX_FILE).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => {
            tracing::info!("domain owner file {url}: {e}");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_main_domain_is_the_registrable_one_and_content_differs_by_account() {
        assert_eq!(
            main_domain("play.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            main_domain("a.b.example.com.cn").as_deref(),
            Some("example.com.cn")
        );
        assert_eq!(
            main_domain("live.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(main_domain("com.cn"), None);
        let a = content(AccountId(1), "example.com");
        assert_eq!(a, content(AccountId(1), "example.com"));
        assert_ne!(a, content(AccountId(2), "example.com"));
        assert_eq!(a.len(), "cssauth_".len() + 23);
    }
}
