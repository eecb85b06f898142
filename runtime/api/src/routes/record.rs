//! Recordings: `GET /rest/record/{uuid}` (what was recorded, on which call, how long) and
//! `GET /rest/record/{uuid}/audio` (the WAV file the platform kept), streamed from the file
//! with its `Content-Length`: an hour of audio is tens of MB, and a few clients fetching
//! recordings must not hold them whole in memory. `DELETE /rest/record/{uuid}` deletes one
//! (its row and its file), which gives its place back to the account's recording quota
//! (`media.max_recordings_per_account`, `media.max_recording_mib_per_account`).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentact_store::{ObjectKind, RecordingRecord};
use serde::Serialize;

use crate::auth::AuthAccount;
use crate::envelope::{IdPath, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/record/{uuid}", get(get_one).delete(remove))
        .route("/rest/record/{uuid}/audio", get(audio))
}

/// What a delete answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedRecording {
    pub uuid: uuid::Uuid,
    pub deleted: bool,
}

#[utoipa::path(
    delete,
    operation_id = "record_remove",
    path = "/rest/record/{uuid}",
    tag = "call",
    summary = "Delete a recording (its audio too), freeing its place in the account's recording quota",
    params(("uuid" = uuid::Uuid, Path, description = "The recording's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<DeletedRecording>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<DeletedRecording>, ApiError> {
    // The row first: it is what the quota counts and what says whose the file is.
    let recording = state.repo.delete_recording(auth.account, id).await?;
    if let Some(dir) = &state.recordings_dir {
        let path = file_of(dir, &recording);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "could not delete a recording's file")
            }
        }
    }
    Ok(Payload(DeletedRecording { uuid: id, deleted: true }))
}

/// Where the recording's WAV is. Every part of the path comes from the store's ids (UUIDs),
/// never from the request.
fn file_of(dir: &std::path::Path, recording: &RecordingRecord) -> std::path::PathBuf {
    opentact_call::model::recording_file(
        dir,
        &recording.account.to_string(),
        &recording.call.to_string(),
        &recording.uuid.to_string(),
    )
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
    let path = file_of(dir, &recording);
    let file = tokio::fs::File::open(&path).await.map_err(|_| gone())?;
    let length = file.metadata().await.map_err(|_| gone())?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "audio/wav".to_owned()), (header::CONTENT_LENGTH, length.to_string())], body)
        .into_response())
}
