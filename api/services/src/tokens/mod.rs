//! The tokenization engine: TokenCreate(Bulk), TokenGet, TokenDelete. A token is random; the value
//! is sealed with the tenant's token key under the token's UUID; `unique` maps a keyed hash of the
//! value to its one token. Every create, read and delete is audited without the value.

pub mod format;

use std::collections::HashMap;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::tokens::{self as store, NewToken, StoredToken};
use bunker_db::{DbError, TenantId, TenantTx};
use bunker_keys::{KeyError, TenantKeys};
use bunker_tenancy::Caller;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::access::Command;
use crate::core::expiry::Expiry;
use crate::core::{audit_label, seal_json, token_label, Vault, VaultError};
use format::{FormatOptions, TokenType};

/// How often a batch is tried again after a concurrent request made a `unique` token for one of
/// its values first.
const ATTEMPTS: usize = 5;
/// How often a token whose format-preserving handle is taken is drawn again, in the same
/// transaction, before its space counts as used up.
const REDRAWS: usize = 16;

/// One value to tokenize.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub token_type: TokenType,
    pub record: String,
    pub options: FormatOptions,
}

/// A token made (or, for `unique`, found).
#[derive(Clone, Debug)]
pub struct IssuedValueToken {
    pub uuid: Uuid,
    pub base: String,
    pub token_type: TokenType,
}

/// A token read back.
#[derive(Clone, Debug)]
pub struct TokenValue {
    pub uuid: Uuid,
    pub base: String,
    pub token_type: String,
    pub record: String,
    pub expirationtime: Option<i64>,
}

/// Why an attempt must be drawn again.
enum Attempt {
    Retry,
    Failed(VaultError),
}

impl From<VaultError> for Attempt {
    fn from(err: VaultError) -> Self {
        Attempt::Failed(err)
    }
}

impl From<DbError> for Attempt {
    fn from(err: DbError) -> Self {
        // On a partitioned table the violated constraint is named after the partition's index
        // (`token_unique_p3_pkey`), so match by table.
        match err.violated_constraint() {
            Some(c) if c.starts_with("token_unique_") => Attempt::Retry,
            _ => Attempt::Failed(err.into()),
        }
    }
}

impl Vault {
    /// Tokenizes values (all or none, in one transaction). With `unique`, a value already
    /// tokenized in this tenant gets its existing token back and its expiry restarted.
    pub async fn create_tokens(
        &self,
        caller: &Caller,
        command: Command,
        specs: &[TokenSpec],
        unique: bool,
        expiry: Expiry,
        metadata: Option<&Value>,
    ) -> Result<Vec<IssuedValueToken>, VaultError> {
        let mut canonical = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let value = format::canonical(spec.token_type, &spec.record).map_err(|e| {
                let at = if specs.len() > 1 {
                    format!("records[{i}]: ")
                } else {
                    String::new()
                };
                VaultError::BadRequest(format!("{at}{e}"))
            })?;
            canonical.push(value);
        }
        let tenant = caller.tenant.id;
        let actor = Performer::Token(caller.actor());
        for attempt in 1..=ATTEMPTS {
            let keys = self.keys(tenant).await?;
            let specs = specs.to_vec();
            let canonical = canonical.clone();
            let metadata = metadata.cloned();
            let result = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        issue(
                            tx,
                            &keys,
                            &specs,
                            &canonical,
                            unique,
                            expiry,
                            actor,
                            command,
                            metadata.as_ref(),
                        )
                        .await
                        .map_err(|e| match e {
                            Attempt::Retry => VaultError::Conflict,
                            Attempt::Failed(e) => e,
                        })
                    })
                })
                .await;
            match result {
                Err(VaultError::Conflict) if attempt < ATTEMPTS => continue,
                other => return other,
            }
        }
        Err(VaultError::Conflict)
    }

    /// The value behind a token (by `tokenuuid` or `tokenbase`). Renews a sliding expiry.
    pub async fn get_token(
        &self,
        caller: &Caller,
        handle: &str,
        metadata: Option<Value>,
    ) -> Result<TokenValue, VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        let handle = handle.to_owned();
        let (value, event) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let token = find(tx, &handle).await?;
                    let row = token.uuid.to_string();
                    let plain = keys
                        .tokens
                        .open(&token_label(tx.tenant(), &row), &token.record)?;
                    let record = String::from_utf8(plain.to_vec())
                        .map_err(|_| VaultError::Keys(KeyError::Unsealable))?;
                    // Only a sliding token is written to: a plain read stays read-only.
                    let renewed = if token.sliding {
                        store::renew(tx, token.uuid).await?
                    } else {
                        None
                    };
                    let event = token_event(
                        &keys,
                        tx.tenant(),
                        actor,
                        Command::TokenGet,
                        &token.uuid,
                        &token.token_type,
                        metadata.as_ref(),
                    )?;
                    let value = TokenValue {
                        uuid: token.uuid,
                        base: token.base,
                        token_type: token.token_type,
                        record,
                        expirationtime: renewed.or(token.expires_at),
                    };
                    Ok::<_, VaultError>((value, event))
                })
            })
            .await?;
        // Like UserGet: the event joins the group commit of reads, and the answer waits for it.
        self.reads.record(tenant, vec![event]).await?;
        Ok(value)
    }

    /// Deletes a token: both handles stop resolving.
    pub async fn delete_token(
        &self,
        caller: &Caller,
        handle: &str,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        let handle = handle.to_owned();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let token = find(tx, &handle).await?;
                    store::delete(tx, &[token.uuid]).await?;
                    let event = token_event(
                        &keys,
                        tx.tenant(),
                        actor,
                        Command::TokenDelete,
                        &token.uuid,
                        &token.token_type,
                        metadata.as_ref(),
                    )?;
                    audit::record_many(tx, &[event]).await?;
                    Ok(())
                })
            })
            .await
    }
}

