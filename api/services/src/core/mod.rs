//! What every service shares: the [`Vault`] handle (database, keyring, settings), [`VaultError`],
//! the one generic seal / open of JSON ([`seal_json`], [`open_json`]), the labels that bind
//! ciphertext to its tenant, kind and row, finding a user ([`resolve`]) and recording a user's audit
//! event ([`record_event`]), input limits ([`limits`]), identities and their blind indexes
//! ([`identity`]), expiry times ([`expiry`]), the batched read trail and the [`gate`].

pub mod expiry;
pub mod gate;
pub mod grams;
pub mod identity;
pub mod keyring;
pub mod limits;
pub mod rate;
mod readaudit;
pub mod tenant_keys;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bunker_db::audit::{self, Actor, AuditEvent, Performer};
use bunker_db::users::{self as store, StoredUser};
use bunker_db::{Database, DbError, TenantId, TenantTx};
use bunker_keys::{KeyError, Label, SealKeys, TenantKeys, UserKey};

use crate::access::{Command, Operation, DENIED};
use crate::metrics::ServiceMetrics;
use bunker_tenancy::Caller;
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub use identity::{Lookup, Mode, Normalizer};
pub use keyring::SharedKeyring;
use readaudit::ReadAudit;

/// Settings of the vault.
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// How phone numbers without a country code are read (`BUNKER_PHONE_REGION`).
    pub normalizer: Normalizer,
    /// How many versions of a profile are kept, the current one included (`BUNKER_USER_VERSIONS`).
    pub versions_kept: i32,
    /// How long a bulk unlock lives (60 s; shorter in tests).
    pub unlock_seconds: i64,
    /// Whether BulkListUsers and BulkListAllUsers work (`BUNKER_LIST_USERS`, off by default).
    pub list_users: bool,
    /// The longest a role or user token may live (`BUNKER_XTOKEN_MAX_SECONDS`).
    pub xtoken_max_seconds: i64,
    /// The wait before a failed webhook delivery's first retry (doubled each time; 1 s).
    pub webhook_backoff: std::time::Duration,
    /// The longest a shared record may live (`BUNKER_SHARED_RECORD_MAX_SECONDS`).
    pub shared_record_max_seconds: i64,
    /// How long a profile removed by SystemDeleteUserProfiles can be restored
    /// (`BUNKER_RESTORE_WINDOW_SECONDS`; 0: not at all).
    pub restore_window_seconds: i64,
    /// How long a tenant's unwrapped keys are kept in memory (`BUNKER_TENANT_KEY_CACHE_SECONDS`):
    /// the bound within which a revoked tenant KMS key stops the tenant on every server.
    pub tenant_key_cache: std::time::Duration,
    /// Whether a tenant's admin may change its tenant's key wrapping and rotate it
    /// (`BUNKER_TENANT_KEY_ADMIN`; off: root only).
    pub tenant_key_admin: bool,
    /// Where AWS KMS is reached for tenants' own keys (`BUNKER_KMS_ENDPOINT`; none: AWS's).
    pub kms_endpoint: Option<String>,
}

/// The vault service.
#[derive(Clone)]
pub struct Vault {
    pub(crate) db: Database,
    pub(crate) keyring: SharedKeyring,
    pub(crate) tenant_keys: tenant_keys::TenantKeyCache,
    pub(crate) settings: VaultSettings,
    pub(crate) reads: ReadAudit,
    /// The file vault, if one is configured.
    pub(crate) files: Option<crate::files::Files>,
    pub(crate) metrics: Arc<ServiceMetrics>,
}

