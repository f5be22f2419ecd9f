//! The file vault's rows: each file's wrapped key, sealed name and media type, keyed hashes of its
//! content, name and tags, and its size and expiry. The content itself is in object storage (see
//! the services' `files` module). Everything here runs in the caller's tenant transaction.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A stored file's row.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub id: Uuid,
    pub token: Uuid,
    pub content_hash: Vec<u8>,
    pub meta: Vec<u8>,
    pub file_key: Vec<u8>,
    pub size: i64,
    pub sliding_seconds: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new file's row.
pub struct NewFile<'a> {
    pub id: Uuid,
    pub token: Uuid,
    pub content_hash: &'a [u8],
    pub name_hash: &'a [u8],
    pub tag_hashes: &'a [Vec<u8>],
    pub meta: &'a [u8],
    pub file_key: &'a [u8],
    pub size: i64,
    pub sliding_seconds: Option<i64>,
    /// Unix seconds.
    pub final_at: Option<i64>,
}

const COLUMNS: &str = "id, token, content_hash, meta, file_key, size, sliding_seconds,
                       extract(epoch FROM created_at)::bigint";

fn from_row(row: &tokio_postgres::Row) -> Result<StoredFile, DbError> {
    Ok(StoredFile {
        id: row.try_get(0)?,
        token: row.try_get(1)?,
        content_hash: row.try_get(2)?,
        meta: row.try_get(3)?,
        file_key: row.try_get(4)?,
        size: row.try_get(5)?,
        sliding_seconds: row.try_get(6)?,
        created_at: row.try_get(7)?,
    })
}

/// What is live: not past its expiry.
const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

/// Stores a file's row; `false` if the user has a file of the same content already.
pub async fn insert(tx: &TenantTx<'_>, file: &NewFile<'_>) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "INSERT INTO files (tenant_id, id, token, content_hash, name_hash, tag_hashes, meta,
                                file_key, size, sliding_seconds, final_at, expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, f.at,
                    CASE WHEN $10::bigint IS NOT NULL
                         THEN LEAST(f.at, now() + make_interval(secs => $10)) ELSE f.at END
               FROM (SELECT to_timestamp($11::bigint) AS at) f
             ON CONFLICT (tenant_id, token, content_hash) DO NOTHING",
            &[
                &tx.tenant().0,
                &file.id,
                &file.token,
                &file.content_hash,
                &file.name_hash,
                &file.tag_hashes,
                &file.meta,
                &file.file_key,
                &file.size,
                &file.sliding_seconds,
                &file.final_at,
            ],
        )
        .await?
        == 1)
}

/// The user's live file with this content, if any.
pub async fn by_content(
    tx: &TenantTx<'_>,
    token: Uuid,
    content_hash: &[u8],
) -> Result<Option<StoredFile>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM files WHERE token = $1 AND content_hash = $2 AND {LIVE}"),
        &[&token, &content_hash],
    )
    .await?
    .map(|row| from_row(&row))
    .transpose()
}

/// Removes the user's file of this content if it has expired (so that the same content may be
/// stored again); its id, whose object is then to be removed.
pub async fn delete_expired_content(
    tx: &TenantTx<'_>,
    token: Uuid,
    content_hash: &[u8],
) -> Result<Option<Uuid>, DbError> {
    tx.query_opt(
        "DELETE FROM files WHERE token = $1 AND content_hash = $2 AND expires_at <= now()
         RETURNING id",
        &[&token, &content_hash],
    )
    .await?
    .map(|row| Ok(row.try_get(0)?))
    .transpose()
}

/// The user's live file `id`.
pub async fn get(tx: &TenantTx<'_>, token: Uuid, id: Uuid) -> Result<Option<StoredFile>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM files WHERE token = $1 AND id = $2 AND {LIVE}"),
        &[&token, &id],
    )
    .await?
    .map(|row| from_row(&row))
    .transpose()
}

/// The user's newest live file of a name.
pub async fn newest_by_name(
    tx: &TenantTx<'_>,
    token: Uuid,
    name_hash: &[u8],
) -> Result<Option<StoredFile>, DbError> {
    tx.query_opt(
        &format!(
            "SELECT {COLUMNS} FROM files WHERE token = $1 AND name_hash = $2 AND {LIVE}
              ORDER BY created_at DESC, id LIMIT 1"
        ),
        &[&token, &name_hash],
    )
    .await?
    .map(|row| from_row(&row))
    .transpose()
}

/// Renews a file's sliding expiry (after a read).
pub async fn renew(tx: &TenantTx<'_>, id: Uuid) -> Result<(), DbError> {
    tx.execute(
        "UPDATE files SET expires_at = LEAST(final_at, now() + make_interval(secs => sliding_seconds))
          WHERE id = $1 AND sliding_seconds IS NOT NULL",
        &[&id],
    )
    .await?;
    Ok(())
}

/// A user's live files, oldest first, at most `limit`; only those carrying `tag` if given.
pub async fn of_user(
    tx: &TenantTx<'_>,
    token: Uuid,
    tag: Option<&[u8]>,
    limit: i64,
) -> Result<Vec<StoredFile>, DbError> {
    tx.query(
        &format!(
            "SELECT {COLUMNS} FROM files
              WHERE token = $1 AND ($2::bytea IS NULL OR tag_hashes @> ARRAY[$2::bytea]) AND {LIVE}
              ORDER BY created_at, id LIMIT $3"
        ),
        &[&token, &tag, &limit],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// A page of the tenant's live files carrying `tag`, oldest first, and how many there are.
pub async fn with_tag(
    tx: &TenantTx<'_>,
    tag: &[u8],
    offset: i64,
    limit: i64,
) -> Result<(Vec<StoredFile>, i64), DbError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM files WHERE tag_hashes @> ARRAY[$1::bytea] AND {LIVE}
                  ORDER BY created_at, id OFFSET $2 LIMIT $3"
            ),
            &[&tag, &offset, &limit],
        )
        .await?;
    let total: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM files WHERE tag_hashes @> ARRAY[$1::bytea] AND {LIVE}"),
            &[&tag],
        )
        .await?
        .try_get(0)?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
}

/// Replaces a live file's tags (hashes, and the sealed metadata holding them); whether it was
/// there.
pub async fn replace_tags(
    tx: &TenantTx<'_>,
    id: Uuid,
    old_meta: &[u8],
    tag_hashes: &[Vec<u8>],
    meta: &[u8],
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            &format!(
                "UPDATE files SET tag_hashes = $2, meta = $3
                  WHERE id = $1 AND meta = $4 AND {LIVE}"
            ),
            &[&id, &tag_hashes, &meta, &old_meta],
        )
        .await?
        == 1)
}

/// Deletes a user's live file; whether it was there.
pub async fn delete(tx: &TenantTx<'_>, token: Uuid, id: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            &format!("DELETE FROM files WHERE token = $1 AND id = $2 AND {LIVE}"),
            &[&token, &id],
        )
        .await?
        == 1)
}

/// Deletes up to `limit` files past their expiry; their owners and ids, whose objects are then to
/// be removed.
pub async fn purge_expired(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, DbError> {
    tx.query(
        "DELETE FROM files WHERE id IN (
             SELECT id FROM files WHERE expires_at <= now()
              ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING token, id",
        &[&limit],
    )
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect()
}

/// Which of `ids` have a row in the transaction's tenant (for the sweeper's removal of objects
/// whose row is gone).
pub async fn existing(tx: &TenantTx<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>, DbError> {
    tx.query("SELECT id FROM files WHERE id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect()
}
