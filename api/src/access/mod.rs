//! Access control: the policy language and the engine that applies it. The engine is not wired
//! to requests yet: every access token today is root or a tenant admin, with full access.

pub mod engine;
pub mod policy;
