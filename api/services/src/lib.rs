//! Bunker's services: everything Bunker does, with no HTTP in it (the `bunker` crate holds the
//! command line and the `/v2` layer, and calls these).
//!
//! The modules build on one another in one direction, lowest first:
//!
//! - [`access`]: pure — every command and how it is authorized, the policy language and the engine
//!   that applies it. No database, no keys.
//! - [`core`]: what every service shares — the [`Vault`] handle (database, keyring, settings), its
//!   errors, one generic seal / open of JSON, the labels that bind ciphertext to tenant, kind and
//!   row, user lookups and audit events, input limits, and the gate that loads a caller's policies
//!   and applies the engine's answers.
//! - One module per concern, each a set of `impl Vault` methods over the core: [`tokens`]
//!   (tokenization), [`groups`] (groups and roles), [`users`] (the user vault), [`appdata`], [`policies`],
//!   [`bulk`] (bulk and search), [`xtokens`] (role and user access tokens), [`requests`] (user requests and their approval), [`consent`] (legal bases, processing activities, agreements), [`audit`] (the trail and
//!   its chain), [`tenants`] (tenants and their admin tokens), [`keys`] (wrapping, master-key
//!   rotation, re-encryption, recovery), [`setup`] (a new database) and the expiry [`sweeper`].
//!
//! A service runs each operation in one tenant transaction (`bunker_db`) that also writes its audit
//! event, so an operation whose event cannot be written does not happen.

pub mod access;
pub mod appdata;
pub mod audit;
pub mod bulk;
pub mod consent;
pub mod core;
pub mod expiration;
pub mod files;
pub mod groups;
pub mod keys;
pub mod login;
pub mod metrics;
pub mod policies;
pub mod portal;
pub mod requests;
pub mod sessions;
pub mod setup;
pub mod shared;
pub mod sweeper;
pub mod system;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod xtokens;

pub use crate::core::{Vault, VaultError, VaultSettings};
