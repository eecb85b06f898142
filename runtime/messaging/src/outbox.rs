//! The outbox contract (stub).
