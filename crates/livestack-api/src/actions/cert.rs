//! HTTPS certificates of play domains: the legacy certificate actions
//! (`CreateLiveCert`, `ModifyLiveCert`, `DeleteLiveCert`,
//! `DescribeLiveCert(s)`, `BindLiveDomainCert`, `ModifyLiveDomainCert`,
//! `UnBindLiveDomainCert`, `DescribeLiveDomainCert`) and the current ones
//! (`ModifyLiveDomainCertBindings`, `DescribeLiveDomainCertBindings`).
//!
//! Owns: reading PEM chains and private keys (x509-parser for the chain,
//! its names and expiry; rustls with the ring provider for the key and the
//! key/certificate match, exactly as the HTTPS listener will load them),
//! matching a certificate's names against a domain, and the choice of
//! error code for each problem. livestack is its own certificate manager:
//! a CloudCertId names a certificate in its store, never Tencent SSL.
//!
//! Must not: put a private key in a response, an error message or a log
//! line. The store's `Certificate` has no key field, so no Describe action
//! can return one; chains are stored re-encoded from their DER, so stray
//! text pasted around the PEM blocks is not echoed back either.

use base64::Engine as _;
use livestack_model::{
    BatchDomainOperateErrors, BindLiveDomainCertRequest, BindLiveDomainCertResponse, CertInfo,
    CreateLiveCertRequest, CreateLiveCertResponse, DeleteLiveCertRequest, DeleteLiveCertResponse,
    DescribeLiveCertRequest, DescribeLiveCertResponse, DescribeLiveCertsRequest,
    DescribeLiveCertsResponse, DescribeLiveDomainCertBindingsRequest,
    DescribeLiveDomainCertBindingsResponse, DescribeLiveDomainCertRequest,
    DescribeLiveDomainCertResponse, DomainCertInfo, LiveDomainCertBindings, ModifyLiveCertRequest,
    ModifyLiveCertResponse, ModifyLiveDomainCertBindingsRequest,
    ModifyLiveDomainCertBindingsResponse, ModifyLiveDomainCertRequest,
    ModifyLiveDomainCertResponse, UnBindLiveDomainCertRequest, UnBindLiveDomainCertResponse,
};
use livestack_store::certs::{
    self, Binding, BindingFilter, BindingOrder, CertChange, Certificate, Material, NewCertificate,
    PrivateKeyPem,
};
use livestack_store::domains;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::check::to_i64;
use crate::actions::check::check_enum;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// `CertType` of a certificate the user uploaded.
const OWN: i64 = 0;
/// `CertType` of a hosted certificate (named by a CloudCertId).
const HOSTED: i64 = 1;
/// Rows `DescribeLiveDomainCertBindings` returns without a `Length`.
const DEFAULT_PAGE: i64 = 50;

// ---------------------------------------------------------------------------
// Reading certificates and keys
// ---------------------------------------------------------------------------

/// Why a certificate or key was refused; [`ApiError::from`] picks the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertProblem {
    /// Not a certificate chain, or not a usable private key
    /// (`InternalError.CrtDateNotLegal`).
    NotLegal {
        /// What is wrong, in English.
        en: String,
        /// What is wrong, in Chinese.
        zh: String,
    },
    /// The leaf's notAfter has passed (`InternalError.CrtDateOverdue`).
    Expired {
        /// The leaf's notAfter (Unix seconds).
        at: i64,
    },
    /// The key does not belong to the leaf (`InternalError.CrtKeyNotMatch`).
    KeyMismatch,
}

fn not_legal(en: impl Into<String>, zh: impl Into<String>) -> CertProblem {
    CertProblem::NotLegal {
        en: en.into(),
        zh: zh.into(),
    }
}

impl From<CertProblem> for ApiError {
    fn from(p: CertProblem) -> ApiError {
        match p {
            CertProblem::NotLegal { en, zh } => {
                ApiError::new(ErrorCode::InternalErrorCrtDateNotLegal, en, zh)
            }
            CertProblem::Expired { at } => {
                let when = crate::time::beijing(at);
                ApiError::new(
                    ErrorCode::InternalErrorCrtDateOverdue,
                    format!("The certificate expired at {when} (Beijing time)."),
                    format!("证书已于 {when}（北京时间）过期。"),
                )
            }
            CertProblem::KeyMismatch => ApiError::new(
                ErrorCode::InternalErrorCrtKeyNotMatch,
                "The private key does not belong to the certificate (the first one of the chain).",
                "私钥与证书（证书链中的第一个证书）不匹配。",
            ),
        }
    }
}

/// One PEM section of any kind rustls-pki-types knows, so that a chain
/// can be checked for blocks that are not certificates.
struct Section(SectionKind, Vec<u8>);

impl PemObject for Section {
    fn from_pem(kind: SectionKind, der: Vec<u8>) -> Option<Section> {
        Some(Section(kind, der))
    }
}

/// A certificate chain that parsed, leaf first.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    ders: Vec<CertificateDer<'static>>,
    /// The DNS names the leaf covers, lower-case.
    pub(crate) names: Vec<String>,
    /// The leaf's notAfter (Unix seconds).
    pub(crate) expires_at: i64,
}

