//! Consent: legal bases, processing activities and agreements (V21). Sealed parts are sealed by the
//! services; this module stores and finds them.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A legal basis as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalBasis {
    pub id: i64,
    pub brief: String,
    pub status: String,
    pub basistype: String,
    pub module: Option<String>,
    pub shortdesc: Option<String>,
    pub fulldesc: Option<String>,
    pub requiredmsg: Option<String>,
    pub requiredflag: bool,
    pub usercontrol: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// The settable fields of a legal basis; `None` keeps (or, on creation, defaults) a field.
#[derive(Clone, Debug, Default)]
pub struct BasisFields {
    pub status: Option<String>,
    pub basistype: Option<String>,
    pub module: Option<String>,
    pub shortdesc: Option<String>,
    pub fulldesc: Option<String>,
    pub requiredmsg: Option<String>,
    pub requiredflag: Option<bool>,
    pub usercontrol: Option<bool>,
}

const BASIS_COLUMNS: &str = "id, brief, status, basistype, module, shortdesc, fulldesc,
     requiredmsg, requiredflag, usercontrol, extract(epoch FROM created_at)::bigint AS created";

fn basis_from_row(row: &Row) -> Result<LegalBasis, DbError> {
    Ok(LegalBasis {
        id: row.try_get("id")?,
        brief: row.try_get("brief")?,
        status: row.try_get("status")?,
        basistype: row.try_get("basistype")?,
        module: row.try_get("module")?,
        shortdesc: row.try_get("shortdesc")?,
        fulldesc: row.try_get("fulldesc")?,
        requiredmsg: row.try_get("requiredmsg")?,
        requiredflag: row.try_get("requiredflag")?,
        usercontrol: row.try_get("usercontrol")?,
        created_at: row.try_get("created")?,
    })
}

/// Serializes the creations of legal bases and processing activities of the transaction's tenant
/// (so that a count checked before an insert still holds after it), by locking its row.
pub async fn lock_tenant_texts(tx: &TenantTx<'_>) -> Result<(), DbError> {
    tx.execute(
        "SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
        &[&tx.tenant().0],
    )
    .await?;
    Ok(())
}

/// How many legal bases the transaction's tenant has (deleted ones included).
pub async fn count_bases(tx: &TenantTx<'_>) -> Result<i64, DbError> {
    Ok(tx
        .query_one("SELECT count(*) FROM legal_bases", &[])
        .await?
        .try_get(0)?)
}

/// Creates a legal basis; `false` if the brief is taken (by a deleted one too).
pub async fn create_basis(
    tx: &TenantTx<'_>,
    brief: &str,
    fields: &BasisFields,
) -> Result<bool, DbError> {
    let created = tx
        .query_opt(
            "INSERT INTO legal_bases (tenant_id, brief, status, basistype, module, shortdesc,
                                      fulldesc, requiredmsg, requiredflag, usercontrol)
             VALUES ($1, $2, coalesce($3, 'active'), coalesce($4, 'consent'), $5, $6, $7, $8,
                     coalesce($9, false), coalesce($10, false))
             ON CONFLICT (tenant_id, brief) DO NOTHING
             RETURNING id",
            &[
                &tx.tenant().0,
                &brief,
                &fields.status,
                &fields.basistype,
                &fields.module,
                &fields.shortdesc,
                &fields.fulldesc,
                &fields.requiredmsg,
                &fields.requiredflag,
                &fields.usercontrol,
            ],
        )
        .await?;
    Ok(created.is_some())
}

/// How a row read is locked for the rest of the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    None,
    /// Others may read and share it, not change it (an agreement being accepted under a basis).
    Share,
    /// Nobody else may lock it (the basis being changed or deleted).
    Update,
}

impl RowLock {
    fn sql(self) -> &'static str {
        match self {
            RowLock::None => "",
            RowLock::Share => " FOR SHARE",
            RowLock::Update => " FOR UPDATE",
        }
    }
}

