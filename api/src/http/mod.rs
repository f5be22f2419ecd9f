//! The HTTP layer: the application ([`app`]), the extractors ([`extract`]), the error envelope
//! ([`error`]), the listener and the operational endpoints.

pub mod app;
pub mod error;
pub mod extract;
pub mod inprocess;
pub mod limits;
pub mod listener;
pub mod mail;
pub mod metrics;
mod ops;
pub mod sms;
pub mod spec;
pub mod tls;