impl Chain {
    /// The chain as PEM, re-encoded from the DER that was checked.
    fn pem(&self) -> String {
        self.ders
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der.as_ref()))
            .collect()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads a PEM certificate chain: one or more `CERTIFICATE` blocks, leaf
/// first, each issued by the next; nothing else (a private key pasted
/// here would be echoed by every Describe action).
pub(crate) fn parse_chain(pem: &str) -> Result<Chain, CertProblem> {
    let mut ders = Vec::new();
    for section in Section::pem_slice_iter(pem.as_bytes()) {
        let Ok(Section(kind, der)) = section else {
            return Err(not_legal(
                "The certificate is not well-formed PEM.",
                "证书不是合法的 PEM 格式。",
            ));
        };
        if kind != SectionKind::Certificate {
            return Err(not_legal(
                "The certificate field may only hold CERTIFICATE blocks; the private key goes in its own field.",
                "证书内容只能包含 CERTIFICATE 块，私钥请填写在私钥参数中。",
            ));
        }
        ders.push(CertificateDer::from(der));
    }
    if ders.is_empty() {
        return Err(not_legal(
            "The certificate holds no PEM CERTIFICATE block.",
            "证书内容中没有 PEM 格式的 CERTIFICATE 块。",
        ));
    }
    let mut parsed = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der.as_ref()) {
            Ok(([], cert)) => parsed.push(cert),
            _ => {
                return Err(not_legal(
                    format!(
                        "Certificate {} of the chain is not a valid X.509 certificate.",
                        i + 1
                    ),
                    format!("证书链中的第 {} 个证书不是合法的 X.509 证书。", i + 1),
                ))
            }
        }
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            return Err(not_legal(
                format!(
                    "Certificate {} of the chain was not issued by certificate {}: put the leaf first, then each issuer.",
                    i + 1,
                    i + 2
                ),
                format!(
                    "证书链中的第 {} 个证书不是由第 {} 个证书签发的：请按“服务器证书、中间证书”的顺序排列。",
                    i + 1,
                    i + 2
                ),
            ));
        }
    }
    let leaf = &parsed[0];
    let names = leaf_names(leaf)?;
    let expires_at = leaf.validity().not_after.timestamp();
    drop(parsed);
    Ok(Chain {
        ders,
        names,
        expires_at,
    })
}

/// The DNS names of the leaf: its SAN DNS entries, or its CN when it has
/// none (RFC 6125 §6.4.4: a client ignores the CN when SANs are present).
fn leaf_names(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<String>, CertProblem> {
    use x509_parser::extensions::GeneralName;
    let mut names: Vec<String> = Vec::new();
    match leaf.subject_alternative_name() {
        Ok(Some(san)) => {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    add_name(&mut names, n);
                }
            }
        }
        Ok(None) => {}
        Err(_) => {
            return Err(not_legal(
                "The certificate's subjectAltName extension is malformed.",
                "证书的 subjectAltName 扩展格式错误。",
            ))
        }
    }
    if names.is_empty() {
        if let Some(cn) = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            add_name(&mut names, cn);
        }
    }
    Ok(names)
}

fn add_name(names: &mut Vec<String>, name: &str) {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if !name.is_empty() && !names.contains(&name) {
        names.push(name);
    }
}

/// Reads exactly one unencrypted PEM private key (PKCS#8, PKCS#1 RSA or
/// SEC1 EC). Messages never quote the input.
pub(crate) fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, CertProblem> {
    let mut keys = PrivateKeyDer::pem_slice_iter(pem.as_bytes());
    let Some(Ok(key)) = keys.next() else {
        return Err(not_legal(
            "The private key is not an unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY).",
            "私钥不是未加密的 PEM 格式私钥（PRIVATE KEY、RSA PRIVATE KEY 或 EC PRIVATE KEY）。",
        ));
    };
    if keys.next().is_some() {
        return Err(not_legal(
            "The private key field holds more than one private key.",
            "私钥内容中包含多个私钥。",
        ));
    }
    Ok(key)
}

/// The key as PEM, re-encoded from the DER that was checked.
fn key_pem(key: &PrivateKeyDer<'_>) -> PrivateKeyPem {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    PrivateKeyPem::new(pem_encode(label, key.secret_der()))
}

/// Checks that `key` belongs to the leaf of `chain`: rustls loads the key
/// with the ring provider (as the HTTPS listener will) and compares its
/// SubjectPublicKeyInfo with the leaf's.
pub(crate) fn check_key_matches(chain: &Chain, key: &PrivateKeyDer<'_>) -> Result<(), CertProblem> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key).map_err(|_| {
        not_legal(
            "The private key is malformed or of an unsupported type (RSA, ECDSA P-256/P-384 and Ed25519 are supported).",
            "私钥格式错误或类型不受支持（支持 RSA、ECDSA P-256/P-384 和 Ed25519）。",
        )
    })?;
    let certified = CertifiedKey::new(chain.ders.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertProblem::KeyMismatch),
        // The leaf parsed for x509-parser but not for webpki: rustls could
        // not serve it, so it is no certificate livestack can use.
        Err(_) => Err(not_legal(
            "The certificate cannot be used for TLS (its encoding is rejected by the TLS stack).",
            "证书无法用于 TLS（TLS 协议栈拒绝该证书编码）。",
        )),
    }
}

