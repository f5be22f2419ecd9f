//! Recovery shares: a random recovery key, split 3-of-5 with Shamir's secret sharing, wraps the
//! master key a second time, so that any three share holders can recover it when the wrapping key
//! is lost.
//!
//! Uses `blahaj`, the maintained fork of `sharks` (sharks 0.5 has RUSTSEC-2024-0398: biased
//! polynomial coefficients). Shamir shares are not authenticated, so each share's text carries its
//! index and a checksum: a mistyped share is refused by name instead of yielding a wrong key.

use blahaj::{Share, Sharks};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{KeyError, WrappingKey};

/// Shares made at `bunker init`.
pub const SHARE_COUNT: u8 = 5;
/// Shares needed to recover.
pub const THRESHOLD: u8 = 3;
const CHECKSUM_LEN: usize = 4;
/// Index byte, 32 data bytes, checksum.
const SHARE_LEN: usize = 1 + 32 + CHECKSUM_LEN;

/// Splits `key` into [`SHARE_COUNT`] hexadecimal share texts, any [`THRESHOLD`] of which recover it.
pub fn split(key: &WrappingKey) -> Vec<Zeroizing<String>> {
    Sharks(THRESHOLD)
        .dealer(key.as_bytes())
        .take(usize::from(SHARE_COUNT))
        .map(|share| {
            let mut bytes = Zeroizing::new(Vec::<u8>::from(&share));
            let checksum = checksum(&bytes);
            bytes.extend_from_slice(&checksum);
            Zeroizing::new(hex::encode(bytes.as_slice()))
        })
        .collect()
}

/// Recovers the key from named share texts (names such as `key1` are used in errors).
pub fn recover(shares: &[(&str, &str)]) -> Result<WrappingKey, KeyError> {
    let mut parsed = Vec::with_capacity(shares.len());
    let mut indexes = Vec::new();
    for (name, text) in shares {
        let share = parse(name, text)?;
        if indexes.contains(&share.x.0) {
            return Err(KeyError::BadShare {
                name: (*name).to_owned(),
                reason: "it repeats another share",
            });
        }
        indexes.push(share.x.0);
        parsed.push(share);
    }
    if parsed.len() < usize::from(THRESHOLD) {
        return Err(KeyError::NotEnoughShares {
            needed: THRESHOLD,
            given: parsed.len(),
        });
    }
    let secret = Zeroizing::new(Sharks(THRESHOLD).recover(&parsed).map_err(|_| {
        KeyError::NotEnoughShares {
            needed: THRESHOLD,
            given: parsed.len(),
        }
    })?);
    WrappingKey::from_bytes(&secret)
}

fn parse(name: &str, text: &str) -> Result<Share, KeyError> {
    let bad = |reason| KeyError::BadShare {
        name: name.to_owned(),
        reason,
    };
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| bad("it is not hexadecimal"))?);
    if bytes.len() != SHARE_LEN {
        return Err(bad("it has the wrong length"));
    }
    let (share, check) = bytes.split_at(SHARE_LEN - CHECKSUM_LEN);
    if checksum(share).as_slice() != check {
        return Err(bad("its checksum does not match (mistyped?)"));
    }
    Share::try_from(share).map_err(|_| bad("it is malformed"))
}

fn checksum(share: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(b"bunker/recovery-share/v1")
        .chain_update(share)
        .finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(digest.get(..CHECKSUM_LEN).unwrap_or(&[0; CHECKSUM_LEN]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(shares: &[Zeroizing<String>], picks: &[usize]) -> Vec<(String, String)> {
        picks
            .iter()
            .map(|&i| (format!("key{}", i + 1), shares[i].to_string()))
            .collect()
    }

    fn recover_named(list: &[(String, String)]) -> Result<WrappingKey, KeyError> {
        let refs: Vec<(&str, &str)> = list.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        recover(&refs)
    }

    #[test]
    fn any_three_of_five_shares_recover_the_key_and_two_do_not() {
        let key = WrappingKey::generate();
        let shares = split(&key);
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in (a + 1)..5 {
                for c in (b + 1)..5 {
                    let got = recover_named(&named(&shares, &[a, b, c])).unwrap();
                    assert_eq!(got.as_bytes(), key.as_bytes(), "shares {a} {b} {c}");
                }
                let two = recover_named(&named(&shares, &[a, b]));
                assert!(matches!(two, Err(KeyError::NotEnoughShares { .. })));
            }
        }
    }

    #[test]
    fn a_mistyped_share_is_refused_by_name() {
        let shares = split(&WrappingKey::generate());
        let mut picked = named(&shares, &[0, 2, 4]);
        let text = &mut picked[1].1;
        let flipped = if text.ends_with('0') { '1' } else { '0' };
        text.pop();
        text.push(flipped);
        match recover_named(&picked) {
            Err(KeyError::BadShare { name, .. }) => assert_eq!(name, "key3"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        picked[1].1 = "zz".into();
        assert!(matches!(
            recover_named(&picked),
            Err(KeyError::BadShare { .. })
        ));
        let repeated = named(&shares, &[0, 0, 1]);
        assert!(matches!(
            recover_named(&repeated),
            Err(KeyError::BadShare { .. })
        ));
    }
}
