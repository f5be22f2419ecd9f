use std::future::Future;
use std::pin::Pin;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::{Database, DbError, TenantId};

/// The future a unit of tenant work returns; see [`Database::in_tenant`].
pub type TxFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// One request's transaction, working as `bunker_app` with `bunker.tenant_id` set transaction-locally.
///
/// Only this crate's query functions can run SQL through it. Dropping it without commit rolls back.
pub struct TenantTx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    tenant: TenantId,
}

impl Database {
    /// Runs `work` in one transaction scoped to `tenant`, and commits if it succeeds.
    ///
    /// The tenant is set with `set_config('bunker.tenant_id', $1, true)`: transaction-local, so it
    /// is gone when the transaction ends and never leaks to the next user of the pooled connection.
    pub async fn in_tenant<T, E, F>(&self, tenant: TenantId, work: F) -> Result<T, E>
    where
        E: From<DbError>,
        F: for<'t> FnOnce(&'t TenantTx<'t>) -> TxFuture<'t, T, E>,
    {
        let mut client = self.pool().get().await.map_err(DbError::from)?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        tx.execute(
            "SELECT set_config('bunker.tenant_id', $1, true)",
            &[&tenant.0.to_string()],
        )
        .await
        .map_err(DbError::from)?;
        let scoped = TenantTx { tx, tenant };
        let value = work(&scoped).await?;
        scoped.tx.commit().await.map_err(DbError::from)?;
        Ok(value)
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
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let mut scoped = TenantTx {
            tx,
            tenant: TenantId(0),
        };
        for (tenant, events) in batch {
            scoped
                .tx
                .execute(
                    "SELECT set_config('bunker.tenant_id', $1, true)",
                    &[&tenant.0.to_string()],
                )
                .await?;
            scoped.tenant = *tenant;
            crate::audit::record_many(&scoped, events).await?;
        }
        scoped.tx.commit().await?;
        Ok(())
    }
}

impl TenantTx<'_> {
    /// The tenant this transaction is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query(&statement, params).await?)
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let statement = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query_opt(&statement, params).await?)
    }

    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let statement = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query_one(&statement, params).await?)
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        let statement = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.execute(&statement, params).await?)
    }
}
