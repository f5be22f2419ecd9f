//! System commands: SystemGenerateWrappingKey, SystemGetSystemStats, SystemSetLicenseKey, the
//! subject access reports (SystemGetUserReport, SystemGetUserHTMLReport) and the cross-tenant
//! profile commands of the main tenant's root.

use bunker_db::audit::Performer;
use bunker_keys::WrappingKey;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use serde_json::Value;

use super::{ApiTags, Status};
use crate::http::app::KeyService;
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use crate::v2::tenants::NoFields;
use bunker_services::access::Command;
use bunker_services::core::Mode;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::keys::{recover_masters, rewrap_masters, KeyAdminError};
use bunker_services::system::stats::{NO_EXPIRY, NO_RECORD_CAP};
use bunker_services::system::{TenantProfile, TenantRef};
use bunker_services::Vault;

/// The system commands.
pub struct SystemApi {
    pub keys: KeyService,
    pub vault: Vault,
}

#[derive(Debug, Object)]
pub struct Stats {
    numusers: i64,
    numtenants: i64,
    numtokens: i64,
    numsessions: i64,
    /// Profiles and tokens.
    totalnumrecords: i64,
    /// Bunker has no licence: 9007199254740991 (2^53 - 1) means no cap.
    licensemaxrecords: i64,
    /// Bunker has no licence: 253402300799 (9999-12-31T23:59:59Z) means never.
    licensefinalexpiration: i64,
}

