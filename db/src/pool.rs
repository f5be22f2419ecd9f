use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::keys::NewMasterKey;
use crate::migrate::{self, SchemaStatus};
use crate::slots::{TenantSlot, TenantSlots};
use crate::{tls, DbError, APP_ROLE, MAINTENANCE_ROLE};

/// How pooled connections come to work as `bunker_app`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleMode {
    /// The URL names the schema owner or a superuser: each new connection runs `SET ROLE bunker_app`.
    SetRole,
    /// The URL names a login role of the operator's that is a member of `bunker_app`: used as it is.
    LoginRole,
}

/// The server's connection pool. Every connection it hands out works as `bunker_app`.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    mode: RoleMode,
    /// The per-tenant cap on connections held by requests (see [`crate::slots`]).
    slots: Arc<TenantSlots>,
}

/// How the pool stands, for metrics.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl Database {
    /// Opens a pool of at most `max_size` connections to `url` (a URL or a libpq key=value string).
    ///
    /// Nothing is checked here beyond reaching the server; call [`Database::check_posture`] and
    /// [`Database::schema_status`] before serving.
    pub async fn connect(url: &str, max_size: usize) -> Result<Self, DbError> {
        Self::connect_as(url, max_size, APP_ROLE).await
    }

    /// A pool for `bunker keys reencrypt`, working as `bunker_maintenance` (bunker_app's privileges
    /// and row-level security, plus re-sealing audit details and kept versions, which the server
    /// may not rewrite). Needs the schema owner's (or a superuser's) URL, which may switch to it.
    pub async fn connect_maintenance(url: &str, max_size: usize) -> Result<Self, DbError> {
        let db = Self::connect_as(url, max_size, MAINTENANCE_ROLE).await?;
        if db.mode != RoleMode::SetRole {
            return Err(DbError::UnsafeRole(format!(
                "re-encryption works as {MAINTENANCE_ROLE}: give BUNKER_DATABASE_URL the schema \
                 owner, which may switch to it"
            )));
        }
        Ok(db)
    }

    async fn connect_as(url: &str, max_size: usize, role: &'static str) -> Result<Self, DbError> {
        let connection = tls::parse(url)?;
        let mode = probe_role_mode(&connection).await?;
        let manager = Manager::from_config(
            connection.config,
            connection.tls,
            // `Clean` would run `SET SESSION AUTHORIZATION DEFAULT` and undo the role switch; the tenant
            // setting needs no cleaning because it is only ever set transaction-locally.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)));
        if mode == RoleMode::SetRole {
            builder = builder.post_create(Hook::async_fn(move |client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(&format!("SET ROLE {role}"))
                        .await
                        .map_err(HookError::Backend)
                })
            }));
        }
        Ok(Database {
            pool: builder.build()?,
            mode,
            slots: TenantSlots::new(max_size),
        })
    }

    /// Caps the connections one tenant's requests may hold at once at `cap` (at most the pool's
    /// size; by default the pool's size, which caps nothing).
    pub fn with_tenant_cap(mut self, cap: usize) -> Self {
        self.slots = TenantSlots::new(cap.min(self.pool.status().max_size));
        self
    }

    /// The slots of the tenant named `name`, for one request.
    pub(crate) fn tenant_slot(&self, name: &str) -> TenantSlot {
        self.slots.of(name)
    }

    /// How the pool stands.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// How this pool's connections became `bunker_app`.
    pub fn role_mode(&self) -> RoleMode {
        self.mode
    }

    /// Where the schema stands, as seen by the role the server works as.
    pub async fn schema_status(&self) -> Result<SchemaStatus, DbError> {
        let client = self.pool.get().await?;
        migrate::schema_status(&client).await
    }

    /// The value of `bunker.tenant_id` on one pooled connection, outside any transaction: for tests
    /// and diagnostics that a request leaves no tenant behind on the connection it used.
    pub async fn idle_tenant_setting(&self) -> Result<Option<String>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT current_setting('bunker.tenant_id', true)", &[])
            .await?;
        Ok(row.get::<_, Option<String>>(0).filter(|v| !v.is_empty()))
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// A single connection as the schema owner, for `bunker init` and `bunker migrate`.
pub struct OwnerConnection {
    client: Client,
}