/// The legal basis named `brief`.
pub async fn get_basis(
    tx: &TenantTx<'_>,
    brief: &str,
    lock: RowLock,
) -> Result<Option<LegalBasis>, DbError> {
    let sql = format!(
        "SELECT {BASIS_COLUMNS} FROM legal_bases WHERE brief = $1{}",
        lock.sql()
    );
    tx.query_opt(&sql, &[&brief])
        .await?
        .as_ref()
        .map(basis_from_row)
        .transpose()
}

/// The brief of the legal basis `id`.
pub async fn brief_of(tx: &TenantTx<'_>, id: i64) -> Result<Option<String>, DbError> {
    tx.query_opt("SELECT brief FROM legal_bases WHERE id = $1", &[&id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(DbError::from)
}

/// Every legal basis of the transaction's tenant, by brief.
pub async fn list_bases(tx: &TenantTx<'_>) -> Result<Vec<LegalBasis>, DbError> {
    let sql = format!("SELECT {BASIS_COLUMNS} FROM legal_bases ORDER BY brief");
    tx.query(&sql, &[])
        .await?
        .iter()
        .map(basis_from_row)
        .collect()
}

/// Changes a legal basis (renamed to `newbrief` if given). A taken `newbrief` is the unique
/// violation `legal_bases_tenant_id_brief_key`.
pub async fn update_basis(
    tx: &TenantTx<'_>,
    id: i64,
    newbrief: Option<&str>,
    fields: &BasisFields,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE legal_bases
            SET brief = coalesce($2, brief), status = coalesce($3, status),
                basistype = coalesce($4, basistype), module = coalesce($5, module),
                shortdesc = coalesce($6, shortdesc), fulldesc = coalesce($7, fulldesc),
                requiredmsg = coalesce($8, requiredmsg),
                requiredflag = coalesce($9, requiredflag),
                usercontrol = coalesce($10, usercontrol), updated_at = now()
          WHERE id = $1",
        &[
            &id,
            &newbrief,
            &fields.status,
            &fields.basistype,
            &fields.module,
            &fields.shortdesc,
            &fields.fulldesc,
            &fields.requiredmsg,
            &fields.requiredflag,
            &fields.usercontrol,
        ],
    )
    .await?;
    Ok(())
}

/// Removes a legal basis no agreement (or request) refers to; `false` if one does.
pub async fn remove_unreferenced_basis(tx: &TenantTx<'_>, id: i64) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM legal_bases b WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM agreements a WHERE a.basis_id = b.id)
               AND NOT EXISTS (SELECT 1 FROM user_requests r WHERE r.basis_id = b.id)",
            &[&id],
        )
        .await?
        == 1)
}

/// Marks a legal basis deleted (kept as what its agreements refer to) and unlinks it from every
/// processing activity.
pub async fn mark_basis_deleted(tx: &TenantTx<'_>, id: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE legal_bases SET status = 'deleted', updated_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    tx.execute(
        "DELETE FROM processing_activity_bases WHERE basis_id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

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

/// A processing activity as stored, with the briefs of its legal bases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub activity: String,
    pub title: String,
    pub script: Option<String>,
    pub fulldesc: Option<String>,
    pub applicableto: Option<String>,
    pub briefs: Vec<String>,
    pub created_at: i64,
}

/// The settable fields of a processing activity; `None` keeps (or, on creation, leaves out) one.
#[derive(Clone, Debug, Default)]
pub struct ActivityFields {
    pub title: Option<String>,
    pub script: Option<String>,
    pub fulldesc: Option<String>,
    pub applicableto: Option<String>,
}

/// How many processing activities the transaction's tenant has.
pub async fn count_activities(tx: &TenantTx<'_>) -> Result<i64, DbError> {
    Ok(tx
        .query_one("SELECT count(*) FROM processing_activities", &[])
        .await?
        .try_get(0)?)
}