/// One attempt at issuing tokens, inside the transaction.
#[allow(clippy::too_many_arguments)]
async fn issue(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    specs: &[TokenSpec],
    canonical: &[String],
    unique: bool,
    expiry: Expiry,
    actor: Performer,
    command: Command,
    metadata: Option<&Value>,
) -> Result<Vec<IssuedValueToken>, Attempt> {
    let tenant = tx.tenant();
    let hashes: Vec<Option<[u8; 32]>> = specs
        .iter()
        .zip(canonical)
        .map(|(spec, value)| {
            unique.then(|| {
                keys.token_index
                    .blind_index(spec.token_type.as_str(), value.as_bytes())
            })
        })
        .collect();
    // Tokens already made for these values: live ones are reused, expired ones make way.
    let mut existing: HashMap<Vec<u8>, StoredToken> = HashMap::new();
    if unique {
        let wanted: Vec<&[u8]> = hashes.iter().flatten().map(|h| h.as_slice()).collect();
        let mut expired = Vec::new();
        for (hash, token) in store::find_unique(tx, &wanted).await? {
            if token.expired {
                expired.push(token.uuid);
            } else {
                existing.insert(hash, token);
            }
        }
        store::delete(tx, &expired).await?;
        let reused: Vec<Uuid> = existing.values().map(|t| t.uuid).collect();
        store::restart_expiry(tx, &reused, expiry.sliding_seconds, expiry.final_at).await?;
    }
    let (mut issued, mut fresh) = draw(keys, tenant, specs, canonical, &hashes, &existing, expiry)?;
    let mut events = Vec::with_capacity(issued.len());
    for token in &issued {
        events.push(token_event(
            keys,
            tenant,
            actor,
            command,
            &token.uuid,
            token.token_type.as_str(),
            metadata,
        )?);
    }
    // Pipelined: both statements go out before either answer is awaited.
    let new_tokens: Vec<NewToken> = fresh.iter().map(|(_, t)| t.clone()).collect();
    let (inserted, audited) = tokio::join!(
        store::insert_tokens(tx, &new_tokens),
        audit::record_many(tx, &events)
    );
    let mut placed = inserted?;
    audited?;
    // Tokens whose handle was taken (by a stored token or one of this batch) are drawn again, on
    // their own: the rest of the batch stays as it is.
    for _ in 0..REDRAWS {
        fresh.retain(|(_, token)| !placed.contains(&token.uuid));
        if fresh.is_empty() {
            return Ok(issued);
        }
        redraw(specs, canonical, &mut fresh, &mut issued);
        let again: Vec<NewToken> = fresh.iter().map(|(_, t)| t.clone()).collect();
        placed = store::insert_tokens(tx, &again).await?;
    }
    fresh.retain(|(_, token)| !placed.contains(&token.uuid));
    if fresh.is_empty() {
        Ok(issued)
    } else {
        Err(Attempt::Failed(VaultError::TokenSpaceExhausted))
    }
}