/// Checks a chain and its key, as uploaded at `now`, and turns them into
/// what the store keeps.
pub(crate) fn check_material(crt: &str, key: &str, now: i64) -> Result<Material, CertProblem> {
    let chain = parse_chain(crt)?;
    let key = parse_key(key)?;
    if chain.expires_at < now {
        return Err(CertProblem::Expired {
            at: chain.expires_at,
        });
    }
    check_key_matches(&chain, &key)?;
    Ok(Material {
        chain_pem: chain.pem(),
        key_pem: key_pem(&key),
        names: chain.names,
        expires_at: chain.expires_at,
    })
}

/// Whether a certificate for `names` covers `domain`: an exact name, or a
/// `*.` wildcard standing for exactly one leftmost label (`*.example.com`
/// covers `a.example.com`, not `example.com` nor `a.b.example.com`).
pub(crate) fn covers(names: &[String], domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        if *name == domain {
            return true;
        }
        let Some(suffix) = name.strip_prefix("*.") else {
            return false;
        };
        // A wildcard over a single label (`*.com`) covers nothing.
        if !suffix.contains('.') {
            return false;
        }
        domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
    })
}

// ---------------------------------------------------------------------------
// Shared checks and conversions
// ---------------------------------------------------------------------------

/// An optional string parameter; an empty one counts as absent.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A domain name as a lookup key (names are stored lower-case).
fn lookup_name(raw: &str) -> String {
    raw.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `InvalidParameterValue` for a negative count (no upper bound is
/// documented, and an account's rows are few).
fn non_negative(name: &str, value: i64) -> ApiResult<u64> {
    u64::try_from(value).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must not be negative, not {value}."),
            format!("{name} 不能为负数，当前为 {value}。"),
        )
    })
}

fn missing(name: &str, why: &str, why_zh: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        format!("The parameter `{name}` is required {why}."),
        format!("{why_zh}，必须传入参数 `{name}`。"),
    )
}

fn cert_missing(id: i64) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorCrtDateNotFound,
        format!("There is no certificate with CertId {id}."),
        format!("证书 {id} 不存在。"),
    )
}

fn no_binding(domain: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorCrtDateNotFound,
        format!("No certificate is bound to the domain `{domain}`."),
        format!("域名 `{domain}` 未绑定证书。"),
    )
}

fn not_covered(domain: &str, names: &[String]) -> ApiError {
    let names = names.join(", ");
    ApiError::new(
        ErrorCode::InternalErrorCrtDomainNotFound,
        format!("The certificate does not cover the domain `{domain}`; it covers: {names}."),
        format!("证书不包含域名 `{domain}`，证书包含的域名为：{names}。"),
    )
}

fn expired(cert: &Certificate, now: i64) -> ApiResult<()> {
    if cert.expires_at < now {
        Err(CertProblem::Expired {
            at: cert.expires_at,
        }
        .into())
    } else {
        Ok(())
    }
}

/// Checks the lookup of `name` among the caller's domains: certificates
/// are bound to existing domains only (`InternalError.CrtDomainNotFound`):
/// play domains serve them over HTTPS and RTMPS, push domains over RTMPS
/// (CSS takes RTMPS pushes with the push domain's certificate).
fn bindable_domain(found: Option<domains::Domain>, name: &str) -> ApiResult<()> {
    match found {
        None => Err(ApiError::new(
            ErrorCode::InternalErrorCrtDomainNotFound,
            format!("The domain `{name}` does not exist."),
            format!("域名 `{name}` 不存在。"),
        )),
        Some(_) => Ok(()),
    }
}

fn cert_info(c: Certificate, domain_list: Vec<String>) -> CertInfo {
    CertInfo {
        cert_id: c.id,
        cert_name: c.name,
        description: c.description,
        create_time: crate::time::beijing_iso(c.created_at),
        https_crt: c.chain_pem,
        cert_type: c.cert_type,
        cert_expire_time: crate::time::beijing_iso(c.expires_at),
        domain_list,
    }
}

fn domain_cert_info(b: Binding) -> DomainCertInfo {
    DomainCertInfo {
        cert_id: b.cert.id,
        cert_name: b.cert.name,
        description: b.cert.description,
        create_time: crate::time::beijing_iso(b.cert.created_at),
        https_crt: b.cert.chain_pem,
        cert_type: b.cert.cert_type,
        cert_expire_time: crate::time::beijing_iso(b.cert.expires_at),
        domain_name: b.domain_name,
        status: i64::from(b.https_enabled),
        cert_domains: b.cert.names,
        cloud_cert_id: b.cert.cloud_id,
    }
}

fn binding_row(b: Binding) -> LiveDomainCertBindings {
    LiveDomainCertBindings {
        domain_name: b.domain_name,
        certificate_alias: b.cert.name,
        cert_type: b.cert.cert_type,
        status: i64::from(b.https_enabled),
        cert_expire_time: crate::time::beijing(b.cert.expires_at),
        cert_id: b.cert.id,
        cloud_cert_id: b.cert.cloud_id,
        update_time: Some(crate::time::beijing(b.updated_at)),
    }
}