/// Why a vault operation failed. Messages never contain personal data.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    BadRequest(String),
    #[error("The user record was not found")]
    NotFound,
    #[error("Duplicate index: {0}")]
    Duplicate(&'static str),
    /// A change clashed with the value another user holds for `field` (before the clash is
    /// recorded in that user's trail and answered as [`VaultError::Duplicate`]).
    #[error("Duplicate index: {field}")]
    Clash { field: &'static str, hash: [u8; 32] },
    #[error("The user record was changed by another request at the same time; retry")]
    Conflict,
    /// The tenant's key was rotated, re-wrapped or deleted by another request meanwhile.
    #[error("The tenant's key was changed by another request at the same time; nothing was changed: retry")]
    KeyConflict,
    #[error("The audit event was not found")]
    EventNotFound,
    #[error("The app data was not found")]
    AppDataNotFound,
    #[error("The user has app data under this name already; use AppdataUpdate")]
    AppDataExists,
    #[error("The user request was not found")]
    RequestNotFound,
    #[error("The legal basis record was not found")]
    LegalBasisNotFound,
    #[error("The legal basis record already exists")]
    LegalBasisExists,
    #[error("The legal basis is inactive: no agreement to it can be accepted")]
    LegalBasisInactive,
    #[error("The agreement record was not found")]
    AgreementNotFound,
    #[error("The agreement is not in force: there is nothing to withdraw")]
    AgreementNotInForce,
    #[error("The processing activity record was not found")]
    ActivityNotFound,
    #[error("The processing activity record already exists")]
    ActivityExists,
    /// SystemRestoreUserProfile of a token with no removed profile kept (never removed by
    /// SystemDeleteUserProfiles, restored already, or kept no longer).
    #[error("No removed profile of this token can be restored in this tenant")]
    NotRestorable,
    #[error("The tenant was not found")]
    TenantNotFound,
    #[error("The session was not found")]
    SessionNotFound,
    #[error("The shared record was not found")]
    SharedRecordNotFound,
    /// An expiration link unknown, foreign, replaced, cancelled, or whose user is gone.
    #[error("The expiration link was not found")]
    ExpirationLinkNotFound,
    #[error("The file was not found")]
    FileNotFound,
    /// A file over the configured size limit (`BUNKER_MAX_FILE_BYTES`).
    #[error("The file is over the limit of {0} bytes")]
    FileTooLarge(u64),
    /// The object storage could not be reached, or refused; the cause is logged.
    #[error("The file storage is unavailable; nothing was stored or answered")]
    StorageUnavailable,
    /// A file's stored object is gone or fails its integrity check: logged, never answered.
    #[error("The stored file is missing or damaged; none of it was answered")]
    FileDamaged,
    /// No object storage is configured (`BUNKER_FILES_URL`).
    #[error("The file vault is not configured on this server (BUNKER_FILES_URL)")]
    StorageNotConfigured,
    #[error("This user request is closed")]
    RequestClosed,
    #[error("The record or the request changed since it was reviewed: review it again")]
    ReviewOutdated,
    #[error("Token not found")]
    TokenNotFound,
    /// Every draw of a format-preserving token hit one already taken: the shape's space (see
    /// README) is used up, or nearly.
    #[error(
        "No unused token of this shape could be drawn: its space is used up; use a wider type"
    )]
    TokenSpaceExhausted,
    #[error("The group record was not found")]
    GroupNotFound,
    #[error("The role record was not found")]
    RoleNotFound,
    #[error("The role record already exists")]
    RoleExists,
    #[error("Duplicate group name")]
    DuplicateGroup,
    /// A group name taken, with its blind index (before the clash is recorded and answered as
    /// [`VaultError::DuplicateGroup`]).
    #[error("Duplicate group name")]
    GroupClash([u8; 32]),
    #[error("The policy record was not found")]
    PolicyNotFound,
    #[error("Duplicate policy name")]
    DuplicatePolicy,
    #[error("{0}")]
    Forbidden(&'static str),
    /// The batch of read events could not be written because the database was unreachable.
    #[error("The audit trail is unavailable; nothing was answered")]
    AuditUnavailable,
    #[error("The audit event could not be recorded")]
    AuditFailed,
    /// The audit chain no longer holds a head this server linked (see `vault::chain`).
    #[error("The audit chain was cut or rewritten")]
    AuditChainCut,
    /// The tenant's keys cannot be unwrapped now (its KMS key refused, or KMS is unreachable):
    /// nothing of the tenant can be read or written until they can.
    #[error("The tenant's keys are unavailable: {}; nothing was read or written", .0.describe())]
    TenantKeysUnavailable(tenant_keys::Unavailable),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<tenant_keys::LoadError> for VaultError {
    fn from(err: tenant_keys::LoadError) -> Self {
        match err {
            tenant_keys::LoadError::Unavailable(cause) => VaultError::TenantKeysUnavailable(cause),
            tenant_keys::LoadError::Database(db) => VaultError::Database(db),
            tenant_keys::LoadError::Keys(keys) => VaultError::Keys(keys),
        }
    }
}

impl VaultError {
    /// Whether this refuses what was asked (bad input, not allowed, not found, taken) rather than
    /// failing to do it: in a batch, a refusal concerns its record only.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            VaultError::Database(_)
                | VaultError::Keys(_)
                | VaultError::TenantKeysUnavailable(_)
                | VaultError::AuditUnavailable
                | VaultError::AuditFailed
                | VaultError::AuditChainCut
                | VaultError::Conflict
                | VaultError::KeyConflict
                | VaultError::StorageUnavailable
                | VaultError::StorageNotConfigured
                | VaultError::FileDamaged
        )
    }
}

