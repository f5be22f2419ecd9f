//! The control plane: tenants and access tokens. Tenants are outside row-level security; access
//! tokens are under it (a tenant's tokens are visible only as that tenant, the root token always),
//! and authentication sets the requested tenant in the same round trip as the token lookup.

use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::session;
use crate::tx::OpenTx;
use crate::{Database, DbError, TenantId, TenantTx};

/// What an access token may do: see `tenancy` for the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Works in every tenant and may manage tenants.
    Root,
    /// Works only in its own tenant (the `xtoken` returned by TenantCreate).
    TenantAdmin,
    /// Acts as a role in its tenant, as far as the role's policies allow (XTokenCreateForRole).
    Role,
    /// Acts as a user of its tenant: their own record, and what their roles' policies allow
    /// (XTokenCreateForUser).
    User,
}

impl TokenKind {
    /// The value stored in `access_tokens.kind` and `audit_events.actor_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Root => "root",
            TokenKind::TenantAdmin => "tenant_admin",
            TokenKind::Role => "role",
            TokenKind::User => "user",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "root" => Some(TokenKind::Root),
            "tenant_admin" => Some(TokenKind::TenantAdmin),
            "role" => Some(TokenKind::Role),
            "user" => Some(TokenKind::User),
            _ => None,
        }
    }
}

/// A tenant as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub org: String,
    pub selfservice: SelfService,
    /// Where the tenant's request webhook posts, if it has one (its secret is never read here).
    pub webhook_url: Option<String>,
    /// The tenant's own request quota (`COUNT/s`, `COUNT/min`, `COUNT/h`, `off`), set by root;
    /// none: the installation's default.
    pub rate_limit: Option<String>,
}

/// What a user's own token may do to its own record directly (a tenant's settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelfService {
    /// UserUpdate and UserPatch.
    pub user_change: bool,
    /// UserDelete (forget-me).
    pub forget_me: bool,
    /// AppdataCreate, AppdataUpdate and AppdataDelete.
    pub app_data_change: bool,
}

/// Changes to a tenant's self-service settings; `None` keeps one.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelfServiceChanges {
    pub user_change: Option<bool>,
    pub forget_me: Option<bool>,
    pub app_data_change: Option<bool>,
}

const TENANT_COLUMNS: &str = "id, name, org, selfservice_user_change, selfservice_forget_me,
     selfservice_app_data_change, webhook_url, rate_limit";

impl TenantRecord {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(TenantRecord {
            id: TenantId(row.try_get("id")?),
            name: row.try_get("name")?,
            org: row.try_get("org")?,
            selfservice: SelfService {
                user_change: row.try_get("selfservice_user_change")?,
                forget_me: row.try_get("selfservice_forget_me")?,
                app_data_change: row.try_get("selfservice_app_data_change")?,
            },
            webhook_url: row.try_get("webhook_url")?,
            rate_limit: row.try_get("rate_limit")?,
        })
    }
}

/// An access token found by its hash, with the tenant the request asked for, if that tenant exists.
#[derive(Clone, Debug)]
pub struct Credential {
    pub token_id: Uuid,
    pub token_hash: Vec<u8>,
    pub kind: TokenKind,
    /// The tenant a token belongs to; `None` for root.
    pub token_tenant: Option<TenantId>,
    /// The role a role token acts as: id and name.
    pub role: Option<(i64, String)>,
    /// The user a user token acts as.
    pub user_token: Option<Uuid>,
    /// Whether the token has expired (role and user tokens only).
    pub expired: bool,
    /// Whether each use pushes the expiry forward.
    pub sliding: bool,
    /// The requested tenant, `None` when no tenant has that name.
    pub requested: Option<TenantRecord>,
}

impl Database {
    /// The name of the tenant the token with this hash belongs to (none: unknown, or the root
    /// token, which belongs to none). Under row-level security: the transaction names the hash
    /// it holds, and the policy shows that one row (migration V28).
    pub async fn token_tenant(&self, token_hash: &[u8; 32]) -> Result<Option<String>, DbError> {
        self.by_capability(
            "bunker.token_hash",
            "SELECT t.name FROM access_tokens a JOIN tenants t ON t.id = a.tenant_id
              WHERE a.token_hash = $1",
            token_hash,
        )
        .await?
        .map(|row| Ok(row.try_get(0)?))
        .transpose()
    }