// ---------------------------------------------------------------------------
// Certificates (legacy actions)
// ---------------------------------------------------------------------------

/// Adds a certificate. `CertType` 0 needs `HttpsCrt` and `HttpsKey`;
/// `CertType` 1 names an already stored certificate by `CloudCertId`
/// (whose CertId is answered: livestack keeps one record per
/// certificate) or, without one, uploads `HttpsCrt`/`HttpsKey` as a hosted
/// certificate.
pub async fn create_live_cert(
    cx: Cx,
    req: CreateLiveCertRequest,
) -> ApiResult<CreateLiveCertResponse> {
    let cert_type =
        check_enum("CertType", Some(to_i64(req.cert_type)), &[OWN, HOSTED])?.unwrap_or(OWN);
    let account = cx.account;
    if let (HOSTED, Some(cloud_id)) = (cert_type, given(req.cloud_cert_id)) {
        let found = cx
            .store
            .run(move |c| certs::find_by_cloud_id(c, account, &cloud_id))
            .await?;
        let cert = found.ok_or_else(cloud_id_missing)?;
        cx.commit_point()?;
        return Ok(CreateLiveCertResponse {
            cert_id: Some(cert.id),
        });
    }
    let why = if cert_type == OWN {
        ("for CertType 0", "证书类型为 0 时")
    } else {
        (
            "for CertType 1 without CloudCertId",
            "证书类型为 1 且未传 CloudCertId 时",
        )
    };
    let crt = given(req.https_crt).ok_or_else(|| missing("HttpsCrt", why.0, why.1))?;
    let key = given(req.https_key).ok_or_else(|| missing("HttpsKey", why.0, why.1))?;
    let material = check_material(&crt, &key, cx.now)?;
    cx.commit_point()?;
    let new = NewCertificate {
        account_id: account,
        name: req.cert_name.unwrap_or_default(),
        description: req.description.unwrap_or_default(),
        cert_type,
        material,
        now: cx.now,
    };
    let cert = cx.store.run(move |c| certs::insert(c, &new)).await?;
    Ok(CreateLiveCertResponse {
        cert_id: Some(cert.id),
    })
}

fn cloud_id_missing() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterCloudCrtIdError,
        "There is no certificate with this CloudCertId.",
        "该 CloudCertId 对应的证书不存在。",
    )
}

/// Changes a certificate's name, description, type, or chain and key. A
/// new chain is checked against the stored key and a new key against the
/// stored chain when only one of them is given, and the result must still
/// cover every domain the certificate is bound to.
pub async fn modify_live_cert(
    cx: Cx,
    req: ModifyLiveCertRequest,
) -> ApiResult<ModifyLiveCertResponse> {
    // The legacy model types this CertId as a string, unlike its siblings.
    let id: i64 = req.cert_id.trim().parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "CertId must be a certificate id (a number), not `{}`.",
                req.cert_id
            ),
            format!("CertId 须为证书 Id（数字），当前为 `{}`。", req.cert_id),
        )
    })?;
    let cert_type = check_enum("CertType", req.cert_type.map(to_i64), &[OWN, HOSTED])?;
    let new_crt = given(req.https_crt);
    let new_key = given(req.https_key);
    let mut change = CertChange {
        name: req.cert_name,
        description: req.description,
        cert_type,
        material: None,
    };
    let (store, outer) = (cx.store.clone(), cx.clone());
    let resp = store
        .transaction::<_, ApiError, _>(move |c| {
            let account = cx.account;
            let current = certs::get(c, account, id)?.ok_or_else(|| cert_missing(id))?;
            if new_crt.is_some() || new_key.is_some() {
                let crt = new_crt.unwrap_or_else(|| current.chain_pem.clone());
                let key = match new_key {
                    Some(key) => key,
                    None => certs::private_key(c, account, id)?
                        .ok_or_else(|| cert_missing(id))?
                        .expose()
                        .to_owned(),
                };
                let material = check_material(&crt, &key, cx.now)?;
                for domain in certs::domains_of(c, account, id)? {
                    if !covers(&material.names, &domain) {
                        return Err(not_covered(&domain, &material.names));
                    }
                }
                change.material = Some(material);
            }
            cx.commit_point()?;
            certs::update(c, account, id, &change, cx.now)?;
            Ok(ModifyLiveCertResponse {})
        })
        .await?;
    // The media plane serves HTTPS from its policy snapshot.
    outer.publish_policy().await?;
    Ok(resp)
}

/// Deletes a certificate no domain uses (`InternalError.CrtDateInUsing`
/// otherwise: unbind it first).
pub async fn delete_live_cert(
    cx: Cx,
    req: DeleteLiveCertRequest,
) -> ApiResult<DeleteLiveCertResponse> {
    let id = req.cert_id;
    let store = cx.store.clone();
    store
        .transaction(move |c| {
            let account = cx.account;
            if certs::get(c, account, id)?.is_none() {
                return Err(cert_missing(id));
            }
            let used_by = certs::domains_of(c, account, id)?;
            if !used_by.is_empty() {
                let list = used_by.join(", ");
                return Err(ApiError::new(
                    ErrorCode::InternalErrorCrtDateInUsing,
                    format!("Certificate {id} is bound to {list}; unbind it first."),
                    format!("证书 {id} 正在被域名 {list} 使用，请先解绑。"),
                ));
            }
            cx.commit_point()?;
            certs::delete(c, account, id)?;
            Ok(DeleteLiveCertResponse {})
        })
        .await
}

