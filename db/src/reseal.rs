//! Finding and replacing values sealed under an older master-key version, for `bunker keys
//! reencrypt`. A sealed value's bytes 2-5 are its key version (big-endian). Replacements name the
//! old bytes in their WHERE clause, so a value changed meanwhile is left for the next pass.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// Where a sealed value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealedAt {
    /// `users.record` of a token.
    User(Uuid),
    /// `users.data_key` (the user's wrapped data key) of a token.
    UserKey(Uuid),
    /// `user_versions.record` of a token and version.
    UserVersion(Uuid, i32),
    /// `audit_events.details` of an event.
    AuditEvent(Uuid),
    /// `tokens.record` of a token.
    Token(Uuid),
    /// `groups.sealed` of a group.
    Group(i64),
    /// `agreements.sealed` of an agreement waiting for its user (a linked one is sealed with the
    /// user's key, which is re-sealed as [`SealedAt::UserKey`]).
    WaitingAgreement(i64),
    /// `tenants.webhook_secret` of the transaction's tenant.
    WebhookSecret,
    /// `sessions.record` of a session linked to no user (a linked one is sealed with the user's
    /// key), by its hash.
    Session(Vec<u8>),
}

/// One sealed value not under the current version.
#[derive(Clone, Debug)]
pub struct StaleValue {
    pub at: SealedAt,
    pub sealed: Vec<u8>,
}

fn version_bytes(version: i32) -> Vec<u8> {
    version.to_be_bytes().to_vec()
}

/// How many values of the transaction's tenant are sealed under another version than `current`.
pub async fn count_stale(tx: &TenantTx<'_>, current: i32) -> Result<i64, DbError> {
    let v = version_bytes(current);
    Ok(tx
        .query_one(
            "SELECT (SELECT count(*) FROM users WHERE record IS NOT NULL AND substring(record FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM users WHERE data_key IS NOT NULL AND substring(data_key FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM user_versions WHERE substring(record FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM audit_events WHERE details IS NOT NULL AND substring(details FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM tokens WHERE substring(record FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM groups WHERE substring(sealed FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM agreements WHERE token IS NULL AND sealed IS NOT NULL
                                                       AND substring(sealed FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM tenants WHERE id = $2 AND webhook_secret IS NOT NULL
                                                    AND substring(webhook_secret FROM 2 FOR 4) <> $1)
                  + (SELECT count(*) FROM sessions WHERE token IS NULL
                                                     AND substring(record FROM 2 FOR 4) <> $1)",
            &[&v, &tx.tenant().0],
        )
        .await?
        .try_get(0)?)
}

/// Up to `limit` stale values of each kind.
pub async fn stale_values(
    tx: &TenantTx<'_>,
    current: i32,
    limit: i64,
) -> Result<Vec<StaleValue>, DbError> {
    let v = version_bytes(current);
    let mut stale = Vec::new();
    for row in tx
        .query(
            "SELECT token, record FROM users
              WHERE record IS NOT NULL AND substring(record FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::User(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT token, data_key FROM users
              WHERE data_key IS NOT NULL AND substring(data_key FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::UserKey(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT token, version, record FROM user_versions
              WHERE substring(record FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::UserVersion(row.try_get(0)?, row.try_get(1)?),
            sealed: row.try_get(2)?,
        });
    }
    for row in tx
        .query(
            "SELECT id, details FROM audit_events
              WHERE details IS NOT NULL AND substring(details FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::AuditEvent(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT token_uuid, record FROM tokens WHERE substring(record FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::Token(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT id, sealed FROM groups WHERE substring(sealed FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::Group(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT id, sealed FROM agreements
              WHERE token IS NULL AND sealed IS NOT NULL AND substring(sealed FROM 2 FOR 4) <> $1
              LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::WaitingAgreement(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    for row in tx
        .query(
            "SELECT webhook_secret FROM tenants
              WHERE id = $2 AND webhook_secret IS NOT NULL
                AND substring(webhook_secret FROM 2 FOR 4) <> $1",
            &[&v, &tx.tenant().0],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::WebhookSecret,
            sealed: row.try_get(0)?,
        });
    }
    for row in tx
        .query(
            "SELECT session_hash, record FROM sessions
              WHERE token IS NULL AND substring(record FROM 2 FOR 4) <> $1 LIMIT $2",
            &[&v, &limit],
        )
        .await?
    {
        stale.push(StaleValue {
            at: SealedAt::Session(row.try_get(0)?),
            sealed: row.try_get(1)?,
        });
    }
    Ok(stale)
}

/// Replaces a sealed value if it is still `old`; returns whether it was.
pub async fn replace(
    tx: &TenantTx<'_>,
    at: &SealedAt,
    old: &[u8],
    new: &[u8],
) -> Result<bool, DbError> {
    let changed = match at {
        SealedAt::User(token) => {
            tx.execute(
                "UPDATE users SET record = $3 WHERE token = $1 AND record = $2",
                &[token, &old, &new],
            )
            .await?
        }
        SealedAt::UserKey(token) => {
            tx.execute(
                "UPDATE users SET data_key = $3 WHERE token = $1 AND data_key = $2",
                &[token, &old, &new],
            )
            .await?
        }
        SealedAt::UserVersion(token, version) => {
            tx.execute(
                "UPDATE user_versions SET record = $4 WHERE token = $1 AND version = $2 AND record = $3",
                &[token, version, &old, &new],
            )
            .await?
        }
        SealedAt::AuditEvent(id) => {
            tx.execute(
                "UPDATE audit_events SET details = $3 WHERE id = $1 AND details = $2",
                &[id, &old, &new],
            )
            .await?
        }
        SealedAt::Group(id) => {
            tx.execute(
                "UPDATE groups SET sealed = $3 WHERE id = $1 AND sealed = $2",
                &[id, &old, &new],
            )
            .await?
        }
        SealedAt::WaitingAgreement(id) => {
            tx.execute(
                "UPDATE agreements SET sealed = $3 WHERE id = $1 AND token IS NULL AND sealed = $2",
                &[id, &old, &new],
            )
            .await?
        }
        SealedAt::WebhookSecret => {
            tx.execute(
                "UPDATE tenants SET webhook_secret = $3 WHERE id = $1 AND webhook_secret = $2",
                &[&tx.tenant().0, &old, &new],
            )
            .await?
        }
        SealedAt::Session(hash) => {
            tx.execute(
                "UPDATE sessions SET record = $3
                  WHERE session_hash = $1 AND token IS NULL AND record = $2",
                &[hash, &old, &new],
            )
            .await?
        }
        SealedAt::Token(uuid) => {
            tx.execute(
                "UPDATE tokens SET record = $3 WHERE token_uuid = $1 AND record = $2",
                &[uuid, &old, &new],
            )
            .await?
        }
    };
    Ok(changed > 0)
}
