//! The keyed trigram index of identities: each indexed value is stored as the set of its trigrams,
//! each an HMAC under the tenant's index key and the field's name, cut to 8 bytes. Identities write
//! it ([`super::identity`]); fuzzy search probes it (`bulk::search`).

use bunker_keys::BlindIndexKey;

/// A value as search compares it: phones by their digits, everything else trimmed and lower-cased.
pub fn searchable(field: &str, normal: &str) -> String {
    if field == "phone" {
        normal.chars().filter(char::is_ascii_digit).collect()
    } else {
        normal.trim().to_lowercase()
    }
}

/// The keyed hashes of a value's trigrams (padded as PostgreSQL's pg_trgm pads: two spaces before,
/// one after), sorted and without repeats.
pub fn grams(key: &BlindIndexKey, field: &str, text: &str) -> Vec<i64> {
    let mut grams = ordered_grams(key, field, text);
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// The keyed hashes of a value's trigrams in the order they occur.
fn ordered_grams(key: &BlindIndexKey, field: &str, text: &str) -> Vec<i64> {
    let padded: Vec<char> = "  ".chars().chain(text.chars()).chain([' ']).collect();
    let purpose = format!("search/{field}");
    padded
        .windows(3)
        .map(|w| {
            let gram: String = w.iter().collect();
            let hash = key.blind_index(&purpose, gram.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(hash.get(..8).unwrap_or(&[0; 8]));
            i64::from_be_bytes(first)
        })
        .collect()
}

/// How many of a term's trigrams a match may lack: a transposition changes four, a typo or a
/// missing end fewer.
const MAX_LOST: usize = 4;

/// What a search for `term` asks the index: all of its `n` grams, how many of them a candidate must
/// share (half, and all but [`MAX_LOST`]), and the grams to probe the index with. Any value sharing
/// `m` of the grams holds at least one of any `n - m + 1` of them, so the probe may be any such
/// subset: it takes those least likely to be common (not the first letters, which many values
/// share, nor an e-mail's domain), so that the index hands back far fewer rows to count.
pub struct SearchGrams {
    pub all: Vec<i64>,
    pub min_shared: i64,
    pub probe: Vec<i64>,
}

impl SearchGrams {
    pub fn of(key: &BlindIndexKey, field: &str, term: &str) -> Self {
        let ordered = ordered_grams(key, field, term);
        let all = grams(key, field, term);
        let n = all.len();
        let min_shared = n.div_ceil(2).max(n.saturating_sub(MAX_LOST));
        let needed = n - min_shared + 1;
        // Window `i` holds characters i-2..=i of the term (before the term: padding).
        let at = term.find('@').map(|at| term[..at].chars().count());
        let rank = |i: usize| match at {
            _ if i < 2 => (3, i),
            Some(at) if i >= at + 2 => (2, i),
            Some(at) if i >= at => (1, i),
            // Within the value (or an e-mail's local part), later windows first: suffixes vary
            // more than prefixes.
            _ => (0, usize::MAX - i),
        };
        let mut positions: Vec<usize> = (0..ordered.len()).collect();
        positions.sort_by_key(|i| rank(*i));
        let mut probe: Vec<i64> = Vec::new();
        for i in positions {
            if probe.len() >= needed {
                break;
            }
            if let Some(gram) = ordered.get(i).filter(|g| !probe.contains(g)) {
                probe.push(*gram);
            }
        }
        probe.sort_unstable();
        SearchGrams {
            all,
            min_shared: min_shared as i64,
            probe,
        }
    }
}