/// Describes one certificate (never its private key).
pub async fn describe_live_cert(
    cx: Cx,
    req: DescribeLiveCertRequest,
) -> ApiResult<DescribeLiveCertResponse> {
    let (account, id) = (cx.account, req.cert_id);
    let found = cx
        .store
        .run(move |c| {
            let Some(cert) = certs::get(c, account, id)? else {
                return Ok(None);
            };
            let domains = certs::domains_of(c, account, id)?;
            Ok(Some((cert, domains)))
        })
        .await?;
    let (cert, domains) = found.ok_or_else(|| cert_missing(id))?;
    Ok(DescribeLiveCertResponse {
        cert_info: cert_info(cert, domains),
    })
}

/// Lists the caller's certificates (never their private keys).
pub async fn describe_live_certs(
    cx: Cx,
    _req: DescribeLiveCertsRequest,
) -> ApiResult<DescribeLiveCertsResponse> {
    let account = cx.account;
    let rows = cx
        .store
        .run(move |c| {
            let mut rows = Vec::new();
            for cert in certs::list(c, account)? {
                let domains = certs::domains_of(c, account, cert.id)?;
                rows.push((cert, domains));
            }
            Ok(rows)
        })
        .await?;
    Ok(DescribeLiveCertsResponse {
        cert_info_set: rows
            .into_iter()
            .map(|(cert, domains)| cert_info(cert, domains))
            .collect(),
    })
}

// ---------------------------------------------------------------------------
// Domain bindings (legacy actions)
// ---------------------------------------------------------------------------

/// Checks that `domain` (looked up as `found`) is a play domain that the
/// certificate covers, and that the certificate has not expired.
fn bindable(
    c: &Certificate,
    domain: &str,
    found: Option<domains::Domain>,
    now: i64,
) -> ApiResult<()> {
    bindable_domain(found, domain)?;
    if !covers(&c.names, domain) {
        return Err(not_covered(domain, &c.names));
    }
    expired(c, now)
}

/// Binds a certificate to a play domain, replacing any certificate it had.
/// `Status` (HTTPS on or off) defaults to 1: a certificate is bound to
/// serve HTTPS.
pub async fn bind_live_domain_cert(
    cx: Cx,
    req: BindLiveDomainCertRequest,
) -> ApiResult<BindLiveDomainCertResponse> {
    let https = check_enum("Status", req.status, &[0, 1])?.unwrap_or(1) == 1;
    let domain = lookup_name(&req.domain_name);
    let id = req.cert_id;
    let (store, outer) = (cx.store.clone(), cx.clone());
    let resp = store
        .transaction::<_, ApiError, _>(move |c| {
            let account = cx.account;
            let cert = certs::get(c, account, id)?.ok_or_else(|| cert_missing(id))?;
            bindable(&cert, &domain, domains::find(c, account, &domain)?, cx.now)?;
            cx.commit_point()?;
            certs::bind(c, account, &domain, id, https, cx.now)?;
            Ok(BindLiveDomainCertResponse {})
        })
        .await?;
    // The media plane serves HTTPS from its policy snapshot.
    outer.publish_policy().await?;
    Ok(resp)
}

/// Changes a play domain's certificate (`CertId`) and/or HTTPS switch
/// (`Status`). Without `CertId` the domain must already have a
/// certificate; with one it is bound as by `BindLiveDomainCert`, keeping
/// the current switch (on for a domain that had none) unless `Status` says.
pub async fn modify_live_domain_cert(
    cx: Cx,
    req: ModifyLiveDomainCertRequest,
) -> ApiResult<ModifyLiveDomainCertResponse> {
    let status = check_enum("Status", req.status, &[0, 1])?;
    let domain = lookup_name(&req.domain_name);
    let cert_id = req.cert_id;
    let (store, outer) = (cx.store.clone(), cx.clone());
    let resp = store
        .transaction::<_, ApiError, _>(move |c| {
            let account = cx.account;
            let found = domains::find(c, account, &domain)?;
            let current = certs::binding(c, account, &domain)?;
            match cert_id {
                Some(id) => {
                    let cert = certs::get(c, account, id)?.ok_or_else(|| cert_missing(id))?;
                    bindable(&cert, &domain, found, cx.now)?;
                    let https = match status {
                        Some(s) => s == 1,
                        None => current.is_none_or(|b| b.https_enabled),
                    };
                    cx.commit_point()?;
                    certs::bind(c, account, &domain, id, https, cx.now)?;
                }
                None => {
                    bindable_domain(found, &domain)?;
                    if current.is_none() {
                        return Err(no_binding(&domain));
                    }
                    cx.commit_point()?;
                    if let Some(s) = status {
                        certs::set_https(c, account, &domain, s == 1, cx.now)?;
                    }
                }
            }
            Ok(ModifyLiveDomainCertResponse {})
        })
        .await?;
    // The media plane serves HTTPS from its policy snapshot.
    outer.publish_policy().await?;
    Ok(resp)
}

