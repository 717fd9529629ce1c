//! The API error and the one mapping from error kinds to HTTP statuses (and, with the gRPC
//! server, to gRPC codes).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use strata_engine::ErrorKind;

/// What a request failed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The kind, which decides the status.
    pub kind: Kind,
    /// A message naming what was wrong.
    pub message: String,
}

/// Error kinds as the API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Engine error kinds.
    Engine(ErrorKind),
    /// Missing or invalid token.
    Unauthenticated,
    /// Valid token without the right.
    PermissionDenied,
    /// A Qdrant feature Strata does not implement.
    Unimplemented,
    /// Body too large.
    PayloadTooLarge,
}

/// The single mapping: kind → (HTTP status, gRPC code name).
pub fn status_of(kind: Kind) -> (StatusCode, &'static str) {
    match kind {
        Kind::Engine(k) => match k {
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            ErrorKind::FailedPrecondition => {
                (StatusCode::PRECONDITION_FAILED, "FAILED_PRECONDITION")
            }
            ErrorKind::ResourceExhausted => (StatusCode::PAYLOAD_TOO_LARGE, "RESOURCE_EXHAUSTED"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            ErrorKind::Corruption | ErrorKind::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        },
        Kind::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Kind::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Kind::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        Kind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "RESOURCE_EXHAUSTED"),
    }
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    /// 400 naming the field.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Engine(ErrorKind::InvalidArgument), message)
    }
    /// 501 naming the feature.
    pub fn unsupported(feature: &str) -> ApiError {
        ApiError::new(
            Kind::Unimplemented,
            format!("{feature} is not supported by Strata"),
        )
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Engine(ErrorKind::NotFound), message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::PermissionDenied, message)
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        status_of(self.kind).0
    }
}

impl From<strata_engine::Error> for ApiError {
    fn from(e: strata_engine::Error) -> ApiError {
        ApiError::new(Kind::Engine(e.kind()), e.message().to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self.message, "request failed");
        }
        // Qdrant's error shape.
        let body = serde_json::json!({"status": {"error": self.message}, "time": 0.0});
        (status, axum::Json(body)).into_response()
    }
}
