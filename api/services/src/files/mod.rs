//! The file vault (FileCreate, FileGet, FileListUserFiles, FileReplaceTags, FileDelete,
//! BulkListFilesByTag): a user's documents (KYC scans, contracts), sealed and kept in object storage.
//!
//! Each file has its own random key, stored wrapped by the user's key, so forget-me (which destroys
//! the user's key) shreds every file of the user wherever a copy of its object is left. The content
//! is sealed in chunks ([`chunks`]) as it is decoded from the request's base64 and uploaded part by
//! part, and opened chunk by chunk as it is read back, so a file never sits whole in memory in
//! plain. The filename, media type and tags are sealed with the user's key; the row keeps keyed
//! hashes of the content (duplicates), the name (the newest file of a name) and each tag (look-ups).
//!
//! An upload is decided and given its key in one transaction, sent to the store outside any
//! transaction, and recorded in a second one (which checks that the user is still there); an
//! object whose row never came, or is gone, is removed at once where possible and otherwise by the
//! sweeper ([`Vault::sweep_orphan_files`]).
//!
//! Access: a role or user token needs the `file` section of the user; a user's own token may read
//! and list its own files.

pub mod chunks;
pub mod store;

use std::collections::VecDeque;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bunker_db::files::{self as rows, NewFile, StoredFile};
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys, UserKey};
use bunker_tenancy::Caller;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::bulk::require_unlock;
use crate::core::expiry::Expiry;
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::limits::invisible;
use crate::core::{
    open_json, read_events, record_event, seal_json, user_key_for_reading, user_key_for_writing,
    UserEvent, Vault, VaultError,
};
use chunks::{Base64Chunks, Opener, CHUNK};
pub use store::{FileStore, FilesSettings, StoreConfigError};

/// The most files FileListUserFiles answers (oldest first).
pub const MAX_LISTED_FILES: i64 = 1_000;

/// The most files of a tag BulkListFilesByTag looks through for a role or user token.
const MAX_SCANNED: i64 = 10_000;

/// How old an object without a row must be before the sweeper removes it (an upload in flight
/// has its row a moment after its object).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// The file vault of a server: its store and limits.
#[derive(Clone, Debug)]
pub struct Files {
    pub store: FileStore,
    pub max_bytes: u64,
    pub orphan_grace: Duration,
}

/// A file's tags: lower-cased, de-duplicated, sorted, each `^[a-z0-9][a-z0-9._-]{0,49}$`, at most 16.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags(Vec<String>);

impl Tags {
    /// Reads `tags` as the contract gives them: a list of strings, or one string of tags separated
    /// by commas. The refusal names the rule, never the text.
    pub fn parse(value: Option<&Value>) -> Result<Self, VaultError> {
        let refused = || {
            VaultError::BadRequest(
                "Invalid tags: at most 16, each 1 to 50 characters of a-z, 0-9, '.', '_' or '-', \
                 starting with a letter or digit"
                    .into(),
            )
        };
        let texts: Vec<&str> = match value {
            None => Vec::new(),
            Some(Value::String(text)) => text.split(',').collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().ok_or_else(refused))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(refused()),
        };
        let mut tags = Vec::new();
        for text in texts {
            let tag = text.trim().to_ascii_lowercase();
            if tag.is_empty() {
                continue;
            }
            if !Tags::valid(&tag) {
                return Err(refused());
            }
            tags.push(tag);
        }
        tags.sort();
        tags.dedup();
        if tags.len() > 16 {
            return Err(refused());
        }
        Ok(Tags(tags))
    }

    /// One tag to look for (BulkListFilesByTag, FileListUserFiles): not split on commas.
    pub fn one(text: &str) -> Result<String, VaultError> {
        let tag = text.trim().to_ascii_lowercase();
        if Tags::valid(&tag) {
            Ok(tag)
        } else {
            Err(VaultError::BadRequest(
                "Invalid tag: 1 to 50 characters of a-z, 0-9, '.', '_' or '-', starting with a \
                 letter or digit"
                    .into(),
            ))
        }
    }

    fn valid(tag: &str) -> bool {
        let mut chars = tag.chars();
        (1..=50).contains(&tag.len())
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    fn hashes(&self, keys: &TenantKeys) -> Vec<Vec<u8>> {
        self.0.iter().map(|t| tag_hash(keys, t)).collect()
    }
}

fn tag_hash(keys: &TenantKeys, tag: &str) -> Vec<u8> {
    keys.index.blind_index("file_tag", tag.as_bytes()).to_vec()
}