/// Removes a play domain's certificate rule. `Type` `formal` (the default)
/// is the rule livestack has; `gray` rules (staged roll-outs) do not exist
/// in livestack, so unbinding one changes nothing. Unbinding a domain that
/// has no certificate succeeds.
pub async fn un_bind_live_domain_cert(
    cx: Cx,
    req: UnBindLiveDomainCertRequest,
) -> ApiResult<UnBindLiveDomainCertResponse> {
    let rule = given(req.r#type).unwrap_or_else(|| "formal".to_owned());
    if rule != "formal" && rule != "gray" {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("Type must be `gray` or `formal`, not `{rule}`."),
            format!("Type 的取值须为 `gray` 或 `formal`，当前为 `{rule}`。"),
        ));
    }
    let domain = lookup_name(&req.domain_name);
    let (store, outer) = (cx.store.clone(), cx.clone());
    let resp = store
        .transaction::<_, ApiError, _>(move |c| {
            let account = cx.account;
            bindable_domain(domains::find(c, account, &domain)?, &domain)?;
            cx.commit_point()?;
            if rule == "formal" {
                certs::unbind(c, account, &domain)?;
            }
            Ok(UnBindLiveDomainCertResponse {})
        })
        .await?;
    // The media plane serves HTTPS from its policy snapshot.
    outer.publish_policy().await?;
    Ok(resp)
}

/// Describes the certificate of one play domain (never its private key).
pub async fn describe_live_domain_cert(
    cx: Cx,
    req: DescribeLiveDomainCertRequest,
) -> ApiResult<DescribeLiveDomainCertResponse> {
    let domain = lookup_name(&req.domain_name);
    let account = cx.account;
    let key = domain.clone();
    let (found, binding) = cx
        .store
        .run(move |c| {
            let found = domains::find(c, account, &key)?;
            Ok((found, certs::binding(c, account, &key)?))
        })
        .await?;
    bindable_domain(found, &domain)?;
    let binding = binding.ok_or_else(|| no_binding(&domain))?;
    Ok(DescribeLiveDomainCertResponse {
        domain_cert_info: domain_cert_info(binding),
    })
}

// ---------------------------------------------------------------------------
// Domain bindings (current actions)
// ---------------------------------------------------------------------------

/// The certificate a `ModifyLiveDomainCertBindings` call binds.
enum Source {
    /// An existing certificate, by CloudCertId.
    Cloud(String),
    /// A new certificate from a key pair, stored under its alias.
    Upload(Material, String),
    /// None: only switch HTTPS on the domains' existing rules.
    StatusOnly,
}

/// What the call does to one domain, decided before anything is written.
enum Step {
    Bind { domain: String, https: bool },
    Switch { domain: String, https: bool },
}

