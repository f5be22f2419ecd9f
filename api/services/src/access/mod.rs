//! Access control, pure: the commands and how each is authorized, the policy language and the
//! engine that applies it. Nothing here touches the database or the vault; the gate that loads
//! what the engine needs for a request and applies its answer is the vault's (`vault::gate`).

pub mod command;
pub mod engine;
pub mod policy;

pub use command::{class, Command, CommandClass, Operation, DENIED};
