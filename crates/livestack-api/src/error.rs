//! The one home of Tencent error codes: [`ErrorCode`], [`ApiError`] and the
//! mapping from library errors to codes.
//!
//! Owns: every code string livestack can answer with, and its default
//! message in both languages. Must not: be bypassed. Store and media errors
//! arrive as typed errors and are turned into codes here or by the handler
//! that knows better; an unexpected failure becomes `InternalError` and its
//! cause goes to the log with the RequestId, never to the client.

use std::borrow::Cow;
use std::fmt;

use livestack_store::StoreError;

/// The language of `Error.Message`, from `X-TC-Language` or `Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// `zh-CN`, the API's default.
    #[default]
    Zh,
    /// `en-US`.
    En,
}

impl Lang {
    /// Parses a language tag; anything but `en-US` means Chinese, the default.
    pub fn parse(tag: &str) -> Lang {
        if tag.eq_ignore_ascii_case("en-US") {
            Lang::En
        } else {
            Lang::Zh
        }
    }
}

/// A message in both languages the API speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// English.
    pub en: Cow<'static, str>,
    /// Chinese.
    pub zh: Cow<'static, str>,
}

/// The longest message sent or logged, in bytes (before the note of how
/// long it was).
pub const MAX_MESSAGE: usize = 512;

fn bounded(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

impl Text {
    /// A message from its English and Chinese forms, each cut to
    /// [`MAX_MESSAGE`] bytes: a message that echoes a client's value must
    /// not grow with it (a 9 MiB name would otherwise come back whole, and
    /// go to the log whole).
    pub fn new(en: impl Into<Cow<'static, str>>, zh: impl Into<Cow<'static, str>>) -> Text {
        Text {
            en: bounded(en.into()),
            zh: bounded(zh.into()),
        }
    }

    /// The form for `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $en:literal, $zh:literal;)*) => {
        /// Every error code livestack answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $en] $variant,)*
        }

        impl ErrorCode {
            /// Every code, for tests that check the table against the spec.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The code's general description, used when a handler gives no
            /// more specific message.
            pub fn description(self) -> Text {
                match self { $(ErrorCode::$variant => Text::new($en, $zh),)* }
            }
        }
    };
}

