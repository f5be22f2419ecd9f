//! How a file's content is sealed: in chunks of [`CHUNK`] bytes, each sealed with the file's own key
//! under a label naming the file, the chunk's position and whether it is the last. So a large file
//! is sealed and opened piece by piece (never whole in memory), and chunks cannot be reordered,
//! dropped, repeated or cut off at the end without the read failing.
//!
//! The object is the sealed chunks one after another; every one but the last is [`SEALED_CHUNK`]
//! long. An empty file is one empty last chunk.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bunker_keys::{Label, UserKey, SEALED_OVERHEAD};
use bytes::{Bytes, BytesMut};

use crate::core::VaultError;

/// Plain bytes per chunk: a multiple of 3, so that each chunk's base64 is whole (no padding but
/// at the very end) and a file's base64 is its chunks' base64 one after another.
pub const CHUNK: usize = 3 * 21_845;

/// Base64 characters per chunk.
pub const CHUNK_BASE64: usize = CHUNK / 3 * 4;

/// A sealed chunk's length (but the last's).
pub const SEALED_CHUNK: usize = CHUNK + SEALED_OVERHEAD;

/// How long the object of a file of `size` bytes is: its chunks (one, empty, for an empty file),
/// each longer by the seal's overhead.
pub fn sealed_len(size: u64) -> u64 {
    let chunks = size.div_ceil(CHUNK as u64).max(1);
    size + chunks * SEALED_OVERHEAD as u64
}

/// The row of chunk `index` of `file` in its label.
fn chunk_row(file: &str, index: u64, last: bool) -> String {
    if last {
        format!("{file}/{index}/last")
    } else {
        format!("{file}/{index}")
    }
}

fn chunk_label<'a>(tenant: i64, row: &'a str) -> Label<'a> {
    Label {
        tenant,
        kind: "file_chunk",
        row,
    }
}

/// Seals chunk `index` of a file.
pub fn seal_chunk(
    key: &UserKey,
    tenant: i64,
    file: &str,
    index: u64,
    last: bool,
    plain: &[u8],
) -> Result<Bytes, VaultError> {
    let row = chunk_row(file, index, last);
    Ok(Bytes::from(key.seal(&chunk_label(tenant, &row), plain)?))
}

/// The base64 of a request, read chunk by chunk.
pub struct Base64Chunks<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Base64Chunks<'a> {
    pub fn new(text: &'a str) -> Self {
        Base64Chunks {
            text: text.as_bytes(),
            at: 0,
        }
    }

    /// How many bytes the text decodes to at most (an upper bound that padding may lower by 2).
    pub fn decoded_len_bound(text: &str) -> u64 {
        (text.len() as u64).div_ceil(4) * 3
    }

    /// The next chunk of plain bytes and whether it is the last; `None` after the last.
    pub fn next_chunk(&mut self) -> Option<Result<(Vec<u8>, bool), VaultError>> {
        if self.at > self.text.len() {
            return None;
        }
        let end = (self.at + CHUNK_BASE64).min(self.text.len());
        let piece = self.text.get(self.at..end).unwrap_or_default();
        let last = end == self.text.len();
        // Past the end once the last chunk is given (an empty text gives one empty last chunk).
        self.at = if last { self.text.len() + 1 } else { end };
        Some(
            STANDARD
                .decode(piece)
                .map(|plain| (plain, last))
                .map_err(|_| {
                    VaultError::BadRequest("The filedata parameter is not valid base64".into())
                }),
        )
    }
}

/// Opens a file's sealed object as it streams in, chunk by chunk.
pub struct Opener {
    key: UserKey,
    tenant: i64,
    file: String,
    size: u64,
    buffer: BytesMut,
    index: u64,
    opened: u64,
}

impl Opener {
    /// Opens what was sealed for `file` of `tenant`, expected to be `size` bytes.
    pub fn new(key: UserKey, tenant: i64, file: String, size: u64) -> Self {
        Opener {
            key,
            tenant,
            file,
            size,
            buffer: BytesMut::new(),
            index: 0,
            opened: 0,
        }
    }

    /// The plain chunks whole in what has arrived (`bytes`), keeping the rest for later.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, VaultError> {
        self.buffer.extend_from_slice(bytes);
        let mut plain = Vec::new();
        // A chunk is whole once more follows it (the last one is opened by `finish`).
        while self.buffer.len() > SEALED_CHUNK {
            let sealed = self.buffer.split_to(SEALED_CHUNK);
            plain.push(self.open(&sealed, false)?);
        }
        Ok(plain)
    }

    /// The last chunk, once everything has arrived; refuses an object cut short or grown.
    pub fn finish(&mut self) -> Result<Bytes, VaultError> {
        let sealed = std::mem::take(&mut self.buffer);
        let last = self.open(&sealed, true)?;
        if self.opened != self.size {
            tracing::error!("a file's object does not hold the size recorded for it");
            return Err(VaultError::FileDamaged);
        }
        Ok(last)
    }

    fn open(&mut self, sealed: &[u8], last: bool) -> Result<Bytes, VaultError> {
        let row = chunk_row(&self.file, self.index, last);
        let plain = self
            .key
            .open(&chunk_label(self.tenant, &row), sealed)
            .map_err(|_| {
                tracing::error!("a chunk of a file's object fails its integrity check");
                VaultError::FileDamaged
            })?;
        self.index += 1;
        self.opened += plain.len() as u64;
        Ok(Bytes::copy_from_slice(&plain))
    }
}
