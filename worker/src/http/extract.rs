//! Request bodies read within the size limit and parsed into our types, so
//! bad input becomes an [`ApiError`] (400 malformed, 413 too big, 422 wrong
//! shape), never axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// The raw body, refused with 413 as soon as it is known to be too big:
/// from `Content-Length` before reading, or while streaming (DefaultBodyLimit).
pub struct Body(pub Bytes, pub Option<String>);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.limits.max_body_bytes;
        let too_large = || ApiError::TooLarge(format!("the request body is over {limit} bytes"));
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        })?;
        Ok(Body(bytes, content_type))
    }
}

impl Body {
    pub fn is_form(&self) -> bool {
        self.1.as_deref().is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    }

    /// JSON whatever the content type says (old clients send none or text/plain).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.0)
    }
}

/// A JSON body: 400 if it is not JSON (or not UTF-8), 422 if it is JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let body = Body::from_request(req, state).await?;
        body.json().map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the request body is empty; send JSON".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!("the body is not valid UTF-8 JSON (line {}, column {})", e.line(), e.column()))
    })?;
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(format!("unexpected JSON: {e}")))
}