/// Creates a processing activity (titled by its name unless given a title); `false` if taken.
pub async fn create_activity(
    tx: &TenantTx<'_>,
    activity: &str,
    fields: &ActivityFields,
) -> Result<bool, DbError> {
    Ok(tx
        .query_opt(
            "INSERT INTO processing_activities
                 (tenant_id, activity, title, script, fulldesc, applicableto)
             VALUES ($1, $2, coalesce($3, $2), $4, $5, $6)
             ON CONFLICT (tenant_id, activity) DO NOTHING
             RETURNING id",
            &[
                &tx.tenant().0,
                &activity,
                &fields.title,
                &fields.script,
                &fields.fulldesc,
                &fields.applicableto,
            ],
        )
        .await?
        .is_some())
}

/// The id of the processing activity named `activity`, locked for this transaction.
pub async fn lock_activity(tx: &TenantTx<'_>, activity: &str) -> Result<Option<i64>, DbError> {
    tx.query_opt(
        "SELECT id FROM processing_activities WHERE activity = $1 FOR UPDATE",
        &[&activity],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(DbError::from)
}

/// Changes a processing activity (renamed to `newname` if given). A taken name is the unique
/// violation `processing_activities_tenant_id_activity_key`.
pub async fn update_activity(
    tx: &TenantTx<'_>,
    id: i64,
    newname: Option<&str>,
    fields: &ActivityFields,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE processing_activities
            SET activity = coalesce($2, activity), title = coalesce($3, title),
                script = coalesce($4, script), fulldesc = coalesce($5, fulldesc),
                applicableto = coalesce($6, applicableto), updated_at = now()
          WHERE id = $1",
        &[
            &id,
            &newname,
            &fields.title,
            &fields.script,
            &fields.fulldesc,
            &fields.applicableto,
        ],
    )
    .await?;
    Ok(())
}

/// Removes a processing activity and its links; `false` if there is none of that name.
pub async fn delete_activity(tx: &TenantTx<'_>, activity: &str) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM processing_activities WHERE activity = $1",
            &[&activity],
        )
        .await?
        == 1)
}

/// Links (or unlinks) an activity and a legal basis; `false` if nothing changed.
pub async fn set_link(
    tx: &TenantTx<'_>,
    activity_id: i64,
    basis_id: i64,
    linked: bool,
) -> Result<bool, DbError> {
    let changed = if linked {
        tx.execute(
            "INSERT INTO processing_activity_bases (tenant_id, activity_id, basis_id)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&tx.tenant().0, &activity_id, &basis_id],
        )
        .await?
    } else {
        tx.execute(
            "DELETE FROM processing_activity_bases WHERE activity_id = $1 AND basis_id = $2",
            &[&activity_id, &basis_id],
        )
        .await?
    };
    Ok(changed == 1)
}

/// Every processing activity of the transaction's tenant, by name, with its bases' briefs.
pub async fn list_activities(tx: &TenantTx<'_>) -> Result<Vec<Activity>, DbError> {
    tx.query(
        "SELECT p.activity, p.title, p.script, p.fulldesc, p.applicableto,
                extract(epoch FROM p.created_at)::bigint,
                array(SELECT b.brief FROM processing_activity_bases l
                        JOIN legal_bases b ON b.id = l.basis_id
                       WHERE l.activity_id = p.id ORDER BY b.brief)
           FROM processing_activities p ORDER BY p.activity",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Activity {
            activity: r.try_get(0)?,
            title: r.try_get(1)?,
            script: r.try_get(2)?,
            fulldesc: r.try_get(3)?,
            applicableto: r.try_get(4)?,
            created_at: r.try_get(5)?,
            briefs: r.try_get(6)?,
        })
    })
    .collect()
}

/// The audit events of agreement `id` (target `agreement:<id>`), oldest first, at most `limit`
/// (the newest ones).
pub async fn history(
    tx: &TenantTx<'_>,
    id: i64,
    limit: i64,
) -> Result<Vec<crate::audit::StoredEvent>, DbError> {
    crate::audit::events_of_target(tx, &format!("agreement:{id}"), limit).await
}
