//! Users' data keys and app data: one sealed object per user and application name, with its kept
//! versions. Everything here runs in the caller's tenant transaction, under row-level security.

use uuid::Uuid;

use crate::users::StoredVersion;
use crate::{DbError, TenantTx};

/// Locks a live user's row for the transaction (so that two requests making a user's first key
/// cannot make two, and a forget-me waits for what is being stored for the user, or goes first).
/// `None`: no live user (forgotten meanwhile); `Some(None)`: a live user without a key yet.
pub async fn lock_user_key(
    tx: &TenantTx<'_>,
    token: Uuid,
) -> Result<Option<Option<Vec<u8>>>, DbError> {
    tx.query_opt(
        "SELECT data_key FROM users WHERE token = $1 AND record IS NOT NULL FOR NO KEY UPDATE",
        &[&token],
    )
    .await?
    .map(|row| row.try_get::<_, Option<Vec<u8>>>(0))
    .transpose()
    .map_err(DbError::from)
}

/// The wrapped data key of a live user, if it has one (reads need no lock: without a key there is
/// nothing sealed with it).
pub async fn user_key(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<Vec<u8>>, DbError> {
    Ok(tx
        .query_opt(
            "SELECT data_key FROM users WHERE token = $1 AND record IS NOT NULL",
            &[&token],
        )
        .await?
        .map(|row| row.try_get::<_, Option<Vec<u8>>>(0))
        .transpose()?
        .flatten())
}

/// Stores a live user's first data key (after [`lock_user_key`] found none); `false` if the user
/// is no longer live or has a key.
pub async fn set_user_key(tx: &TenantTx<'_>, token: Uuid, wrapped: &[u8]) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE users SET data_key = $2 WHERE token = $1 AND record IS NOT NULL AND data_key IS NULL",
            &[&token, &wrapped],
        )
        .await?
        == 1)
}

/// One app's current sealed data and version.
pub async fn get(
    tx: &TenantTx<'_>,
    token: Uuid,
    appname: &str,
) -> Result<Option<(Vec<u8>, i32)>, DbError> {
    tx.query_opt(
        "SELECT record, version FROM app_data WHERE token = $1 AND appname = $2",
        &[&token, &appname],
    )
    .await?
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .transpose()
}

/// Stores an app's first data (and its first version); `false` when the user has data for that
/// app already.
pub async fn insert(
    tx: &TenantTx<'_>,
    token: Uuid,
    appname: &str,
    record: &[u8],
    version_record: &[u8],
) -> Result<bool, DbError> {
    let inserted = tx
        .execute(
            "INSERT INTO app_data (tenant_id, token, appname, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&tx.tenant().0, &token, &appname, &record],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO app_data_versions (tenant_id, token, appname, version, record)
         VALUES ($1, $2, $3, 1, $4)",
        &[&tx.tenant().0, &token, &appname, &version_record],
    )
    .await?;
    Ok(true)
}

/// Replaces an app's data if it is still at version `expected`, keeps the new version and prunes
/// those beyond the `keep` newest. Returns the new version, or `None` when another change got
/// there first.
pub async fn update(
    tx: &TenantTx<'_>,
    token: Uuid,
    appname: &str,
    expected: i32,
    record: &[u8],
    version_record: &[u8],
    keep: i32,
) -> Result<Option<i32>, DbError> {
    let Some(row) = tx
        .query_opt(
            "UPDATE app_data SET record = $4, version = version + 1, updated_at = now()
              WHERE token = $1 AND appname = $2 AND version = $3
          RETURNING version",
            &[&token, &appname, &expected, &record],
        )
        .await?
    else {
        return Ok(None);
    };
    let version: i32 = row.try_get(0)?;
    tx.execute(
        "INSERT INTO app_data_versions (tenant_id, token, appname, version, record)
         VALUES ($1, $2, $3, $4, $5)",
        &[&tx.tenant().0, &token, &appname, &version, &version_record],
    )
    .await?;
    tx.execute(
        "DELETE FROM app_data_versions WHERE token = $1 AND appname = $2 AND version <= $3",
        &[&token, &appname, &(version - keep)],
    )
    .await?;
    Ok(Some(version))
}

/// Deletes an app's data and its versions; `false` when there was none.
pub async fn delete(tx: &TenantTx<'_>, token: Uuid, appname: &str) -> Result<bool, DbError> {
    let deleted = tx
        .execute(
            "DELETE FROM app_data WHERE token = $1 AND appname = $2",
            &[&token, &appname],
        )
        .await?;
    tx.execute(
        "DELETE FROM app_data_versions WHERE token = $1 AND appname = $2",
        &[&token, &appname],
    )
    .await?;
    Ok(deleted > 0)
}

/// One kept version's sealed data.
pub async fn get_version(
    tx: &TenantTx<'_>,
    token: Uuid,
    appname: &str,
    version: i32,
) -> Result<Option<Vec<u8>>, DbError> {
    tx.query_opt(
        "SELECT record FROM app_data_versions WHERE token = $1 AND appname = $2 AND version = $3",
        &[&token, &appname, &version],
    )
    .await?
    .map(|row| row.try_get(0))
    .transpose()
    .map_err(DbError::from)
}

/// Every kept version of an app's data, oldest first.
pub async fn list_versions(
    tx: &TenantTx<'_>,
    token: Uuid,
    appname: &str,
) -> Result<Vec<StoredVersion>, DbError> {
    tx.query(
        "SELECT version, extract(epoch FROM created_at)::bigint, record
           FROM app_data_versions WHERE token = $1 AND appname = $2 ORDER BY version",
        &[&token, &appname],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(StoredVersion {
            version: row.try_get(0)?,
            optime: row.try_get(1)?,
            record: row.try_get(2)?,
        })
    })
    .collect()
}

/// The names of the apps a user has data for, in order.
pub async fn user_app_names(tx: &TenantTx<'_>, token: Uuid) -> Result<Vec<String>, DbError> {
    tx.query(
        "SELECT appname FROM app_data WHERE token = $1 ORDER BY appname",
        &[&token],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// The names of the apps any user of the tenant has data for, in order (at most `limit`).
pub async fn app_names(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<String>, DbError> {
    tx.query(
        "SELECT DISTINCT appname FROM app_data ORDER BY appname LIMIT $1",
        &[&limit],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}
