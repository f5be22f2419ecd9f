//! Passwordless login (CaptchaCreate, UserPrelogin, UserLogin; public): a captcha, then a six-digit
//! code sent to the user's e-mail address or phone, then a user token for the code.
//!
//! - A captcha is single use and lives [`CAPTCHA_SECONDS`]; only the SHA-256 of its id and a keyed
//!   hash of its answer are stored. A tenant that does not exist gets a captcha all the same (one
//!   that is never stored, so never passes): the answers do not tell which tenants exist.
//! - UserPrelogin answers the same whether or not the identity belongs to a user, and sends the code
//!   only after answering (the caller delivers [`Prelogin::Send`] in the background); the code is
//!   stored as a keyed hash (the tenant's index key, over the user and the code) for
//!   [`CODE_SECONDS`], and never logged.
//! - UserLogin compares in constant time. Every refusal (unknown identity, wrong, expired or used
//!   code, locked out) is the same 403. [`MAX_FAILURES`] wrong codes void the code and lock the
//!   identity out for [`LOCKOUT_SECONDS`]: no code is sent or accepted meanwhile. Per address, the
//!   public rate limit (`BUNKER_RATE_PUBLIC`) bounds the attempts.
//! - A login is audited in the user's trail (the new token as the actor).

use std::time::{Duration, SystemTime};

use bunker_db::audit::Actor;
use bunker_db::control::{self, ExpiringToken, TokenKind};
use bunker_db::login as store;
use bunker_db::TenantId;
use bunker_keys::BlindIndexKey;
use bunker_tenancy::token::IssuedToken;
use rand::RngExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::Command;
use crate::core::identity::{Lookup, Mode};
use crate::core::{record_event, resolve, UserEvent, Vault, VaultError};
use crate::xtokens::IssuedXToken;

/// How long a captcha can be answered.
pub const CAPTCHA_SECONDS: i64 = 300;
/// How long a login code can be used.
pub const CODE_SECONDS: i64 = 300;
/// Wrong codes before the identity is locked out.
pub const MAX_FAILURES: i32 = 5;
/// How long a lock-out lasts.
pub const LOCKOUT_SECONDS: i64 = 900;
/// Captchas drawn at once (each costs milliseconds of CPU).
static DRAWING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// A new code is not sent within this many seconds of the last one for the same user.
pub const RESEND_SECONDS: i64 = 30;
/// How long the token a login gives lives, renewed by use (never past `BUNKER_XTOKEN_MAX_SECONDS`).
const SESSION_SLIDING_SECONDS: i64 = 1800;

/// The one answer to every refused login.
pub const LOGIN_REFUSED: &str =
    "The login code is wrong, has expired or was used, or too many were tried: ask for a new one";

/// A captcha to show: its id (sent back with the answer) and its picture, PNG in base64. (The
/// crate's spoken letters are not offered: each is a fixed recording under bounded noise, which a
/// program matches every time.)
pub struct Captcha {
    pub code: String,
    pub png_base64: String,
    /// What it shows: for the server's own checks and tests, never answered.
    pub answer: Zeroizing<String>,
}

/// What UserPrelogin found to do.
pub enum Prelogin {
    /// The captcha was wrong, expired or used.
    CaptchaWrong,
    /// Nothing to send (no such user, or locked out); answered as [`Prelogin::Send`] is.
    Nothing,
    /// Send `code` to `to` (a normalized e-mail address or E.164 phone number) by `mode`.
    Send {
        mode: Mode,
        to: String,
        code: Zeroizing<String>,
    },
}

fn captcha_hash(code: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"bunker login captcha\0");
    hash.update(code.as_bytes());
    hash.finalize().into()
}

fn answer_mac(key: &BlindIndexKey, code: &str, answer: &str) -> [u8; 32] {
    let value = format!("{code}\0{}", answer.trim().to_uppercase());
    key.blind_index("login-captcha", value.as_bytes())
}

