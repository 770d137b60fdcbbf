//! The API's error type: every failure becomes `{"error": "<stable_code>", "message": "..."}`
//! with the right status. Internal details are logged, never sent.

use crate::code::ErrorCode;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found` or `invalid_json`.
    pub error: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request does not fit the operation's documented schema (the extractors).
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    /// 422: the request fits the schema, but its content is refused (a field's value, an
    /// unknown token, a name that does not match); the code says why.
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    /// 426 with `Upgrade: websocket`: the endpoint speaks WebSocket only.
    #[error("{0}")]
    UpgradeRequired(String),
    #[error("{message}")]
    Unauthorized { code: ErrorCode, message: String },
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    #[error("{0}")]
    NotFound(String),
    /// 404 with a more precise code than `not_found` (`node_not_found`, ...).
    #[error("{message}")]
    Missing { code: ErrorCode, message: String },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// 405 with `Allow`.
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429 with `Retry-After`; `message` says what was refused.
    #[error("{message}")]
    TooManyRequests {
        code: ErrorCode,
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    NotReady(String),
    /// 503 with `Retry-After: 1`: a bounded resource (password hashing) is full.
    #[error("{0}")]
    Busy(String),
    /// 421: this connection is not the one to ask for that host (its client should open another).
    #[error("{0}")]
    Misdirected(String),
    /// 421: a host name that is not this server's (DNS rebinding).
    #[error("{0}")]
    UnknownHost(String),
    /// The message is logged; the client sees a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Missing { code, .. }
            | Self::TooManyRequests { code, .. } => *code,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::UpgradeRequired(_) => ErrorCode::NotAWebsocket,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::NotReady(_) => ErrorCode::NotReady,
            Self::Busy(_) => ErrorCode::Busy,
            Self::Misdirected(_) => ErrorCode::MisdirectedRequest,
            Self::UnknownHost(_) => ErrorCode::UnknownHost,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::Missing { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misdirected(_) | Self::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "something went wrong on the server; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = HttpResponse::build(self.status_code());
        if let Self::Busy(_) = self {
            resp.insert_header(("Retry-After", "1"));
        }
        if let Self::UpgradeRequired(_) = self {
            resp.insert_header((actix_web::http::header::UPGRADE, "websocket"));
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            resp.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            resp.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        resp.insert_header(("Cache-Control", "no-store"))
            .json(ErrorBody {
                error: self.code(),
                message,
            })
    }
}

/// Turns actix's extractor failures (bad JSON, query, path) into our format.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let e = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            ApiError::PayloadTooLarge("the request body is too large".into())
        }
        J::ContentType => ApiError::BadRequest {
            code: ErrorCode::UnsupportedContentType,
            message: "send the body as application/json".into(),
        },
        J::Deserialize(d) => ApiError::BadRequest {
            code: ErrorCode::InvalidJson,
            message: d.to_string(),
        },
        other => ApiError::BadRequest {
            code: ErrorCode::InvalidBody,
            message: other.to_string(),
        },
    };
    e.into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest {
        code: ErrorCode::InvalidQuery,
        message: err.to_string(),
    }
    .into()
}

pub fn form_error(
    err: actix_web::error::UrlencodedError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest {
        code: ErrorCode::InvalidForm,
        message: err.to_string(),
    }
    .into()
}

pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        message: err.to_string(),
    }
    .into()
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError as A;
        let message = e.to_string();
        match e {
            A::SignupClosed => Self::Forbidden {
                code: ErrorCode::SignupClosed,
                message,
            },
            A::AccountDisabled => Self::Forbidden {
                code: ErrorCode::AccountDisabled,
                message,
            },
            A::LastAdmin => Self::Conflict {
                code: ErrorCode::LastAdmin,
                message,
            },
            A::NotAdmin => Self::NotFound(message),
            A::NoSuchUser => Self::NotFound(message),
            A::SetupCodeRequired => Self::Forbidden {
                code: ErrorCode::SetupCodeRequired,
                message,
            },
            A::InvalidSetupCode => Self::Forbidden {
                code: ErrorCode::InvalidSetupCode,
                message,
            },
            A::Invalid { .. } => Self::Unprocessable {
                code: ErrorCode::InvalidInput,
                message,
            },
            A::WeakPassword(_) => Self::Unprocessable {
                code: ErrorCode::WeakPassword,
                message,
            },
            A::AccountExists => Self::Conflict {
                code: ErrorCode::AccountExists,
                message,
            },
            A::InvalidCredentials => Self::Unauthorized {
                code: ErrorCode::InvalidCredentials,
                message,
            },
            A::NotAuthenticated => Self::Unauthorized {
                code: ErrorCode::NotAuthenticated,
                message,
            },
            A::NoSuchSession | A::NoSuchToken => Self::NotFound(message),
            A::ReauthenticationRequired => Self::Forbidden {
                code: ErrorCode::ReauthenticationRequired,
                message,
            },
            A::SessionRequired => Self::Forbidden {
                code: ErrorCode::SessionRequired,
                message,
            },
            A::TokenNameTaken => Self::Conflict {
                code: ErrorCode::TokenNameTaken,
                message,
            },
            A::SecondFactorRequired => Self::Unauthorized {
                code: ErrorCode::SecondFactorRequired,
                message,
            },
            A::InvalidCode => Self::Unauthorized {
                code: ErrorCode::InvalidCode,
                message,
            },
            A::SecondFactorLocked { retry_after_secs } => Self::TooManyRequests {
                code: ErrorCode::SecondFactorLocked,
                message,
                retry_after_secs,
            },
            A::TotpAlreadyEnabled => Self::Conflict {
                code: ErrorCode::TotpAlreadyEnabled,
                message,
            },
            A::TotpNotStarted => Self::Conflict {
                code: ErrorCode::TotpNotStarted,
                message,
            },
            A::TotpNotEnabled => Self::Conflict {
                code: ErrorCode::TotpNotEnabled,
                message,
            },
            A::InvalidLink => Self::Unprocessable {
                code: ErrorCode::InvalidLink,
                message,
            },
            A::NoSuchProvider(_) | A::NoSuchIdentity | A::NoSuchPasskey => Self::NotFound(message),
            A::ProviderFailed(_) => Self::Unprocessable {
                code: ErrorCode::ProviderFailed,
                message,
            },
            A::NotLinked(_) => Self::Forbidden {
                code: ErrorCode::ProviderNotLinked,
                message,
            },
            A::AlreadyLinked(_) => Self::Conflict {
                code: ErrorCode::ProviderAlreadyLinked,
                message,
            },
            A::LastSignInMethod => Self::Conflict {
                code: ErrorCode::LastSignInMethod,
                message,
            },
            A::PasskeyFailed(_) => Self::Unprocessable {
                code: ErrorCode::PasskeyFailed,
                message,
            },
            A::PasskeyNameTaken => Self::Conflict {
                code: ErrorCode::PasskeyNameTaken,
                message,
            },
            A::Unavailable(_) => Self::NotReady(message),
            A::Busy => Self::Busy(message),
            A::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(e: crate::gateway::GatewayError) -> Self {
        use crate::gateway::{EventError as E, GatewayError as G};
        match e {
            // An event that does not fit its type (or has none) does not fit the schema; one
            // that does, refused by its reducer, is unprocessable.
            G::Event(E::Invalid { code, message })
                if matches!(code, ErrorCode::InvalidEvent | ErrorCode::UnknownEvent) =>
            {
                Self::BadRequest { code, message }
            }
            G::Event(E::Invalid { code, message }) => Self::Unprocessable { code, message },
            G::Event(E::Forbidden { code, message }) => Self::Forbidden { code, message },
            G::Event(E::NotFound { code, message }) => Self::Missing { code, message },
            G::Event(E::Conflict { code, message }) => Self::Conflict { code, message },
            G::Malformed(message) => Self::BadRequest {
                code: ErrorCode::Malformed,
                message,
            },
            G::Forbidden(message) => Self::Forbidden {
                code: ErrorCode::Forbidden,
                message,
            },
            G::SystemOnly(_) => Self::Forbidden {
                code: ErrorCode::ForbiddenEvent,
                message: e.to_string(),
            },
            G::NoSuchPoint(_) => Self::Missing {
                code: ErrorCode::HistoryPointNotFound,
                message: e.to_string(),
            },
            G::RoomFull(_) | G::Unloading => Self::NotReady(e.to_string()),
            G::DocumentFull(_) => Self::Conflict {
                code: ErrorCode::DocumentFull,
                message: e.to_string(),
            },
            G::Db(_) | G::Store(_) | G::NotStored | G::Corrupt { .. } | G::LoadFailed(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}