fn name_hash(keys: &TenantKeys, name: &str) -> Vec<u8> {
    keys.index
        .blind_index("file_name", name.as_bytes())
        .to_vec()
}

/// A filename: 1 to 255 characters, not only spaces, no control or invisible characters (a
/// right-to-left override would show `exe.txt` for `txt.exe`).
pub fn check_filename(name: &str) -> Result<(), VaultError> {
    if (1..=255).contains(&name.chars().count())
        && !name.trim().is_empty()
        && !name.chars().any(|c| c.is_control() || invisible(c))
    {
        Ok(())
    } else {
        Err(VaultError::BadRequest(
            "Invalid filename: 1 to 255 characters, not only spaces, no control or invisible characters".into(),
        ))
    }
}

/// A media type as given (`type/subtype`, parameters allowed), lower-cased; the refusal names the
/// rule.
pub fn check_mimetype(text: &str) -> Result<String, VaultError> {
    let mime = text.trim().to_ascii_lowercase();
    let (kind, rest) = mime.split_once('/').unwrap_or(("", ""));
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    let subtype = rest.split(';').next().unwrap_or("").trim();
    let valid = mime.len() <= 255
        && token(kind)
        && token(subtype)
        && mime.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if valid {
        Ok(mime)
    } else {
        Err(VaultError::BadRequest(
            "Invalid mimetype: a media type such as application/pdf".into(),
        ))
    }
}

/// What is sealed with the user's key for a file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    filename: String,
    mimetype: String,
    tags: Tags,
}

fn meta_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "file_meta",
        row,
    }
}

fn key_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "file_key",
        row,
    }
}

/// A file's description, as answered.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub token: Uuid,
    pub fileuuid: Uuid,
    pub filename: String,
    pub mimetype: String,
    pub size: i64,
    /// Hex of the keyed hash of the content.
    pub doublehash: String,
    /// Unix seconds.
    pub creationtime: i64,
    pub tags: Vec<String>,
}

/// FileCreate's answer.
#[derive(Clone, Debug)]
pub struct FileCreated {
    pub token: Uuid,
    pub fileuuid: Uuid,
    pub duplicate: bool,
    pub tags: Vec<String>,
}

/// A file to store, as asked for.
pub struct FileUpload {
    pub filename: String,
    /// The content, base64.
    pub filedata: String,
    pub mimetype: Option<String>,
    pub tags: Tags,
    pub expiry: Expiry,
}

/// Which file FileGet names.
pub enum FileSelector {
    Id(Uuid),
    Name(String),
}

/// A file read: its description, and its content as it is opened.
pub struct FileRead {
    pub info: FileInfo,
    pub content: BoxStream<'static, Result<Bytes, VaultError>>,
}

/// What the first pass over an upload finds.
struct Scanned {
    sha256: [u8; 32],
    size: u64,
    mimetype: String,
}

