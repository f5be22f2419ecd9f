//! The web portals' sessions: the token a signed-in browser acts with (a user's login token, or the
//! admin or role token a DPO signed in with), kept here sealed, never sent to the browser. The
//! browser holds a signed JWT naming the session (`bunker::web`); the key that signs it is the
//! tenant's, derived from the master key, and rotates with it.

use bunker_db::portal as store;
use bunker_db::TenantId;
use bunker_keys::Label;
use rand::RngExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::core::{Vault, VaultError};

/// Which portal a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortalKind {
    /// The privacy portal at `/`, signed in with a login code.
    User,
    /// The DPO portal at `/admin`, signed in with an admin or role token.
    Admin,
}

impl PortalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortalKind::User => "user",
            PortalKind::Admin => "admin",
        }
    }
}

/// A live session: the token to act with, and the seconds it has left.
pub struct OpenSession {
    pub token: Zeroizing<String>,
    pub user: Option<Uuid>,
    pub remaining: i64,
}

/// What the tenant lets its users do to their own record directly (the rest goes through requests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SelfService {
    pub user_change: bool,
    pub forget_me: bool,
    pub app_data_change: bool,
}

fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

fn label(tenant: TenantId, hash: &[u8]) -> (i64, String) {
    (tenant.0, hex::encode(hash))
}

impl Vault {
    /// Opens a session of `kind` acting with `token` for `seconds`; its id, for the JWT.
    pub async fn open_portal_session(
        &self,
        tenant: TenantId,
        kind: PortalKind,
        user: Option<Uuid>,
        token: &str,
        seconds: i64,
    ) -> Result<String, VaultError> {
        let id = hex::encode(rand::rng().random::<[u8; 32]>());
        let hash = id_hash(&id);
        let (tenant_id, row) = label(tenant, &hash);
        let sealed = self.keys(tenant).await?.records.seal(
            &Label {
                tenant: tenant_id,
                kind: "portal_session",
                row: &row,
            },
            token.as_bytes(),
        )?;
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    store::insert(tx, &hash, kind.as_str(), user, &sealed, seconds).await?;
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        Ok(id)
    }

    /// The live session `id` of `kind`, if there is one.
    pub async fn portal_session(
        &self,
        tenant: TenantId,
        kind: PortalKind,
        id: &str,
    ) -> Result<Option<OpenSession>, VaultError> {
        let hash = id_hash(id);
        let lookup = hash.clone();
        let row = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    Ok::<_, VaultError>(store::get(tx, &lookup, kind.as_str()).await?)
                })
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.kind != kind.as_str() {
            return Ok(None);
        }
        let (tenant_id, label_row) = label(tenant, &hash);
        let opened = self.keys(tenant).await?.records.open(
            &Label {
                tenant: tenant_id,
                kind: "portal_session",
                row: &label_row,
            },
            &row.token_sealed,
        )?;
        let token = Zeroizing::new(String::from_utf8_lossy(&opened).into_owned());
        Ok(Some(OpenSession {
            token,
            user: row.user_token,
            remaining: row.remaining,
        }))
    }

    /// Ends a session (signing out).
    pub async fn close_portal_session(&self, tenant: TenantId, id: &str) -> Result<(), VaultError> {
        let hash = id_hash(id);
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    store::delete(tx, &hash).await?;
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        Ok(())
    }

    /// The key that signs the tenant's portal sessions, from master version `version` (`None`: the
    /// newest), with that version; `None` when that version is not held (retired).
    pub fn portal_session_key(
        &self,
        tenant: TenantId,
        version: Option<i32>,
    ) -> Option<(i32, Zeroizing<[u8; 32]>)> {
        self.keyring.get().portal_session_key(tenant.0, version)
    }

    /// What the tenant lets its users do to their own record directly.
    pub async fn self_service(&self, tenant: TenantId) -> Result<SelfService, VaultError> {
        let settings = self
            .db
            .in_tenant(tenant, |tx| {
                Box::pin(
                    async move { Ok::<_, VaultError>(bunker_db::control::self_service(tx).await?) },
                )
            })
            .await?;
        Ok(SelfService {
            user_change: settings.user_change,
            forget_me: settings.forget_me,
            app_data_change: settings.app_data_change,
        })
    }
}
