//! Access control: the policy language, the engine that applies it, and the gate that loads what
//! the engine needs for a request and applies its answer.

pub mod command;
pub mod engine;
pub mod gate;
pub mod policy;

pub use command::Command;
pub use gate::{class, CommandClass, Gate, DENIED};