/// New handles for `fresh` tokens (each with the position of its spec), also in `issued`.
fn redraw(
    specs: &[TokenSpec],
    canonical: &[String],
    fresh: &mut [(usize, NewToken)],
    issued: &mut [IssuedValueToken],
) {
    let mut rng = rand::rng();
    for (position, token) in fresh.iter_mut() {
        let (Some(spec), Some(value)) = (specs.get(*position), canonical.get(*position)) else {
            continue;
        };
        let row = token.uuid.to_string();
        token.base =
            format::shaped_token(spec.token_type, value, spec.options, &mut rng).unwrap_or(row);
        if let Some(made) = issued.iter_mut().find(|i| i.uuid == token.uuid) {
            made.base = token.base.clone();
        }
    }
}

/// Draws new tokens for the values that need one (synchronously: the thread's CSPRNG is not
/// `Send`); reuses `existing` tokens and repeats within the batch for `unique` values.
#[allow(clippy::type_complexity)]
fn draw(
    keys: &TenantKeys,
    tenant: TenantId,
    specs: &[TokenSpec],
    canonical: &[String],
    hashes: &[Option<[u8; 32]>],
    existing: &HashMap<Vec<u8>, StoredToken>,
    expiry: Expiry,
) -> Result<(Vec<IssuedValueToken>, Vec<(usize, NewToken)>), VaultError> {
    let mut issued = Vec::with_capacity(specs.len());
    let mut fresh = Vec::new();
    let mut made_now: HashMap<[u8; 32], usize> = HashMap::new();
    let mut rng = rand::rng();
    for (position, ((spec, value), hash)) in specs.iter().zip(canonical).zip(hashes).enumerate() {
        if let Some(hash) = hash {
            if let Some(token) = existing.get(hash.as_slice()) {
                issued.push(IssuedValueToken {
                    uuid: token.uuid,
                    base: token.base.clone(),
                    token_type: spec.token_type,
                });
                continue;
            }
            if let Some(&i) = made_now.get(hash) {
                if let Some(first) = issued.get(i).cloned() {
                    issued.push(first);
                    continue;
                }
            }
            made_now.insert(*hash, issued.len());
        }
        let uuid = Uuid::new_v4();
        let row = uuid.to_string();
        let base = format::shaped_token(spec.token_type, value, spec.options, &mut rng)
            .unwrap_or_else(|| row.clone());
        let record = keys
            .tokens
            .seal(&token_label(tenant, &row), value.as_bytes())
            .map_err(VaultError::from)?;
        fresh.push((
            position,
            NewToken {
                uuid,
                base: base.clone(),
                token_type: spec.token_type.as_str(),
                record,
                value_hash: *hash,
                sliding_seconds: expiry.sliding_seconds,
                final_at: expiry.final_at,
            },
        ));
        issued.push(IssuedValueToken {
            uuid,
            base,
            token_type: spec.token_type,
        });
    }
    Ok((issued, fresh))
}

/// The value behind a stored token.
pub(crate) fn open_token(
    keys: &TenantKeys,
    tenant: TenantId,
    token: &StoredToken,
) -> Result<String, VaultError> {
    let row = token.uuid.to_string();
    let plain = keys
        .tokens
        .open(&token_label(tenant, &row), &token.record)?;
    String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Keys(KeyError::Unsealable))
}

/// A token by either handle; expired or unknown is not found.
pub(crate) async fn find(tx: &TenantTx<'_>, handle: &str) -> Result<StoredToken, VaultError> {
    let uuid = Uuid::try_parse(handle.trim()).ok();
    match store::get(tx, uuid, handle.trim()).await? {
        Some(token) if !token.expired => Ok(token),
        _ => Err(VaultError::TokenNotFound),
    }
}

/// The live tokens among `handles` (either handle each), in order; unknown or expired ones are
/// skipped, any other error stops.
pub(crate) async fn find_many(
    tx: &TenantTx<'_>,
    handles: &[String],
) -> Result<Vec<StoredToken>, VaultError> {
    let mut found = Vec::with_capacity(handles.len());
    for handle in handles {
        match find(tx, handle).await {
            Ok(token) => found.push(token),
            Err(VaultError::TokenNotFound) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

/// An audit event about a token: its type and the request metadata, sealed; never the value.
pub(crate) fn token_event(
    keys: &TenantKeys,
    tenant: TenantId,
    actor: Performer,
    command: Command,
    token: &Uuid,
    token_type: &str,
    metadata: Option<&Value>,
) -> Result<(Uuid, AuditEvent), VaultError> {
    let id = audit::new_event_id();
    let details = json!({ "tokentype": token_type, "request_metadata": metadata });
    let row = id.to_string();
    let sealed = seal_json(&keys.audit, &audit_label(tenant, &row), &details)?;
    Ok((
        id,
        AuditEvent {
            actor,
            action: command.audit_action(),
            target: format!("token:{token}"),
            user_token: None,
            details: Some(sealed),
        },
    ))
}
