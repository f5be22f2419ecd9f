use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use tokio::sync::OwnedSemaphorePermit;

use crate::slots::TenantSlot;
use crate::{Database, DbError, TenantId};

/// The future a unit of tenant work returns; see [`Database::in_tenant`].
pub type TxFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// One request's transaction, working as `bunker_app` with `bunker.tenant_id` set transaction-locally.
///
/// Only this crate's query functions can run SQL through it. It is opened and ended by
/// [`Database::in_tenant`], which rolls it back if the work fails.
pub struct TenantTx<'a> {
    client: &'a ClientWrapper,
    tenant: TenantId,
}

/// The tenant setting, transaction-local: gone when the transaction ends.
const SET_TENANT: &str = "SELECT set_config('bunker.tenant_id', $1, true)";

/// A pooled connection inside a transaction that this code opened by hand (so that `BEGIN` and the
/// tenant setting travel together, in one round trip). If it is dropped before [`OpenTx::end`]
/// succeeds — the request was cancelled, or `COMMIT`/`ROLLBACK` failed — the connection is taken
/// out of the pool and closed, and PostgreSQL rolls the transaction back: a connection that may
/// still be inside a transaction, with a tenant set, never goes back to the pool.
pub(crate) struct OpenTx {
    client: Option<Object>,
    /// The tenant slot the connection is held under, if it is a request's (see [`crate::slots`]);
    /// given back with the connection.
    _slot: Option<OwnedSemaphorePermit>,
}

impl OpenTx {
    /// Checks a connection out (under a slot of `slot`'s tenant, if given: taken first, so that a
    /// request waiting for its tenant's slot holds no connection); the caller opens the
    /// transaction on it.
    pub(crate) async fn checkout(
        db: &Database,
        slot: Option<&TenantSlot>,
    ) -> Result<OpenTx, DbError> {
        let permit = match slot {
            Some(slot) => Some(slot.take().await?),
            None => None,
        };
        Ok(OpenTx {
            client: Some(db.pool().get().await?),
            _slot: permit,
        })
    }

    /// The same transaction, its connection now held under a tenant slot.
    pub(crate) fn under(mut self, permit: OwnedSemaphorePermit) -> OpenTx {
        self._slot = Some(permit);
        self
    }

    /// A transaction for `tenant` outside any tenant slot: short reads a request needs besides its
    /// own transaction (the tenant's keys), which must not wait for the slot the request holds.
    pub(crate) async fn begin_apart(db: &Database, tenant: TenantId) -> Result<OpenTx, DbError> {
        let open = OpenTx::checkout(db, None).await?;
        open.set_tenant_with(Some("BEGIN"), tenant).await?;
        Ok(open)
    }

    /// Checks a connection out and opens a transaction on it for `tenant` (under the request's
    /// tenant slot, within a request).
    async fn begin(db: &Database, tenant: TenantId) -> Result<OpenTx, DbError> {
        let slot = crate::session::slot();
        let open = OpenTx::checkout(db, slot.as_deref()).await?;
        open.set_tenant_with(Some("BEGIN"), tenant).await?;
        Ok(open)
    }

    /// The connection, held from `begin` until `end` or drop.
    pub(crate) fn client(&self) -> Result<&ClientWrapper, DbError> {
        self.client.as_deref().ok_or(DbError::TransactionEnded)
    }

    /// Sets the tenant, after running `first` (pipelined: one round trip for both).
    async fn set_tenant_with(&self, first: Option<&str>, tenant: TenantId) -> Result<(), DbError> {
        let client = self.client()?;
        let set = client.prepare_cached(SET_TENANT).await?;
        let tenant = tenant.0.to_string();
        let params: [&(dyn ToSql + Sync); 1] = [&tenant];
        match first {
            Some(sql) => {
                tokio::try_join!(client.batch_execute(sql), client.execute(&set, &params))?;
            }
            None => {
                client.execute(&set, &params).await?;
            }
        }
        Ok(())
    }

