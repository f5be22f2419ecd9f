/// Why a key could not be had or a sealed value could not be opened. Messages never contain key
/// material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the wrapping key must be 64 hexadecimal characters (256 bits)")]
    MalformedWrappingKey,
    #[error("cannot read the wrapping key file: {0}")]
    WrappingKeyFile(String),
    #[error("the wrapping key does not open the master key: it is not the key this database was initialized with")]
    WrongWrappingKey,
    #[error("a sealed value does not open: it was altered, moved to another row or tenant, or sealed with another key")]
    Unsealable,
    #[error("a sealed value was made with key version {found}; this key is version {expected}")]
    KeyVersion { found: i32, expected: i32 },
    #[error("encryption failed")]
    Seal,
    #[error("{name} is not a valid recovery share: {reason}")]
    BadShare { name: String, reason: &'static str },
    #[error("{needed} recovery shares are needed; {given} were given")]
    NotEnoughShares { needed: u8, given: usize },
    #[error("the recovery shares do not open the master key (shares of another installation?)")]
    WrongShares,
}
