//! Building responses: JSON bodies and `Status` errors.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::machinery::status::Status;

pub fn json(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(code, bytes),
        Err(e) => status(Status::internal(format!("encoding the response: {e}"))),
    }
}

/// A response whose body is already encoded JSON.
pub fn json_bytes(code: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn status(status: Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry = status.details.as_ref().and_then(|d| d.retry_after_seconds);
    let mut response = json(code, &status);
    if let Some(seconds) = retry {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        status(self)
    }
}
