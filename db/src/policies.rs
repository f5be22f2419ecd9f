//! Policies and their links to roles (installation-wide).

use serde_json::Value;

use crate::{DbError, TenantTx};

/// A policy as stored.
#[derive(Clone, Debug)]
pub struct StoredPolicy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub document: Value,
}

/// A policy by id or name.
#[derive(Clone, Debug)]
pub enum PolicyRef<'a> {
    Id(i64),
    Name(&'a str),
}

fn from_row(row: &tokio_postgres::Row) -> Result<StoredPolicy, DbError> {
    Ok(StoredPolicy {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        document: row.try_get(3)?,
    })
}

/// Creates a policy (`policies_name_key` on a taken name).
pub async fn insert(
    tx: &TenantTx<'_>,
    name: &str,
    description: &str,
    document: &Value,
) -> Result<i64, DbError> {
    Ok(tx
        .query_one(
            "INSERT INTO policies (name, description, document) VALUES ($1, $2, $3) RETURNING id",
            &[&name, &description, &document],
        )
        .await?
        .try_get(0)?)
}

/// A policy by id or name.
pub async fn find(
    tx: &TenantTx<'_>,
    policy: &PolicyRef<'_>,
) -> Result<Option<StoredPolicy>, DbError> {
    let row = match policy {
        PolicyRef::Id(id) => {
            tx.query_opt(
                "SELECT id, name, description, document FROM policies WHERE id = $1",
                &[id],
            )
            .await?
        }
        PolicyRef::Name(name) => {
            tx.query_opt(
                "SELECT id, name, description, document FROM policies WHERE name = $1",
                &[name],
            )
            .await?
        }
    };
    row.as_ref().map(from_row).transpose()
}

/// Every policy, by id.
pub async fn list(tx: &TenantTx<'_>) -> Result<Vec<StoredPolicy>, DbError> {
    tx.query(
        "SELECT id, name, description, document FROM policies ORDER BY id",
        &[],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Changes a policy; `None` keeps a field.
pub async fn update(
    tx: &TenantTx<'_>,
    id: i64,
    name: Option<&str>,
    description: Option<&str>,
    document: Option<&Value>,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE policies SET name = COALESCE($2, name), description = COALESCE($3, description),
                document = COALESCE($4, document), updated_at = now() WHERE id = $1",
        &[&id, &name, &description, &document],
    )
    .await?;
    Ok(())
}

/// Links a policy to a role (linking twice is harmless).
pub async fn link(tx: &TenantTx<'_>, role_id: i64, policy_id: i64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO role_policies (role_id, policy_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&role_id, &policy_id],
    )
    .await?;
    Ok(())
}

/// The documents of the policies linked to each of `roles` (by name): (role name, document).
pub async fn linked_to_roles(
    tx: &TenantTx<'_>,
    roles: &[String],
) -> Result<Vec<(String, Value)>, DbError> {
    tx.query(
        "SELECT r.name, p.document FROM roles r
           JOIN role_policies rp ON rp.role_id = r.id
           JOIN policies p ON p.id = rp.policy_id
          WHERE r.name = ANY($1) ORDER BY r.name, p.id",
        &[&roles],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}
