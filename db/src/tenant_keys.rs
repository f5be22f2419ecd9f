//! Tenant key rows (V30): each version of a tenant's key, only ever wrapped (by the master key or
//! by the tenant's own AWS KMS key). Read under the tenant's row-level security like any tenant row.

use tokio_postgres::Row;

use crate::tx::OpenTx;
use crate::{Database, DbError, TenantId, TenantTx};

/// What wraps a stored tenant key version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrapping {
    /// The installation's master key of this version.
    Master(i32),
    /// An AWS KMS key, by id or ARN.
    Kms(String),
}

impl Wrapping {
    /// `master` or `kms`, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            Wrapping::Master(_) => "master",
            Wrapping::Kms(_) => "kms",
        }
    }
}

/// A tenant key version as stored.
#[derive(Clone, Debug)]
pub struct StoredTenantKey {
    pub version: i32,
    pub wrapped: Vec<u8>,
    pub wrapping: Wrapping,
    /// Milliseconds until it is sealed with (zero or less: it may be now).
    pub active_in_ms: i64,
    /// The tenant may still have values sealed with the keys once derived from the master key.
    pub opens_master_derived: bool,
    pub retired: bool,
    /// Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "version, wrapped, wrapped_by, master_version, kms_key_id,
     GREATEST(-1, ceil(extract(epoch FROM active_from - now()) * 1000))::bigint AS active_in_ms,
     opens_master_derived, retired, extract(epoch FROM created_at)::bigint AS created";

fn from_row(row: &Row) -> Result<StoredTenantKey, DbError> {
    let wrapping = match row.try_get::<_, &str>("wrapped_by")? {
        "kms" => Wrapping::Kms(row.try_get("kms_key_id")?),
        _ => Wrapping::Master(row.try_get("master_version")?),
    };
    Ok(StoredTenantKey {
        version: row.try_get("version")?,
        wrapped: row.try_get("wrapped")?,
        wrapping,
        active_in_ms: row.try_get("active_in_ms")?,
        opens_master_derived: row.try_get("opens_master_derived")?,
        retired: row.try_get("retired")?,
        created_at: row.try_get("created")?,
    })
}

/// Every version of the transaction's tenant, retired ones included, newest first.
pub async fn all(tx: &TenantTx<'_>) -> Result<Vec<StoredTenantKey>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM tenant_keys ORDER BY version DESC");
    tx.query(&sql, &[]).await?.iter().map(from_row).collect()
}

/// Locks the transaction's tenant row (every change of the tenant's keys takes it first, as
/// TenantDelete does, so that changes are serialized and each sees the others' rows); whether the
/// tenant has had keys of its own, or `None` if it is gone.
pub async fn lock_tenant(tx: &TenantTx<'_>) -> Result<Option<bool>, DbError> {
    tx.query_opt(
        "SELECT own_keys FROM tenants WHERE id = $1 FOR UPDATE",
        &[&tx.tenant().0],
    )
    .await?
    .map(|row| Ok(row.try_get(0)?))
    .transpose()
}

/// The versions not retired, newest first, locked for a change of wrapping or a rotation.
pub async fn lock_held(tx: &TenantTx<'_>) -> Result<Vec<StoredTenantKey>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tenant_keys WHERE NOT retired ORDER BY version DESC FOR UPDATE"
    );
    tx.query(&sql, &[]).await?.iter().map(from_row).collect()
}

/// A version to store.
#[derive(Clone, Debug)]
pub struct NewTenantKey {
    pub version: i32,
    pub wrapped: Vec<u8>,
    pub wrapping: Wrapping,
    /// Seconds from now until it is sealed with.
    pub active_in_seconds: i64,
    pub opens_master_derived: bool,
}

fn wrapping_params(wrapping: &Wrapping) -> (Option<i32>, Option<&str>) {
    match wrapping {
        Wrapping::Master(version) => (Some(*version), None),
        Wrapping::Kms(id) => (None, Some(id.as_str())),
    }
}

/// Stores a version for `tenant` (from a transaction of another tenant, the main one creating a
/// tenant, the statement runs as `tenant`). Returns false if that version exists already (another
/// server stored it first).
pub async fn insert(
    tx: &TenantTx<'_>,
    tenant: TenantId,
    key: &NewTenantKey,
) -> Result<bool, DbError> {
    let switch = tenant != tx.tenant();
    if switch {
        tx.switch_tenant(tenant).await?;
    }
    let (master_version, kms_key_id) = wrapping_params(&key.wrapping);
    // A tenant deleted meanwhile makes the insert fail on its foreign key: not inserted.
    let outcome = tx
        .execute_unless_gone(
            "INSERT INTO tenant_keys (tenant_id, version, wrapped, wrapped_by, master_version, kms_key_id,
                                      active_from, opens_master_derived)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::bigint), $8)
             ON CONFLICT DO NOTHING",
            &[
                &tenant.0,
                &key.version,
                &key.wrapped,
                &key.wrapping.kind(),
                &master_version,
                &kms_key_id,
                &key.active_in_seconds,
                &key.opens_master_derived,
            ],
        )
        .await?;
    if outcome.is_some_and(|rows| rows > 0) {
        tx.execute(
            "UPDATE tenants SET own_keys = true WHERE id = $1",
            &[&tenant.0],
        )
        .await?;
    }
    // (After a foreign key violation the transaction can only be rolled back.)
    if switch && outcome.is_some() {
        tx.switch_tenant(tx.tenant()).await?;
    }
    Ok(outcome.is_some_and(|rows| rows > 0))
}