    /// The ids of all tenants (for work done in every tenant, such as the expiry sweep).
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>, DbError> {
        let client = self.pool().get().await?;
        client
            .query("SELECT id FROM tenants ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| Ok(TenantId(row.try_get(0)?)))
            .collect()
    }

    /// The ids of the tenants that have a webhook (whose deliveries the servers post).
    pub async fn webhook_tenant_ids(&self) -> Result<Vec<TenantId>, DbError> {
        let client = self.pool().get().await?;
        client
            .query(
                "SELECT id FROM tenants WHERE webhook_url IS NOT NULL ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok(TenantId(row.try_get(0)?)))
            .collect()
    }

    /// Every tenant's id and name, in id order (for the cross-tenant System commands, which then
    /// work in each tenant's own transaction).
    pub async fn tenant_names(&self) -> Result<Vec<(TenantId, String)>, DbError> {
        let client = self.pool().get().await?;
        client
            .query("SELECT id, name FROM tenants ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| Ok((TenantId(row.try_get(0)?), row.try_get(1)?)))
            .collect()
    }

    /// The display configuration of the tenant named `name` (TenantGetUIConf, public), if there
    /// is such a tenant. Names, links and colours only.
    pub async fn ui_conf(&self, name: &str) -> Result<Option<serde_json::Value>, DbError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_opt("SELECT ui_conf FROM tenants WHERE name = $1", &[&name])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// The id of the tenant named `name`, if any.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantId>, DbError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_opt("SELECT id FROM tenants WHERE name = $1", &[&name])
            .await?
            .map(|row| row.try_get(0).map(TenantId))
            .transpose()?)
    }

    /// Authenticates a request and opens its transaction, in one round trip: `BEGIN`, the tenant
    /// named `tenant_name` set as the transaction's tenant, and the token with this SHA-256 hash
    /// found with that tenant. A sliding token's expiry is pushed forward in the same transaction.
    ///
    /// The open transaction is kept for the request's first tenant work in that tenant (see
    /// [`crate::session`]); outside a request's scope, or if no token is found, it is rolled back.
    pub async fn authenticate(
        &self,
        token_hash: &[u8; 32],
        tenant_name: &str,
    ) -> Result<Option<Credential>, DbError> {
        let open = OpenTx::checkout(self, None).await?;
        let client = open.client()?;
        let set = client.prepare_cached(SET_TENANT_BY_NAME).await?;
        let find = client.prepare_cached(FIND_CREDENTIAL).await?;
        let hash = token_hash.as_slice();
        let set_params: [&(dyn ToSql + Sync); 1] = [&tenant_name];
        let find_params: [&(dyn ToSql + Sync); 2] = [&hash, &tenant_name];
        let (_, _, row) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.execute(&set, &set_params),
            client.query_opt(&find, &find_params),
        )?;
        let credential = match row {
            Some(row) => credential_from_row(&row)?,
            None => None,
        };
        let Some(credential) = credential else {
            open.end("ROLLBACK").await?;
            return Ok(None);
        };
        if credential.sliding && !credential.expired {
            let renew = client.prepare_cached(RENEW_SLIDING).await?;
            client.execute(&renew, &[&credential.token_id]).await?;
        }
        match &credential.requested {
            // A token that may work in the tenant it asks for: from here on the request holds its
            // connections under that tenant's slots (see `crate::slots`). Requests that did not
            // authenticate never take one, so they cannot crowd a tenant out of its own.
            Some(tenant)
                if credential.kind == TokenKind::Root
                    || credential.token_tenant == Some(tenant.id) =>
            {
                let slot = Arc::new(self.tenant_slot(tenant_name));
                session::hold_slot(slot.clone());
                match slot.try_take() {
                    Some(permit) => session::keep(tenant.id, open.under(permit)).await?,
                    // The tenant is at its cap: the token check (and a sliding renewal) is
                    // committed, and the request's work waits for a slot with no connection held.
                    None => open.end("COMMIT").await?,
                }
            }
            _ => open.end("ROLLBACK").await?,
        }
        Ok(Some(credential))
    }

