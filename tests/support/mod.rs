//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod baresip;
pub mod http;
pub mod platform;
pub mod provision;
pub mod runner;
pub mod sipp;
pub mod ws;