/// Reads the base64 once, without keeping the plain bytes: its hash, size and media type.
fn scan(upload: &FileUpload, max: u64) -> Result<Scanned, VaultError> {
    if Base64Chunks::decoded_len_bound(&upload.filedata) > max.saturating_add(2) {
        return Err(VaultError::FileTooLarge(max));
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head: Option<Vec<u8>> = None;
    let mut chunks = Base64Chunks::new(&upload.filedata);
    while let Some(chunk) = chunks.next_chunk() {
        let (plain, last) = chunk?;
        if !last && plain.len() != CHUNK {
            return Err(VaultError::BadRequest(
                "The filedata parameter is not valid base64".into(),
            ));
        }
        hasher.update(&plain);
        size += plain.len() as u64;
        if head.is_none() {
            head = Some(
                plain
                    .get(..plain.len().min(8192))
                    .unwrap_or_default()
                    .to_vec(),
            );
        }
    }
    if size > max {
        return Err(VaultError::FileTooLarge(max));
    }
    let mimetype = match &upload.mimetype {
        Some(given) => given.clone(),
        None => infer::get(head.as_deref().unwrap_or_default())
            .map_or("application/octet-stream", |kind| kind.mime_type())
            .to_owned(),
    };
    Ok(Scanned {
        sha256: hasher.finalize().into(),
        size,
        mimetype,
    })
}

/// What the first transaction of an upload settles.
enum Decided {
    /// The user has this content already.
    Duplicate(FileCreated),
    New(Box<Prepared>),
}

/// A new file, decided and keyed, waiting for its content to be stored.
struct Prepared {
    token: Uuid,
    file: Uuid,
    file_key: UserKey,
    wrapped_key: Vec<u8>,
    meta: Vec<u8>,
    content_hash: Vec<u8>,
    name_hash: Vec<u8>,
    tag_hashes: Vec<Vec<u8>>,
    /// An expired file of the same content, removed to make room: its object is to go too.
    replaced: Option<Uuid>,
}

impl Vault {
    fn files(&self) -> Result<&Files, VaultError> {
        self.files.as_ref().ok_or(VaultError::StorageNotConfigured)
    }

    /// The user a file command names and whether the caller may reach the user's files.
    async fn file_owner(
        gate: &Gate,
        tx: &TenantTx<'_>,
        lookup: Lookup,
        command: Command,
        metadata: Option<&Value>,
    ) -> Result<bunker_db::users::StoredUser, VaultError> {
        let (user, visible) = gate.resolve(tx, lookup, command, metadata).await?;
        if visible.files() {
            Ok(user)
        } else {
            Err(VaultError::Forbidden(DENIED))
        }
    }

    /// FileCreate: stores a file for the user, or answers the one it has of the same content.
    pub async fn create_file(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        upload: FileUpload,
        metadata: Option<Value>,
    ) -> Result<FileCreated, VaultError> {
        let files = self.files()?.clone();
        check_filename(&upload.filename)?;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let tenant = caller.tenant.id;
        let principal = caller.principal.clone();
        let decide_principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::FileCreate;
        // Who may store for whom is decided before the content is looked at.
        let admit_metadata = metadata.clone();
        let owner = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let user =
                        Self::file_owner(&gate, tx, lookup, command, admit_metadata.as_ref())
                            .await?;
                    may_store(&gate, tx, user.token, admit_metadata.as_ref()).await?;
                    Ok::<_, VaultError>(user.token)
                })
            })
            .await?;
        let scanned = scan(&upload, files.max_bytes)?;
        let meta = Meta {
            filename: upload.filename.clone(),
            mimetype: scanned.mimetype.clone(),
            tags: upload.tags.clone(),
        };
        let decide_keys = keys;
        let decide_metadata = metadata.clone();
        let decided = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let keys = decide_keys;
                    let metadata = decide_metadata;
                    // Decided again where the answer is made: a grant taken away while the
                    // content was decoded no longer counts.
                    let gate = Gate::load(tx, &decide_principal).await?;
                    may_store(&gate, tx, owner, metadata.as_ref()).await?;
                    // Per user: the same content of two users hashes apart (no oracle of another
                    // user's files in `doublehash`, nor in the table).
                    let content_hash = keys
                        .index
                        .blind_index(
                            "file_content",
                            &[owner.as_bytes().as_slice(), &scanned.sha256].concat(),
                        )
                        .to_vec();
                    // Locks the user's row; not found if forgotten since.
                    let key = user_key_for_writing(tx, &keys, owner).await?;
                    if let Some(existing) = rows::by_content(tx, owner, &content_hash).await? {
                        let meta = open_meta(tx, &key, &existing)?;
                        audit_file(tx, &keys, actor, command, owner, metadata.as_ref()).await?;
                        return Ok(Decided::Duplicate(FileCreated {
                            token: owner,
                            fileuuid: existing.id,
                            duplicate: true,
                            tags: meta.tags.0,
                        }));
                    }
                    let replaced = rows::delete_expired_content(tx, owner, &content_hash).await?;
                    let file = Uuid::new_v4();
                    let row = file.to_string();
                    let (file_key, wrapped_key) =
                        key.generate_child(&key_label(tx.tenant(), &row))?;
                    let sealed_meta = seal_json(&key, &meta_label(tx.tenant(), &row), &meta)?;
                    Ok::<_, VaultError>(Decided::New(Box::new(Prepared {
                        token: owner,
                        file,
                        file_key,
                        wrapped_key,
                        meta: sealed_meta,
                        content_hash,
                        name_hash: name_hash(&keys, &meta.filename),
                        tag_hashes: meta.tags.hashes(&keys),
                        replaced,
                    })))
                })
            })
            .await?;
        let prepared = match decided {
            Decided::Duplicate(created) => return Ok(created),
            Decided::New(prepared) => *prepared,
        };
        if let Some(old) = prepared.replaced {
            let _ = files
                .store
                .remove(&FileStore::path(tenant.0, prepared.token, old))
                .await;
        }
        let path = FileStore::path(tenant.0, prepared.token, prepared.file);
        self.upload(&files, tenant, &prepared, &upload.filedata, path.clone())
            .await?;
        let recorded = self
            .record_upload(caller, &prepared, &upload, scanned.size, metadata)
            .await;
        match recorded {
            Ok(Some(created)) => Ok(created),
            // The same content came in at the same time: the other upload's file is answered.
            Ok(None) => {
                let _ = files.store.remove(&path).await;
                self.create_file_duplicate(caller, &prepared).await
            }
            Err(err) => {
                let _ = files.store.remove(&path).await;
                Err(err)
            }
        }
    }

    /// Seals the content chunk by chunk and sends it to the store.
    async fn upload(
        &self,
        files: &Files,
        tenant: TenantId,
        prepared: &Prepared,
        filedata: &str,
        path: object_store::path::Path,
    ) -> Result<(), VaultError> {
        let mut upload = files.store.upload(path);
        let row = prepared.file.to_string();
        let mut chunks = Base64Chunks::new(filedata);
        let mut index = 0u64;
        while let Some(chunk) = chunks.next_chunk() {
            let sealed = chunk.and_then(|(plain, last)| {
                chunks::seal_chunk(&prepared.file_key, tenant.0, &row, index, last, &plain)
            });
            let written = match sealed {
                Ok(sealed) => upload.write(sealed).await,
                Err(err) => Err(err),
            };
            if let Err(err) = written {
                upload.abort().await;
                return Err(err);
            }
            index += 1;
        }
        upload.finish().await
    }

    /// Records an uploaded file, if its user is still there with the key it was given; `None` if
    /// the user stored the same content meanwhile.
    async fn record_upload(
        &self,
        caller: &Caller,
        prepared: &Prepared,
        upload: &FileUpload,
        size: u64,
        metadata: Option<Value>,
    ) -> Result<Option<FileCreated>, VaultError> {
        let actor = caller.actor();
        let keys = self.keys(caller.tenant.id).await?;
        let token = prepared.token;
        let file = prepared.file;
        let content_hash = prepared.content_hash.clone();
        let name_hash = prepared.name_hash.clone();
        let tag_hashes = prepared.tag_hashes.clone();
        let meta = prepared.meta.clone();
        let wrapped_key = prepared.wrapped_key.clone();
        let tags = upload.tags.0.clone();
        let sliding_seconds = upload.expiry.sliding_seconds;
        let final_at = upload.expiry.final_unix();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    // Locks the user's row: a forget-me waits for this, or has gone first.
                    bunker_db::appdata::lock_user_key(tx, token)
                        .await?
                        .flatten()
                        .ok_or(VaultError::NotFound)?;
                    let new = NewFile {
                        id: file,
                        token,
                        content_hash: &content_hash,
                        name_hash: &name_hash,
                        tag_hashes: &tag_hashes,
                        meta: &meta,
                        file_key: &wrapped_key,
                        size: size as i64,
                        sliding_seconds,
                        final_at,
                    };
                    if !rows::insert(tx, &new).await? {
                        return Ok(None);
                    }
                    audit_file(
                        tx,
                        &keys,
                        actor,
                        Command::FileCreate,
                        token,
                        metadata.as_ref(),
                    )
                    .await?;
                    Ok(Some(FileCreated {
                        token,
                        fileuuid: file,
                        duplicate: false,
                        tags,
                    }))
                })
            })
            .await
    }

    /// The user's file of the same content as `prepared`, stored by another request meanwhile.
    async fn create_file_duplicate(
        &self,
        caller: &Caller,
        prepared: &Prepared,
    ) -> Result<FileCreated, VaultError> {
        let keys = self.keys(caller.tenant.id).await?;
        let token = prepared.token;
        let content_hash = prepared.content_hash.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let existing = rows::by_content(tx, token, &content_hash)
                        .await?
                        .ok_or(VaultError::Conflict)?;
                    let key = user_key_for_reading(tx, &keys, token)
                        .await?
                        .ok_or(VaultError::NotFound)?;
                    let meta = open_meta(tx, &key, &existing)?;
                    Ok(FileCreated {
                        token,
                        fileuuid: existing.id,
                        duplicate: true,
                        tags: meta.tags.0,
                    })
                })
            })
            .await
    }

    /// FileGet: a file's description and content (by id, or the newest of a name). Renews a
    /// sliding expiry. The read is audited before any of the content leaves.
    pub async fn get_file(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        selector: FileSelector,
        metadata: Option<Value>,
    ) -> Result<FileRead, VaultError> {
        let files = self.files()?.clone();
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let tenant = caller.tenant.id;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::FileGet;
        let (info, file_key, events) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let user =
                        Self::file_owner(&gate, tx, lookup, command, metadata.as_ref()).await?;
                    let stored = match &selector {
                        FileSelector::Id(id) => rows::get(tx, user.token, *id).await?,
                        FileSelector::Name(name) => {
                            rows::newest_by_name(tx, user.token, &name_hash(&keys, name)).await?
                        }
                    }
                    .ok_or_else(|| gate.hide_missing(command, VaultError::FileNotFound))?;
                    let key = user_key_for_reading(tx, &keys, user.token)
                        .await?
                        .ok_or(VaultError::FileNotFound)?;
                    let meta = open_meta(tx, &key, &stored)?;
                    let row = stored.id.to_string();
                    let file_key =
                        key.unwrap_child(&key_label(tx.tenant(), &row), &stored.file_key)?;
                    if stored.sliding_seconds.is_some() {
                        rows::renew(tx, stored.id).await?;
                    }
                    let events = read_events(
                        &keys,
                        tx.tenant(),
                        actor,
                        command,
                        &[user.token],
                        metadata.as_ref(),
                    )?;
                    Ok::<_, VaultError>((info_of(&stored, meta), file_key, events))
                })
            })
            .await?;
        self.reads.record(tenant, events).await?;
        let path = FileStore::path(tenant.0, info.token, info.fileuuid);
        let source = files
            .store
            .read(&path, chunks::sealed_len(info.size as u64))
            .await?;
        let opener = Opener::new(
            file_key,
            tenant.0,
            info.fileuuid.to_string(),
            info.size as u64,
        );
        Ok(FileRead {
            info,
            content: opened(source, opener),
        })
    }

    /// FileListUserFiles: the descriptions of a user's files (of one tag, if given).
    pub async fn list_user_files(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        tag: Option<String>,
        metadata: Option<Value>,
    ) -> Result<(Uuid, Vec<FileInfo>), VaultError> {
        self.files()?;
        let tag = tag.as_deref().map(Tags::one).transpose()?;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::FileListUserFiles;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let user =
                        Self::file_owner(&gate, tx, lookup, command, metadata.as_ref()).await?;
                    let infos = user_files(tx, &keys, user.token, tag.as_deref()).await?;
                    let event = UserEvent::about(command, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok((user.token, infos))
                })
            })
            .await
    }

    /// FileReplaceTags: replaces a file's tags; the tags now stored.
    pub async fn replace_file_tags(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        file: Uuid,
        tags: Tags,
        metadata: Option<Value>,
    ) -> Result<Vec<String>, VaultError> {
        self.files()?;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::FileReplaceTags;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let user =
                        Self::file_owner(&gate, tx, lookup, command, metadata.as_ref()).await?;
                    let stored = rows::get(tx, user.token, file)
                        .await?
                        .ok_or_else(|| gate.hide_missing(command, VaultError::FileNotFound))?;
                    let key = user_key_for_writing(tx, &keys, user.token).await?;
                    let mut meta = open_meta(tx, &key, &stored)?;
                    meta.tags = tags;
                    let row = stored.id.to_string();
                    let sealed = seal_json(&key, &meta_label(tx.tenant(), &row), &meta)?;
                    let hashes = meta.tags.hashes(&keys);
                    if !rows::replace_tags(tx, stored.id, &stored.meta, &hashes, &sealed).await? {
                        return Err(VaultError::Conflict);
                    }
                    audit_file(tx, &keys, actor, command, user.token, metadata.as_ref()).await?;
                    Ok(meta.tags.0)
                })
            })
            .await
    }

    /// FileDelete: removes a file's row and key, then its object.
    pub async fn delete_file(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        file: Uuid,
        metadata: Option<Value>,
    ) -> Result<Uuid, VaultError> {
        let files = self.files()?.clone();
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let tenant = caller.tenant.id;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::FileDelete;
        let token = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let user =
                        Self::file_owner(&gate, tx, lookup, command, metadata.as_ref()).await?;
                    if !rows::delete(tx, user.token, file).await? {
                        return Err(gate.hide_missing(command, VaultError::FileNotFound));
                    }
                    audit_file(tx, &keys, actor, command, user.token, metadata.as_ref()).await?;
                    Ok::<_, VaultError>(user.token)
                })
            })
            .await?;
        // The key is gone with the row; a failure (or a store slower than 10 s) leaves the object
        // to the sweeper.
        let path = FileStore::path(tenant.0, token, file);
        match tokio::time::timeout(Duration::from_secs(10), files.store.remove(&path)).await {
            Ok(Ok(())) => {}
            _ => tracing::warn!("a deleted file's object is left to the sweeper"),
        }
        Ok(token)
    }

    /// BulkListFilesByTag (behind an unlock and `BUNKER_LIST_USERS`): one page of the tenant's
    /// files carrying `tag`, each with its owner's token; a role or user token sees the files of
    /// the users whose files it may reach.
    pub async fn bulk_list_files_by_tag(
        &self,
        caller: &Caller,
        unlock: String,
        tag: String,
        offset: i64,
        limit: i64,
        metadata: Option<Value>,
    ) -> Result<(Vec<FileInfo>, i64), VaultError> {
        const COMMAND: Command = Command::BulkListFilesByTag;
        if !self.settings.list_users {
            return Err(VaultError::Forbidden("BulkListFilesByTag is disabled"));
        }
        self.files()?;
        let tag = Tags::one(&tag)?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    let hash = tag_hash(&keys, &tag);
                    let (page, total) = if gate.is_admin() {
                        rows::with_tag(tx, &hash, offset, limit).await?
                    } else {
                        let (all, _) = rows::with_tag(tx, &hash, 0, MAX_SCANNED).await?;
                        let mut owners: Vec<Uuid> = all.iter().map(|f| f.token).collect();
                        owners.sort_unstable();
                        owners.dedup();
                        let visible = gate
                            .visible(tx, COMMAND, &owners, metadata.as_ref())
                            .await?;
                        let seen: Vec<StoredFile> = all
                            .into_iter()
                            .filter(|f| visible.get(&f.token).is_some_and(|v| v.files()))
                            .collect();
                        let total = seen.len() as i64;
                        let page = seen
                            .into_iter()
                            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                            .take(usize::try_from(limit).unwrap_or(0))
                            .collect();
                        (page, total)
                    };
                    let mut infos = Vec::with_capacity(page.len());
                    for file in &page {
                        // An owner without a key has no readable file: left out.
                        let Some(key) = user_key_for_reading(tx, &keys, file.token).await? else {
                            continue;
                        };
                        infos.push(info_of(file, open_meta(tx, &key, file)?));
                    }
                    let mut owners: Vec<Uuid> = infos.iter().map(|i| i.token).collect();
                    owners.sort_unstable();
                    owners.dedup();
                    for owner in owners {
                        let event = UserEvent::about(COMMAND, owner, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                    }
                    let event = bunker_db::audit::AuditEvent::about(
                        bunker_db::audit::Performer::Token(actor),
                        COMMAND.audit_action(),
                        "files".into(),
                    );
                    bunker_db::audit::record(tx, &event).await?;
                    Ok((infos, total))
                })
            })
            .await
    }

    /// Removes the objects of a user's files whose rows are gone (right after a forget-me, or a
    /// sweep that forgot the user); how many.
    async fn sweep_file_objects(
        &self,
        tenant: TenantId,
        user: Option<Uuid>,
    ) -> Result<usize, VaultError> {
        let Some(files) = self.files.clone() else {
            return Ok(0);
        };
        let prefix = match user {
            Some(user) => format!("tenant/{}/{user}/", tenant.0),
            None => format!("tenant/{}/", tenant.0),
        };
        let objects = files.store.list(&prefix).await?;
        self.remove_orphans(&files, tenant, &objects, Duration::ZERO)
            .await
    }

    /// After a forget-me (`user`) or a TenantDelete: removes the objects whose rows went, giving up
    /// after 10 s (a stalled store must not hold the answer; the sweeper's listing finds them).
    pub async fn remove_files_after_delete(&self, tenant: TenantId, user: Option<Uuid>) {
        let removal = self.sweep_file_objects(tenant, user);
        match tokio::time::timeout(Duration::from_secs(10), removal).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "objects of deleted files are left to the sweeper")
            }
            Err(_) => tracing::warn!(
                "objects of deleted files are left to the sweeper (the store is slow)"
            ),
        }
    }

    /// Removes every object of the store whose file row is gone (or never came) and that is older
    /// than the grace period, tenant by tenant (a deleted tenant's objects all go); how many.
    pub async fn sweep_orphan_files(&self) -> Result<usize, VaultError> {
        let Some(files) = self.files.clone() else {
            return Ok(0);
        };
        let mut by_tenant: std::collections::BTreeMap<i64, Vec<store::Listed>> =
            std::collections::BTreeMap::new();
        for listed in files.store.list("tenant/").await? {
            if let Some(tenant) = listed.tenant {
                by_tenant.entry(tenant).or_default().push(listed);
            }
        }
        let mut removed = 0;
        for (tenant, objects) in by_tenant {
            removed += self
                .remove_orphans(&files, TenantId(tenant), &objects, files.orphan_grace)
                .await?;
        }
        Ok(removed)
    }

    /// Removes those of `objects` (all of `tenant`) without a file row, older than `grace`.
    async fn remove_orphans(
        &self,
        files: &Files,
        tenant: TenantId,
        objects: &[store::Listed],
        grace: Duration,
    ) -> Result<usize, VaultError> {
        let mut removed = 0;
        for batch in objects.chunks(1000) {
            let ids: Vec<Uuid> = batch.iter().map(|o| o.file).collect();
            // Under the tenant's row-level security, as always: a deleted tenant has no rows.
            let existing = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move { Ok::<_, VaultError>(rows::existing(tx, &ids).await?) })
                })
                .await?;
            for object in batch {
                if !existing.contains(&object.file) && object.age >= grace {
                    files.store.remove(&object.path).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes one file's object (its row is gone).
    pub(crate) async fn remove_file_object(
        &self,
        tenant: TenantId,
        user: Uuid,
        file: Uuid,
    ) -> Result<(), VaultError> {
        match &self.files {
            Some(files) => {
                files
                    .store
                    .remove(&FileStore::path(tenant.0, user, file))
                    .await
            }
            None => Ok(()),
        }
    }
}

/// Records a file operation in the user's trail (the section, never a name or content).
async fn audit_file(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    actor: bunker_db::audit::Actor,
    command: Command,
    user: Uuid,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    let event = UserEvent::change(command, user, vec!["file".into()], metadata);
    record_event(tx, keys, actor, event).await
}

/// Refuses unless the caller may store files for `user` and read them: the answer to content
/// stored already names that file (the contract's `duplicate`), which would tell an upload-only
/// role what the user holds.
async fn may_store(
    gate: &Gate,
    tx: &TenantTx<'_>,
    user: Uuid,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    for command in [Command::FileCreate, Command::FileGet] {
        if !gate.check(tx, command, user, metadata).await?.files() {
            return Err(VaultError::Forbidden(DENIED));
        }
    }
    Ok(())
}

/// The descriptions of a user's live files (of one tag, if given), at most [`MAX_LISTED_FILES`],
/// in the transaction; no content (FileListUserFiles, SystemGetUserReport).
pub(crate) async fn user_files(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
    tag: Option<&str>,
) -> Result<Vec<FileInfo>, VaultError> {
    let hash = tag.map(|t| tag_hash(keys, t));
    let stored = rows::of_user(tx, user, hash.as_deref(), MAX_LISTED_FILES).await?;
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let key = user_key_for_reading(tx, keys, user)
        .await?
        .ok_or(VaultError::Keys(bunker_keys::KeyError::Unsealable))?;
    stored
        .iter()
        .map(|file| Ok(info_of(file, open_meta(tx, &key, file)?)))
        .collect()
}

/// Opens a stored file's metadata with the user's key.
fn open_meta(tx: &TenantTx<'_>, key: &UserKey, stored: &StoredFile) -> Result<Meta, VaultError> {
    let row = stored.id.to_string();
    open_json(key, &meta_label(tx.tenant(), &row), &stored.meta)
}

fn info_of(stored: &StoredFile, meta: Meta) -> FileInfo {
    FileInfo {
        token: stored.token,
        fileuuid: stored.id,
        filename: meta.filename,
        mimetype: meta.mimetype,
        size: stored.size,
        doublehash: hex::encode(&stored.content_hash),
        creationtime: stored.created_at,
        tags: meta.tags.0,
    }
}

/// The plain content of a stored object, chunk by chunk.
fn opened(
    source: BoxStream<'static, Result<Bytes, VaultError>>,
    opener: Opener,
) -> BoxStream<'static, Result<Bytes, VaultError>> {
    struct State {
        source: BoxStream<'static, Result<Bytes, VaultError>>,
        opener: Opener,
        ready: VecDeque<Bytes>,
        finished: bool,
    }
    let state = State {
        source,
        opener,
        ready: VecDeque::new(),
        finished: false,
    };
    stream::try_unfold(state, |mut state| async move {
        loop {
            if let Some(bytes) = state.ready.pop_front() {
                return Ok(Some((bytes, state)));
            }
            if state.finished {
                return Ok(None);
            }
            match state.source.next().await {
                Some(Ok(bytes)) => state.ready.extend(state.opener.push(&bytes)?),
                Some(Err(err)) => return Err(err),
                None => {
                    let last = state.opener.finish()?;
                    state.ready.push_back(last);
                    state.finished = true;
                }
            }
        }
    })
    .boxed()
}