impl Vault {
    /// The vault over `db`; starts the writer of read events on the current Tokio runtime.
    pub fn new(
        db: Database,
        keyring: SharedKeyring,
        settings: VaultSettings,
        metrics: Arc<ServiceMetrics>,
    ) -> Self {
        let tenant_keys = tenant_keys::TenantKeyCache::new(
            settings.tenant_key_cache,
            settings.kms_endpoint.clone(),
        );
        tenant_keys::spawn_eviction(&tenant_keys);
        Vault {
            reads: ReadAudit::spawn(db.clone(), metrics.clone()),
            db,
            keyring,
            tenant_keys,
            settings,
            files: None,
            metrics,
        }
    }

    /// The services' series, which the HTTP layer adds its own to.
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.metrics
    }

    /// The vault with a file vault.
    pub fn with_files(mut self, files: Option<crate::files::Files>) -> Self {
        self.files = files;
        self
    }

    /// `tenant`'s keys (cached for `BUNKER_TENANT_KEY_CACHE_SECONDS`; see [`tenant_keys`]).
    pub(crate) async fn keys(&self, tenant: TenantId) -> Result<Arc<TenantKeys>, VaultError> {
        Ok(self
            .tenant_keys
            .get(tenant, &self.db, &self.keyring.get(), &self.metrics)
            .await?)
    }

    /// The caller's tenant keys and the user a request names (normalized, blind-indexed). An empty
    /// value names no one: not found for an admin, and for a role or user token the same refusal as
    /// any user it may not touch.
    pub(crate) async fn locate(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
    ) -> Result<(Arc<TenantKeys>, identity::Lookup), VaultError> {
        let keys = self.keys(caller.tenant.id).await?;
        let lookup = self.lookup_with(&keys, caller, mode, identity)?;
        Ok((keys, lookup))
    }

    /// As [`Vault::locate`], with the caller's tenant keys at hand.
    pub(crate) fn lookup_with(
        &self,
        keys: &TenantKeys,
        caller: &Caller,
        mode: Mode,
        identity: &str,
    ) -> Result<identity::Lookup, VaultError> {
        self.settings
            .normalizer
            .lookup(&keys.index, mode, identity)
            .map_err(|err| match err {
                VaultError::NotFound if !caller.is_admin() => VaultError::Forbidden(DENIED),
                err => err,
            })
    }
}

/// Where a user's current record is sealed.
pub(crate) fn record_label(tenant: TenantId, token: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "user",
        row: token,
    }
}

/// The row of one version of a user's record: `<token>/<version>`.
pub(crate) fn version_row(token: Uuid, version: i32) -> String {
    format!("{token}/{version}")
}

pub(crate) fn version_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "user_version",
        row,
    }
}

/// What seals and opens values for a label: a tenant's keys of one purpose ([`SealKeys`]), or a
/// user's own key ([`UserKey`]).
pub(crate) trait Sealer {
    fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError>;
    fn open(
        &self,
        label: &Label<'_>,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError>;
}

impl Sealer for SealKeys {
    fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        SealKeys::seal(self, label, plaintext)
    }

    fn open(
        &self,
        label: &Label<'_>,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        SealKeys::open(self, label, sealed)
    }
}

impl Sealer for UserKey {
    fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        UserKey::seal(self, label, plaintext)
    }

    fn open(
        &self,
        label: &Label<'_>,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        UserKey::open(self, label, sealed)
    }
}

