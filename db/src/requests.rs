//! User requests: proposed changes that an admin or a DPO approves or cancels. Sealed parts are
//! sealed by the services with the user's key; this module stores and finds them.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A request as stored.
#[derive(Clone, Debug)]
pub struct StoredRequest {
    pub uuid: Uuid,
    pub token: Uuid,
    pub kind: String,
    pub appname: Option<String>,
    /// A withdrawal's legal basis, and its brief now.
    pub basis_id: Option<i64>,
    pub brief: Option<String>,
    pub change: Option<Vec<u8>>,
    pub metadata: Option<Vec<u8>>,
    pub status: String,
    pub reason: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

/// A request to store.
#[derive(Clone, Debug)]
pub struct NewRequest<'a> {
    pub uuid: Uuid,
    pub token: Uuid,
    pub kind: &'a str,
    pub appname: Option<&'a str>,
    pub basis_id: Option<i64>,
    pub change: Option<&'a [u8]>,
    pub metadata: Option<&'a [u8]>,
    pub requested_by: Uuid,
}

const COLUMNS: &str = "uuid, token, kind, appname, basis_id,
     (SELECT b.brief FROM legal_bases b WHERE b.id = basis_id) AS brief,
     change, metadata, status, reason,
     extract(epoch FROM created_at)::bigint AS created_at,
     extract(epoch FROM decided_at)::bigint AS decided_at";

fn from_row(row: &Row) -> Result<StoredRequest, DbError> {
    Ok(StoredRequest {
        uuid: row.try_get("uuid")?,
        token: row.try_get("token")?,
        kind: row.try_get("kind")?,
        appname: row.try_get("appname")?,
        basis_id: row.try_get("basis_id")?,
        brief: row.try_get("brief")?,
        change: row.try_get("change")?,
        metadata: row.try_get("metadata")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        decided_at: row.try_get("decided_at")?,
    })
}

/// Stores an open request, unless one of the same user, kind and app is open: then nothing is
/// stored. Returns the uuid of the open request, and whether it is the new one (`None`: the open
/// one kept being closed under it; the caller may retry).
pub async fn open(
    tx: &TenantTx<'_>,
    new: &NewRequest<'_>,
) -> Result<Option<(Uuid, bool)>, DbError> {
    // The open one may be closed between the insert that found it and the read of its uuid:
    // then the insert is tried again (the caller holds the user's row, so not for long).
    for _ in 0..3 {
        let inserted = tx
            .query_opt(
                "INSERT INTO user_requests
                     (tenant_id, uuid, token, kind, appname, basis_id, change, metadata,
                      requested_by)
                 VALUES ($1, $2, $3, $4, $5, $9, $6, $7, $8)
                 ON CONFLICT (tenant_id, token, kind, (coalesce(appname, '')), (coalesce(basis_id, 0)))
                     WHERE status = 'open'
                 DO NOTHING
                 RETURNING uuid",
                &[
                    &tx.tenant().0,
                    &new.uuid,
                    &new.token,
                    &new.kind,
                    &new.appname,
                    &new.change,
                    &new.metadata,
                    &new.requested_by,
                    &new.basis_id,
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(Some((row.try_get(0)?, true)));
        }
        let open = tx
            .query_opt(
                "SELECT uuid FROM user_requests
                  WHERE token = $1 AND kind = $2 AND coalesce(appname, '') = coalesce($3, '')
                    AND coalesce(basis_id, 0) = coalesce($4::bigint, 0) AND status = 'open'",
                &[&new.token, &new.kind, &new.appname, &new.basis_id],
            )
            .await?;
        if let Some(row) = open {
            return Ok(Some((row.try_get(0)?, false)));
        }
    }
    Ok(None)
}

/// One request; with `lock`, its row is locked for the transaction (a decision).
pub async fn get(
    tx: &TenantTx<'_>,
    uuid: Uuid,
    lock: bool,
) -> Result<Option<StoredRequest>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_requests WHERE uuid = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    tx.query_opt(&sql, &[&uuid])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Closes an open request as `status` (`approved` or `cancelled`), with a sealed reason.
pub async fn close(
    tx: &TenantTx<'_>,
    uuid: Uuid,
    status: &str,
    reason: Option<&[u8]>,
    decided_by: Uuid,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE user_requests SET status = $2, reason = $3, decided_by = $4, decided_at = now()
              WHERE uuid = $1 AND status = 'open'",
            &[&uuid, &status, &reason, &decided_by],
        )
        .await?
        > 0)
}

/// One page of a user's requests, newest first, and how many there are.
pub async fn of_user(
    tx: &TenantTx<'_>,
    token: Uuid,
    offset: i64,
    limit: i64,
) -> Result<(Vec<StoredRequest>, i64), DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_requests WHERE token = $1
          ORDER BY created_at DESC, uuid OFFSET $2 LIMIT $3"
    );
    let rows = tx
        .query(&sql, &[&token, &offset, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = tx
        .query_one(
            "SELECT count(*) FROM user_requests WHERE token = $1",
            &[&token],
        )
        .await?
        .try_get(0)?;
    Ok((rows, total))
}

/// One page of the tenant's requests (of one `status`, or all), newest first, and how many.
pub async fn all(
    tx: &TenantTx<'_>,
    status: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<StoredRequest>, i64), DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_requests WHERE ($1::text IS NULL OR status = $1)
          ORDER BY created_at DESC, uuid OFFSET $2 LIMIT $3"
    );
    let rows = tx
        .query(&sql, &[&status, &offset, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = tx
        .query_one(
            "SELECT count(*) FROM user_requests WHERE ($1::text IS NULL OR status = $1)",
            &[&status],
        )
        .await?
        .try_get(0)?;
    Ok((rows, total))
}