    /// Commits or rolls back; only then does the connection go back to the pool.
    pub(crate) async fn end(mut self, sql: &'static str) -> Result<(), DbError> {
        self.client()?.batch_execute(sql).await?;
        // Back to the pool, outside any transaction.
        drop(self.client.take());
        Ok(())
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

impl Database {
    /// The one row `query` (given `hash` as `$1`) finds in a transaction that sets no tenant and
    /// sets `setting` (transaction-local) to the hex of `hash`: the look-up of a capability (a
    /// token's hash, a shared record's, an expiration link's) whose policy shows its holder that
    /// one row and nothing else, before the work goes on under the row's tenant.
    pub(crate) async fn by_capability(
        &self,
        setting: &'static str,
        query: &'static str,
        hash: &[u8; 32],
    ) -> Result<Option<Row>, DbError> {
        let open = OpenTx::checkout(self, None).await?;
        let client = open.client()?;
        client.batch_execute("BEGIN").await?;
        client
            .execute(
                "SELECT set_config($1, $2, true)",
                &[&setting, &hex::encode(hash)],
            )
            .await?;
        let row = client.query_opt(query, &[&hash.as_slice()]).await?;
        open.end("COMMIT").await?;
        Ok(row)
    }

    /// Runs `work` in one transaction scoped to `tenant`, and commits if it succeeds.
    ///
    /// The tenant is set with `set_config('bunker.tenant_id', $1, true)`: transaction-local, so it
    /// is gone when the transaction ends and never leaks to the next user of the pooled connection.
    /// Within a request, the first call continues the transaction the request's authentication
    /// opened if it is for `tenant` (see [`crate::session`]).
    pub async fn in_tenant<T, E, F>(&self, tenant: TenantId, work: F) -> Result<T, E>
    where
        E: From<DbError>,
        F: for<'t> FnOnce(&'t TenantTx<'t>) -> TxFuture<'t, T, E>,
    {
        // The transaction this request's authentication opened, if it is for this tenant.
        let open = match crate::session::take() {
            Some((kept, open)) if kept == tenant => open,
            // Root's commands of the main tenant (roles, policies, tenants, keys) asked for with
            // another tenant named: the exception to the rule, at the cost of a round trip.
            Some((_, open)) if tenant == TenantId::MAIN => {
                open.end("ROLLBACK").await?;
                OpenTx::begin(self, tenant).await?
            }
            Some((kept, open)) => {
                // Never the case today: a request's first tenant work is for the tenant it was
                // authenticated in (the rule, in `crate::session`). Loud, so that a change that
                // breaks it is seen: an error in the log, and a panic in debug builds (tests).
                tracing::error!(
                    kept = kept.0,
                    wanted = tenant.0,
                    "a request's first tenant work is not for the tenant it was authenticated in"
                );
                debug_assert_eq!(kept, tenant, "see bunker_db::session");
                open.end("ROLLBACK").await?;
                OpenTx::begin(self, tenant).await?
            }
            None => OpenTx::begin(self, tenant).await?,
        };
        let scoped = TenantTx {
            client: open.client()?,
            tenant,
        };
        let outcome = work(&scoped).await;
        match outcome {
            Ok(value) => {
                open.end("COMMIT").await?;
                Ok(value)
            }
            Err(err) => {
                // The work's error is the answer; a failed rollback only discards the connection.
                let _ = open.end("ROLLBACK").await;
                Err(err)
            }
        }
    }
}

impl Database {
    /// Records the events of many requests, of any tenants, in one transaction: one commit, so one
    /// WAL flush, for all of them (the group commit of read events). Each tenant's events are
    /// written with that tenant set, as always.
    pub async fn record_event_batch(
        &self,
        batch: &[(TenantId, Vec<(uuid::Uuid, crate::audit::AuditEvent)>)],
    ) -> Result<(), DbError> {
        let Some((first, _)) = batch.first() else {
            return Ok(());
        };
        let open = OpenTx::begin(self, *first).await?;
        for (i, (tenant, events)) in batch.iter().enumerate() {
            if i > 0 {
                open.set_tenant_with(None, *tenant).await?;
            }
            let scoped = TenantTx {
                client: open.client()?,
                tenant: *tenant,
            };
            crate::audit::record_many(&scoped, events).await?;
        }
        open.end("COMMIT").await
    }
}

impl TenantTx<'_> {
    /// The tenant this transaction is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Takes the transaction's tenant's advisory lock named `name` for the transaction: false when
    /// another server holds it (so that, of several replicas, one does that work for a tenant at a
    /// time: `bunker-sweep`, `bunker-audit-chain`).
    pub async fn try_tenant_lock(&self, name: &str) -> Result<bool, DbError> {
        Ok(self
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))",
                &[&name, &self.tenant.0],
            )
            .await?
            .try_get(0)?)
    }

    /// Works as `tenant` (transaction-locally, as always) for the statements that follow, until
    /// switched back: only for work that spans tenants in one transaction, such as deleting one.
    pub(crate) async fn switch_tenant(&self, tenant: TenantId) -> Result<(), DbError> {
        self.execute(SET_TENANT, &[&tenant.0.to_string()]).await?;
        Ok(())
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.client.prepare_cached(sql).await?;
        Ok(self.client.query(&statement, params).await?)
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let statement = self.client.prepare_cached(sql).await?;
        Ok(self.client.query_opt(&statement, params).await?)
    }

    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let statement = self.client.prepare_cached(sql).await?;
        Ok(self.client.query_one(&statement, params).await?)
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        let statement = self.client.prepare_cached(sql).await?;
        Ok(self.client.execute(&statement, params).await?)
    }

    /// As [`TenantTx::execute`]; `None` when a row it references is gone (a foreign key
    /// violation: the transaction is then aborted, and can only be rolled back).
    pub(crate) async fn execute_unless_gone(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<u64>, DbError> {
        let statement = self.client.prepare_cached(sql).await?;
        match self.client.execute(&statement, params).await {
            Ok(rows) => Ok(Some(rows)),
            Err(err)
                if err.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }
}
