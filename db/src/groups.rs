//! Groups (sealed names), memberships and the installation's roles.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A role as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: String,
}

/// A group as stored: its name and description are sealed.
#[derive(Clone, Debug)]
pub struct StoredGroup {
    pub id: i64,
    pub sealed: Vec<u8>,
    pub grouptype: String,
}

/// A user's membership: the group and the role in it.
#[derive(Clone, Debug)]
pub struct Membership {
    pub group: StoredGroup,
    pub role: Option<Role>,
}

/// A role by id or name.
#[derive(Clone, Debug)]
pub enum RoleRef<'a> {
    Id(i64),
    Name(&'a str),
}

/// Creates a role (`roles_name_key` on a taken name).
pub async fn insert_role(tx: &TenantTx<'_>, name: &str, description: &str) -> Result<i64, DbError> {
    Ok(tx
        .query_one(
            "INSERT INTO roles (name, description) VALUES ($1, $2) RETURNING id",
            &[&name, &description],
        )
        .await?
        .try_get(0)?)
}

/// A role by id or name.
pub async fn find_role(tx: &TenantTx<'_>, role: &RoleRef<'_>) -> Result<Option<Role>, DbError> {
    let row = match role {
        RoleRef::Id(id) => {
            tx.query_opt(
                "SELECT id, name, description FROM roles WHERE id = $1",
                &[id],
            )
            .await?
        }
        RoleRef::Name(name) => {
            tx.query_opt(
                "SELECT id, name, description FROM roles WHERE name = $1",
                &[name],
            )
            .await?
        }
    };
    row.map(|r| {
        Ok(Role {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            description: r.try_get(2)?,
        })
    })
    .transpose()
}

/// Changes a role's name or description; `None` keeps a field. Returns whether it exists.
pub async fn update_role(
    tx: &TenantTx<'_>,
    id: i64,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE roles SET name = COALESCE($2, name), description = COALESCE($3, description) WHERE id = $1",
            &[&id, &name, &description],
        )
        .await?
        > 0)
}

/// A fresh group id, so that a group's name can be sealed for its row before it is inserted.
pub async fn next_group_id(tx: &TenantTx<'_>) -> Result<i64, DbError> {
    Ok(tx
        .query_one("SELECT nextval('groups_id_seq')", &[])
        .await?
        .try_get(0)?)
}

/// Creates a group (`groups_name_key` on a taken name).
pub async fn insert_group(
    tx: &TenantTx<'_>,
    id: i64,
    name_index: &[u8; 32],
    sealed: &[u8],
    grouptype: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO groups (tenant_id, id, name_index, sealed, grouptype) VALUES ($1, $2, $3, $4, $5)",
        &[&tx.tenant().0, &id, &name_index.as_slice(), &sealed, &grouptype],
    )
    .await?;
    Ok(())
}

/// The group with this id, or whose name has this blind index.
pub async fn find_group(
    tx: &TenantTx<'_>,
    id: Option<i64>,
    name_index: Option<&[u8; 32]>,
) -> Result<Option<StoredGroup>, DbError> {
    let row = tx
        .query_opt(
            "SELECT id, sealed, grouptype FROM groups
              WHERE ($1::bigint IS NULL OR id = $1) AND ($2::bytea IS NULL OR name_index = $2)
              LIMIT 1",
            &[&id, &name_index.map(|n| n.as_slice())],
        )
        .await?;
    row.map(|r| {
        Ok(StoredGroup {
            id: r.try_get(0)?,
            sealed: r.try_get(1)?,
            grouptype: r.try_get(2)?,
        })
    })
    .transpose()
}

/// Every group of the tenant, by id.
pub async fn list_groups(tx: &TenantTx<'_>) -> Result<Vec<StoredGroup>, DbError> {
    tx.query("SELECT id, sealed, grouptype FROM groups ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| {
            Ok(StoredGroup {
                id: r.try_get(0)?,
                sealed: r.try_get(1)?,
                grouptype: r.try_get(2)?,
            })
        })
        .collect()
}

/// Replaces a group's sealed name/description (and name index) and type.
pub async fn update_group(
    tx: &TenantTx<'_>,
    id: i64,
    name_index: &[u8; 32],
    sealed: &[u8],
    grouptype: &str,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE groups SET name_index = $2, sealed = $3, grouptype = $4 WHERE id = $1",
            &[&id, &name_index.as_slice(), &sealed, &grouptype],
        )
        .await?
        > 0)
}

/// Deletes a group and its memberships.
pub async fn delete_group(tx: &TenantTx<'_>, id: i64) -> Result<bool, DbError> {
    Ok(tx
        .execute("DELETE FROM groups WHERE id = $1", &[&id])
        .await?
        > 0)
}

/// Adds a user to a group (or changes the role they have in it).
pub async fn add_member(
    tx: &TenantTx<'_>,
    group_id: i64,
    token: Uuid,
    role_id: Option<i64>,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO group_members (tenant_id, group_id, token, role_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, group_id, token) DO UPDATE SET role_id = EXCLUDED.role_id",
        &[&tx.tenant().0, &group_id, &token, &role_id],
    )
    .await?;
    Ok(())
}

/// Removes a user from a group; returns whether they were in it.
pub async fn remove_member(tx: &TenantTx<'_>, group_id: i64, token: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM group_members WHERE group_id = $1 AND token = $2",
            &[&group_id, &token],
        )
        .await?
        > 0)
}

/// The groups a user is in, with their role in each.
pub async fn user_memberships(tx: &TenantTx<'_>, token: Uuid) -> Result<Vec<Membership>, DbError> {
    tx.query(
        "SELECT g.id, g.sealed, g.grouptype, r.id, r.name, r.description
           FROM group_members m JOIN groups g ON g.id = m.group_id
           LEFT JOIN roles r ON r.id = m.role_id
          WHERE m.token = $1 ORDER BY g.id",
        &[&token],
    )
    .await?
    .iter()
    .map(|r| {
        let role = match r.try_get::<_, Option<i64>>(3)? {
            Some(id) => Some(Role {
                id,
                name: r.try_get(4)?,
                description: r.try_get(5)?,
            }),
            None => None,
        };
        Ok(Membership {
            group: StoredGroup {
                id: r.try_get(0)?,
                sealed: r.try_get(1)?,
                grouptype: r.try_get(2)?,
            },
            role,
        })
    })
    .collect()
}

/// The memberships of each of `tokens`: (user, group, role name).
pub async fn memberships_of(
    tx: &TenantTx<'_>,
    tokens: &[Uuid],
) -> Result<Vec<(Uuid, i64, Option<String>)>, DbError> {
    tx.query(
        "SELECT m.token, m.group_id, r.name FROM group_members m
           LEFT JOIN roles r ON r.id = m.role_id
          WHERE m.token = ANY($1) ORDER BY m.token, m.group_id",
        &[&tokens],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}

/// The members holding a role in each of `groups`: (group, user, role name).
pub async fn rosters(
    tx: &TenantTx<'_>,
    groups: &[i64],
) -> Result<Vec<(i64, Uuid, String)>, DbError> {
    tx.query(
        "SELECT m.group_id, m.token, r.name FROM group_members m
           JOIN roles r ON r.id = m.role_id
          WHERE m.group_id = ANY($1)",
        &[&groups],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}
