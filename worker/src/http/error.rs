//! Every refusal the API makes: `{"error": {"code": ..., "message": ...}}`
//! with the right status. Messages speak to the caller and never carry
//! internals (database errors, paths): those go to the log instead.
//! [`ERRORS`] is the one table of them.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// One kind of refusal: its status, the `code` of its JSON body, and what it
/// means. Responses, the route list and `/openapi.json` all read [`ERRORS`].
#[derive(Debug, PartialEq, Eq)]
pub struct ErrorKind {
    pub status: u16,
    pub code: &'static str,
    pub description: &'static str,
    /// Any API endpoint may answer it (the guard's and the body reader's refusals).
    pub any_api_endpoint: bool,
}

const fn kind(status: u16, code: &'static str, description: &'static str, any_api_endpoint: bool) -> ErrorKind {
    ErrorKind { status, code, description, any_api_endpoint }
}

pub const BAD_REQUEST: ErrorKind =
    kind(400, "bad_request", "Malformed request (not JSON, not UTF-8, bad cursor)", true);
pub const UNAUTHORIZED: ErrorKind = kind(401, "unauthorized", "Missing or wrong bearer token", true);
pub const ADMIN_DISABLED: ErrorKind =
    kind(403, "admin_disabled", "Admin endpoints are off: the worker has no ADMIN_TOKENS", false);
pub const NOT_FOUND: ErrorKind = kind(404, "not_found", "Not found", false);
pub const CONFLICT: ErrorKind =
    kind(409, "conflict", "The models are not in a state that allows this (e.g. promote without a shadow)", false);
pub const TOO_LARGE: ErrorKind = kind(413, "too_large", "Body, number of texts or a text over its limit", true);
pub const INVALID_INPUT: ErrorKind =
    kind(422, "invalid_input", "Well-formed JSON of the wrong shape, or an empty text", true);
pub const MODEL_REFUSED: ErrorKind =
    kind(422, "model_refused", "The model could not be loaded or failed its checks; nothing changed", false);
pub const RATE_LIMITED: ErrorKind = kind(429, "rate_limited", "Over the client's rate limit; see Retry-After", true);
pub const OVERLOADED: ErrorKind = kind(503, "overloaded", "Overloaded or shutting down; see Retry-After", true);
pub const TIMEOUT: ErrorKind = kind(503, "timeout", "Timed out; see Retry-After", true);
pub const INTERNAL: ErrorKind = kind(500, "internal", "Internal error (the cause is logged, not returned)", false);

pub const ERRORS: &[ErrorKind] = &[
    BAD_REQUEST,
    UNAUTHORIZED,
    ADMIN_DISABLED,
    NOT_FOUND,
    CONFLICT,
    TOO_LARGE,
    INVALID_INPUT,
    MODEL_REFUSED,
    RATE_LIMITED,
    OVERLOADED,
    TIMEOUT,
    INTERNAL,
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("admin endpoints are off: start the worker with ADMIN_TOKENS to use them")]
    AdminDisabled,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    ModelRefused(String),
    #[error("too many requests; retry after {} s", retry_after_secs(*.0))]
    RateLimited(Duration),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("the request took too long")]
    Timeout,
    /// Something broke on our side; the cause is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ApiError {
    pub fn kind(&self) -> &'static ErrorKind {
        match self {
            Self::BadRequest(_) => &BAD_REQUEST,
            Self::Unauthorized => &UNAUTHORIZED,
            Self::AdminDisabled => &ADMIN_DISABLED,
            Self::NotFound(_) => &NOT_FOUND,
            Self::Conflict(_) => &CONFLICT,
            Self::TooLarge(_) => &TOO_LARGE,
            Self::Unprocessable(_) => &INVALID_INPUT,
            Self::ModelRefused(_) => &MODEL_REFUSED,
            Self::RateLimited(_) => &RATE_LIMITED,
            Self::Unavailable(_) => &OVERLOADED,
            Self::Timeout => &TIMEOUT,
            Self::Internal(_) => &INTERNAL,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn code(&self) -> &'static str {
        self.kind().code
    }

    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited(wait) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(*wait).max(1)));
            }
            Self::Unavailable(_) | Self::Timeout => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_in_the_table_once() {
        let errors = [
            ApiError::BadRequest(String::new()),
            ApiError::Unauthorized,
            ApiError::AdminDisabled,
            ApiError::NotFound(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::TooLarge(String::new()),
            ApiError::Unprocessable(String::new()),
            ApiError::ModelRefused(String::new()),
            ApiError::RateLimited(Duration::from_secs(1)),
            ApiError::Unavailable(""),
            ApiError::Timeout,
            ApiError::Internal(String::new()),
        ];
        for e in &errors {
            assert!(ERRORS.contains(e.kind()), "{e:?}");
            assert_eq!(e.status().as_u16(), e.kind().status);
        }
        let codes: std::collections::BTreeSet<&str> = ERRORS.iter().map(|k| k.code).collect();
        assert_eq!(codes.len(), ERRORS.len(), "codes are unique");
    }
}
