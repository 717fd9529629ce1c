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
    /// A known path asked with a method it does not serve (HTTP only).
    MethodNotAllowed,
}

/// The single mapping: kind → (HTTP status, gRPC code). Both APIs use only this.
pub fn status_of(kind: Kind) -> (StatusCode, tonic::Code) {
    use tonic::Code;
    match kind {
        Kind::Engine(k) => match k {
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, Code::NotFound),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, Code::AlreadyExists),
            ErrorKind::FailedPrecondition => {
                (StatusCode::PRECONDITION_FAILED, Code::FailedPrecondition)
            }
            ErrorKind::ResourceExhausted => {
                (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted)
            }
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            // Qdrant answers a timed-out request with 503 as well; gRPC has its own code.
            ErrorKind::DeadlineExceeded => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::DeadlineExceeded)
            }
            ErrorKind::Unimplemented => (StatusCode::NOT_IMPLEMENTED, Code::Unimplemented),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
        },
        Kind::Unauthenticated => (StatusCode::UNAUTHORIZED, Code::Unauthenticated),
        Kind::PermissionDenied => (StatusCode::FORBIDDEN, Code::PermissionDenied),
        Kind::Unimplemented => (StatusCode::NOT_IMPLEMENTED, Code::Unimplemented),
        Kind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted),
        Kind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented),
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> tonic::Status {
        tonic::Status::new(status_of(e.kind).1, e.message)
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
    /// The same error with `at` (a field path ending in `.`) before the field it names.
    pub fn within(mut self, at: &str) -> ApiError {
        if !at.is_empty() {
            self.message = format!("{at}{}", self.message);
        }
        self
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
    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::MethodNotAllowed, message)
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
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::error!(status = status.as_u16(), error = %self.message, "request failed");
        }
        // Qdrant's error shape.
        let body = serde_json::json!({"status": {"error": self.message}, "time": 0.0});
        (status, axum::Json(body)).into_response()
    }
}
