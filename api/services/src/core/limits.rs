//! What one request may make the vault do: every document, list and value it stores or works on is
//! bounded here, and refused with a 400 naming the limit before any work grows with it.

use std::io;

use serde::Serialize;
use serde_json::Value;

use super::VaultError;

/// The largest profile (and any other sealed document) as JSON, when written by a caller who sees
/// all of it.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The most a caller who sees only some fields of a profile may hold in those fields, as JSON.
pub const MAX_VISIBLE_BYTES: usize = 256 * 1024;
/// The ceiling of any stored profile, as JSON: reached only by several callers each filling fields
/// the others cannot see.
pub const MAX_STORED_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of objects and arrays in a stored document. Well under what the JSON
/// parser accepts (128), so that whatever is stored can always be read back.
pub const MAX_DEPTH: usize = 64;
/// The longest indexed value (email, phone, login, custom) and search term, in characters.
pub const MAX_INDEXED_CHARS: usize = 320;
/// The most operations in one UserPatch.
pub const MAX_PATCH_OPERATIONS: usize = 100;
/// The most records, users or token handles in one bulk request.
pub const MAX_BULK_ITEMS: usize = 10_000;
/// The largest `request_metadata`, as JSON: it is sealed into every audit event of the request.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Refuses a document nested deeper than [`MAX_DEPTH`] or larger than `max_bytes` as JSON. `what`
/// names it in the message (`profile`, `records[3].profile`).
pub fn check_document(value: &Value, what: &str, max_bytes: usize) -> Result<(), VaultError> {
    if depth(value) > MAX_DEPTH {
        return Err(VaultError::BadRequest(format!(
            "The {what} is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if !fits(value, max_bytes) {
        return Err(VaultError::BadRequest(format!(
            "The {what} is larger than {max_bytes} bytes as JSON"
        )));
    }
    Ok(())
}

/// Refuses `request_metadata` over [`MAX_METADATA_BYTES`] or [`MAX_DEPTH`].
pub fn check_metadata(metadata: Option<&Value>) -> Result<(), VaultError> {
    match metadata {
        Some(value) => check_document(value, "request_metadata", MAX_METADATA_BYTES),
        None => Ok(()),
    }
}

/// Refuses a bulk request of more than [`MAX_BULK_ITEMS`] items (or none).
pub fn check_bulk(count: usize, what: &str) -> Result<(), VaultError> {
    if count == 0 {
        return Err(VaultError::BadRequest(format!("{what} must not be empty")));
    }
    check_at_most(count, what)
}

/// Refuses a list of more than [`MAX_BULK_ITEMS`] items.
pub fn check_at_most(count: usize, what: &str) -> Result<(), VaultError> {
    if count > MAX_BULK_ITEMS {
        return Err(VaultError::BadRequest(format!(
            "{what} may hold at most {MAX_BULK_ITEMS} items"
        )));
    }
    Ok(())
}

/// How deeply objects and arrays nest in `value` (a scalar is 0, `{}` is 1). Iterative, so that
/// no document can exhaust the stack.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, above)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        let level = above + 1;
        deepest = deepest.max(level);
        pending.extend(children.map(|child| (child, level)));
    }
    deepest
}

/// Whether `value` serializes to at most `max_bytes` (stops counting once over).
pub fn fits(value: &impl Serialize, max_bytes: usize) -> bool {
    let mut counter = Counter {
        written: 0,
        max: max_bytes,
    };
    serde_json::to_writer(&mut counter, value).is_ok()
}

/// Serialized size of `value`, or `None` if over `max_bytes`.
pub fn size(value: &impl Serialize, max_bytes: usize) -> Option<usize> {
    let mut counter = Counter {
        written: 0,
        max: max_bytes,
    };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.written)
}

/// A writer that only counts, and fails once past its limit.
struct Counter {
    written: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written > self.max {
            return Err(io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Characters that are not seen, or change how text around them is shown without showing
/// themselves: Unicode's default-ignorable code points (bidi controls, zero-width characters,
/// fillers, variation selectors, tags), format characters, line and paragraph separators, private
/// use and noncharacters.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{08E2}' | '\u{110BD}' | '\u{110CD}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}' | '\u{E000}'..='\u{F8FF}'
        | '\u{F0000}'..='\u{10FFFF}' | '\u{FDD0}'..='\u{FDEF}')
        || (c as u32) & 0xFFFE == 0xFFFE
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(depth(&nested(500)), 500);
    }

    #[test]
    fn documents_are_bounded_in_depth_and_size() {
        assert!(check_document(&nested(MAX_DEPTH), "profile", 1000).is_ok());
        let err = check_document(&nested(MAX_DEPTH + 1), "profile", 1000).unwrap_err();
        assert!(err.to_string().contains("deeper than 64"), "{err}");
        let big = json!({"a": "x".repeat(100)});
        assert!(check_document(&big, "profile", 50).is_err());
        assert_eq!(size(&big, 1000), Some(108));
        assert_eq!(size(&big, 100), None);
    }
}