error_codes! {
    // Public codes of the API 3.0 protocol (seed, "公共错误码").
    AuthFailureInvalidAuthorization => "AuthFailure.InvalidAuthorization",
        "The Authorization header does not follow the Tencent Cloud standard.",
        "请求头部的 Authorization 不符合腾讯云标准。";
    AuthFailureInvalidSecretId => "AuthFailure.InvalidSecretId",
        "Invalid key (not a Cloud API key).",
        "密钥非法（不是云 API 密钥类型）。";
    AuthFailureMfaFailure => "AuthFailure.MFAFailure",
        "MFA failed.",
        "MFA 错误。";
    AuthFailureSecretIdNotFound => "AuthFailure.SecretIdNotFound",
        "The key does not exist or is disabled. Check the SecretId, with no leading or trailing spaces.",
        "密钥不存在。请在控制台检查密钥是否已被删除或者禁用，如状态正常，请检查密钥是否填写正确，注意前后不得有空格。";
    AuthFailureSignatureExpire => "AuthFailure.SignatureExpire",
        "The signature has expired: the Timestamp may differ from the server time by at most five minutes. Check that the local clock is in sync.",
        "签名过期。Timestamp 和服务器时间相差不得超过五分钟，请检查本地时间是否和标准时间同步。";
    AuthFailureSignatureFailure => "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
        "签名错误。签名计算错误，请对照调用方式中的接口鉴权文档检查签名计算过程。";
    AuthFailureTokenFailure => "AuthFailure.TokenFailure",
        "The token is invalid or has expired.",
        "token 错误。";
    AuthFailureUnauthorizedOperation => "AuthFailure.UnauthorizedOperation",
        "The request is not authorized by CAM.",
        "请求未 CAM 授权。";
    DryRunOperation => "DryRunOperation",
        "DryRun operation: the request would have succeeded, but the DryRun parameter was passed.",
        "DryRun 操作，代表请求将会是成功的，只是多传了 DryRun 参数。";
    FailedOperation => "FailedOperation", "The operation failed.", "操作失败。";
    InternalError => "InternalError", "Internal error.", "内部错误。";
    InvalidAction => "InvalidAction", "The action does not exist.", "接口不存在。";
    InvalidParameter => "InvalidParameter", "Invalid parameter.", "参数错误。";
    InvalidParameterValue => "InvalidParameterValue", "Invalid parameter value.", "参数取值错误。";
    LimitExceeded => "LimitExceeded", "Quota limit exceeded.", "超过配额限制。";
    MissingParameter => "MissingParameter", "A required parameter is missing.", "缺少参数错误。";
    NoSuchVersion => "NoSuchVersion", "The API version does not exist.", "接口版本不存在。";
    RequestLimitExceeded => "RequestLimitExceeded",
        "The request rate exceeds the frequency limit.",
        "请求的次数超过了频率限制。";
    RequestSizeLimitExceeded => "RequestSizeLimitExceeded",
        "The request body exceeds the size limit.",
        "请求包超过限制大小。";
    ResourceInUse => "ResourceInUse", "The resource is in use.", "资源被占用。";
    ResourceInsufficient => "ResourceInsufficient", "Insufficient resources.", "资源不足。";
    ResourceNotFound => "ResourceNotFound", "The resource does not exist.", "资源不存在。";
    ResourceUnavailable => "ResourceUnavailable", "The resource is unavailable.", "资源不可用。";
    UnauthorizedOperation => "UnauthorizedOperation", "Unauthorized operation.", "未授权操作。";
    UnknownParameter => "UnknownParameter",
        "Unknown parameter: the request passes a parameter the action does not define.",
        "未知参数错误，用户多传未定义的参数会导致错误。";
    UnsupportedOperation => "UnsupportedOperation", "The operation is not supported.", "操作不支持。";
    UnsupportedProtocol => "UnsupportedProtocol",
        "HTTP(S) request protocol error: only GET and POST requests are supported.",
        "http(s) 请求协议错误，只支持 GET 和 POST 请求。";
    UnsupportedRegion => "UnsupportedRegion", "The action does not support this region.", "接口不支持所传地域。";
    // Live business codes (seed, "业务错误码", and per-action codes of
    // spec/live-action-errors.json where the seed has none).
    FailedOperationDomainAdded => "FailedOperation.DomainAdded", "The domain has already been added.", "域名已添加。";
    FailedOperationHasNotLivingStream => "FailedOperation.HasNotLivingStream", "No stream is live.", "无在线流。";
    FailedOperationHostOutLimit => "FailedOperation.HostOutLimit",
        "The number of domains exceeds the limit (100).", "域名数量超过限制(100个）。";
    InternalErrorChineseCharacterDetected => "InternalError.ChineseCharacterDetected",
        "Chinese (non-ASCII) domain names are not supported; check the domain name.",
        "暂不支持添加中文域名，请核对域名格式。";
    InternalErrorConfigNotExist => "InternalError.ConfigNotExist", "The configuration does not exist.", "配置不存在。";
    InternalErrorStreamStatusError => "InternalError.StreamStatusError", "The stream is in an unexpected state.", "流状态异常。";
    InternalErrorCrtDateInUsing => "InternalError.CrtDateInUsing", "The certificate is in use.", "证书使用中。";
    InternalErrorCrtDateNotFound => "InternalError.CrtDateNotFound", "The certificate does not exist.", "证书不存在。";
    InternalErrorCrtDateNotLegal => "InternalError.CrtDateNotLegal", "The certificate is not valid.", "证书不合法。";
    InternalErrorCrtDateOverdue => "InternalError.CrtDateOverdue", "The certificate has expired.", "证书过期。";
    InternalErrorCrtDomainNotFound => "InternalError.CrtDomainNotFound", "No matching domain.", "没有相关域名。";
    InternalErrorCrtKeyNotMatch => "InternalError.CrtKeyNotMatch",
        "The private key does not match the certificate.", "证书Key不匹配。";
    InternalErrorProcessorAlreadyExist => "InternalError.ProcessorAlreadyExist",
        "A template with this name already exists.", "转码模板名称已经存在。";
    InternalErrorConfNotFound => "InternalError.ConfNotFound", "The template does not exist.", "模版不存在。";
    InternalErrorConfInUsed => "InternalError.ConfInUsed", "The template is in use by a rule.", "模版使用中。";
    InternalErrorConfOutLimit => "InternalError.ConfOutLimit", "The number of templates exceeds the limit.", "模版数量超过限制。";
    InternalErrorArgsNotMatch => "InternalError.ArgsNotMatch",
        "The transcoding template's arguments contradict each other.", "转码模板参数不匹配。";
    InternalErrorRuleAlreadyExist => "InternalError.RuleAlreadyExist", "The rule is already configured.", "规则已经配置。";
    InternalErrorRuleNotFound => "InternalError.RuleNotFound", "The rule does not exist.", "规则不存在。";
    InternalErrorRuleInUsing => "InternalError.RuleInUsing", "The rule is in use.", "规则使用中。";
    InternalErrorRuleOutLimit => "InternalError.RuleOutLimit", "The number of rules exceeds the limit.", "规则超过限制。";
    InternalErrorWatermarkNotExist => "InternalError.WatermarkNotExist", "The watermark does not exist.", "水印不存在。";
    InternalErrorWatermarkEditError => "InternalError.WatermarkEditError",
        "The watermark could not be changed.", "水印修改内部错误。";
    InternalErrorGetWatermarkError => "InternalError.GetWatermarkError",
        "The watermark picture could not be fetched.", "获取水印错误。";
    InvalidParameterArgsNotMatch => "InvalidParameter.ArgsNotMatch",
        "The template name is not allowed.", "错误的模板名。";
    InvalidParameterGopMustEqualAndExists => "InvalidParameter.GopMustEqualAndExists",
        "Every adaptive-bitrate child template must give the same Gop.",
        "自适应码率子模板gop值必须存在且相等。";
    FailedOperationCosBucketNotPermission => "FailedOperation.CosBucketNotPermission",
        "No permission to use the COS bucket.", "无权限访问 Cos bucket。";
    FailedOperationInvokeVideoApiFail => "FailedOperation.InvokeVideoApiFail",
        "The storage (VOD) operation failed.", "操作点播接口异常。";
    ResourceNotFoundTaskId => "ResourceNotFound.TaskId", "The TaskId does not exist.", "TaskId 不存在。";
    ResourceNotFoundChannelNotExist => "ResourceNotFound.ChannelNotExist",
        "The channel (stream) does not exist.", "频道不存在。";
    ResourceUnavailableStreamNotExist => "ResourceUnavailable.StreamNotExist",
        "The stream is not being pushed.", "推流不存在。";
    LimitExceededMaximumRunningTask => "LimitExceeded.MaximumRunningTask",
        "Too many tasks would run at the same time.", "当前并发任务数超限制。";
    LimitExceededMaximumTask => "LimitExceeded.MaximumTask",
        "Too many tasks have been created today.", "当天已创建任务数超限制。";
    FailedOperationAlterTaskState => "FailedOperation.AlterTaskState",
        "The task's state cannot be changed.", "改变任务状态失败。";
    InternalErrorInvalidInput => "InternalError.InvalidInput", "The parameters failed validation.", "参数检校不通过。";
    InternalErrorPlayDomainNoRecord => "InternalError.PlayDomainNoRecord", "The play domain does not exist.", "播放域名不存在。";
    InternalErrorPushDomainNoRecord => "InternalError.PushDomainNoRecord", "The push domain does not exist.", "推流域名不存在。";
    InvalidParameterCloudCrtIdError => "InvalidParameter.CloudCrtIdError",
        "The hosted certificate id (CloudCertId) is wrong.", "腾讯云证书托管 ID 错误。";
    InvalidParameterDomainAlreadyExist => "InvalidParameter.DomainAlreadyExist",
        "The domain is already in use elsewhere; check that it is typed correctly.",
        "该域名已在其他处接入，请检查域名是否输入正确。";
    InvalidParameterDomainFormatError => "InvalidParameter.DomainFormatError",
        "The domain name is not well formed; enter a valid domain name.", "域名格式错误，请输入合法格式域名。";
    InvalidParameterDomainTooLong => "InvalidParameter.DomainTooLong", "The domain name is too long.", "域名长度超过限制。";
    ResourceNotFoundDomainNotExist => "ResourceNotFound.DomainNotExist",
        "The domain does not exist or does not match.", "域名不存在或不匹配。";
    InvalidParameterInvalidSourceUrl => "InvalidParameter.InvalidSourceUrl",
        "The source URL is not valid.", "源地址不规范。";
    InvalidParameterInvalidToUrl => "InvalidParameter.InvalidToUrl",
        "The target URL is not valid.", "目标地址不规范。";
    InvalidParameterInvalidBackupToUrl => "InvalidParameter.InvalidBackupToUrl",
        "The backup target URL is not valid.", "无效的备用推流地址。";
    InvalidParameterInvalidCallbackUrl => "InvalidParameter.InvalidCallbackUrl",
        "The callback URL is not valid.", "回调地址不规范。";
    InvalidParameterInvalidTaskTime => "InvalidParameter.InvalidTaskTime",
        "The task's time is out of bounds.", "任务时间超出限制。";
    InvalidParameterInvalidWatermark => "InvalidParameter.InvalidWatermark",
        "The watermark parameters are not valid.", "水印参数有误。";
    InvalidParameterTaskNumMoreThanLimit => "InvalidParameter.TaskNumMoreThanLimit",
        "The number of tasks exceeds the limit.", "任务数超过限制。";
    InvalidParameterToUrlNoPermission => "InvalidParameter.ToUrlNoPermission",
        "The target is not one of your push domains.", "外部地址无权限。";
    InvalidParameterTaskNotExist => "InvalidParameter.TaskNotExist",
        "The task does not exist.", "任务不存在。";
    // Mixing (CreateCommonMixStream, CancelCommonMixStream).
    InvalidParameterInvalidLayerParam => "InvalidParameter.InvalidLayerParam",
        "The layer parameters are not valid.", "图层参数错误。";
    InvalidParameterInvalidCropParam => "InvalidParameter.InvalidCropParam",
        "The crop reaches outside the input picture.", "裁剪区域溢出原始图片。";
    InvalidParameterInvalidBitrate => "InvalidParameter.InvalidBitrate",
        "The output bitrate is not valid.", "非法的输出码率。";
    InvalidParameterInvalidBackgroudResolution => "InvalidParameter.InvalidBackgroudResolution",
        "The background's width and height are not valid.", "非法的背景长宽。";
    InvalidParameterInvalidPictureId => "InvalidParameter.InvalidPictureID",
        "The watermark ID is not set.", "水印 ID 未设置。";
    InvalidParameterInvalidOutputStreamId => "InvalidParameter.InvalidOutputStreamID",
        "The output stream ID is taken.", "输出流 ID 被占用。";
    InvalidParameterInvalidOutputType => "InvalidParameter.InvalidOutputType",
        "The output type does not match the output stream name.",
        "非法输出类型，检查 OutputPram-StreamId 与 OutputType 是否匹配。";
    InvalidParameterInputNumLimitExceeded => "InvalidParameter.InputNumLimitExceeded",
        "Too many inputs.", "输入数目超出限制。";
    InvalidParameterTemplateNotMatchInputNum => "InvalidParameter.TemplateNotMatchInputNum",
        "The template does not match the number of inputs.", "模板与输入流条数不匹配。";
    InvalidParameterSessionOutputStreamChanged => "InvalidParameter.SessionOutputStreamChanged",
        "The output stream of the session changed.", "同一会话输出流发生变化。";
    InvalidParameterOtherError => "InvalidParameter.OtherError", "Other error.", "其他错误。";
    InvalidParameterCancelSessionNotExist => "InvalidParameter.CancelSessionNotExist",
        "The session to cancel does not exist.", "取消不存在的会话。";
    FailedOperationStreamNotExist => "FailedOperation.StreamNotExist",
        "The stream does not exist.", "流不存在。";
    FailedOperationDomainNeedVerifyOwner => "FailedOperation.DomainNeedVerifyOwner",
        "The domain's ownership must be verified.", "域名归属待验证。";
    FailedOperationNotFound => "FailedOperation.NotFound", "No record was found.", "找不到记录。";
    FailedOperationGetStreamResolutionError => "FailedOperation.GetStreamResolutionError",
        "Could not get the input stream's width and height.", "获取输入流长宽失败。";
    InternalErrorConnectDbError => "InternalError.ConnectDbError", "Database connection error.", "DB连接错误。";
    InternalErrorDbError => "InternalError.DBError", "Database execution error.", "DB执行错误。";
    InternalErrorCallOtherSvrError => "InternalError.CallOtherSvrError",
        "Error calling an internal service.", "调用内部服务错误。";
    InternalErrorSystemError => "InternalError.SystemError", "Internal system error.", "系统内部错误。";
    InternalErrorGetStreamInfoError => "InternalError.GetStreamInfoError",
        "Failed to get the stream's information.", "获取流信息失败。";
    InternalErrorGetUpstreamInfoError => "InternalError.GetUpstreamInfoError",
        "Failed to get the live source's information.", "获取直播源信息错误。";
    InternalErrorUpdateDataError => "InternalError.UpdateDataError", "Failed to update data.", "更新数据失败。";
    InternalErrorInvalidUser => "InternalError.InvalidUser", "The account information is wrong.", "账号信息错误。";
    // CAM 2019-01-16 (spec/cam-error-codes.json).
    InvalidParameterUserNameIllegal => "InvalidParameter.UserNameIllegal", "The user name is not valid.", "用户名不合法。";
    InvalidParameterSubUserNameInUse => "InvalidParameter.SubUserNameInUse", "A sub-user with this name exists.", "子用户名称重复。";
    InvalidParameterSubUserFull => "InvalidParameter.SubUserFull", "The number of sub-users has reached the limit.", "子账号数量达到上限。";
    ResourceNotFoundUserNotExist => "ResourceNotFound.UserNotExist", "The user does not exist.", "用户不存在。";
    InvalidParameterUserNotExist => "InvalidParameter.UserNotExist", "The user does not exist.", "用户对象不存在。";
    OperationDeniedHaveKeys => "OperationDenied.HaveKeys", "The user still has API keys.", "存在未删除的API密钥。";
    InvalidParameterPolicyNameError => "InvalidParameter.PolicyNameError", "The PolicyName is not valid.", "PolicyName字段不合法。";
    FailedOperationPolicyNameInUse => "FailedOperation.PolicyNameInUse", "A policy with this PolicyName exists.", "PolicyName字段指定的策略名已存在。";
    FailedOperationPolicyFull => "FailedOperation.PolicyFull", "The number of policies has reached the limit.", "用户策略数超过上限。";
    InvalidParameterPolicyDocumentError => "InvalidParameter.PolicyDocumentError", "The PolicyDocument is not valid.", "PolicyDocument字段不合法。";
    InvalidParameterPolicyDocumentLengthOverLimit => "InvalidParameter.PolicyDocumentLengthOverLimit",
        "The PolicyDocument is too long.", "PolicyDocument字段超过长度限制。";
    InvalidParameterVersionError => "InvalidParameter.VersionError", "The policy's version is not valid.", "策略文档的Version字段不合法。";
    InvalidParameterStatementError => "InvalidParameter.StatementError", "The policy's statement is not valid.", "策略文档的Statement字段不合法。";
    InvalidParameterEffectError => "InvalidParameter.EffectError", "The policy's effect is not valid.", "策略文档的Effect字段不合法。";
    InvalidParameterActionError => "InvalidParameter.ActionError", "The policy's action is not valid.", "策略文档的Action字段不合法。";
    InvalidParameterActionNotExist => "InvalidParameter.ActionNotExist", "An action in the policy does not exist.", "策略语法中操作不存在。";
    InvalidParameterResourceError => "InvalidParameter.ResourceError", "The policy's resource is not valid.", "策略文档的Resource字段不合法。";
    InvalidParameterPrincipalError => "InvalidParameter.PrincipalError", "The policy's principal is not valid.", "策略文档的principal字段不合法。";
    InvalidParameterConditionTypeError => "InvalidParameter.ConditionTypeError", "A condition operator is not valid.", "策略语法中条件操作符不正确。";
    InvalidParameterConditionContentError => "InvalidParameter.ConditionContentError", "A condition's content is not valid.", "策略语法中条件内容不正确。";
    InvalidParameterDescriptionLengthOverlimit => "InvalidParameter.DescriptionLengthOverlimit",
        "The Description may be at most 300 bytes.", "Description入参长度不能大于300字节。";
    InvalidParameterPolicyIdError => "InvalidParameter.PolicyIdError", "The PolicyId is not valid.", "输入参数PolicyId不合法。";
    InvalidParameterPolicyIdNotExist => "InvalidParameter.PolicyIdNotExist", "The policy does not exist.", "策略ID不存在。";
    ResourceNotFoundPolicyIdNotFound => "ResourceNotFound.PolicyIdNotFound", "The policy does not exist.", "PolicyId指定的资源不存在。";
    InvalidParameterAttachmentFull => "InvalidParameter.AttachmentFull",
        "The number of policies attached has reached the limit.", "principal字段的授权对象关联策略数已达到上限。";
    OperationDeniedAccessKeyOverLimit => "OperationDenied.AccessKeyOverLimit",
        "An account may have at most two access keys.", "每个账号最多支持两个AccessKey。";
    ResourceNotFoundSecretNotExist => "ResourceNotFound.SecretNotExist", "The key does not exist.", "密钥不存在。";
    OperationDeniedSubUin => "OperationDenied.SubUin", "A sub-user may not manage the root account's keys.", "子用户不允许操作主账号密钥。";
    OperationDeniedUinNotMatch => "OperationDenied.UinNotMatch", "The key does not belong to that account.", "被操作密钥与账号不匹配。";
    InvalidParameterParamError => "InvalidParameter.ParamError", "Invalid parameter.", "非法入参。";
    InvalidParameterGroupNameInUse => "InvalidParameter.GroupNameInUse", "A group with this name exists.", "用户组名称重复。";
    InvalidParameterGroupNotExist => "InvalidParameter.GroupNotExist", "The group does not exist.", "用户组不存在。";
    ResourceNotFoundGroupNotExist => "ResourceNotFound.GroupNotExist", "The group does not exist.", "用户组不存在。";
    InvalidParameterGroupFull => "InvalidParameter.GroupFull", "The number of groups has reached the limit.", "用户组数量达到上限。";
    InvalidParameterGroupUserFull => "InvalidParameter.GroupUserFull", "The group has reached its member limit.", "用户组中的子用户数量达到上限。";
    InvalidParameterUserGroupFull => "InvalidParameter.UserGroupFull", "The user is in the most groups allowed.", "子用户加入的用户组数量达到上限。";
    InvalidParameterRoleNotExist => "InvalidParameter.RoleNotExist", "The role does not exist.", "角色不存在。";
    InvalidParameterRoleNameError => "InvalidParameter.RoleNameError", "The role name is not valid.", "角色名不合法。";
    InvalidParameterRoleNameInUse => "InvalidParameter.RoleNameInUse", "A role with this name exists.", "相同名称的角色已存在。";
    InvalidParameterRoleFull => "InvalidParameter.RoleFull", "The number of roles has reached the limit.", "角色数量达到上限。";
    // STS 2018-08-13 (spec/sts-error-codes.json).
    ResourceNotFoundRoleNotFound => "ResourceNotFound.RoleNotFound", "The role does not exist.", "角色不存在。";
    InvalidParameterResouceError => "InvalidParameter.ResouceError", "The resource (RoleArn) is not valid.", "资源格式错误。";
    InvalidParameterOverTimeError => "InvalidParameter.OverTimeError", "DurationSeconds is out of range.", "有效期超出限制。";
    InvalidParameterPolicyTooLong => "InvalidParameter.PolicyTooLong", "The policy is too long.", "策略过长。";
    InvalidParameterStrategyFormatError => "InvalidParameter.StrategyFormatError", "The policy's format is not valid.", "策略格式错误。";
    FailedOperationTempKeyNotAllowed => "FailedOperation.TempKeyNotAllowed",
        "This action cannot be called with a temporary key.", "该接口不支持临时密钥调用。";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: the code and message the client gets, and for
/// unexpected failures the cause that only the log gets.
#[derive(Debug)]
pub struct ApiError {
    /// The code sent to the client.
    pub code: ErrorCode,
    /// A specific message; `None` sends the code's description.
    pub message: Option<Text>,
    /// What really happened, logged with the RequestId, never sent.
    pub cause: Option<anyhow::Error>,
}

/// Result of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a specific message.
    pub fn new(
        code: ErrorCode,
        en: impl Into<Cow<'static, str>>,
        zh: impl Into<Cow<'static, str>>,
    ) -> ApiError {
        ApiError {
            code,
            message: Some(Text::new(en, zh)),
            cause: None,
        }
    }

    /// An error with the code's general description.
    pub fn bare(code: ErrorCode) -> ApiError {
        ApiError {
            code,
            message: None,
            cause: None,
        }
    }

    /// An unexpected failure: the client sees `code` with its generic
    /// description; `cause` goes to the log.
    pub fn internal(code: ErrorCode, cause: impl Into<anyhow::Error>) -> ApiError {
        ApiError {
            code,
            message: None,
            cause: Some(cause.into()),
        }
    }

    /// The message to send in `lang`.
    pub fn message(&self, lang: Lang) -> Cow<'_, str> {
        match &self.message {
            Some(text) => Cow::Borrowed(text.get(lang)),
            None => Cow::Owned(self.code.description().get(lang).to_owned()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match &e {
            StoreError::Connect { .. } => ErrorCode::InternalErrorConnectDbError,
            StoreError::Query(_) | StoreError::Conflict { .. } | StoreError::Migration { .. } => {
                ErrorCode::InternalErrorDbError
            }
            StoreError::Io { .. } | StoreError::Task(_) | StoreError::Refused { .. } => {
                ErrorCode::InternalError
            }
        };
        ApiError::internal(code, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_unique_and_shaped_like_category_dot_sub() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} appears twice");
            let parts: Vec<_> = s.split('.').collect();
            assert!(
                parts.len() <= 2 && parts.iter().all(|p| !p.is_empty()),
                "{s}"
            );
            assert!(
                s.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
                "{s}"
            );
        }
    }

    #[test]
    fn every_code_is_a_documented_tencent_code() {
        let live: serde_json::Value =
            serde_json::from_str(include_str!("../../../spec/live-error-codes.json"))
                .expect("spec/live-error-codes.json parses");
        let cam: serde_json::Value =
            serde_json::from_str(include_str!("../../../spec/cam-error-codes.json"))
                .expect("spec/cam-error-codes.json parses");
        let sts: serde_json::Value =
            serde_json::from_str(include_str!("../../../spec/sts-error-codes.json"))
                .expect("spec/sts-error-codes.json parses");
        let seed_public = [
            "AuthFailure.InvalidAuthorization",
            "AuthFailure.InvalidSecretId",
            "AuthFailure.MFAFailure",
            "AuthFailure.SecretIdNotFound",
            "AuthFailure.SignatureExpire",
            "AuthFailure.SignatureFailure",
            "AuthFailure.TokenFailure",
            "AuthFailure.UnauthorizedOperation",
            "InvalidAction",
            "NoSuchVersion",
            "RequestLimitExceeded",
            "RequestSizeLimitExceeded",
            "UnsupportedProtocol",
            "UnsupportedRegion",
            "FailedOperation",
            "InternalError",
            "LimitExceeded",
            "ResourceInUse",
            "ResourceInsufficient",
            "ResourceNotFound",
            "ResourceUnavailable",
            "UnauthorizedOperation",
        ];
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(
                live.get(s).is_some()
                    || cam.get(s).is_some()
                    || sts.get(s).is_some()
                    || seed_public.contains(&s),
                "{s} is neither a Live, CAM or STS code nor a public API 3.0 code"
            );
        }
    }

    #[test]
    fn messages_follow_the_requested_language() {
        let e = ApiError::bare(ErrorCode::InvalidAction);
        assert_eq!(e.message(Lang::Zh), "接口不存在。");
        assert_eq!(e.message(Lang::En), "The action does not exist.");
        assert_eq!(Lang::parse("en-US"), Lang::En);
        assert_eq!(Lang::parse("zh-CN"), Lang::Zh);
        assert_eq!(Lang::parse("fr-FR"), Lang::Zh);
    }
}