fn code_mac(key: &BlindIndexKey, user: Uuid, code: &str) -> [u8; 32] {
    let value = format!("{user}\0{code}");
    key.blind_index("login-code", value.as_bytes())
}

/// The modes a code can be sent by.
fn deliverable(mode: Mode) -> Result<Mode, VaultError> {
    match mode {
        Mode::Email | Mode::Phone => Ok(mode),
        _ => Err(VaultError::BadRequest(
            "Passwordless login takes mode email or phone".to_owned(),
        )),
    }
}

impl Vault {
    /// CaptchaCreate: a new captcha for `tenant` (None: no such tenant; the captcha is not kept).
    pub async fn create_captcha(&self, tenant: Option<TenantId>) -> Result<Captcha, VaultError> {
        // Drawing costs CPU: a few at a time, whoever asks.
        let _turn = DRAWING
            .acquire()
            .await
            .map_err(|_| VaultError::BadRequest("The captcha could not be drawn".to_owned()))?;
        let drawn = tokio::task::spawn_blocking(|| {
            let mut captcha = captcha::Captcha::new();
            captcha
                .add_chars(5)
                .apply_filter(captcha::filters::Noise::new(0.2))
                .apply_filter(captcha::filters::Wave::new(2.0, 16.0))
                .view(220, 100)
                .apply_filter(captcha::filters::Dots::new(8));
            (captcha.chars_as_string(), captcha.as_base64())
        })
        .await
        .map_err(|_| VaultError::BadRequest("The captcha could not be drawn".to_owned()))?;
        let (answer, Some(png_base64)) = drawn else {
            return Err(VaultError::BadRequest(
                "The captcha could not be drawn".to_owned(),
            ));
        };
        let code = Uuid::new_v4().simple().to_string();
        if let Some(tenant) = tenant {
            let keys = self.keys(tenant).await?;
            let id_hash = captcha_hash(&code);
            let mac = answer_mac(&keys.index, &code, &answer);
            self.db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        store::insert_captcha(tx, &id_hash, &mac, CAPTCHA_SECONDS).await?;
                        Ok::<_, VaultError>(())
                    })
                })
                .await?;
        }
        Ok(Captcha {
            code,
            png_base64,
            answer: Zeroizing::new(answer),
        })
    }

    /// UserPrelogin: checks the captcha (used up either way), then, if `identity` is a user's and
    /// the user is not locked out, keeps a new code for them and says where to send it.
    pub async fn prelogin(
        &self,
        tenant: Option<TenantId>,
        mode: Mode,
        identity: &str,
        captcha: &str,
        answer: &str,
    ) -> Result<Prelogin, VaultError> {
        let mode = deliverable(mode)?;
        // Checked first, so that a malformed identity is answered alike in every tenant, existing
        // or not.
        let field = mode.field().unwrap_or("email");
        let normal = self
            .settings
            .normalizer
            .normalize(field, &Value::String(identity.to_owned()))?;
        let Some(tenant) = tenant else {
            return Ok(Prelogin::CaptchaWrong);
        };
        let keys = self.keys(tenant).await?;
        let lookup = normal
            .as_ref()
            .map(|value| Lookup::Index(field, keys.index.blind_index(field, value.as_bytes())));
        let id_hash = captcha_hash(captcha);
        let given = answer_mac(&keys.index, captcha, answer);
        let code = Zeroizing::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)));
        let sent = code.clone();
        let kept = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let expected = store::take_captcha(tx, &id_hash).await?;
                    let passed = expected
                        .is_some_and(|expected| bool::from(expected.as_slice().ct_eq(&given)));
                    if !passed {
                        return Ok::<_, VaultError>(None);
                    }
                    let Some(lookup) = lookup else {
                        return Ok(Some(false));
                    };
                    let user = match resolve(tx, lookup).await {
                        Ok(user) => user.token,
                        Err(VaultError::NotFound) => return Ok(Some(false)),
                        Err(err) => return Err(err),
                    };
                    let mac = code_mac(&keys.index, user, &sent);
                    Ok(Some(
                        store::put_code(tx, user, &mac, CODE_SECONDS, RESEND_SECONDS).await?,
                    ))
                })
            })
            .await?;
        Ok(match (kept, normal) {
            (None, _) => Prelogin::CaptchaWrong,
            (Some(true), Some(to)) => Prelogin::Send { mode, to, code },
            _ => Prelogin::Nothing,
        })
    }

    /// UserLogin: a user token for the right code, once. Every refusal is
    /// `Forbidden(LOGIN_REFUSED)`.
    pub async fn login(
        &self,
        tenant: Option<TenantId>,
        mode: Mode,
        identity: &str,
        code: &str,
    ) -> Result<(IssuedXToken, Uuid), VaultError> {
        let refused = || VaultError::Forbidden(LOGIN_REFUSED);
        let mode = deliverable(mode)?;
        // As in prelogin: a malformed identity is answered alike whether the tenant exists or not.
        let field = mode.field().unwrap_or("email");
        self.settings
            .normalizer
            .normalize(field, &Value::String(identity.to_owned()))?;
        let tenant = tenant.ok_or_else(refused)?;
        let keys = self.keys(tenant).await?;
        let lookup = match self.settings.normalizer.lookup(&keys.index, mode, identity) {
            Ok(lookup) => lookup,
            Err(VaultError::NotFound) => return Err(refused()),
            Err(err) => return Err(err),
        };
        let code = Zeroizing::new(code.trim().to_owned());
        let token = IssuedToken::generate();
        let (token_id, hash) = (token.id, token.hash());
        let longest = self.settings.xtoken_max_seconds;
        let sliding = SESSION_SLIDING_SECONDS.min(longest);
        let final_at = SystemTime::now() + Duration::from_secs(u64::try_from(longest).unwrap_or(0));
        let outcome = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let user = match resolve(tx, lookup).await {
                        Ok(user) => user.token,
                        Err(VaultError::NotFound) => return Ok::<_, VaultError>(None),
                        Err(err) => return Err(err),
                    };
                    let Some(state) = store::login_code(tx, user).await? else {
                        return Ok(None);
                    };
                    let given = code_mac(&keys.index, user, &code);
                    let right = state
                        .code_mac
                        .as_ref()
                        .is_some_and(|mac| bool::from(mac.as_slice().ct_eq(&given)));
                    if state.locked || !right {
                        // A guess counts only against a live code: with none waiting (expired, used,
                        // voided) it cannot succeed, and counting it would let anyone keep a user
                        // locked out without ever asking for a code.
                        let counts = !state.locked && state.code_mac.is_some();
                        if counts && store::fail(tx, user, MAX_FAILURES, LOCKOUT_SECONDS).await? {
                            tracing::warn!(
                                tenant = tx.tenant().0,
                                "a login identity was locked out after too many wrong codes"
                            );
                        }
                        return Ok(Some(Err(user)));
                    }
                    store::succeed(tx, user).await?;
                    let expiring = ExpiringToken {
                        kind: TokenKind::User,
                        role_id: None,
                        user_token: Some(user),
                        sliding_seconds: Some(sliding),
                        final_at,
                    };
                    let expires_at =
                        control::insert_expiring_token(tx, token_id, hash.as_bytes(), &expiring)
                            .await?;
                    let actor = Actor {
                        kind: TokenKind::User,
                        token_id,
                    };
                    let event = UserEvent::about(Command::UserLogin, user, None);
                    record_event(tx, &keys, actor, event).await?;
                    Ok(Some(Ok((expires_at, user))))
                })
            })
            .await?;
        match outcome {
            Some(Ok((expires_at, user))) => Ok((IssuedXToken { token, expires_at }, user)),
            _ => Err(refused()),
        }
    }
}
