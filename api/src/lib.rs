//! Bunker's server: the `/v2` API over poem + poem-openapi, and the `bunker` command line.
//!
//! A request travels one way: `app` (routes, JSON envelope) -> `extract` (body, caller) ->
//! `bunker_tenancy` (tenant, token, authorization, tenant commands) -> `bunker_db` (one transaction
//! per request as `bunker_app`, tenant set transaction-locally).

pub mod access;
pub mod app;
pub mod commands;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod keyadmin;
mod listener;
mod ops;
pub mod setup;
pub mod tokens;
pub mod v2;
pub mod vault;
pub mod wrapping;
