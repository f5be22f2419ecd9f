//! Bunker's key hierarchy. Knows nothing of HTTP or SQL.
//!
//! ```text
//! WrappingKey (operator: BUNKER_WRAPPING_KEY[_FILE])
//!   └─ wraps MasterKey (random, made by `bunker init`, stored only wrapped, versioned)
//!        └─ HKDF-SHA256(master, tenant id, purpose) -> TenantKeys
//!             ├─ records: AES-256-GCM SealKey for user records and their versions
//!             ├─ audit:   AES-256-GCM SealKey for audit event details
//!             ├─ index:   HMAC-SHA256 BlindIndexKey for lookups by email/phone/login/custom
//!             ├─ fingerprint: HMAC-SHA256 key for version checksums
//!             ├─ tokens:  AES-256-GCM SealKey for tokenized values
//!             ├─ token_index: HMAC-SHA256 key making `unique` tokens unique
//!             └─ (records) wraps each user's UserKey (random, per user): app data, its versions
//!                and pending changes; forget-me destroys it
//! ```
//!
//! Every key is zeroized on drop and prints as `..`.

mod error;
mod keyring;
mod master;
pub mod recovery;
mod seal;
mod tenant;
mod user;

pub use error::KeyError;
pub use keyring::Keyring;
pub use master::{MasterKey, WrapPurpose, WrappingKey};
pub use seal::{sealed_version, Label, SealKey, SealKeys, SEALED_OVERHEAD};
pub use tenant::{BlindIndexKey, TenantKeys};
pub use user::UserKey;
