//! Role and user access tokens (XTokenCreateForRole, XTokenCreateForUser), issued by admins. They
//! live 10 minutes unless `finaltime` or `slidingtime` say otherwise, never longer than
//! `BUNKER_XTOKEN_MAX_SECONDS`; they are stored hashed like every access token, and what they may
//! do is decided by [`crate::access`].

use std::time::{Duration, SystemTime};

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::control::{self, ExpiringToken, TokenKind};
use bunker_tenancy::token::IssuedToken;
use bunker_tenancy::Caller;
use serde_json::Value;
use uuid::Uuid;

use crate::access::Command;
use crate::core::expiry::Expiry;
use crate::core::identity::Mode;
use crate::core::{record_event, resolve};
use crate::core::{UserEvent, Vault, VaultError};
use crate::groups::{find_role, RoleSelector};

/// How long a role or user token lives when the request does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// A role or user token just issued: shown once.
pub struct IssuedXToken {
    pub token: IssuedToken,
    /// When it stops working (Unix seconds), unless used again before then when sliding.
    pub expires_at: i64,
}

impl Vault {
    /// A token that acts as a user: their own record, and what their roles' policies allow.
    pub async fn create_user_xtoken(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        expiry: Expiry,
        metadata: Option<Value>,
    ) -> Result<(IssuedXToken, Uuid), VaultError> {
        require_admin(caller)?;
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let (sliding_seconds, final_at) = self.lifetime(expiry);
        let token = IssuedToken::generate();
        let (token_id, hash) = (token.id, token.hash());
        let (expires_at, user) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let user = resolve(tx, lookup).await?.token;
                    let expiring = ExpiringToken {
                        kind: TokenKind::User,
                        role_id: None,
                        user_token: Some(user),
                        sliding_seconds,
                        final_at,
                    };
                    let expires_at =
                        control::insert_expiring_token(tx, token_id, hash.as_bytes(), &expiring)
                            .await?;
                    let event =
                        UserEvent::about(Command::XTokenCreateForUser, user, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok::<_, VaultError>((expires_at, user))
                })
            })
            .await?;
        Ok((IssuedXToken { token, expires_at }, user))
    }

    /// A token that acts as a role: what the role's policies allow.
    pub async fn create_role_xtoken(
        &self,
        caller: &Caller,
        role: RoleSelector,
        expiry: Expiry,
    ) -> Result<IssuedXToken, VaultError> {
        require_admin(caller)?;
        let actor = caller.actor();
        let (sliding_seconds, final_at) = self.lifetime(expiry);
        let token = IssuedToken::generate();
        let (token_id, hash) = (token.id, token.hash());
        let expires_at = self
            .db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let role = find_role(tx, &role).await?;
                    let expiring = ExpiringToken {
                        kind: TokenKind::Role,
                        role_id: Some(role.id),
                        user_token: None,
                        sliding_seconds,
                        final_at,
                    };
                    let expires_at =
                        control::insert_expiring_token(tx, token_id, hash.as_bytes(), &expiring)
                            .await?;
                    let event = AuditEvent::about(
                        Performer::Token(actor),
                        Command::XTokenCreateForRole.audit_action(),
                        format!("role:{}", role.id),
                    );
                    audit::record(tx, &event).await?;
                    Ok::<_, VaultError>(expires_at)
                })
            })
            .await?;
        Ok(IssuedXToken { token, expires_at })
    }

    /// The sliding window and the final time of a new token: 10 minutes by default; with only a
    /// sliding window, it may slide up to the longest lifetime; never longer than that.
    fn lifetime(&self, expiry: Expiry) -> (Option<i64>, SystemTime) {
        let longest = self.settings.xtoken_max_seconds;
        let now = SystemTime::now();
        let latest = now
            .checked_add(Duration::from_secs(u64::try_from(longest).unwrap_or(0)))
            .unwrap_or(now + DEFAULT_LIFETIME);
        let sliding = expiry.sliding_seconds.map(|s| s.min(longest));
        let wanted = match (expiry.final_at, sliding) {
            (Some(at), _) => at,
            (None, Some(_)) => latest,
            (None, None) => now + DEFAULT_LIFETIME,
        };
        (sliding, wanted.min(latest))
    }
}

fn require_admin(caller: &Caller) -> Result<(), VaultError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(VaultError::Forbidden(crate::access::DENIED))
    }
}
