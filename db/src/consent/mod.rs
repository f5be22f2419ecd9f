//! Consent: legal bases (here), agreements ([`agreements`]) and processing activities
//! ([`activities`]) (V21). Sealed parts are sealed by the services; this module stores and finds
//! them.

mod activities;
mod agreements;

pub use activities::*;
pub use agreements::*;

use tokio_postgres::Row;

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