/// Seals `value` as JSON with `keys` under `label`: the one way structured data is sealed
/// (profiles, group labels, audit details, app data, requests). The serialized plain text is
/// zeroed after.
pub(crate) fn seal_json<T: serde::Serialize + ?Sized>(
    keys: &impl Sealer,
    label: &Label<'_>,
    value: &T,
) -> Result<Vec<u8>, VaultError> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(|_| KeyError::Seal)?);
    Ok(keys.seal(label, &plain)?)
}

/// Opens what [`seal_json`] sealed.
pub(crate) fn open_json<T: serde::de::DeserializeOwned>(
    keys: &impl Sealer,
    label: &Label<'_>,
    sealed: &[u8],
) -> Result<T, VaultError> {
    let plain = keys.open(label, sealed)?;
    serde_json::from_slice(&plain).map_err(|_| VaultError::Keys(KeyError::Unsealable))
}

pub(crate) fn seal_profile(
    keys: &TenantKeys,
    label: &Label<'_>,
    profile: &Map<String, Value>,
) -> Result<Vec<u8>, VaultError> {
    seal_json(&keys.records, label, profile)
}

pub(crate) fn open_profile(
    keys: &TenantKeys,
    label: &Label<'_>,
    sealed: &[u8],
) -> Result<Map<String, Value>, VaultError> {
    open_json(&keys.records, label, sealed)
}

/// An audit event about a user, before sealing: the profile keys touched (names, not values) and the
/// request metadata are sealed under the tenant's audit key.
pub(crate) struct UserEvent<'a> {
    action: &'static str,
    user: Uuid,
    fields: Vec<String>,
    metadata: Option<&'a Value>,
    /// Why the request was refused, when the event records an attempt that revealed something
    /// about this user (another request's clash with one of its indexed values).
    refused: Option<String>,
    /// The partner label of the shared record a read came through (sealed like the rest).
    partner: Option<String>,
}

impl<'a> UserEvent<'a> {
    /// An event about a user that touches no profile field (a read, a deletion, a membership).
    pub(crate) fn about(command: Command, user: Uuid, metadata: Option<&'a Value>) -> Self {
        UserEvent::of(command.audit_action(), user, metadata)
    }

    /// An event of Bunker's own about a user (its expiry).
    pub(crate) fn operation(operation: Operation, user: Uuid) -> Self {
        UserEvent::of(operation.audit_action(), user, None)
    }

    fn of(action: &'static str, user: Uuid, metadata: Option<&'a Value>) -> Self {
        UserEvent {
            action,
            user,
            fields: Vec::new(),
            metadata,
            refused: None,
            partner: None,
        }
    }

    /// A change of fields of a user.
    pub(crate) fn change(
        command: Command,
        user: Uuid,
        fields: Vec<String>,
        metadata: Option<&'a Value>,
    ) -> Self {
        UserEvent {
            fields,
            ..UserEvent::about(command, user, metadata)
        }
    }

    /// Another request was refused because this user holds the value it gave for `field`: the
    /// attempt is recorded in this user's trail, since the refusal told its caller that someone
    /// holds that value.
    pub(crate) fn probe(
        command: Command,
        holder: Uuid,
        field: &'static str,
        metadata: Option<&'a Value>,
    ) -> Self {
        UserEvent {
            fields: vec![field.to_owned()],
            refused: Some(VaultError::Duplicate(field).to_string()),
            ..UserEvent::about(command, holder, metadata)
        }
    }

    /// A read of a user's fields through a shared record, by its partner.
    pub(crate) fn shared(
        command: Command,
        user: Uuid,
        fields: Vec<String>,
        partner: Option<String>,
    ) -> Self {
        UserEvent {
            fields,
            partner,
            ..UserEvent::about(command, user, None)
        }
    }