/// A file's whole content as base64 (for FileGet's JSON answer): chunk by chunk, each whole in
/// base64 (a chunk is a multiple of 3 bytes).
pub async fn to_base64(
    mut content: BoxStream<'static, Result<Bytes, VaultError>>,
    size: i64,
) -> Result<String, VaultError> {
    let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0).div_ceil(3) * 4);
    let mut pending: Vec<u8> = Vec::new();
    while let Some(bytes) = content.next().await {
        pending.extend_from_slice(&bytes?);
        // Encode whole groups of 3 bytes; keep the rest for the next piece.
        let whole = pending.len() / 3 * 3;
        STANDARD.encode_string(pending.get(..whole).unwrap_or_default(), &mut text);
        pending.drain(..whole);
    }
    STANDARD.encode_string(&pending, &mut text);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_are_normalised_as_the_contract_says() {
        let tags = Tags::parse(Some(&json!(["KYC", "passport", "kyc", " id.v2 "]))).unwrap();
        assert_eq!(tags.as_slice(), ["id.v2", "kyc", "passport"]);
        let tags = Tags::parse(Some(&json!("b,a,,A"))).unwrap();
        assert_eq!(tags.as_slice(), ["a", "b"]);
        assert!(Tags::parse(None).unwrap().as_slice().is_empty());
        for bad in [
            json!(["-x"]),
            json!(["a b"]),
            json!([1]),
            json!({"a": 1}),
            json!(["x".repeat(51)]),
            json!((0..17).map(|i| format!("t{i}")).collect::<Vec<_>>()),
        ] {
            assert!(Tags::parse(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(Tags::one("KYC").unwrap(), "kyc");
        assert!(Tags::one("a,b").is_err());
    }

    #[test]
    fn media_types_are_checked() {
        assert_eq!(
            check_mimetype("Application/PDF").unwrap(),
            "application/pdf"
        );
        assert!(check_mimetype("text/plain; charset=utf-8").is_ok());
        for bad in ["pdf", "/x", "a/", "text/pl ain", "a/b\r\nX: y", "a/b\u{7}"] {
            assert!(check_mimetype(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_is_sealed_and_opened_in_chunks_and_refuses_tampering() {
        let records = bunker_keys::MasterKey::generate(1).tenant_keys(3).records;
        let label = Label {
            tenant: 3,
            kind: "user_key",
            row: "u",
        };
        let (user_key, _) = UserKey::generate(&records, &label).unwrap();
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let text = STANDARD.encode(&plain);
            let (key, wrapped) = user_key.generate_child(&label).unwrap();
            let mut sealed = Vec::new();
            let mut chunks = Base64Chunks::new(&text);
            let mut index = 0;
            while let Some(chunk) = chunks.next_chunk() {
                let (piece, last) = chunk.unwrap();
                sealed.extend_from_slice(
                    &chunks::seal_chunk(&key, 3, "f", index, last, &piece).unwrap(),
                );
                index += 1;
            }
            assert!(!sealed.windows(16).any(|w| size >= 16 && w == &plain[..16]));
            assert_eq!(
                sealed.len() as u64,
                chunks::sealed_len(size as u64),
                "{size}"
            );
            let open = |bytes: &[u8], size: u64| {
                let key = user_key.unwrap_child(&label, &wrapped).unwrap();
                let mut opener = Opener::new(key, 3, "f".into(), size);
                let mut out = Vec::new();
                // Arriving in odd pieces, as a store streams.
                for piece in bytes.chunks(7_777) {
                    for chunk in opener.push(piece)? {
                        out.extend_from_slice(&chunk);
                    }
                }
                out.extend_from_slice(&opener.finish()?);
                Ok::<_, VaultError>(out)
            };
            assert_eq!(open(&sealed, size as u64).unwrap(), plain, "{size}");
            // Cut at a chunk boundary, grown, or recorded with another size: refused.
            if sealed.len() > chunks::SEALED_CHUNK {
                assert!(open(&sealed[..chunks::SEALED_CHUNK], size as u64).is_err());
            }
            let mut grown = sealed.clone();
            grown.extend_from_slice(&sealed);
            assert!(open(&grown, size as u64).is_err());
            assert!(open(&sealed, size as u64 + 1).is_err());
        }
    }
}
