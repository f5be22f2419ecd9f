//! User records, their blind indexes and versions. Values arrive sealed and hashed: this module never
//! sees a profile in clear.

use std::time::SystemTime;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A user row as stored.
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub token: Uuid,
    /// The sealed profile; `None` once forgotten.
    pub record: Option<Vec<u8>>,
    pub version: i32,
    pub sliding_seconds: Option<i64>,
    pub final_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A user to insert: sealed record and first version, its indexes, its expiry.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub token: Uuid,
    pub record: Vec<u8>,
    /// The same profile sealed as version 1.
    pub first_version: Vec<u8>,
    pub indexes: UserIndexes,
    pub sliding_seconds: Option<i64>,
    pub final_at: Option<SystemTime>,
}

/// What a user is found by: the blind index of each indexed field (exact lookups, uniqueness) and
/// the keyed hashes of each field's trigrams (fuzzy search).
#[derive(Clone, Debug, Default)]
pub struct UserIndexes {
    pub exact: Vec<(&'static str, [u8; 32])>,
    pub grams: Vec<(&'static str, Vec<i64>)>,
}

/// One kept version.
#[derive(Clone, Debug)]
pub struct StoredVersion {
    pub version: i32,
    /// Unix seconds.
    pub optime: i64,
    pub record: Vec<u8>,
}

const USER_COLUMNS: &str = "token, record, version, sliding_seconds,
     extract(epoch FROM final_at)::bigint AS final_at,
     extract(epoch FROM expires_at)::bigint AS expires_at";

fn user_from_row(row: &Row) -> Result<StoredUser, DbError> {
    Ok(StoredUser {
        token: row.try_get("token")?,
        record: row.try_get("record")?,
        version: row.try_get("version")?,
        sliding_seconds: row.try_get("sliding_seconds")?,
        final_at: row.try_get("final_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Inserts users with their first versions, exact indexes and search grams, in one statement (one
/// round trip, however many users). A clashing index is a [`DbError::UniqueViolation`] on
/// `user_index_<field>`.
pub async fn insert_users(tx: &TenantTx<'_>, users: &[NewUser]) -> Result<(), DbError> {
    let tenant = tx.tenant().0;
    let tokens: Vec<Uuid> = users.iter().map(|u| u.token).collect();
    let records: Vec<&[u8]> = users.iter().map(|u| u.record.as_slice()).collect();
    let sliding: Vec<Option<i64>> = users.iter().map(|u| u.sliding_seconds).collect();
    let finals: Vec<Option<SystemTime>> = users.iter().map(|u| u.final_at).collect();
    let versions: Vec<&[u8]> = users.iter().map(|u| u.first_version.as_slice()).collect();
    let indexed: Vec<(Uuid, &UserIndexes)> = users.iter().map(|u| (u.token, &u.indexes)).collect();
    let rows = IndexRows::of(&indexed);
    let mut params = rows.params(&tenant).to_vec();
    params.extend([
        &tokens as &(dyn ToSql + Sync),
        &records,
        &sliding,
        &finals,
        &versions,
    ]);
    // Data-modifying CTEs all run, in this one statement (nothing orders them: since V11 no foreign
    // key ties the indexes, grams or versions to their user row).
    let sql = format!(
        "WITH {INDEX_CTES}, new_users AS (
             INSERT INTO users (tenant_id, token, record, sliding_seconds, final_at, expires_at)
             SELECT $1, u.token, u.record, u.sliding, u.final_at,
                    LEAST(u.final_at, now() + make_interval(secs => u.sliding))
               FROM UNNEST($8::uuid[], $9::bytea[], $10::bigint[], $11::timestamptz[])
                    AS u(token, record, sliding, final_at)
         )
         INSERT INTO user_versions (tenant_id, token, version, record)
         SELECT $1, v.token, 1, v.record FROM UNNEST($8::uuid[], $12::bytea[]) AS v(token, record)"
    );
    tx.execute(&sql, &params).await?;
    Ok(())
}

/// The statements that write users' exact indexes and search grams, as data-modifying CTEs over
/// [`IndexRows::params`]: `$1` the tenant, `$2`-`$4` the exact rows, `$5`-`$7` the gram rows.
const INDEX_CTES: &str = "exact AS (
         INSERT INTO user_indexes (tenant_id, token, field, hash)
         SELECT $1, i.token, i.field, i.hash
           FROM UNNEST($2::uuid[], $3::text[], $4::bytea[]) AS i(token, field, hash)
     ), search AS (
         INSERT INTO user_search (tenant_id, token, field, grams)
         SELECT $1, s.token, s.field, s.grams::bigint[]
           FROM UNNEST($5::uuid[], $6::text[], $7::text[]) AS s(token, field, grams)
     )";

/// Users' exact and search indexes as the columns of their rows, for `UNNEST`.
#[derive(Default)]
struct IndexRows<'a> {
    tokens: Vec<Uuid>,
    fields: Vec<&'static str>,
    hashes: Vec<&'a [u8]>,
    gram_tokens: Vec<Uuid>,
    gram_fields: Vec<&'static str>,
    /// Arrays of arrays must be rectangular for `UNNEST`: each set travels as one text value.
    grams: Vec<String>,
}

impl<'a> IndexRows<'a> {
    fn of(users: &[(Uuid, &'a UserIndexes)]) -> Self {
        let mut rows = IndexRows::default();
        for (token, indexes) in users {
            for (field, hash) in &indexes.exact {
                rows.tokens.push(*token);
                rows.fields.push(*field);
                rows.hashes.push(hash.as_slice());
            }
            for (field, set) in &indexes.grams {
                rows.gram_tokens.push(*token);
                rows.gram_fields.push(*field);
                rows.grams.push(gram_literal(set));
            }
        }
        rows
    }

    /// The parameters of [`INDEX_CTES`], `$1` to `$7`.
    fn params<'p>(&'p self, tenant: &'p i64) -> [&'p (dyn ToSql + Sync); 7] {
        [
            tenant,
            &self.tokens,
            &self.fields,
            &self.hashes,
            &self.gram_tokens,
            &self.gram_fields,
            &self.grams,
        ]
    }
}

/// A set of gram hashes as a PostgreSQL array literal (`{1,-2,3}`): numbers only.
fn gram_literal(grams: &[i64]) -> String {
    let items: Vec<String> = grams.iter().map(i64::to_string).collect();
    format!("{{{}}}", items.join(","))
}

/// Replaces a user's exact and search indexes.
pub async fn replace_indexes(
    tx: &TenantTx<'_>,
    token: Uuid,
    indexes: &UserIndexes,
) -> Result<(), DbError> {
    tx.execute("DELETE FROM user_indexes WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM user_search WHERE token = $1", &[&token])
        .await?;
    let rows = IndexRows::of(&[(token, indexes)]);
    let tenant = tx.tenant().0;
    let sql = format!("WITH {INDEX_CTES} SELECT 1");
    tx.execute(&sql, &rows.params(&tenant)).await?;
    Ok(())
}

/// The users whose `field` search grams share at least `min_shared` of `grams`, most alike first
/// (Jaccard similarity of the two sets): up to `limit` tokens. The GIN index is probed with
/// `probe`, a subset of `grams` that every such user must touch.
pub async fn search_candidates(
    tx: &TenantTx<'_>,
    field: &str,
    grams: &[i64],
    probe: &[i64],
    min_shared: i64,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    tx.query(
        "SELECT s.token
           FROM user_search s,
                LATERAL (SELECT count(*) AS shared FROM unnest(s.grams) g WHERE g = ANY($2)) c
          WHERE s.field = $1 AND s.grams && $3 AND c.shared >= $4
          ORDER BY c.shared::float8 / (cardinality($2) + cardinality(s.grams) - c.shared) DESC,
                   s.token
          LIMIT $5",
        &[&field, &grams, &probe, &min_shared, &limit],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// Which users are live: not forgotten, not expired.
const LIVE: &str = "record IS NOT NULL AND (expires_at IS NULL OR expires_at > now())";

/// The live users' tokens of the transaction's tenant, oldest first (for listing all users).
pub async fn live_tokens(tx: &TenantTx<'_>) -> Result<Vec<Uuid>, DbError> {
    let sql = format!("SELECT token FROM users WHERE {LIVE} ORDER BY created_at, token");
    tx.query(&sql, &[])
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect()
}

/// One page of the live users of the transaction's tenant (oldest first) and how many there are.
pub async fn live_page(
    tx: &TenantTx<'_>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<StoredUser>, i64), DbError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {LIVE} ORDER BY created_at, token OFFSET $1 LIMIT $2"
    );
    let users = tx
        .query(&sql, &[&offset, &limit])
        .await?
        .iter()
        .map(user_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = tx
        .query_one(&format!("SELECT count(*) FROM users WHERE {LIVE}"), &[])
        .await?
        .try_get(0)?;
    Ok((users, total))
}

/// Users by token (forgotten ones included, with no record), in no particular order.
pub async fn get_users(tx: &TenantTx<'_>, tokens: &[Uuid]) -> Result<Vec<StoredUser>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE token = ANY($1)");
    tx.query(&sql, &[&tokens])
        .await?
        .iter()
        .map(user_from_row)
        .collect()
}

/// A user by token (forgotten users included, with no record).
pub async fn get_user(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<StoredUser>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE token = $1");
    tx.query_opt(&sql, &[&token])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// A user by token, its row locked for the transaction (as the sweeper locks the users it forgets).
pub async fn lock_user(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<StoredUser>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE token = $1 FOR UPDATE");
    tx.query_opt(&sql, &[&token])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// The user whose `field` index has this hash (forgotten users have no index), in one round trip.
/// A field that has no index finds no one.
pub async fn get_user_by_index(
    tx: &TenantTx<'_>,
    field: &str,
    hash: &[u8; 32],
) -> Result<Option<StoredUser>, DbError> {
    let Some(sql) = index_lookup_sql(field) else {
        return Ok(None);
    };
    tx.query_opt(&sql, &[&hash.as_slice()])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// The fields with an exact index, each with a partial unique index of its own
/// (`user_index_<field>`, `WHERE field = '<field>'`).
pub const INDEXED_FIELDS: [&str; 4] = ["email", "phone", "login", "custom"];

/// The statement that finds a user by `field`'s blind index (`$1`), if `field` is indexed.
///
/// The field is written into the SQL, not passed as a parameter: once PostgreSQL switches a
/// prepared statement to its generic plan, a parameter cannot be matched against a partial index's
/// predicate, and the lookup fell back to scanning every index row of the tenant (seen in the
/// benchmark: 4.5 ms of PostgreSQL CPU per lookup instead of ~0.3 ms).
pub fn index_lookup_sql(field: &str) -> Option<String> {
    let field = INDEXED_FIELDS.into_iter().find(|f| *f == field)?;
    Some(format!(
        "SELECT {USER_COLUMNS} FROM users
          WHERE token = (SELECT token FROM user_indexes WHERE field = '{field}' AND hash = $1)"
    ))
}

/// The users holding any of these exact indexes: `(field, hash, token)` for each one found. One
/// round trip; each field is looked up through its own partial unique index (the field is in the
/// SQL, see [`index_lookup_sql`]).
pub async fn index_holders(
    tx: &TenantTx<'_>,
    indexes: &[(&'static str, [u8; 32])],
) -> Result<Vec<(&'static str, [u8; 32], Uuid)>, DbError> {
    let hashes_of = |field: &str| -> Vec<&[u8]> {
        indexes
            .iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, h)| h.as_slice())
            .collect()
    };
    let [email, phone, login, custom] = INDEXED_FIELDS.map(hashes_of);
    let rows = tx
        .query(
            "SELECT field, hash, token FROM user_indexes WHERE field = 'email' AND hash = ANY($1)
             UNION ALL
             SELECT field, hash, token FROM user_indexes WHERE field = 'phone' AND hash = ANY($2)
             UNION ALL
             SELECT field, hash, token FROM user_indexes WHERE field = 'login' AND hash = ANY($3)
             UNION ALL
             SELECT field, hash, token FROM user_indexes WHERE field = 'custom' AND hash = ANY($4)",
            &[&email, &phone, &login, &custom],
        )
        .await?;
    let mut holders = Vec::with_capacity(rows.len());
    for row in rows {
        let field: String = row.try_get(0)?;
        let hash: Vec<u8> = row.try_get(1)?;
        let (Some(field), Ok(hash)) = (
            INDEXED_FIELDS.into_iter().find(|f| *f == field),
            <[u8; 32]>::try_from(hash.as_slice()),
        ) else {
            continue;
        };
        holders.push((field, hash, row.try_get(2)?));
    }
    Ok(holders)
}

/// Renews a sliding expiry on access; returns the new expiry (Unix seconds), if any.
pub async fn renew_expiry(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<i64>, DbError> {
    let row = tx
        .query_opt(
            "UPDATE users SET expires_at = LEAST(final_at, now() + make_interval(secs => sliding_seconds))
              WHERE token = $1 AND sliding_seconds IS NOT NULL
          RETURNING extract(epoch FROM expires_at)::bigint",
            &[&token],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
}

/// Stores a new current record if the user is still at `expected` version (optimistic concurrency)
/// and keeps it as a version; prunes versions beyond the `keep` newest. Returns the new version
/// number, or `None` when another update got there first.
pub async fn update_record(
    tx: &TenantTx<'_>,
    token: Uuid,
    expected: i32,
    record: &[u8],
    version_record: &[u8],
    keep: i32,
) -> Result<Option<i32>, DbError> {
    let Some(row) = tx
        .query_opt(
            "UPDATE users SET record = $3, version = version + 1, updated_at = now()
              WHERE token = $1 AND version = $2 AND record IS NOT NULL
          RETURNING version",
            &[&token, &expected, &record],
        )
        .await?
    else {
        return Ok(None);
    };
    let version: i32 = row.try_get(0)?;
    tx.execute(
        "INSERT INTO user_versions (tenant_id, token, version, record) VALUES ($1, $2, $3, $4)",
        &[&tx.tenant().0, &token, &version, &version_record],
    )
    .await?;
    tx.execute(
        "DELETE FROM user_versions WHERE token = $1 AND version <= $2",
        &[&token, &(version - keep)],
    )
    .await?;
    Ok(Some(version))
}

/// One kept version's sealed record.
pub async fn get_version(
    tx: &TenantTx<'_>,
    token: Uuid,
    version: i32,
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(tx
        .query_opt(
            "SELECT record FROM user_versions WHERE token = $1 AND version = $2",
            &[&token, &version],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// Every kept version, oldest first.
pub async fn list_versions(tx: &TenantTx<'_>, token: Uuid) -> Result<Vec<StoredVersion>, DbError> {
    tx.query(
        "SELECT version, extract(epoch FROM created_at)::bigint, record
           FROM user_versions WHERE token = $1 ORDER BY version",
        &[&token],
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

/// Forget-me: destroys the user's data key and removes the sealed record, its versions, its
/// indexes, its group memberships, its app data and its access tokens; the row stays so that the
/// token is never issued again. Returns whether there was
/// a record to forget.
pub async fn forget_user(tx: &TenantTx<'_>, token: Uuid) -> Result<bool, DbError> {
    forget_keeping_versions(tx, token, false).await
}

/// [`forget_user`], except that, with `keep_versions`, the profile's versions are kept (marked
/// `removed_at`) so that the profile can be restored within a window ([`restore_user`]); the
/// sweeper deletes them after it ([`purge_restorable`]). Everything sealed with the user's key
/// goes all the same.
pub async fn forget_keeping_versions(
    tx: &TenantTx<'_>,
    token: Uuid,
    keep_versions: bool,
) -> Result<bool, DbError> {
    let forgotten = tx
        .execute(
            "UPDATE users SET record = NULL, data_key = NULL, forgotten_at = now(),
                    updated_at = now(), sliding_seconds = NULL, final_at = NULL, expires_at = NULL,
                    removed_at = CASE WHEN $2 THEN now() END
              WHERE token = $1 AND record IS NOT NULL",
            &[&token, &keep_versions],
        )
        .await?;
    if forgotten == 0 {
        return Ok(false);
    }
    tx.execute("DELETE FROM user_indexes WHERE token = $1", &[&token])
        .await?;
    if !keep_versions {
        tx.execute("DELETE FROM user_versions WHERE token = $1", &[&token])
            .await?;
    }
    tx.execute("DELETE FROM user_search WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM group_members WHERE token = $1", &[&token])
        .await?;
    // Unreadable already (the user's key is gone with the record); deleted all the same.
    tx.execute("DELETE FROM app_data WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM app_data_versions WHERE token = $1", &[&token])
        .await?;
    // Open requests are cancelled; what any request held (sealed with the destroyed key) goes.
    tx.execute(
        "UPDATE user_requests SET change = NULL, metadata = NULL, reason = NULL,
                status = CASE WHEN status = 'open' THEN 'cancelled' ELSE status END,
                decided_at = coalesce(decided_at, now())
          WHERE token = $1",
        &[&token],
    )
    .await?;
    // Sessions, shared records and files (their rows: the objects are removed after the commit,
    // or by the sweeper; unreadable already, their keys being wrapped by the user's).
    tx.execute("DELETE FROM sessions WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM shared_records WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM files WHERE token = $1", &[&token])
        .await?;
    tx.execute("DELETE FROM login_codes WHERE token = $1", &[&token])
        .await?;
    tx.execute(
        "DELETE FROM portal_sessions WHERE user_token = $1",
        &[&token],
    )
    .await?;
    crate::expirations::end(tx, token).await?;
    crate::control::delete_user_tokens(tx, token).await?;
    Ok(true)
}

/// Up to `limit` users of the transaction's tenant whose expiry has passed, or whose expiration
/// flow waits past its end, locked for this transaction (rows another sweeper holds are skipped).
pub async fn lock_expired(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<Uuid>, DbError> {
    let locked: Vec<Uuid> = tx
        .query(
            "SELECT token FROM users
          WHERE record IS NOT NULL
            AND token IN (SELECT token FROM users WHERE expires_at <= now()
                          UNION ALL
                          SELECT token FROM user_expirations
                           WHERE status = 'wait' AND ends_at <= now())
          LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    // Asked again now that they are locked, in a statement of its own: the first one judged the
    // flows by its snapshot, and a user kept (retain, cancel, a renewed expiry) since then stays.
    tx.query(
        "SELECT token FROM users u
          WHERE token = ANY($1) AND record IS NOT NULL
            AND (expires_at <= now()
                 OR EXISTS (SELECT 1 FROM user_expirations e
                             WHERE e.token = u.token AND e.status = 'wait' AND e.ends_at <= now()))",
        &[&locked],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// A profile removed with its versions kept ([`forget_keeping_versions`]): its newest kept
/// version, with that version's number.
#[derive(Clone, Debug)]
pub struct Restorable {
    pub version: i32,
    pub record: Vec<u8>,
}

/// The profile `token`, if it was removed with its versions kept less than `window_seconds` ago;
/// its row is locked.
pub async fn lock_restorable(
    tx: &TenantTx<'_>,
    token: Uuid,
    window_seconds: i64,
) -> Result<Option<Restorable>, DbError> {
    let locked = tx
        .query_opt(
            "SELECT token FROM users
              WHERE token = $1 AND record IS NULL
                AND removed_at > now() - make_interval(secs => $2::bigint) FOR UPDATE",
            &[&token, &window_seconds],
        )
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    tx.query_opt(
        "SELECT version, record FROM user_versions WHERE token = $1 ORDER BY version DESC LIMIT 1",
        &[&token],
    )
    .await?
    .map(|row| {
        Ok(Restorable {
            version: row.try_get(0)?,
            record: row.try_get(1)?,
        })
    })
    .transpose()
}

/// Brings a profile [`lock_restorable`] found back as its current record (sealed anew for the
/// record's label) with its indexes; a clashing index is a [`DbError::UniqueViolation`] on
/// `user_index_<field>`.
pub async fn restore_user(
    tx: &TenantTx<'_>,
    token: Uuid,
    version: i32,
    record: &[u8],
    indexes: &UserIndexes,
) -> Result<bool, DbError> {
    let restored = tx
        .execute(
            "UPDATE users SET record = $2, version = $3, forgotten_at = NULL,
                    removed_at = NULL, updated_at = now()
              WHERE token = $1 AND record IS NULL AND removed_at IS NOT NULL",
            &[&token, &record, &version],
        )
        .await?;
    if restored == 0 {
        return Ok(false);
    }
    replace_indexes(tx, token, indexes).await?;
    Ok(true)
}

/// Deletes the kept versions of up to `limit` profiles removed `window_seconds` ago or more;
/// their tokens.
pub async fn purge_restorable(
    tx: &TenantTx<'_>,
    window_seconds: i64,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    let tokens: Vec<Uuid> = tx
        .query(
            "UPDATE users SET removed_at = NULL
              WHERE token IN (SELECT token FROM users
                               WHERE removed_at <= now() - make_interval(secs => $1::bigint)
                               ORDER BY removed_at LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING token",
            &[&window_seconds, &limit],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    if !tokens.is_empty() {
        tx.execute(
            "DELETE FROM user_versions WHERE token = ANY($1)",
            &[&tokens],
        )
        .await?;
    }
    Ok(tokens)
}