    pub(crate) fn seal(
        self,
        keys: &TenantKeys,
        tenant: TenantId,
        event_id: Uuid,
        actor: Performer,
    ) -> Result<AuditEvent, VaultError> {
        let mut details = json!({ "fields": self.fields });
        if let Some(map) = details.as_object_mut() {
            if let Some(metadata) = self.metadata {
                map.insert("request_metadata".to_owned(), metadata.clone());
            }
            if let Some(refused) = self.refused {
                map.insert("refused".to_owned(), Value::String(refused));
            }
            if let Some(partner) = self.partner {
                map.insert("partner".to_owned(), Value::String(partner));
            }
        }
        let row = event_id.to_string();
        Ok(AuditEvent {
            actor,
            action: self.action,
            target: "user".to_owned(),
            user_token: Some(self.user),
            details: Some(seal_json(
                &keys.audit,
                &audit_label(tenant, &row),
                &details,
            )?),
        })
    }
}

/// One sealed read event per user, for reads that answer several users (or one, by group commit).
pub(crate) fn read_events(
    keys: &TenantKeys,
    tenant: TenantId,
    actor: Actor,
    command: Command,
    users: &[Uuid],
    metadata: Option<&Value>,
) -> Result<Vec<(Uuid, AuditEvent)>, VaultError> {
    users
        .iter()
        .map(|user| {
            let id = bunker_db::audit::new_event_id();
            let event = UserEvent::about(command, *user, metadata);
            Ok((id, event.seal(keys, tenant, id, Performer::Token(actor))?))
        })
        .collect()
}

/// Where a user's data key is kept, wrapped by the tenant's record key.
pub(crate) fn user_key_label(tenant: TenantId, token: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "user_key",
        row: token,
    }
}

/// The data key of a live user, made (and stored wrapped) if the user has none yet. The user's row
/// is locked for the transaction, so two requests cannot make two keys, and a forget-me either
/// waits for what is being stored (and removes it) or goes first (then this is not found).
pub(crate) async fn user_key_for_writing(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<UserKey, VaultError> {
    let row = user.to_string();
    let label = user_key_label(tx.tenant(), &row);
    match bunker_db::appdata::lock_user_key(tx, user).await? {
        // Forgotten since it was resolved: nothing may be stored for it any more.
        None => Err(VaultError::NotFound),
        Some(Some(wrapped)) => Ok(UserKey::unwrap(&keys.records, &label, &wrapped)?),
        Some(None) => {
            let (key, wrapped) = UserKey::generate(&keys.records, &label)?;
            if !bunker_db::appdata::set_user_key(tx, user, &wrapped).await? {
                return Err(VaultError::NotFound);
            }
            Ok(key)
        }
    }
}

/// The data key of a live user, if it has one (none: nothing was ever sealed with one).
pub(crate) async fn user_key_for_reading(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<Option<UserKey>, VaultError> {
    let row = user.to_string();
    let label = user_key_label(tx.tenant(), &row);
    match bunker_db::appdata::user_key(tx, user).await? {
        Some(wrapped) => Ok(Some(UserKey::unwrap(&keys.records, &label, &wrapped)?)),
        None => Ok(None),
    }
}

/// Where a token's value is sealed.
pub(crate) fn token_label(tenant: TenantId, token_uuid: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "token",
        row: token_uuid,
    }
}

pub(crate) fn audit_label(tenant: TenantId, event_id: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "audit",
        row: event_id,
    }
}

/// The live user a lookup names: not forgotten, not expired.
pub(crate) async fn resolve(tx: &TenantTx<'_>, lookup: Lookup) -> Result<StoredUser, VaultError> {
    let user = match lookup {
        Lookup::Token(token) => store::get_user(tx, token).await?,
        Lookup::Index(field, hash) => store::get_user_by_index(tx, field, &hash).await?,
    }
    .ok_or(VaultError::NotFound)?;
    if !is_live(&user) {
        return Err(VaultError::NotFound);
    }
    Ok(user)
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether a stored user is live: not forgotten, not expired.
pub(crate) fn is_live(user: &StoredUser) -> bool {
    user.record.is_some() && user.expires_at.is_none_or(|at| at > unix_now())
}

/// Seals and records a user event in the transaction.
pub(crate) async fn record_event(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    actor: Actor,
    event: UserEvent<'_>,
) -> Result<(), VaultError> {
    let id = audit::new_event_id();
    let sealed = event.seal(keys, tx.tenant(), id, Performer::Token(actor))?;
    audit::record_with_id(tx, id, &sealed).await?;
    Ok(())
}