    /// Deletes the role and user tokens of `tenant` that have expired; returns how many.
    pub async fn delete_expired_access_tokens(&self, tenant: TenantId) -> Result<u64, DbError> {
        self.in_tenant(tenant, |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM access_tokens WHERE expires_at <= now()", &[])
                    .await
            })
        })
        .await
    }
}

/// The requested tenant as the transaction's tenant (none, if no tenant has that name).
const SET_TENANT_BY_NAME: &str = "SELECT set_config('bunker.tenant_id',
        COALESCE((SELECT id::text FROM tenants WHERE name = $1), ''), true)";

/// An access token by its hash, with the tenant the request names (`$2`) if it exists.
const FIND_CREDENTIAL: &str =
    "SELECT a.id AS token_id, a.token_hash, a.kind, a.tenant_id AS token_tenant,
        a.role_id, r.name AS role_name, a.user_token,
        COALESCE(a.expires_at <= now(), false) AS expired,
        a.sliding_seconds IS NOT NULL AS sliding,
        t.id, t.name, t.org, t.selfservice_user_change, t.selfservice_forget_me,
        t.selfservice_app_data_change, t.webhook_url, t.rate_limit
   FROM access_tokens a
   LEFT JOIN roles r ON r.id = a.role_id
   LEFT JOIN tenants t ON t.name = $2
  WHERE a.token_hash = $1";

/// Pushes a sliding token's expiry forward (never past its final time).
const RENEW_SLIDING: &str = "UPDATE access_tokens
    SET expires_at = LEAST(final_at, now() + make_interval(secs => sliding_seconds))
  WHERE id = $1 AND sliding_seconds IS NOT NULL";

fn credential_from_row(row: &Row) -> Result<Option<Credential>, DbError> {
    let kind: String = row.try_get("kind")?;
    let Some(kind) = TokenKind::parse(&kind) else {
        return Ok(None);
    };
    let requested = match row.try_get::<_, Option<i64>>("id")? {
        Some(_) => Some(TenantRecord::from_row(row)?),
        None => None,
    };
    Ok(Some(Credential {
        token_id: row.try_get("token_id")?,
        token_hash: row.try_get("token_hash")?,
        kind,
        token_tenant: row.try_get::<_, Option<i64>>("token_tenant")?.map(TenantId),
        role: match row.try_get::<_, Option<i64>>("role_id")? {
            Some(id) => Some((id, row.try_get("role_name")?)),
            None => None,
        },
        user_token: row.try_get("user_token")?,
        expired: row.try_get("expired")?,
        sliding: row.try_get("sliding")?,
        requested,
    }))
}

/// What a role or user token acts as, and how long it lives.
#[derive(Clone, Debug)]
pub struct ExpiringToken {
    pub kind: TokenKind,
    pub role_id: Option<i64>,
    pub user_token: Option<Uuid>,
    /// Each use renews the token for this long (never past `final_at`).
    pub sliding_seconds: Option<i64>,
    /// When the token stops working at the latest.
    pub final_at: std::time::SystemTime,
}

/// Stores a role or user token of the transaction's tenant by its id and SHA-256 hash; returns when
/// it expires (Unix seconds).
pub async fn insert_expiring_token(
    tx: &TenantTx<'_>,
    token_id: Uuid,
    token_hash: &[u8; 32],
    token: &ExpiringToken,
) -> Result<i64, DbError> {
    Ok(tx
        .query_one(
            "INSERT INTO access_tokens
                    (id, token_hash, kind, tenant_id, role_id, user_token, sliding_seconds, final_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8::timestamptz,
                     LEAST($8::timestamptz, now() + make_interval(secs => $7::bigint)))
          RETURNING extract(epoch FROM expires_at)::bigint",
            &[
                &token_id,
                &token_hash.as_slice(),
                &token.kind.as_str(),
                &tx.tenant().0,
                &token.role_id,
                &token.user_token,
                &token.sliding_seconds,
                &token.final_at,
            ],
        )
        .await?
        .try_get(0)?)
}

/// Deletes every access token of a user of the transaction's tenant (forget-me).
pub async fn delete_user_tokens(tx: &TenantTx<'_>, user: Uuid) -> Result<u64, DbError> {
    tx.execute(
        "DELETE FROM access_tokens WHERE tenant_id = $1 AND user_token = $2",
        &[&tx.tenant().0, &user],
    )
    .await
}

