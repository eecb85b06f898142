//! The REST API (issue 4): work in progress.
