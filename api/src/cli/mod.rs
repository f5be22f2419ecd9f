//! The `bunker` commands, one module each: [`init`] (and migrate), [`serve`] (and the serving
//! role), [`keys`], [`tokens`], [`audit`], [`demo`] and [`import_v1`]; their settings are [`config`]'s, and the
//! private PostgreSQL of the demo and the test kit is [`cluster`]'s.

pub mod audit;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod import_v1;
pub mod init;
pub mod keys;
pub mod serve;
pub mod tokens;

pub use audit::audit_verify;
pub use init::{init, migrate};
pub use keys::{
    keys_recover, keys_reencrypt, keys_rotate_master, keys_rotate_wrapping, keys_status,
    read_shares, RewrapTarget,
};
pub use serve::{serve, serve_role_create, shutdown_listener, shutdown_signal};
pub use tokens::{token_list, token_revoke, token_rotate_admin, token_rotate_root};