/// An access token of a tenant as listed: never its value or hash.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: TokenKind,
    /// The role a role token acts as.
    pub role: Option<String>,
    /// The user a user token acts as.
    pub user_token: Option<Uuid>,
    /// Unix seconds.
    pub created_at: i64,
    /// When a role or user token expires (Unix seconds).
    pub expires_at: Option<i64>,
}

/// The access tokens of the transaction's tenant (the root token belongs to none), oldest first.
pub async fn list_access_tokens(tx: &TenantTx<'_>) -> Result<Vec<TokenInfo>, DbError> {
    let rows = tx
        .query(
            "SELECT a.id, a.kind, r.name, a.user_token, extract(epoch FROM a.created_at)::bigint,
                    extract(epoch FROM a.expires_at)::bigint
               FROM access_tokens a LEFT JOIN roles r ON r.id = a.role_id
              WHERE a.tenant_id = $1 ORDER BY a.created_at, a.id",
            &[&tx.tenant().0],
        )
        .await?;
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get(1)?;
        let Some(kind) = TokenKind::parse(&kind) else {
            continue;
        };
        tokens.push(TokenInfo {
            id: row.try_get(0)?,
            kind,
            role: row.try_get(2)?,
            user_token: row.try_get(3)?,
            created_at: row.try_get(4)?,
            expires_at: row.try_get(5)?,
        });
    }
    Ok(tokens)
}

/// Revokes (deletes) an access token of the transaction's tenant; returns whether it existed.
pub async fn revoke_access_token(tx: &TenantTx<'_>, id: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM access_tokens WHERE id = $1 AND tenant_id = $2",
            &[&id, &tx.tenant().0],
        )
        .await?
        > 0)
}

/// Revokes every admin token of the transaction's tenant; returns how many there were.
pub async fn revoke_admin_tokens(tx: &TenantTx<'_>) -> Result<u64, DbError> {
    tx.execute(
        "DELETE FROM access_tokens WHERE tenant_id = $1 AND kind = 'tenant_admin'",
        &[&tx.tenant().0],
    )
    .await
}

/// Creates a tenant; a taken name is a [`DbError::UniqueViolation`] on `tenants_name_key`.
pub async fn insert_tenant(
    tx: &TenantTx<'_>,
    name: &str,
    org: &str,
) -> Result<TenantRecord, DbError> {
    let row = tx
        .query_one(
            &format!("INSERT INTO tenants (name, org) VALUES ($1, $2) RETURNING {TENANT_COLUMNS}"),
            &[&name, &org],
        )
        .await?;
    TenantRecord::from_row(&row)
}

/// Stores a tenant admin token of `tenant` by its id and SHA-256 hash. Access tokens are under
/// row-level security: the insert works as `tenant` (transaction-locally, as always), then back.
pub async fn insert_admin_token(
    tx: &TenantTx<'_>,
    token_id: Uuid,
    token_hash: &[u8; 32],
    tenant: TenantId,
) -> Result<(), DbError> {
    tx.switch_tenant(tenant).await?;
    tx.execute(
        "INSERT INTO access_tokens (id, token_hash, kind, tenant_id) VALUES ($1, $2, $3, $4)",
        &[
            &token_id,
            &token_hash.as_slice(),
            &TokenKind::TenantAdmin.as_str(),
            &tenant.0,
        ],
    )
    .await?;
    tx.switch_tenant(tx.tenant()).await?;
    Ok(())
}

/// The tenant with this id, if any.
pub async fn get_tenant(tx: &TenantTx<'_>, id: TenantId) -> Result<Option<TenantRecord>, DbError> {
    tx.query_opt(
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"),
        &[&id.0],
    )
    .await?
    .as_ref()
    .map(TenantRecord::from_row)
    .transpose()
}

