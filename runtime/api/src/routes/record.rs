//! Recordings: `GET /rest/record/{uuid}` (what was recorded, on which call, how long) and
//! `GET /rest/record/{uuid}/audio` (the WAV file the platform kept), streamed from the file
//! with its `Content-Length`: an hour of audio is tens of MB, and a few clients fetching
//! recordings must not hold them whole in memory.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentact_store::{ObjectKind, RecordingRecord};

use crate::auth::AuthAccount;
use crate::envelope::{IdPath, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/record/{uuid}", get(get_one)).route("/rest/record/{uuid}/audio", get(audio))
}

#[utoipa::path(
    get,
    operation_id = "record_get_one",
    path = "/rest/record/{uuid}",
    tag = "call",
    summary = "A recording: on which call, its name, how long",
    params(("uuid" = uuid::Uuid, Path, description = "The recording's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<RecordingRecord>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<RecordingRecord>, ApiError> {
    match state.repo.get_recording(auth.account, id).await? {
        Some(r) => Ok(Payload(r)),
        None => Err(ApiError::not_found(ObjectKind::Recording, id)),
    }
}

#[utoipa::path(
    get,
    operation_id = "record_audio",
    path = "/rest/record/{uuid}/audio",
    tag = "call",
    summary = "The recording's audio (WAV)",
    params(("uuid" = uuid::Uuid, Path, description = "The recording's id")),
    responses((status = 200, description = "The WAV file", content_type = "audio/wav", body = doc::Binary), doc::ApiErrors)
)]
async fn audio(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let recording = state
        .repo
        .get_recording(auth.account, id)
        .await?
        .ok_or(ApiError::not_found(ObjectKind::Recording, id))?;
    let gone = || ApiError::NotFound { kind: "recording audio", id: id.to_string() };
    let dir = state.recordings_dir.as_ref().ok_or_else(gone)?;
    // Every part of the path comes from the store's ids (UUIDs), never from the request.
    let path = opentact_call::model::recording_file(
        dir,
        &recording.account.to_string(),
        &recording.call.to_string(),
        &recording.uuid.to_string(),
    );
    let file = tokio::fs::File::open(&path).await.map_err(|_| gone())?;
    let length = file.metadata().await.map_err(|_| gone())?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "audio/wav".to_owned()), (header::CONTENT_LENGTH, length.to_string())], body)
        .into_response())
}
