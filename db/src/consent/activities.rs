//! Processing activities and the legal bases they rest on.

use crate::{DbError, TenantTx};

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