impl OwnerConnection {
    /// Connects to `url` without switching roles.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let connection = tls::parse(url)?;
        Ok(OwnerConnection {
            client: open(&connection).await?,
        })
    }

    /// Replaces the root token (its id and hash) and records it in the main tenant's trail, as
    /// the operator, in one transaction: the old token stops working at once, everywhere (no server
    /// caches tokens). Only the owner may write the root token (V12, V14).
    pub async fn rotate_root(
        &mut self,
        root_token_id: Uuid,
        root_token_hash: &[u8; 32],
    ) -> Result<(), DbError> {
        let tx = self.client.transaction().await?;
        let owner: Option<bool> = tx
            .query_one(
                "SELECT (SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class
                          WHERE oid = to_regclass('access_tokens'))",
                &[],
            )
            .await?
            .try_get(0)?;
        match owner {
            None => {
                return Err(DbError::Schema(
                    "no root token to rotate: run `bunker init` first".into(),
                ))
            }
            Some(false) => {
                return Err(DbError::Schema(
                    "only the schema owner may rotate the root token: give BUNKER_DATABASE_URL \
                     the owner's URL (the one `bunker init` ran with)"
                        .into(),
                ))
            }
            Some(true) => {}
        }
        let changed = tx
            .execute(
                "UPDATE access_tokens SET id = $1, token_hash = $2, created_at = now()
                  WHERE kind = 'root' AND tenant_id IS NULL",
                &[&root_token_id, &root_token_hash.as_slice()],
            )
            .await?;
        if changed != 1 {
            return Err(DbError::Schema(
                "no root token to rotate: run `bunker init` first".into(),
            ));
        }
        tx.execute("SELECT set_config('bunker.tenant_id', '1', true)", &[])
            .await?;
        tx.execute(
            "INSERT INTO audit_events (id, tenant_id, actor_kind, action, target)
             VALUES ($1, 1, 'operator', 'RootTokenRotate', 'token:root')",
            &[&crate::audit::new_event_id()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates `name` as a login role with `password`, a member of bunker_app and nothing more:
    /// the role `serve` should use in production. `name` must be a plain identifier (checked by
    /// the caller). Only a SCRAM-SHA-256 verifier of the password is sent (as psql's `\password`
    /// does), so that no server log or statistics can show the password itself.
    pub async fn create_serving_role(&mut self, name: &str, password: &str) -> Result<(), DbError> {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let tx = self.client.transaction().await?;
        let statement: String = tx
            .query_one(
                "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
                         NOREPLICATION PASSWORD %L IN ROLE bunker_app', $1::text, $2::text)",
                &[&name, &verifier],
            )
            .await?
            .try_get(0)?;
        tx.batch_execute(&statement).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies every pending migration; returns how many were applied.
    pub async fn migrate(&mut self) -> Result<usize, DbError> {
        migrate::run(&mut self.client).await
    }

    /// Where the schema stands.
    pub async fn schema_status(&self) -> Result<SchemaStatus, DbError> {
        migrate::schema_status(&self.client).await
    }

    /// Creates `name` unless it exists (the demo's first run).
    pub async fn create_database_if_missing(&self, name: &str) -> Result<(), DbError> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&name],
            )
            .await?
            .get(0);
        if !exists {
            let quoted = name.replace('"', "\"\"");
            self.client
                .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .await?;
        }
        Ok(())
    }

    /// The installation's id (made by the migrations).
    pub async fn installation_id(&self) -> Result<Uuid, DbError> {
        Ok(self
            .client
            .query_one("SELECT id FROM installation", &[])
            .await?
            .try_get(0)?)
    }

    /// Creates the main tenant (id 1, `default`), the root token (given only as its id and SHA-256
    /// hash) and master key version 1 (given only wrapped), in one transaction. Refuses an
    /// installation that already has a root token.
    pub async fn initialize(
        &mut self,
        root_token_id: Uuid,
        root_token_hash: &[u8; 32],
        master_key: &NewMasterKey,
        main_tenant_key: &crate::tenant_keys::NewTenantKey,
    ) -> Result<(), DbError> {
        let tx = self.client.transaction().await?;
        if migrate::has_root_token(&tx).await? {
            return Err(DbError::AlreadyInitialized);
        }
        tx.execute(
            "INSERT INTO master_keys (version, wrapped, wrap_source, recovery_wrapped) VALUES (1, $1, $2, $3)",
            &[&master_key.wrapped, &master_key.source, &master_key.recovery_wrapped],
        )
        .await?;
        tx.execute(
            "INSERT INTO tenants (id, name, org) VALUES (1, 'default', 'default')",
            &[],
        )
        .await?;
        tx.execute(
            "INSERT INTO access_tokens (id, token_hash, kind) VALUES ($1, $2, 'root')",
            &[&root_token_id, &root_token_hash.as_slice()],
        )
        .await?;
        // The main tenant's own key (row-level security applies to a schema owner too).
        tx.execute("SELECT set_config('bunker.tenant_id', '1', true)", &[])
            .await?;
        let master_version = match main_tenant_key.wrapping {
            crate::tenant_keys::Wrapping::Master(version) => version,
            crate::tenant_keys::Wrapping::Kms(_) => {
                return Err(DbError::Schema(
                    "the main tenant's first key is wrapped by the master key".to_owned(),
                ))
            }
        };
        tx.execute(
            "INSERT INTO tenant_keys (tenant_id, version, wrapped, wrapped_by, master_version)
             VALUES (1, $1, $2, 'master', $3)",
            &[
                &main_tenant_key.version,
                &main_tenant_key.wrapped,
                &master_version,
            ],
        )
        .await?;
        tx.execute("UPDATE tenants SET own_keys = true WHERE id = 1", &[])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn open(connection: &tls::Connection) -> Result<Client, DbError> {
    let (client, connection) = connection.config.connect(connection.tls.clone()).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// A superuser or the owner of the schema is switched to `bunker_app`; any other role is taken to be
/// an operator's login role for it, and [`Database::check_posture`] decides whether it is safe.
async fn probe_role_mode(connection: &tls::Connection) -> Result<RoleMode, DbError> {
    let client = open(connection).await?;
    // Before the first migration bunker_app does not exist, and no connection could switch to it.
    let roles = client
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&APP_ROLE],
        )
        .await?;
    if roles.try_get::<_, i64>(0)? == 0 {
        return Err(DbError::Schema(
            "the database is not initialized: run `bunker init` first".to_owned(),
        ));
    }
    let row = client
        .query_one(
            "SELECT r.rolsuper
                    OR (COALESCE(pg_has_role(current_user, c.relowner, 'MEMBER'), false)
                        AND current_user <> $1)
               FROM pg_roles r
               LEFT JOIN pg_class c ON c.oid = to_regclass('refinery_schema_history')
              WHERE r.rolname = current_user",
            &[&APP_ROLE],
        )
        .await?;
    Ok(if row.get::<_, bool>(0) {
        RoleMode::SetRole
    } else {
        RoleMode::LoginRole
    })
}
