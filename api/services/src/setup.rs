//! Initializing an installation: the schema, the main tenant, the root token and the master key
//! (wrapped, and split into recovery shares). Used by `bunker init`, the demo and the test kit.

use bunker_db::keys::NewMasterKey;
use bunker_db::OwnerConnection;
use bunker_keys::{recovery, MasterKey, WrapPurpose, WrappingKey};
use bunker_tenancy::token::IssuedToken;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::keys::wrapping::WrappingSource;

/// A root token chosen by the operator must be at least this long.
pub const MIN_ROOT_TOKEN_LEN: usize = 32;
/// ... and must not repeat a few characters (`aaaa…`, `abab…`).
pub const MIN_ROOT_TOKEN_DISTINCT: usize = 12;

/// Well-known example UUIDs that pass every other rule (RFC 4122's own).
const EXAMPLE_UUIDS: &[&str] = &["f47ac10b58cc4372a5670e02b2c3d479"];

/// Whether an operator's root token is plausibly random enough: visible ASCII only (a header
/// loses surrounding spaces); a random (version 4, RFC 4122) UUID, as generated tokens are, or 32
/// hex digits or more, or at least 32 characters with 12 different ones; and, either way, without
/// patterns: repeated runs of three characters (`1234…1234`, `abcabc…`) or eight characters in a
/// step, next to each other or every second, third or fourth (`01234567`, `aabbcc…`, `0a1b2c…`,
/// `1qaz2wsx…`). Randomness cannot be measured, only obvious weakness refused; of a million random
/// UUIDs or hex strings, a handful are refused (make another).
pub fn strong_enough(token: &str) -> bool {
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return false;
    }
    // 32 random hex digits have 14 different ones on average, and 8 or fewer hardly ever.
    let hex = token.len() >= MIN_ROOT_TOKEN_LEN && token.chars().all(|c| c.is_ascii_hexdigit());
    let (chars, at_least_distinct): (Vec<char>, usize) = if hex {
        (token.to_ascii_lowercase().chars().collect(), 9)
    } else {
        match uuid::Uuid::try_parse(token) {
            Ok(uuid) => {
                let simple = uuid.simple().to_string();
                if uuid.get_version_num() != 4
                    || uuid.get_variant() != uuid::Variant::RFC4122
                    || EXAMPLE_UUIDS.contains(&simple.as_str())
                {
                    return false;
                }
                (simple.chars().collect(), 9)
            }
            Err(_) => (token.chars().collect(), MIN_ROOT_TOKEN_DISTINCT),
        }
    };
    let distinct = chars
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if chars.len() < MIN_ROOT_TOKEN_LEN || distinct < at_least_distinct {
        return false;
    }
    let windows = chars.len() - 2;
    let trigrams = chars
        .windows(3)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    trigrams + (windows / 10).max(5) >= windows && (1..=4).all(|lag| no_long_steps(&chars, lag))
}

/// Whether no eight characters `lag` apart go up or down (or stay) by the same step.
fn no_long_steps(chars: &[char], lag: usize) -> bool {
    (0..lag).all(|start| {
        let codes: Vec<i64> = chars
            .iter()
            .skip(start)
            .step_by(lag)
            .map(|c| *c as i64)
            .collect();
        let steps: Vec<i64> = codes
            .iter()
            .zip(codes.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        steps.chunk_by(|a, b| a == b).all(|same| same.len() + 1 < 8)
    })
}

/// Where `init` gets the root token from.
pub enum RootToken {
    /// Generate a random one (printed once by the CLI).
    Generate,
    /// Use this value (`BUNKER_ROOT_TOKEN`, or `DEMO` for the demo).
    Given(SecretString),
}

/// What `init` made that is shown once and kept nowhere: the root token and the recovery shares.
pub struct Initialized {
    pub root_token: IssuedToken,
    pub shares: Vec<Zeroizing<String>>,
}

/// Applies the migrations, then creates the main tenant, the root token and a random master key,
/// stored only wrapped: by `wrapping`, and by a recovery key that exists only as 5 Shamir shares (3
/// recover it). Refuses a database that was initialized before.
pub async fn init_database(
    url: &str,
    root: RootToken,
    wrapping: &WrappingSource,
) -> anyhow::Result<Initialized> {
    let mut owner = OwnerConnection::connect(url).await?;
    owner.migrate().await?;
    let installation = owner.installation_id().await?;
    let root_token = match root {
        RootToken::Generate => IssuedToken::generate(),
        RootToken::Given(secret) => IssuedToken::from_secret(secret),
    };
    let master = MasterKey::generate(1);
    let recovery_key = WrappingKey::generate();
    let master_key = NewMasterKey {
        wrapped: wrapping.wrap(&master, installation).await?,
        source: wrapping.kind(),
        recovery_wrapped: master.wrap_for(&recovery_key, WrapPurpose::Recovery)?,
    };
    let tenant_key = bunker_keys::TenantKey::generate();
    let main_tenant_key = bunker_db::tenant_keys::NewTenantKey {
        version: tenant_key.version(),
        wrapped: tenant_key.wrap(&master, bunker_db::TenantId::MAIN.0)?,
        wrapping: bunker_db::tenant_keys::Wrapping::Master(master.version()),
        active_in_seconds: 0,
        opens_master_derived: false,
    };
    owner
        .initialize(
            root_token.id,
            root_token.hash().as_bytes(),
            &master_key,
            &main_tenant_key,
        )
        .await?;
    Ok(Initialized {
        root_token,
        shares: recovery::split(&recovery_key),
    })
}

#[cfg(test)]
mod tests {
    use super::strong_enough;

    #[test]
    fn random_looking_root_tokens_pass_and_patterned_ones_do_not() {
        for good in [
            "8c4c5a56-0b8e-4c47-9d1e-6a3f2b7e9d15",
            "{8c4c5a56-0b8e-4c47-9d1e-6a3f2b7e9d15}",
            "3f9a0c7be1d24f86a5c3170e9b2d48f1",
            "3f9a0c7be1d24f86a5c3170e9b2d48f1c07e5a29d4b6e813",
            "Xh0Qy3+2vVtB9m1kRZpLw8oJ7sN4eFcU6aTgHdYiKqE=",
            "a-chosen-root-token-for-automation",
        ] {
            assert!(strong_enough(good), "{good}");
        }
        for weak in [
            "8c4c5a56-0b8e-1c47-9d1e-6a3f2b7e9d15", // version 1
            "8c4c5a56-0b8e-4c47-1d1e-6a3f2b7e9d15", // not the RFC 4122 variant
            "f47ac10b-58cc-4372-a567-0e02b2c3d479", // RFC 4122's example
            "12345678-1234-4123-8123-123456781234",
            "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9",
            "aabbccddeeffgghhiijjkkllmmnnooppqq",
            "0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p",
            "01234567012340120123012345670123",
            "the quick brown fox jumps over the lazy dog",
            "\t8c4c5a56-0b8e-4c47-9d1e-6a3f2b7e9d15",
            "abcdefghijklabcdefghijklabcdefgh",
        ] {
            assert!(!strong_enough(weak), "{weak}");
        }
    }
}
