//! The HTTP layer: the application ([`app`]), the extractors ([`extract`]), the error envelope
//! ([`error`]), the listener and the operational endpoints.

pub mod app;
pub mod error;
pub mod extract;
mod listener;
mod ops;
