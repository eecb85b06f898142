//! The success envelope `{"success": true, "payload": …}`, paging, and the extractors that
//! turn every malformed request into an [`ApiError`] (never axum's plain-text rejections).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentact_store::{List, ListParams, MAX_TAKE};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Largest JSON body any endpoint reads. Bodies in this API are small objects and lists of
/// at most a few hundred numbers; a megabyte leaves room and bounds memory per request.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// `200 {"success": true, "payload": …}`.
#[derive(Debug)]
pub struct Payload<T>(pub T);

/// `201 {"success": true, "payload": …}`: an object was created.
#[derive(Debug)]
pub struct Created<T>(pub T);

#[derive(Debug, Serialize)]
struct Envelope<T> {
    success: bool,
    payload: T,
}

impl<T: Serialize> IntoResponse for Payload<T> {
    fn into_response(self) -> Response {
        axum::Json(Envelope { success: true, payload: self.0 }).into_response()
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, axum::Json(Envelope { success: true, payload: self.0 })).into_response()
    }
}

/// A page of a list as the API shows it: `{take, skip, total, data}`.
pub type Page<T> = List<T>;

/// A JSON body. Checks the content type, bounds the size, and reports where and why the body
/// does not fit `T` (the path of the bad field, line and column). Request types use
/// `#[serde(deny_unknown_fields)]` so a misspelt field is an error, not silently ignored.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?").to_owned());
        match &content_type {
            Some(ct) if is_json(ct) => {}
            Some(ct) => return Err(ApiError::ContentType { found: ct.clone() }),
            None => return Err(ApiError::ContentType { found: "no Content-Type".into() }),
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { limit: MAX_JSON_BODY }
            } else {
                ApiError::UnreadableBody { reason: e.body_text() }
            }
        })?;
        // serde would read a struct from an array too (fields by position); every body of
        // this API is an object, so anything else is refused before a field is matched.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'{') {
            return Err(ApiError::NotAnObject);
        }
        parse_json(&bytes).map(ApiJson)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into `T` with a message that says what to fix.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::EmptyBody);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::MalformedJson { reason: e.to_string() },
        Category::Data => {
            ApiError::JsonShape { path: (path != ".").then(|| path.to_owned()), reason: e.to_string() }
        }
    }
}

/// Query parameters; a value that does not parse is a 400 envelope.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state).await.map(|q| ApiQuery(q.0)).map_err(
            |e: QueryRejection| {
                let text = e.body_text();
                let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
                ApiError::BadQuery(text.to_owned())
            },
        )
    }
}

/// An object id from the path (`/rest/lease/tn/{uuid}`); not a UUID is a 400 envelope.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| ApiError::BadPath { param: "id", reason: e.body_text() })?;
        parse_id(&raw).map(IdPath)
    }
}

/// Two object ids from the path (`/rest/sip/connection/{uuid}/invites/{invite}`): the parent
/// and the child; either not a UUID is a 400 envelope.
#[derive(Debug, Clone, Copy)]
pub struct IdsPath(pub uuid::Uuid, pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdsPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((a, b)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| ApiError::BadPath { param: "id", reason: e.body_text() })?;
        Ok(IdsPath(parse_id(&a)?, parse_id(&b)?))
    }
}

/// Parses an id from the path.
pub(crate) fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::BadPath {
        param: "id",
        reason: format!("{raw:?} is not a UUID (expected e.g. 0b6f6c3e-8e7b-4c6e-9a51-2f1d5a0c9e11)"),
    })
}

/// A name field: trimmed, 1 to `max` characters.
pub(crate) fn check_name(field: &str, name: &str, max: usize) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be 1 to {max} characters")));
    }
    Ok(name.to_owned())
}

/// A raw path segment (`/rest/telecom/lookup/{tn}`), checked by the handler.
#[derive(Debug, Clone)]
pub struct SegmentPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SegmentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| SegmentPath(p.0))
            .map_err(|e| ApiError::BadPath { param: "segment", reason: e.body_text() })
    }
}

/// Two raw path segments (`/rest/sip/domain/{domain}/user/{uuid}`), checked by the handler.
#[derive(Debug, Clone)]
pub struct SegmentsPath(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for SegmentsPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|p| SegmentsPath(p.0.0, p.0.1))
            .map_err(|e| ApiError::BadPath { param: "segment", reason: e.body_text() })
    }
}

/// `?take=&skip=` of a list. Other query keys (`jwt`, filters) are left to other extractors.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Objects per page (default 50, at most 1000).
    #[param(maximum = 1000)]
    pub take: Option<u32>,
    /// Objects to skip.
    pub skip: Option<u32>,
}

impl Paging {
    /// The store's paging; a `take` above [`MAX_TAKE`] is refused rather than silently cut,
    /// so a caller does not mistake a short page for the end of the list.
    pub fn params(self) -> Result<ListParams, ApiError> {
        let defaults = ListParams::default();
        let take = self.take.unwrap_or(defaults.take);
        if take > MAX_TAKE {
            return Err(ApiError::invalid("take", format!("must be at most {MAX_TAKE}")));
        }
        Ok(ListParams::page(take, self.skip.unwrap_or(0)))
    }

    /// The paging of a `POST …/search` whose body has `order` (`{"created_on": "DESC"}`) and a
    /// time window `since`..`until`, which must not be empty.
    pub fn search_params(
        self,
        order: Option<crate::routes::numbers::SortOrder>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<ListParams, ApiError> {
        let mut params = self.params()?;
        if let Some(crate::routes::numbers::Direction::Desc) = order.and_then(|o| o.created_on) {
            params.order = opentact_store::Order::Desc;
        }
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(ApiError::invalid("until", "must be after since"));
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        tn: i64,
    }

    fn message(bytes: &str) -> String {
        parse_json::<Body>(bytes.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn json_errors_say_where() {
        assert!(message("{").starts_with("malformed JSON: EOF"), "{}", message("{"));
        assert!(message("").contains("empty"));
        let m = message(r#"{"name":"a","items":[{"tn":"x"}]}"#);
        assert!(m.contains("`items[0].tn`") && m.contains("expected i64"), "{m}");
        let m = message(r#"{"name":"a","items":[],"nmae":1}"#);
        assert!(m.contains("unknown field `nmae`"), "{m}");
        let m = message(r#"{"name":"a","items":[]} x"#);
        assert!(m.starts_with("malformed JSON: trailing characters"), "{m}");
        let m = message(r#"{"items":[]}"#);
        assert!(m.contains("missing field `name`"), "{m}");
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn paging_bounds() {
        assert_eq!(Paging::default().params().unwrap(), ListParams::default());
        assert_eq!(Paging { take: Some(5), skip: Some(10) }.params().unwrap(), ListParams::page(5, 10));
        assert!(Paging { take: Some(MAX_TAKE + 1), skip: None }.params().is_err());
    }
}