/// Stores a version wrapped anew (the key itself is unchanged).
pub async fn rewrap(
    tx: &TenantTx<'_>,
    version: i32,
    wrapped: &[u8],
    wrapping: &Wrapping,
) -> Result<(), DbError> {
    let (master_version, kms_key_id) = wrapping_params(wrapping);
    tx.execute(
        "UPDATE tenant_keys SET wrapped = $2, wrapped_by = $3, master_version = $4, kms_key_id = $5
          WHERE version = $1",
        &[
            &version,
            &wrapped,
            &wrapping.kind(),
            &master_version,
            &kms_key_id,
        ],
    )
    .await?;
    Ok(())
}

/// Nothing of the tenant is sealed with master-derived keys any more (re-encryption finished).
pub async fn forget_master_derived(tx: &TenantTx<'_>) -> Result<(), DbError> {
    tx.execute(
        "UPDATE tenant_keys SET opens_master_derived = false WHERE opens_master_derived",
        &[],
    )
    .await?;
    Ok(())
}

/// Retires every version older than `current`, destroying its wrapped key: nothing is sealed with
/// them any more, and no later copy of the database can open what they sealed.
pub async fn retire_older(tx: &TenantTx<'_>, current: i32) -> Result<Vec<i32>, DbError> {
    tx.query(
        "UPDATE tenant_keys SET retired = true, wrapped = ''::bytea
          WHERE version < $1 AND NOT retired RETURNING version",
        &[&current],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

impl Database {
    /// Records that a server keeps tenant keys for `seconds`; returns the longest any server has.
    pub async fn register_tenant_key_cache(&self, seconds: i64) -> Result<i64, DbError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_one(
                "UPDATE installation SET tenant_key_cache_seconds = GREATEST(tenant_key_cache_seconds, $1)
                 RETURNING tenant_key_cache_seconds",
                &[&seconds],
            )
            .await?
            .try_get(0)?)
    }

    /// The longest tenant-key cache lifetime any server has registered.
    pub async fn tenant_key_cache_max(&self) -> Result<i64, DbError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_one("SELECT tenant_key_cache_seconds FROM installation", &[])
            .await?
            .try_get(0)?)
    }

    /// The held (not retired) versions of `tenant`, newest first, and whether the tenant has had
    /// keys of its own (`tenants.own_keys`), in a transaction of their own — or in the request's
    /// kept transaction when it is for `tenant`, which stays kept for the request's work (a cache
    /// miss of the tenant's keys costs one query, not a transaction).
    pub async fn held_tenant_keys(
        &self,
        tenant: TenantId,
    ) -> Result<(Vec<StoredTenantKey>, bool), DbError> {
        // One statement: the tenant's flag, joined to each of its rows (nulls when it has none).
        let sql = format!(
            "SELECT t.own_keys, k.* FROM tenants t
               LEFT JOIN LATERAL (SELECT {COLUMNS} FROM tenant_keys WHERE NOT retired) k ON true
              WHERE t.id = {id} ORDER BY k.version DESC",
            id = tenant.0
        );
        let read = |rows: Vec<Row>| -> Result<(Vec<StoredTenantKey>, bool), DbError> {
            let own = match rows.first() {
                Some(row) => row.try_get::<_, bool>("own_keys")?,
                None => false,
            };
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                if row.try_get::<_, Option<i32>>("version")?.is_some() {
                    keys.push(from_row(row)?);
                }
            }
            Ok((keys, own))
        };
        match crate::session::take() {
            Some((kept, open)) if kept == tenant => {
                let rows = open.client()?.query(sql.as_str(), &[]).await;
                match rows {
                    Ok(rows) => {
                        crate::session::keep(kept, open).await?;
                        read(rows)
                    }
                    Err(err) => {
                        let _ = open.end("ROLLBACK").await;
                        Err(err.into())
                    }
                }
            }
            other => {
                if let Some((kept, open)) = other {
                    crate::session::keep(kept, open).await?;
                }
                let open = OpenTx::begin_apart(self, tenant).await?;
                let rows = open.client()?.query(sql.as_str(), &[]).await;
                let _ = open.end("COMMIT").await;
                read(rows?)
            }
        }
    }
}