/// Changes the given fields of a tenant; `None` keeps a field. Returns the tenant as updated.
pub async fn update_tenant(
    tx: &TenantTx<'_>,
    id: TenantId,
    name: Option<&str>,
    org: Option<&str>,
    selfservice: SelfServiceChanges,
) -> Result<Option<TenantRecord>, DbError> {
    tx.query_opt(
        &format!(
            "UPDATE tenants
                SET name = COALESCE($2, name), org = COALESCE($3, org),
                    selfservice_user_change = COALESCE($4, selfservice_user_change),
                    selfservice_forget_me = COALESCE($5, selfservice_forget_me),
                    selfservice_app_data_change = COALESCE($6, selfservice_app_data_change),
                    updated_at = now()
              WHERE id = $1
          RETURNING {TENANT_COLUMNS}"
        ),
        &[
            &id.0,
            &name,
            &org,
            &selfservice.user_change,
            &selfservice.forget_me,
            &selfservice.app_data_change,
        ],
    )
    .await?
    .as_ref()
    .map(TenantRecord::from_row)
    .transpose()
}

/// The display configuration of tenant `id` (see [`Database::ui_conf`]).
pub async fn ui_conf(
    tx: &TenantTx<'_>,
    id: TenantId,
) -> Result<Option<serde_json::Value>, DbError> {
    Ok(tx
        .query_opt("SELECT ui_conf FROM tenants WHERE id = $1", &[&id.0])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// Sets (or, with none, clears) the request quota of tenant `id`; whether it exists.
pub async fn set_rate_limit(
    tx: &TenantTx<'_>,
    id: TenantId,
    rate: Option<&str>,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE tenants SET rate_limit = $2, updated_at = now() WHERE id = $1",
            &[&id.0, &rate],
        )
        .await?
        > 0)
}

/// Replaces the display configuration of tenant `id`; whether it exists.
pub async fn set_ui_conf(
    tx: &TenantTx<'_>,
    id: TenantId,
    conf: &serde_json::Value,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE tenants SET ui_conf = $2, updated_at = now() WHERE id = $1",
            &[&id.0, conf],
        )
        .await?
        > 0)
}

/// The self-service settings of the transaction's tenant.
pub async fn self_service(tx: &TenantTx<'_>) -> Result<SelfService, DbError> {
    Ok(
        match tx
            .query_opt(
                "SELECT selfservice_user_change, selfservice_forget_me, selfservice_app_data_change
                   FROM tenants WHERE id = $1",
                &[&tx.tenant().0],
            )
            .await?
        {
            Some(row) => SelfService {
                user_change: row.try_get(0)?,
                forget_me: row.try_get(1)?,
                app_data_change: row.try_get(2)?,
            },
            None => SelfService::default(),
        },
    )
}

/// Deletes a tenant. Its access tokens and the rows of every tenant table go with it, in this
/// transaction: most through their `ON DELETE CASCADE` foreign keys; a user's versions, indexes and
/// search grams, which have none (V11), explicitly, working as that tenant meanwhile. Returns whether
/// it existed.
///
/// The tenant row goes first: its cascade locks every user row, so it waits for any change of a
/// user still running, and any change started after it finds no user to change. The versions,
/// indexes and grams are deleted after that, when every change that could have written some has
/// committed (and each statement sees what they wrote). Deleted the other way round, a change
/// committing in between would leave its sealed rows behind.
pub async fn delete_tenant(tx: &TenantTx<'_>, id: TenantId) -> Result<bool, DbError> {
    let existed = tx
        .execute("DELETE FROM tenants WHERE id = $1", &[&id.0])
        .await?
        > 0;
    if !existed {
        return Ok(false);
    }
    tx.switch_tenant(id).await?;
    for table in ["user_search", "user_indexes", "user_versions"] {
        tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
    }
    tx.switch_tenant(tx.tenant()).await?;
    Ok(true)
}

/// One page of tenants in id order, and how many there are in all.
pub async fn list_tenants(
    tx: &TenantTx<'_>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<TenantRecord>, i64), DbError> {
    let rows = tx
        .query(
            &format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id OFFSET $1 LIMIT $2"),
            &[&offset, &limit],
        )
        .await?;
    let total: i64 = tx
        .query_one("SELECT count(*) FROM tenants", &[])
        .await?
        .try_get(0)?;
    let tenants = rows
        .iter()
        .map(TenantRecord::from_row)
        .collect::<Result<_, _>>()?;
    Ok((tenants, total))
}