/// Binds a certificate to several play domains and sets their HTTPS switch
/// (`Status` 1 on, 0 off, -1 unchanged). The certificate is a stored one
/// (`CloudCertId`), or a new one made from `CertificatePublicKey` and
/// `CertificatePrivateKey` (named `CertificateAlias`), or, with neither,
/// the domains keep their certificates and only the switch changes.
///
/// A problem with the certificate fails the call. A problem with one
/// domain does not: the domain is skipped and reported in `Errors`, and a
/// domain the certificate does not cover also in `MismatchedDomainNames`.
pub async fn modify_live_domain_cert_bindings(
    cx: Cx,
    req: ModifyLiveDomainCertBindingsRequest,
) -> ApiResult<ModifyLiveDomainCertBindingsResponse> {
    let mut infos = Vec::with_capacity(req.domain_infos.len());
    for info in req.domain_infos {
        let status = check_enum("DomainInfos.Status", Some(info.status), &[1, 0, -1])?;
        infos.push((lookup_name(&info.domain_name), status.unwrap_or(-1)));
    }
    let public = given(req.certificate_public_key);
    let private = given(req.certificate_private_key);
    let source = match (given(req.cloud_cert_id), public, private) {
        (Some(cloud_id), _, _) => Source::Cloud(cloud_id),
        (None, Some(public), Some(private)) => Source::Upload(
            check_material(&public, &private, cx.now)?,
            req.certificate_alias.unwrap_or_default(),
        ),
        (None, Some(_), None) => {
            return Err(missing(
                "CertificatePrivateKey",
                "with CertificatePublicKey",
                "传入证书公钥时",
            ))
        }
        (None, None, Some(_)) => {
            return Err(missing(
                "CertificatePublicKey",
                "with CertificatePrivateKey",
                "传入证书私钥时",
            ))
        }
        (None, None, None) => Source::StatusOnly,
    };
    let (store, outer) = (cx.store.clone(), cx.clone());
    let resp =
        store
            .transaction::<_, ApiError, _>(move |c| {
                let (account, now) = (cx.account, cx.now);
                // The names the certificate covers (`None` for a status-only
                // call), and its CertId if it is already stored.
                let (names, stored_id) = match &source {
                    Source::Cloud(cloud_id) => {
                        let cert = certs::find_by_cloud_id(c, account, cloud_id)?
                            .ok_or_else(cloud_id_missing)?;
                        expired(&cert, now)?;
                        (Some(cert.names), Some(cert.id))
                    }
                    Source::Upload(material, _) => (Some(material.names.clone()), None),
                    Source::StatusOnly => (None, None),
                };
                let mut response = ModifyLiveDomainCertBindingsResponse::default();
                let mut steps = Vec::new();
                for (domain, status) in infos {
                    let current = certs::binding(c, account, &domain)?;
                    let check = bindable_domain(domains::find(c, account, &domain)?, &domain)
                        .and_then(|()| match &names {
                            Some(names) if !covers(names, &domain) => {
                                response.mismatched_domain_names.push(domain.clone());
                                Err(not_covered(&domain, names))
                            }
                            None if current.is_none() => Err(no_binding(&domain)),
                            _ => Ok(()),
                        });
                    if let Err(e) = check {
                        // The batch answers per domain; English, as the handler
                        // does not know the request's language.
                        response.errors.push(BatchDomainOperateErrors {
                            domain_name: domain,
                            code: e.code.as_str().to_owned(),
                            message: e.message(crate::error::Lang::En).into_owned(),
                        });
                        continue;
                    }
                    let was_on = current.as_ref().is_some_and(|b| b.https_enabled);
                    let https = match status {
                        -1 => was_on,
                        s => s == 1,
                    };
                    steps.push(if names.is_some() {
                        Step::Bind { domain, https }
                    } else {
                        Step::Switch { domain, https }
                    });
                }
                cx.commit_point()?;
                let cert_id = match source {
                    Source::Cloud(_) | Source::StatusOnly => stored_id,
                    Source::Upload(material, alias) => {
                        let new = NewCertificate {
                            account_id: account,
                            name: alias,
                            description: String::new(),
                            cert_type: OWN,
                            material,
                            now,
                        };
                        Some(certs::insert(c, &new)?.id)
                    }
                };
                for step in steps {
                    match (step, cert_id) {
                        (Step::Bind { domain, https }, Some(id)) => {
                            certs::bind(c, account, &domain, id, https, now)?;
                        }
                        (Step::Switch { domain, https }, _) => {
                            certs::set_https(c, account, &domain, https, now)?;
                        }
                        // Bind steps are only planned when there is a certificate.
                        (Step::Bind { .. }, None) => {}
                    }
                }
                Ok(response)
            })
            .await?;
    // The media plane serves HTTPS from its policy snapshot.
    outer.publish_policy().await?;
    Ok(resp)
}