#[derive(Debug, Object)]
pub struct SystemStatsAnswer {
    status: Status,
    /// Root: the installation; a tenant admin: its tenant. From counters kept on every write.
    stats: Stats,
    /// The same as in `stats` (the contract does not say where these three are).
    totalnumrecords: i64,
    licensemaxrecords: i64,
    licensefinalexpiration: i64,
    /// Always `none`: Bunker needs no licence.
    licensetype: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct LicenseKeyRequest {
    /// Accepted and ignored: Bunker has no licence.
    licensekey: Option<String>,
}

#[derive(Debug, Object)]
pub struct LicenseKeyAnswer {
    status: Status,
    result: String,
    message: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct ReportRequest {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct ReportAnswer {
    status: Status,
    /// Everything held about the user: profile, versions, appdata, agreements (with history),
    /// requests, sessions, sharedrecords, files (descriptions), groups and the audit trail; a
    /// part the caller may not see is absent and named in `omitted`.
    report: Value,
}

#[derive(Debug, Object)]
pub struct HtmlReportAnswer {
    status: Status,
    /// A self-contained HTML page (inline CSS, no script).
    html: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct CrossTenantLookup {
    /// `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    /// From BulkListUnlock (root, main tenant).
    unlockuuid: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct CrossTenantSearch {
    /// A term with `@` is compared with e-mails; otherwise with logins, phones and custom values.
    identity: String,
    unlockuuid: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct CrossTenantDelete {
    /// `email`, `phone`, `login`, `custom`, or `token` together with a tenant.
    mode: String,
    identity: String,
    unlockuuid: String,
    /// Only this tenant (else every tenant).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    tenantid: Option<i64>,
    tenantname: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct CrossTenantRestore {
    /// The token of the removed profile.
    token: String,
    unlockuuid: String,
    /// The tenant to restore it in (one of the two is required).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    tenantid: Option<i64>,
    tenantname: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct TenantProfileRow {
    token: String,
    profile: Value,
    tenantid: i64,
    tenantname: String,
}

#[derive(Debug, Object)]
pub struct TenantProfiles {
    status: Status,
    total: i64,
    rows: Vec<TenantProfileRow>,
}

#[derive(Debug, Object)]
pub struct TenantUserRow {
    token: String,
    tenantid: i64,
    tenantname: String,
}

#[derive(Debug, Object)]
pub struct RemovedProfiles {
    status: Status,
    total: i64,
    rows: Vec<TenantUserRow>,
}

#[derive(Debug, Object)]
pub struct RestoredProfile {
    status: Status,
    result: String,
    token: String,
    profile: Value,
    tenantid: i64,
    tenantname: String,
}

impl From<TenantProfile> for TenantProfileRow {
    fn from(p: TenantProfile) -> Self {
        TenantProfileRow {
            token: p.token.to_string(),
            profile: Value::Object(p.profile),
            tenantid: p.tenant.0,
            tenantname: p.tenantname,
        }
    }
}

/// The tenant a request names by `tenantid`, `tenantname` or both, if any. A blank name is
/// refused, not read as no name: these commands would then reach every tenant.
fn tenant_ref(id: Option<i64>, name: Option<String>) -> Result<Option<TenantRef>, ApiError> {
    let name = match name {
        Some(name) if name.trim().is_empty() => {
            return Err(ApiError::bad_request("tenantname must not be empty"))
        }
        name => name.map(|n| n.trim().to_owned()),
    };
    Ok((id.is_some() || name.is_some()).then_some(TenantRef { id, name }))
}

fn profiles(rows: Vec<TenantProfile>) -> Json<TenantProfiles> {
    Json(TenantProfiles {
        status: Status::Ok,
        total: rows.len() as i64,
        rows: rows.into_iter().map(TenantProfileRow::from).collect(),
    })
}

#[derive(Debug, Object, Deserialize)]
pub struct GenerateWrappingKeyRequest {
    /// Any three of the five recovery shares printed by `bunker init`.
    key1: String,
    key2: String,
    key3: String,
}

#[derive(Debug, Object)]
pub struct NewWrappingKey {
    status: Status,
    /// The new wrapping key (64 hex characters), shown once: configure it as BUNKER_WRAPPING_KEY
    /// before the next start; the old key no longer opens the master key.
    wrappingkey: String,
}

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// Recover the master key from three recovery shares and re-wrap it under a new wrapping key,
    /// returned once (root token only). No data is re-encrypted.
    #[oai(
        path = "/SystemGenerateWrappingKey",
        method = "post",
        operation_id = "SystemGenerateWrappingKey"
    )]
    async fn system_generate_wrapping_key(
        &self,
        caller: Authenticated,
        body: JsonBody<GenerateWrappingKeyRequest>,
    ) -> Result<Json<NewWrappingKey>, ApiError> {
        let caller = caller.0;
        if !caller.is_root() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Only the main tenant admin can generate wrapping keys",
            ));
        }
        let request = body.0;
        let shares = [
            ("key1", request.key1.as_str()),
            ("key2", request.key2.as_str()),
            ("key3", request.key3.as_str()),
        ];
        let masters = recover_masters(&self.keys.db, &shares).await?;
        let keyring = self.keys.keyring.get();
        if !masters.iter().any(|m| m.same_as(keyring.current())) {
            return Err(KeyAdminError::Mismatch.into());
        }
        let new_key = WrappingKey::generate();
        let hex = new_key.to_hex();
        rewrap_masters(
            &self.keys.db,
            &masters,
            &WrappingSource::Local(new_key),
            self.keys.installation,
            Performer::Token(caller.actor()),
            Command::SystemGenerateWrappingKey.audit_action(),
        )
        .await?;
        Ok(Json(NewWrappingKey {
            status: Status::Ok,
            wrappingkey: hex.to_string(),
        }))
    }

    /// What the caller's scope holds: the installation for root, its tenant for a tenant admin.
    /// Counted on every write (no table is counted when this is asked); the licence fields mean
    /// "unlimited" (Bunker has no licence).
    #[oai(
        path = "/SystemGetSystemStats",
        method = "post",
        operation_id = "SystemGetSystemStats"
    )]
    async fn system_get_system_stats(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<SystemStatsAnswer>, ApiError> {
        let stats = self.vault.system_stats(&caller.0).await?;
        let total = stats.total_records();
        Ok(Json(SystemStatsAnswer {
            status: Status::Ok,
            stats: Stats {
                numusers: stats.usage.users,
                numtenants: stats.tenants,
                numtokens: stats.usage.tokens,
                numsessions: stats.usage.sessions,
                totalnumrecords: total,
                licensemaxrecords: NO_RECORD_CAP,
                licensefinalexpiration: NO_EXPIRY,
            },
            totalnumrecords: total,
            licensemaxrecords: NO_RECORD_CAP,
            licensefinalexpiration: NO_EXPIRY,
            licensetype: "none".to_owned(),
        }))
    }

    /// Accepted for compatibility and done without effect (root token only): Bunker has no
    /// licence, so there is nothing to set; the key is neither checked nor stored.
    #[oai(
        path = "/SystemSetLicenseKey",
        method = "post",
        operation_id = "SystemSetLicenseKey"
    )]
    async fn system_set_license_key(
        &self,
        caller: Authenticated,
        body: JsonBody<LicenseKeyRequest>,
    ) -> Result<Json<LicenseKeyAnswer>, ApiError> {
        if !caller.0.is_root() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Only the main tenant admin can set the license key",
            ));
        }
        let _ignored = body.0.licensekey;
        Ok(Json(LicenseKeyAnswer {
            status: Status::Ok,
            result: "done".to_owned(),
            message: "Bunker needs no license key: nothing was stored, every feature is on and \
                      nothing is capped"
                .to_owned(),
        }))
    }

    /// Everything held about one user, as JSON (the rights of access and portability). Audited.
    #[oai(
        path = "/SystemGetUserReport",
        method = "post",
        operation_id = "SystemGetUserReport"
    )]
    async fn system_get_user_report(
        &self,
        caller: Authenticated,
        body: JsonBody<ReportRequest>,
    ) -> Result<Json<ReportAnswer>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let report = self
            .vault
            .user_report(
                &caller.0,
                Command::SystemGetUserReport,
                mode,
                &request.identity,
                request.request_metadata,
            )
            .await?;
        let report = serde_json::to_value(&report).map_err(|_| ApiError::internal())?;
        Ok(Json(ReportAnswer {
            status: Status::Ok,
            report,
        }))
    }

    /// The same report as a self-contained HTML page for the person it is about. Audited.
    #[oai(
        path = "/SystemGetUserHTMLReport",
        method = "post",
        operation_id = "SystemGetUserHTMLReport"
    )]
    async fn system_get_user_html_report(
        &self,
        caller: Authenticated,
        body: JsonBody<ReportRequest>,
    ) -> Result<Json<HtmlReportAnswer>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let report = self
            .vault
            .user_report(
                &caller.0,
                Command::SystemGetUserHTMLReport,
                mode,
                &request.identity,
                request.request_metadata,
            )
            .await?;
        let html = super::report_html::render(&report).map_err(|err| {
            tracing::error!(%err, "the HTML report could not be rendered");
            ApiError::internal()
        })?;
        Ok(Json(HtmlReportAnswer {
            status: Status::Ok,
            html,
        }))
    }

    /// A person's profiles in every tenant (root of the main tenant, behind a bulk unlock).
    #[oai(
        path = "/SystemGetUserProfiles",
        method = "post",
        operation_id = "SystemGetUserProfiles"
    )]
    async fn system_get_user_profiles(
        &self,
        caller: Authenticated,
        body: JsonBody<CrossTenantLookup>,
    ) -> Result<Json<TenantProfiles>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let rows = self
            .vault
            .system_get_user_profiles(
                &caller.0,
                mode,
                &r.identity,
                r.unlockuuid,
                r.request_metadata,
            )
            .await?;
        Ok(profiles(rows))
    }

    /// Profiles like `identity` in every tenant (root of the main tenant, behind a bulk unlock).
    #[oai(
        path = "/SystemSearchUserProfiles",
        method = "post",
        operation_id = "SystemSearchUserProfiles"
    )]
    async fn system_search_user_profiles(
        &self,
        caller: Authenticated,
        body: JsonBody<CrossTenantSearch>,
    ) -> Result<Json<TenantProfiles>, ApiError> {
        let r = body.0;
        let rows = self
            .vault
            .system_search_user_profiles(&caller.0, r.identity, r.unlockuuid, r.request_metadata)
            .await?;
        Ok(profiles(rows))
    }

    /// Removes a person's profiles in every tenant, or in one; restorable for
    /// BUNKER_RESTORE_WINDOW_SECONDS (root of the main tenant, behind a bulk unlock).
    #[oai(
        path = "/SystemDeleteUserProfiles",
        method = "post",
        operation_id = "SystemDeleteUserProfiles"
    )]
    async fn system_delete_user_profiles(
        &self,
        caller: Authenticated,
        body: JsonBody<CrossTenantDelete>,
    ) -> Result<Json<RemovedProfiles>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let only = tenant_ref(r.tenantid, r.tenantname)?;
        let rows = self
            .vault
            .system_delete_user_profiles(
                &caller.0,
                mode,
                &r.identity,
                r.unlockuuid,
                only,
                r.request_metadata,
            )
            .await?;
        Ok(Json(RemovedProfiles {
            status: Status::Ok,
            total: rows.len() as i64,
            rows: rows
                .into_iter()
                .map(|u| TenantUserRow {
                    token: u.token.to_string(),
                    tenantid: u.tenant.0,
                    tenantname: u.tenantname,
                })
                .collect(),
        }))
    }

    /// Brings back a profile SystemDeleteUserProfiles removed, in the tenant named (root of the
    /// main tenant, behind a bulk unlock).
    #[oai(
        path = "/SystemRestoreUserProfile",
        method = "post",
        operation_id = "SystemRestoreUserProfile"
    )]
    async fn system_restore_user_profile(
        &self,
        caller: Authenticated,
        body: JsonBody<CrossTenantRestore>,
    ) -> Result<Json<RestoredProfile>, ApiError> {
        let r = body.0;
        let token = bunker_services::core::identity::parse_token(r.token.trim())?;
        let tenant = tenant_ref(r.tenantid, r.tenantname)?.ok_or_else(|| {
            ApiError::bad_request("Missing API request parameters: tenantid or tenantname")
        })?;
        let restored = self
            .vault
            .system_restore_user_profile(&caller.0, token, r.unlockuuid, tenant, r.request_metadata)
            .await?;
        Ok(Json(RestoredProfile {
            status: Status::Ok,
            result: "done".to_owned(),
            token: restored.token.to_string(),
            profile: Value::Object(restored.profile),
            tenantid: restored.tenant.0,
            tenantname: restored.tenantname,
        }))
    }
}
