//! Agreements: a person's consent to a legal basis, or, before a user holds the e-mail or phone
//! it was given for, the consent waiting for one.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// Who an agreement is of: a user, or (before a user holds it) an e-mail or phone's blind index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Party {
    User(Uuid),
    Waiting { field: &'static str, hash: [u8; 32] },
}

/// An agreement as stored, with its basis's brief.
#[derive(Clone, Debug)]
pub struct StoredAgreement {
    pub id: i64,
    pub basis_id: i64,
    pub brief: String,
    /// The user; `None` while it waits for one.
    pub token: Option<Uuid>,
    /// While it waits: the field (`email`, `phone`) and the blind index of its value.
    pub pending: Option<(String, Vec<u8>)>,
    pub status: String,
    /// Method, reference code and last modifier, sealed (none after forget-me).
    pub sealed: Option<Vec<u8>>,
    /// Unix seconds.
    pub start_at: Option<i64>,
    pub final_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const AGREEMENT_COLUMNS: &str = "a.id, a.basis_id, b.brief, a.token, a.pending_field,
     a.pending_hash, a.status, a.sealed,
     extract(epoch FROM a.start_at)::bigint AS start_at,
     extract(epoch FROM a.final_at)::bigint AS final_at,
     extract(epoch FROM a.created_at)::bigint AS created_at,
     extract(epoch FROM a.updated_at)::bigint AS updated_at";

fn agreement_from_row(row: &Row) -> Result<StoredAgreement, DbError> {
    Ok(StoredAgreement {
        id: row.try_get("id")?,
        basis_id: row.try_get("basis_id")?,
        brief: row.try_get("brief")?,
        token: row.try_get("token")?,
        pending: row
            .try_get::<_, Option<String>>("pending_field")?
            .zip(row.try_get::<_, Option<Vec<u8>>>("pending_hash")?),
        status: row.try_get("status")?,
        sealed: row.try_get("sealed")?,
        start_at: row.try_get("start_at")?,
        final_at: row.try_get("final_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn agreements(rows: Vec<Row>) -> Result<Vec<StoredAgreement>, DbError> {
    rows.iter().map(agreement_from_row).collect()
}

/// The agreement of `party` to basis `basis_id`, locked for this transaction with `lock`.
pub async fn get_agreement(
    tx: &TenantTx<'_>,
    party: &Party,
    basis_id: i64,
    lock: bool,
) -> Result<Option<StoredAgreement>, DbError> {
    let lock = if lock { " FOR UPDATE OF a" } else { "" };
    let row = match party {
        Party::User(token) => {
            let sql = format!(
                "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
                  WHERE a.token = $1 AND a.basis_id = $2{lock}"
            );
            tx.query_opt(&sql, &[token, &basis_id]).await?
        }
        Party::Waiting { field, hash } => {
            let sql = format!(
                "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
                  WHERE a.token IS NULL AND a.pending_hash = $1 AND a.pending_field = $2
                    AND a.basis_id = $3{lock}"
            );
            tx.query_opt(&sql, &[&hash.as_slice(), field, &basis_id])
                .await?
        }
    };
    row.as_ref().map(agreement_from_row).transpose()
}

/// Every agreement of `party`, by brief.
pub async fn agreements_of(
    tx: &TenantTx<'_>,
    party: &Party,
) -> Result<Vec<StoredAgreement>, DbError> {
    let rows = match party {
        Party::User(token) => {
            let sql = format!(
                "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
                  WHERE a.token = $1 ORDER BY b.brief"
            );
            tx.query(&sql, &[token]).await?
        }
        Party::Waiting { field, hash } => {
            let sql = format!(
                "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
                  WHERE a.token IS NULL AND a.pending_hash = $1 AND a.pending_field = $2
                  ORDER BY b.brief"
            );
            tx.query(&sql, &[&hash.as_slice(), field]).await?
        }
    };
    agreements(rows)
}

/// An agreement to store.
#[derive(Clone, Debug)]
pub struct AgreementValues<'a> {
    pub status: &'a str,
    pub sealed: Option<&'a [u8]>,
    /// Unix seconds.
    pub start_at: Option<i64>,
    pub final_at: Option<i64>,
}

/// Stores a new agreement of `party` to `basis_id`; `None` if one was stored meanwhile (a
/// concurrent accept for the same e-mail or phone).
pub async fn insert_agreement(
    tx: &TenantTx<'_>,
    party: &Party,
    basis_id: i64,
    values: &AgreementValues<'_>,
) -> Result<Option<i64>, DbError> {
    let (token, field, hash) = match party {
        Party::User(token) => (Some(*token), None, None),
        Party::Waiting { field, hash } => (None, Some(*field), Some(hash.as_slice())),
    };
    let row = tx
        .query_opt(
            "INSERT INTO agreements (tenant_id, basis_id, token, pending_field, pending_hash,
                                     status, sealed, start_at, final_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint), to_timestamp($9::bigint))
             ON CONFLICT DO NOTHING
             RETURNING id",
            &[
                &tx.tenant().0,
                &basis_id,
                &token,
                &field,
                &hash,
                &values.status,
                &values.sealed,
                &values.start_at,
                &values.final_at,
            ],
        )
        .await?;
    row.map(|r| r.try_get(0)).transpose().map_err(DbError::from)
}

/// Replaces an agreement's status, sealed part and times.
pub async fn update_agreement(
    tx: &TenantTx<'_>,
    id: i64,
    values: &AgreementValues<'_>,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE agreements SET status = $2, sealed = $3, start_at = to_timestamp($4::bigint),
                final_at = to_timestamp($5::bigint), updated_at = now()
          WHERE id = $1",
        &[
            &id,
            &values.status,
            &values.sealed,
            &values.start_at,
            &values.final_at,
        ],
    )
    .await?;
    Ok(())
}

