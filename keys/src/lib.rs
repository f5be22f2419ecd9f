//! Bunker's key hierarchy. Knows nothing of HTTP or SQL.
//!
//! ```text
//! WrappingKey (operator: BUNKER_WRAPPING_KEY[_FILE]) or AWS KMS
//!   └─ wraps MasterKey (random, made by `bunker init`, stored only wrapped, versioned)
//!        └─ wraps each TenantKey (random, versioned; or the tenant's own AWS KMS key wraps it)
//!             └─ HKDF-SHA256(tenant key, tenant id, purpose) -> TenantKeys
//!                (a tenant made before tenant keys keeps its lookup keys, once derived from the
//!                master key, inside its tenant key)
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
mod tenant_key;
mod user;

pub use error::KeyError;
pub use keyring::Keyring;
pub use master::{MasterKey, WrapPurpose, WrappingKey};
pub use seal::{sealed_version, Label, SealKey, SealKeys, SEALED_OVERHEAD};
pub use tenant::{BlindIndexKey, TenantKeys};
pub use tenant_key::{TenantKey, TENANT_KEY_VERSIONS};
pub use user::UserKey;