/// Lists the caller's play domains that have a certificate, filtered by
/// `DomainName` (exact) and `DomainSearch` (substring), ordered by domain
/// name or by `OrderBy` (`ExpireTimeAsc`, `ExpireTimeDesc`), paged by
/// `Offset` (from 0) and `Length` (default 50).
pub async fn describe_live_domain_cert_bindings(
    cx: Cx,
    req: DescribeLiveDomainCertBindingsRequest,
) -> ApiResult<DescribeLiveDomainCertBindingsResponse> {
    let offset = non_negative("Offset", req.offset.unwrap_or(0))?;
    let length = non_negative("Length", req.length.unwrap_or(DEFAULT_PAGE))?;
    let order = match given(req.order_by).as_deref() {
        None => BindingOrder::DomainName,
        Some("ExpireTimeAsc") => BindingOrder::ExpiryAsc,
        Some("ExpireTimeDesc") => BindingOrder::ExpiryDesc,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("OrderBy must be `ExpireTimeAsc` or `ExpireTimeDesc`, not `{other}`."),
                format!(
                    "OrderBy 的取值须为 `ExpireTimeAsc` 或 `ExpireTimeDesc`，当前为 `{other}`。"
                ),
            ))
        }
    };
    let filter = BindingFilter {
        domain_name: given(req.domain_name).map(|d| lookup_name(&d)),
        search: given(req.domain_search).map(|s| s.trim().to_owned()),
        order,
    };
    let account = cx.account;
    let (total, rows) = cx
        .store
        .run(move |c| certs::list_bindings(c, account, &filter, offset, length))
        .await?;
    Ok(DescribeLiveDomainCertBindingsResponse {
        live_domain_cert_bindings: rows.into_iter().map(binding_row).collect(),
        total_num: i64::try_from(total).unwrap_or(i64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

    /// Unix time of 2000-01-01, long before any test certificate expires.
    const Y2K: i64 = 946_684_800;

    struct Pair {
        crt: String,
        key: String,
    }

    fn issue(params: CertificateParams) -> Pair {
        let key = KeyPair::generate().expect("key");
        let crt = params.self_signed(&key).expect("sign").pem();
        Pair {
            crt,
            key: key.serialize_pem(),
        }
    }

    fn for_names(names: &[&str]) -> Pair {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        issue(CertificateParams::new(names).expect("params"))
    }

    fn expired(names: &[&str]) -> Pair {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        issue(params)
    }

    fn cn_only(cn: &str) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        issue(params)
    }

    /// A leaf for `names` issued by a fresh CA: (leaf + CA chain, leaf key, CA PEM).
    fn issued_by_ca(names: &[&str]) -> (Pair, String) {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "livestack test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let leaf_key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .expect("params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf");
        let pair = Pair {
            crt: format!("{}{}", leaf.pem(), ca.pem()),
            key: leaf_key.serialize_pem(),
        };
        (pair, ca.pem())
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn code_of(crt: &str, key: &str) -> Option<&'static str> {
        check_material(crt, key, now())
            .err()
            .map(|p| ApiError::from(p).code.as_str())
    }

    #[test]
    fn a_valid_pair_yields_its_names_expiry_and_canonical_pem() {
        let pair = for_names(&["*.Example.com", "play.example.com"]);
        // Text around the blocks (as openssl prints it) is dropped.
        let noisy = format!("subject=CN = x\n{}\ntrailing words\n", pair.crt);
        let m = check_material(&noisy, &pair.key, now()).expect("valid");
        assert_eq!(m.names, ["*.example.com", "play.example.com"]);
        assert!(m.expires_at > now());
        assert!(m.chain_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!m.chain_pem.contains("trailing words"));
        assert!(m.key_pem.expose().contains("PRIVATE KEY"));
        // What is stored reads back the same.
        let again = check_material(&m.chain_pem, m.key_pem.expose(), now()).expect("again");
        assert_eq!(again, m);
    }

    #[test]
    fn without_sans_the_common_name_is_the_certificates_name() {
        let pair = cn_only("cn.example.com");
        let m = check_material(&pair.crt, &pair.key, now()).expect("valid");
        assert_eq!(m.names, ["cn.example.com"]);
    }

    #[test]
    fn a_chain_must_run_from_the_leaf_to_its_issuers() {
        let (pair, ca) = issued_by_ca(&["play.example.com"]);
        let m = check_material(&pair.crt, &pair.key, now()).expect("ordered chain");
        assert_eq!(m.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
        let leaf = pair.crt.replace(&ca, "");
        let reversed = format!("{ca}{leaf}");
        let err = check_material(&reversed, &pair.key, now()).expect_err("reversed");
        assert_eq!(
            ApiError::from(err).code,
            ErrorCode::InternalErrorCrtDateNotLegal
        );
    }

    #[test]
    fn what_is_not_a_certificate_or_key_is_not_legal() {
        let pair = for_names(&["play.example.com"]);
        let garbled = pair.crt.replacen("MII", "MIX", 1);
        let truncated = pair.crt.replace("-----END CERTIFICATE-----", "");
        let cases = [
            ("no PEM at all", "hello".to_owned(), pair.key.clone()),
            ("garbled DER", garbled, pair.key.clone()),
            ("no END line", truncated, pair.key.clone()),
            (
                "a key in the certificate field",
                format!("{}{}", pair.crt, pair.key),
                pair.key.clone(),
            ),
            ("no key", pair.crt.clone(), "not a key".to_owned()),
            (
                "two keys",
                pair.crt.clone(),
                format!("{}{}", pair.key, for_names(&["x.com"]).key),
            ),
            (
                "an encrypted key",
                pair.crt.clone(),
                pair.key.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
            ),
        ];
        for (what, crt, key) in cases {
            assert_eq!(
                code_of(&crt, &key),
                Some("InternalError.CrtDateNotLegal"),
                "{what}"
            );
        }
    }

    #[test]
    fn an_expired_leaf_is_overdue() {
        let pair = expired(&["play.example.com"]);
        assert_eq!(
            code_of(&pair.crt, &pair.key),
            Some("InternalError.CrtDateOverdue")
        );
        // It was fine while it lasted.
        assert!(check_material(&pair.crt, &pair.key, Y2K + 366 * 86_400).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_does_not_match() {
        let pair = for_names(&["play.example.com"]);
        let other = for_names(&["play.example.com"]);
        assert_eq!(
            code_of(&pair.crt, &other.key),
            Some("InternalError.CrtKeyNotMatch")
        );
        let (chained, _) = issued_by_ca(&["play.example.com"]);
        assert_eq!(
            code_of(&chained.crt, &other.key),
            Some("InternalError.CrtKeyNotMatch")
        );
    }

    #[test]
    fn keys_of_every_supported_kind_match_their_certificates() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = KeyPair::generate_for(alg).expect("key");
            let crt = CertificateParams::new(vec!["a.example.com".to_owned()])
                .expect("params")
                .self_signed(&key)
                .expect("sign")
                .pem();
            check_material(&crt, &key.serialize_pem(), now()).expect("matches");
        }
    }

    #[test]
    fn names_cover_exact_and_one_label_wildcard_matches() {
        let names: Vec<String> = ["*.example.com", "play.other.com"]
            .iter()
            .map(|n| (*n).to_owned())
            .collect();
        let check = |domain: &str, want: bool| {
            assert_eq!(covers(&names, domain), want, "{domain}");
        };
        check("play.example.com", true);
        check("PLAY.Example.com.", true);
        check("play.other.com", true);
        check("example.com", false);
        check("a.b.example.com", false);
        check("other.com", false);
        check("x.play.other.com", false);
        check("playexample.com", false);
        assert!(!covers(&["*.com".to_owned()], "example.com"));
        assert!(!covers(&[], "example.com"));
    }
}
