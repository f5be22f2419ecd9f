//! Passwordless login's rows (migrations/V26): captchas, and each user's one-time code with the
//! failures that lock the identity out. What is stored cannot be used if read: hashes only.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// Keeps a captcha for `seconds`, and removes the tenant's expired ones.
pub async fn insert_captcha(
    tx: &TenantTx<'_>,
    id_hash: &[u8],
    answer_mac: &[u8],
    seconds: i64,
) -> Result<(), DbError> {
    tx.execute("DELETE FROM login_captchas WHERE expires_at <= now()", &[])
        .await?;
    tx.execute(
        "INSERT INTO login_captchas (tenant_id, id_hash, answer_mac, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))",
        &[&tx.tenant().0, &id_hash, &answer_mac, &seconds],
    )
    .await?;
    Ok(())
}

/// Takes a captcha, once: its answer's keyed hash if it exists and has not expired. Taken either
/// way, so that no answer can be tried twice.
pub async fn take_captcha(tx: &TenantTx<'_>, id_hash: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
    Ok(tx
        .query_opt(
            "DELETE FROM login_captchas WHERE id_hash = $1 RETURNING answer_mac, expires_at > now()",
            &[&id_hash],
        )
        .await?
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0)))
}

/// A user's login state.
#[derive(Debug)]
pub struct LoginCode {
    /// The waiting code's keyed hash, if one waits and has not expired.
    pub code_mac: Option<Vec<u8>>,
    /// Locked out until a time still to come.
    pub locked: bool,
}

/// The user's login state, locked for the transaction (two guesses at once are counted both).
pub async fn login_code(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<LoginCode>, DbError> {
    Ok(tx
        .query_opt(
            "SELECT CASE WHEN expires_at > now() THEN code_mac END,
                    coalesce(locked_until > now(), false)
               FROM login_codes WHERE token = $1 FOR UPDATE",
            &[&token],
        )
        .await?
        .map(|row| LoginCode {
            code_mac: row.get(0),
            locked: row.get(1),
        }))
}

/// Keeps a new code for the user for `seconds`, replacing one that waited; the failures so far
/// stay counted. Does nothing (and says so: false) while the user is locked out, or within
/// `resend_seconds` of the last code.
pub async fn put_code(
    tx: &TenantTx<'_>,
    token: Uuid,
    code_mac: &[u8],
    seconds: i64,
    resend_seconds: i64,
) -> Result<bool, DbError> {
    let kept = tx
        .execute(
            "INSERT INTO login_codes (tenant_id, token, code_mac, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))
             ON CONFLICT (tenant_id, token) DO UPDATE
                SET code_mac = EXCLUDED.code_mac, expires_at = EXCLUDED.expires_at,
                    failures = CASE WHEN login_codes.locked_until <= now() THEN 0
                                    ELSE login_codes.failures END,
                    locked_until = CASE WHEN login_codes.locked_until <= now() THEN NULL
                                        ELSE login_codes.locked_until END
              WHERE (login_codes.locked_until IS NULL OR login_codes.locked_until <= now())
                AND (login_codes.code_mac IS NULL
                     OR login_codes.expires_at <= now() + make_interval(secs => ($4 - $5)::bigint))",
            &[&tx.tenant().0, &token, &code_mac, &seconds, &resend_seconds],
        )
        .await?;
    Ok(kept == 1)
}

/// Counts a wrong code. At `max` failures the waiting code is void and the user is locked out for
/// `lockout_seconds`. Returns whether that lock-out began now.
pub async fn fail(
    tx: &TenantTx<'_>,
    token: Uuid,
    max: i32,
    lockout_seconds: i64,
) -> Result<bool, DbError> {
    let row = tx
        .query_opt(
            "UPDATE login_codes SET failures = failures + 1,
                    code_mac = CASE WHEN failures + 1 >= $2 THEN NULL ELSE code_mac END,
                    locked_until = CASE WHEN failures + 1 >= $2
                                        THEN now() + make_interval(secs => $3::bigint) END
              WHERE token = $1
          RETURNING failures >= $2",
            &[&token, &max, &lockout_seconds],
        )
        .await?;
    Ok(row.is_some_and(|row| row.get(0)))
}

/// The code was right: it is used up, and the failures are forgotten.
pub async fn succeed(tx: &TenantTx<'_>, token: Uuid) -> Result<(), DbError> {
    tx.execute("DELETE FROM login_codes WHERE token = $1", &[&token])
        .await?;
    Ok(())
}
