//! Bunker's server: the `bunker` command line and the `/v2` API over poem + poem-openapi. What
//! Bunker does is in `bunker_services`; this crate only reaches it.
//!
//! - [`cli`]: the commands (init, migrate, serve, keys, tokens, audit, demo) and their settings.
//! - [`http`]: the application (routes, state, request logging), the extractors (body, caller) and
//!   the JSON error envelope.
//! - [`v1`]: the Databunker OSS `/v1` REST routes, each translated into `/v2` commands called in
//!   process.
//! - [`v2`]: the `/v2` request and response types and their handlers, one module per group of
//!   commands; each handler decodes, calls one service, and shapes the answer.
//! - [`web`]: the privacy portal (`/`) and the DPO portal (`/admin`), server-rendered pages that
//!   call the `/v2` endpoint in process with the session's token.

pub mod cli;
pub mod http;
pub mod v1;
pub mod v2;
pub mod web;