/// Sets the status of the agreements `ids`.
pub async fn set_status(tx: &TenantTx<'_>, ids: &[i64], status: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE agreements SET status = $2, updated_at = now() WHERE id = ANY($1)",
        &[&ids, &status],
    )
    .await?;
    Ok(())
}

/// Up to `limit` agreements in force of basis `basis_id` (given, not past their final time: those
/// are the sweeper's to expire), locked for this transaction, and whether there are more.
pub async fn lock_in_force(
    tx: &TenantTx<'_>,
    basis_id: i64,
    limit: i64,
) -> Result<(Vec<StoredAgreement>, bool), DbError> {
    let sql = format!(
        "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
          WHERE a.basis_id = $1 AND a.status = 'yes' AND (a.final_at IS NULL OR a.final_at > now())
          ORDER BY a.id LIMIT $2 FOR UPDATE OF a"
    );
    let mut rows = agreements(tx.query(&sql, &[&basis_id, &(limit + 1)]).await?)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// Up to `limit` agreements in force whose final time has passed, locked for this transaction
/// (rows another sweeper holds are skipped).
pub async fn lock_due(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<StoredAgreement>, DbError> {
    let sql = format!(
        "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
          WHERE a.status = 'yes' AND a.final_at <= now()
          ORDER BY a.final_at LIMIT $1 FOR UPDATE OF a SKIP LOCKED"
    );
    agreements(tx.query(&sql, &[&limit]).await?)
}

/// The agreements waiting for a user holding one of `indexes` (`(field, blind index)`), oldest
/// change first, locked for this transaction.
pub async fn lock_waiting(
    tx: &TenantTx<'_>,
    indexes: &[(&'static str, [u8; 32])],
) -> Result<Vec<StoredAgreement>, DbError> {
    let wanted: Vec<(&str, &[u8])> = indexes
        .iter()
        .filter(|(field, _)| matches!(*field, "email" | "phone"))
        .map(|(field, hash)| (*field, hash.as_slice()))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let (fields, hashes): (Vec<&str>, Vec<&[u8]>) = wanted.into_iter().unzip();
    let sql = format!(
        "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
           JOIN UNNEST($1::text[], $2::bytea[]) AS w(field, hash)
             ON a.pending_field = w.field AND a.pending_hash = w.hash
          WHERE a.token IS NULL
          ORDER BY a.updated_at, a.id FOR UPDATE OF a"
    );
    agreements(tx.query(&sql, &[&fields, &hashes]).await?)
}

/// Orders the linking of waiting agreements against their creation, in the transaction's tenant:
/// UserCreate holds it shared (creates do not wait for one another), an AgreementAccept that finds
/// no user for an e-mail or phone holds it alone before it looks again and stores a waiting
/// agreement. So either the create sees the waiting agreement (and links it), or the accept sees
/// the user; never neither. Held until the transaction ends.
pub async fn hold_linking(tx: &TenantTx<'_>, alone: bool) -> Result<(), DbError> {
    let sql = if alone {
        "SELECT pg_advisory_xact_lock(hashtextextended('bunker.consent.link.' || $1::bigint, 0))"
    } else {
        "SELECT pg_advisory_xact_lock_shared(hashtextextended('bunker.consent.link.' || $1::bigint, 0))"
    };
    tx.execute(sql, &[&tx.tenant().0]).await?;
    Ok(())
}

/// Gives a waiting agreement to the user `token`, with its sealed part re-sealed for that user.
pub async fn attach(
    tx: &TenantTx<'_>,
    id: i64,
    token: Uuid,
    sealed: Option<&[u8]>,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE agreements SET token = $2, pending_field = NULL, pending_hash = NULL, sealed = $3
          WHERE id = $1",
        &[&id, &token, &sealed],
    )
    .await?;
    Ok(())
}

/// Whose agreement `id` is: `None` if there is none, `Some(None)` while it waits for its user.
pub async fn owner_of(tx: &TenantTx<'_>, id: i64) -> Result<Option<Option<Uuid>>, DbError> {
    tx.query_opt("SELECT token FROM agreements WHERE id = $1", &[&id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(DbError::from)
}

/// Removes an agreement (a waiting one superseded by a newer one of the same user and basis).
pub async fn remove_agreement(tx: &TenantTx<'_>, id: i64) -> Result<(), DbError> {
    tx.execute("DELETE FROM agreements WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// Forget-me for a user's agreements: the sealed parts go (the key that opened them is destroyed
/// anyway) and those in force become `revoked` (those past their final time `expired`); what stays
/// is the proof skeleton (basis, status, times). Returns each agreement as it was, with its status
/// now.
pub async fn forget(
    tx: &TenantTx<'_>,
    token: Uuid,
) -> Result<Vec<(StoredAgreement, String)>, DbError> {
    let sql = format!(
        "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.id = a.basis_id
          WHERE a.token = $1 ORDER BY a.id FOR UPDATE OF a"
    );
    let before = agreements(tx.query(&sql, &[&token]).await?)?;
    if before.is_empty() {
        return Ok(Vec::new());
    }
    let now: std::collections::HashMap<i64, String> = tx
        .query(
            "UPDATE agreements
                SET sealed = NULL, updated_at = now(),
                    status = CASE WHEN status = 'yes' AND final_at <= now() THEN 'expired'
                                  WHEN status = 'yes' THEN 'revoked' ELSE status END
              WHERE token = $1
          RETURNING id, status",
            &[&token],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, DbError>>()?;
    Ok(before
        .into_iter()
        .map(|a| {
            let status = now.get(&a.id).cloned().unwrap_or_else(|| a.status.clone());
            (a, status)
        })
        .collect())
}

/// What the audit events of a change of agreement `id` are about.
pub fn agreement_target(id: i64) -> String {
    format!("agreement:{id}")
}

/// The audit events of agreement `id` (its [`agreement_target`]), oldest first, at most `limit`
/// (the newest ones).
pub async fn history(
    tx: &TenantTx<'_>,
    id: i64,
    limit: i64,
) -> Result<Vec<crate::audit::StoredEvent>, DbError> {
    crate::audit::events_of_target(tx, &agreement_target(id), limit).await
}
