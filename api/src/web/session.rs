//! Portal sessions in the browser: a short-lived HS256 JWT in an `HttpOnly; Secure; SameSite=Strict`
//! cookie, naming a session row that holds the token the portal acts with (`bunker_services::portal`).
//! The JWT's key is the tenant's, derived from the master key (`kid`: its version), so a JWT of
//! one tenant does not verify on another, and none verifies once its master version is retired.
//! Every state-changing form carries a CSRF token: an HMAC of the session id under the same key.

use bunker_db::TenantId;
use bunker_services::portal::PortalKind;
use bunker_services::Vault;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a session lasts from sign-in (the JWT and its row).
pub const SESSION_SECONDS: i64 = 1800;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The session's id.
    sid: String,
    /// The tenant's id.
    ten: i64,
    /// `user` or `admin`.
    knd: String,
    iat: i64,
    exp: i64,
}

/// A verified session reference.
pub struct SessionRef {
    pub id: String,
    /// The master-key version whose key signed it.
    pub version: i32,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The JWT for session `id` of `kind` in `tenant`.
pub fn sign(vault: &Vault, tenant: TenantId, kind: PortalKind, id: &str) -> Option<String> {
    let (version, key) = vault.portal_session_key(tenant, None)?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(version.to_string());
    let issued = now();
    let claims = Claims {
        sid: id.to_owned(),
        ten: tenant.0,
        knd: kind.as_str().to_owned(),
        iat: issued,
        exp: issued + SESSION_SECONDS,
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_slice())).ok()
}

/// The session a JWT names, if it verifies for this tenant and portal and has not expired.
pub fn verify(vault: &Vault, tenant: TenantId, kind: PortalKind, jwt: &str) -> Option<SessionRef> {
    if jwt.len() > 2048 {
        return None;
    }
    let header = jsonwebtoken::decode_header(jwt).ok()?;
    if header.alg != Algorithm::HS256 {
        return None;
    }
    let version: i32 = header.kid?.parse().ok()?;
    let (version, key) = vault.portal_session_key(tenant, Some(version))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    let data =
        jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(key.as_slice()), &validation)
            .ok()?;
    let claims = data.claims;
    (claims.ten == tenant.0 && claims.knd == kind.as_str() && claims.sid.len() == 64).then_some(
        SessionRef {
            id: claims.sid,
            version,
        },
    )
}

/// The CSRF token of a session: its forms carry it, and every POST is refused without it.
pub fn csrf(vault: &Vault, tenant: TenantId, session: &SessionRef) -> String {
    let Some((_, key)) = vault.portal_session_key(tenant, Some(session.version)) else {
        return String::new();
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_slice()) else {
        return String::new();
    };
    mac.update(b"csrf\0");
    mac.update(session.id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether two tokens are equal, in constant time (and neither is empty).
pub fn same(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}
