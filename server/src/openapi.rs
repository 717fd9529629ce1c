//! The OpenAPI 3 document of the HTTP API (`GET /openapi.json`), checked in as
//! `server/openapi.json`. Tests check it against the router's route list and validate it with
//! `openapi-spec-validator`.

use axum::http::header;
use axum::response::IntoResponse;

/// The document.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// Serves the document (no auth).
pub(crate) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
