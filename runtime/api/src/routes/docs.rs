//! The API's own description: `GET /rest/openapi.json` (the OpenAPI 3 document generated from
//! the code, see [`crate::openapi`]) and `GET /rest/docs` (a page that renders it, with no
//! script or style from anywhere else). Neither needs credentials.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::ApiState;

/// The page behind `GET /rest/docs`: plain HTML and a small script that fetches the document.
const DOCS_PAGE: &str = include_str!("docs.html");

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/openapi.json", get(openapi_json)).route("/rest/docs", get(docs_page))
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    get,
    operation_id = "docs_openapi_json",
    path = "/rest/openapi.json",
    tag = "docs",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::json())
}

/// A browsable page of the document.
#[utoipa::path(
    get,
    operation_id = "docs_docs_page",
    path = "/rest/docs",
    tag = "docs",
    security(()),
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String))
)]
pub(crate) async fn docs_page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DOCS_PAGE)
}
