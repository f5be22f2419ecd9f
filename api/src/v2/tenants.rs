//! Tenant commands: TenantCreate, TenantGet, TenantUpdate, TenantDelete, TenantListTenants.

use bunker_db::control::{SelfServiceChanges, TenantRecord};
use bunker_db::TenantId;
use bunker_services::tenants::quota::QuotaChange;
use bunker_services::tenants::uiconf::UiConfChange;
use bunker_services::tenants::{NewTenant, TenantChanges, Tenants};
use bunker_services::webhooks::check_webhook;
use bunker_tenancy::TenantName;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::{page, ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};

/// The tenant commands.
pub struct TenantApi {
    pub tenants: Tenants,
    /// For the webhook's secret, which is stored sealed.
    pub vault: bunker_services::Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct TenantCreateRequest {
    /// 1-63 lowercase letters, digits and inner hyphens.
    tenantname: String,
    /// The organisation the tenant belongs to.
    tenantorg: String,
    /// A contact address. Accepted for compatibility; not stored (see README).
    email: Option<String>,
}

#[derive(Debug, Object)]
pub struct TenantCreated {
    status: Status,
    tenantid: i64,
    /// The tenant's admin token. Shown once: Bunker keeps only its hash.
    xtoken: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct TenantIdRequest {
    /// The tenant's id (a numeric string is accepted too).
    #[serde(deserialize_with = "lenient::int")]
    tenantid: i64,
}

#[derive(Debug, Object)]
pub struct TenantView {
    status: Status,
    tenantid: i64,
    tenantname: String,
    tenantorg: String,
    selfservice: SelfServiceView,
    /// Where request events are posted (the secret is never shown); null when none is set.
    webhookurl: Option<String>,
    /// The tenant's own request quota per server (`COUNT/s`, `COUNT/min`, `COUNT/h` or `off`),
    /// set by root; null when the installation's default (BUNKER_RATE_TENANT) applies.
    ratelimit: Option<String>,
}

/// What a user's own token may do to its own record directly, instead of through a request an
/// admin or a DPO approves.
#[derive(Debug, Object)]
pub struct SelfServiceView {
    /// UserUpdate and UserPatch.
    user_change: bool,
    /// UserDelete (forget-me).
    forget_me: bool,
    /// AppdataCreate, AppdataUpdate and AppdataDelete.
    app_data_change: bool,
}

/// Changes to the self-service settings; an absent one is kept.
#[derive(Debug, Object, Deserialize)]
pub struct SelfServiceChange {
    user_change: Option<bool>,
    forget_me: Option<bool>,
    app_data_change: Option<bool>,
}

#[derive(Debug, Object, Deserialize)]
pub struct TenantUpdateRequest {
    /// The tenant's id; the tenant of the request when absent.
    #[serde(default, deserialize_with = "lenient::opt_int")]
    tenantid: Option<i64>,
    /// A new name.
    tenantname: Option<String>,
    /// A new organisation.
    tenantorg: Option<String>,
    /// Accepted for compatibility; not stored.
    email: Option<String>,
    /// What a user's own token may do to its own record directly (all off by default).
    selfservice: Option<SelfServiceChange>,
    /// The webhook user requests call (an empty `url` removes it).
    webhook: Option<WebhookChange>,
    /// The portals' display configuration (answered to anyone by TenantGetUIConf): given keys
    /// replace, `null` removes. companytitle (1-100 characters), logourl, companylink,
    /// privacypolicyurl, termsofserviceurl (https:// or /paths), primarycolor, accentcolor
    /// (#rrggbb), loginemail, loginphone (the login methods wanted; on by default).
    uiconf: Option<Value>,
    /// The tenant's request quota per server, root only: `COUNT/s`, `COUNT/min`, `COUNT/h`
    /// (COUNT up to 1000000000), `off`, or `default` for the installation's (BUNKER_RATE_TENANT).
    ratelimit: Option<String>,
}

/// A tenant's webhook: where user-request events are posted, and the secret that signs them.
#[derive(Debug, Object, Deserialize)]
pub struct WebhookChange {
    /// An https:// URL (http:// only to localhost); empty to remove the webhook.
    url: String,
    /// 32 to 256 characters, shared with the receiver; signs each body (HMAC-SHA256). Never shown.
    secret: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct PageRequest {
    /// Rows to skip (default 0).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    /// Rows to return (default 10; below 1 or above 100 means 100).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
}

#[derive(Debug, Object)]
pub struct TenantRow {
    tenantid: i64,
    tenantname: String,
    tenantorg: String,
}

#[derive(Debug, Object)]
pub struct TenantList {
    status: Status,
    /// How many tenants there are in all.
    total: i64,
    rows: Vec<TenantRow>,
}

#[OpenApi(tag = "ApiTags::Tenants")]
impl TenantApi {
    /// Create a tenant and its admin token (root token only).
    #[oai(path = "/TenantCreate", method = "post", operation_id = "TenantCreate")]
    async fn tenant_create(
        &self,
        caller: Authenticated,
        body: JsonBody<TenantCreateRequest>,
    ) -> Result<Json<TenantCreated>, ApiError> {
        let request = body.0;
        let new = NewTenant {
            name: TenantName::parse(&request.tenantname)?,
            org: request.tenantorg,
        };
        let (tenant, token) = self.tenants.create_tenant(&caller.0, new).await?;
        Ok(Json(TenantCreated {
            status: Status::Ok,
            tenantid: tenant.id.0,
            xtoken: token.secret.expose_secret().to_owned(),
        }))
    }

    /// Read a tenant: root any, a tenant's token its own.
    #[oai(path = "/TenantGet", method = "post", operation_id = "TenantGet")]
    async fn tenant_get(
        &self,
        caller: Authenticated,
        body: JsonBody<TenantIdRequest>,
    ) -> Result<Json<TenantView>, ApiError> {
        let id = TenantId(body.0.tenantid);
        let tenant = self.tenants.get_tenant(&caller.0, id).await?;
        let webhookurl = tenant.webhook_url.clone();
        let ratelimit = tenant.rate_limit.clone();
        let selfservice = SelfServiceView {
            user_change: tenant.selfservice.user_change,
            forget_me: tenant.selfservice.forget_me,
            app_data_change: tenant.selfservice.app_data_change,
        };
        let row = TenantRow::from(tenant);
        Ok(Json(TenantView {
            status: Status::Ok,
            tenantid: row.tenantid,
            tenantname: row.tenantname,
            tenantorg: row.tenantorg,
            selfservice,
            webhookurl,
            ratelimit,
        }))
    }

    /// Rename a tenant or change its organisation: root any, a tenant's token its own.
    #[oai(path = "/TenantUpdate", method = "post", operation_id = "TenantUpdate")]
    async fn tenant_update(
        &self,
        caller: Authenticated,
        body: JsonBody<TenantUpdateRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let id = request.tenantid.map_or(caller.0.tenant.id, TenantId);
        let changes = TenantChanges {
            name: request
                .tenantname
                .as_deref()
                .map(TenantName::parse)
                .transpose()?,
            org: request.tenantorg,
            selfservice: request
                .selfservice
                .map(|s| SelfServiceChanges {
                    user_change: s.user_change,
                    forget_me: s.forget_me,
                    app_data_change: s.app_data_change,
                })
                .unwrap_or_default(),
        };
        // The webhook is checked before anything changes, and set after the rest took.
        let webhook = match request.webhook {
            None => None,
            Some(webhook) => Some(match (webhook.url.trim().is_empty(), webhook.secret) {
                (true, _) => None,
                (false, Some(secret)) => {
                    check_webhook(&webhook.url, &secret, caller.0.is_root())?;
                    Some((webhook.url, secret))
                }
                (false, None) => {
                    return Err(ApiError::bad_request(
                        "Missing API request parameters: webhook.secret",
                    ))
                }
            }),
        };
        let uiconf = request.uiconf.map(UiConfChange::parse).transpose()?;
        if request.ratelimit.is_some() && !caller.0.is_root() {
            // Refused before anything changes, whatever it holds: a tenant's quota is the
            // operator's to set.
            return Err(ApiError::from(bunker_tenancy::TenancyError::Forbidden(
                "only the root token can change a tenant's rate limit",
            )));
        }
        let quota = request
            .ratelimit
            .as_deref()
            .map(QuotaChange::parse)
            .transpose()?;
        self.tenants.update_tenant(&caller.0, id, changes).await?;
        if let Some(change) = quota {
            self.tenants.update_quota(&caller.0, id, change).await?;
        }
        if let Some(change) = uiconf {
            self.tenants.update_ui_conf(&caller.0, id, change).await?;
        }
        if let Some(set) = webhook {
            self.vault.set_webhook(&caller.0, id, set).await?;
        }
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Delete a tenant with all of its data and tokens (root token only).
    #[oai(path = "/TenantDelete", method = "post", operation_id = "TenantDelete")]
    async fn tenant_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<TenantIdRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let id = TenantId(body.0.tenantid);
        self.tenants.delete_tenant(&caller.0, id).await?;
        // Its files' rows went with it; their objects go now (or with the sweeper's next listing).
        self.vault.remove_files_after_delete(id, None).await;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// List tenants, a page at a time (root token only).
    #[oai(
        path = "/TenantListTenants",
        method = "post",
        operation_id = "TenantListTenants"
    )]
    async fn tenant_list(
        &self,
        caller: Authenticated,
        body: JsonBody<PageRequest>,
    ) -> Result<Json<TenantList>, ApiError> {
        let (offset, limit) = page(body.0.offset, body.0.limit)?;
        let page = self.tenants.list_tenants(&caller.0, offset, limit).await?;
        Ok(Json(TenantList {
            status: Status::Ok,
            total: page.total,
            rows: page.rows.into_iter().map(TenantRow::from).collect(),
        }))
    }
}

/// The access-token commands of a tenant (not in the upstream contract): TenantListTokens,
/// TenantRevokeToken, TenantRotateToken. Root in any tenant (X-Bunker-Tenant), an admin in its own.
pub struct AccessTokenApi {
    pub tenants: Tenants,
}

#[derive(Debug, Object, Deserialize)]
pub struct NoFields {}

#[derive(Debug, Object)]
pub struct AccessTokenRow {
    /// The token's id (not its value, which Bunker never keeps).
    tokenid: String,
    /// `tenant_admin`, `role` or `user`.
    kind: String,
    #[oai(skip_serializing_if_is_none)]
    rolename: Option<String>,
    /// The user a user token acts as.
    #[oai(skip_serializing_if_is_none)]
    token: Option<String>,
    /// When it was made (Unix seconds).
    created: i64,
    #[oai(skip_serializing_if_is_none)]
    expirationtime: Option<i64>,
}

#[derive(Debug, Object)]
pub struct AccessTokenList {
    status: Status,
    rows: Vec<AccessTokenRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct RevokeRequest {
    /// The id TenantListTokens shows.
    tokenid: String,
}

#[derive(Debug, Object)]
pub struct RotatedToken {
    status: Status,
    /// The tenant's new admin token, shown once; every earlier one no longer works.
    xtoken: String,
}

#[OpenApi(tag = "ApiTags::Tenants")]
impl AccessTokenApi {
    /// List the tenant's access tokens (ids, kinds, expiry; never their values).
    #[oai(
        path = "/TenantListTokens",
        method = "post",
        operation_id = "TenantListTokens"
    )]
    async fn tenant_list_tokens(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<AccessTokenList>, ApiError> {
        let tokens = self.tenants.list_tokens(&caller.0).await?;
        Ok(Json(AccessTokenList {
            status: Status::Ok,
            rows: tokens
                .into_iter()
                .map(|t| AccessTokenRow {
                    tokenid: t.id.to_string(),
                    kind: t.kind.as_str().to_owned(),
                    rolename: t.role,
                    token: t.user_token.map(|u| u.to_string()),
                    created: t.created_at,
                    expirationtime: t.expires_at,
                })
                .collect(),
        }))
    }

    /// Revoke one of the tenant's access tokens, at once on every server.
    #[oai(
        path = "/TenantRevokeToken",
        method = "post",
        operation_id = "TenantRevokeToken"
    )]
    async fn tenant_revoke_token(
        &self,
        caller: Authenticated,
        body: JsonBody<RevokeRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let id = uuid::Uuid::try_parse(body.0.tokenid.trim())
            .map_err(|_| ApiError::bad_request("tokenid must be a token id (a UUID)"))?;
        self.tenants.revoke_token(&caller.0, id).await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Give the tenant a new admin token (shown once) and revoke every earlier one.
    #[oai(
        path = "/TenantRotateToken",
        method = "post",
        operation_id = "TenantRotateToken"
    )]
    async fn tenant_rotate_token(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<RotatedToken>, ApiError> {
        let token = self.tenants.rotate_admin_token(&caller.0).await?;
        Ok(Json(RotatedToken {
            status: Status::Ok,
            xtoken: token.secret.expose_secret().to_owned(),
        }))
    }
}

impl From<TenantRecord> for TenantRow {
    fn from(tenant: TenantRecord) -> Self {
        TenantRow {
            tenantid: tenant.id.0,
            tenantname: tenant.name,
            tenantorg: tenant.org,
        }
    }
}

/// The tenant's own key (Bunker's own commands): TenantKeyGet, TenantKeySetWrapping,
/// TenantKeyRotate. Root in any tenant (X-Bunker-Tenant); a tenant admin reads its own, and changes
/// it where the operator allows (`BUNKER_TENANT_KEY_ADMIN`).
pub struct TenantKeyApi {
    pub vault: bunker_services::Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct SetWrappingRequest {
    /// The AWS KMS key that is to wrap the tenant's key (key id, key ARN or alias ARN; the key
    /// policy or a grant must let Bunker's role use kms:Encrypt and kms:Decrypt), or `master` to
    /// wrap it with the installation's master key again.
    kmskeyid: String,
}

#[derive(Debug, Object)]
pub struct TenantKeyVersionView {
    version: i32,
    /// `master` or `kms`.
    wrapping: String,
    /// The KMS key wrapping this version, if one does.
    kmskeyid: Option<String>,
    /// `current` (new values are sealed with it), `pending` (sealed with once every server has
    /// loaded it), `held` (opens values not yet re-sealed) or `retired` (destroyed).
    state: String,
    /// When it was made (Unix seconds).
    created: i64,
}

#[derive(Debug, Object)]
pub struct TenantKeyView {
    status: Status,
    versions: Vec<TenantKeyVersionView>,
    /// Whether values of the tenant may still be sealed with keys once derived from the master
    /// key (a tenant made before tenant keys, until `bunker keys reencrypt` has run).
    masterderived: bool,
    /// How long a server keeps the tenant's keys unwrapped: the bound within which revoking the
    /// tenant's KMS key stops its reads and writes everywhere.
    cacheseconds: u64,
}

impl From<bunker_services::keys::TenantKeyStatus> for TenantKeyView {
    fn from(status: bunker_services::keys::TenantKeyStatus) -> Self {
        TenantKeyView {
            status: Status::Ok,
            versions: status
                .versions
                .into_iter()
                .map(|v| TenantKeyVersionView {
                    version: v.version,
                    wrapping: v.wrapping.to_owned(),
                    kmskeyid: v.kms_key_id,
                    state: v.state.to_owned(),
                    created: v.created_at,
                })
                .collect(),
            masterderived: status.master_derived_values,
            cacheseconds: status.cache_seconds,
        }
    }
}

#[OpenApi(tag = "ApiTags::Tenants")]
impl TenantKeyApi {
    /// The tenant's key versions and what wraps each (never a key).
    #[oai(path = "/TenantKeyGet", method = "post", operation_id = "TenantKeyGet")]
    async fn tenant_key_get(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<TenantKeyView>, ApiError> {
        Ok(Json(self.vault.tenant_key_status(&caller.0).await?.into()))
    }

    /// Wrap the tenant's key with an AWS KMS key the tenant owns (checked to encrypt and decrypt
    /// first), or with the master key again (`master`). Revoking that KMS key later stops the
    /// tenant's reads and writes within the cache lifetime on every server.
    #[oai(
        path = "/TenantKeySetWrapping",
        method = "post",
        operation_id = "TenantKeySetWrapping"
    )]
    async fn tenant_key_set_wrapping(
        &self,
        caller: Authenticated,
        body: JsonBody<SetWrappingRequest>,
    ) -> Result<Json<TenantKeyView>, ApiError> {
        let with = bunker_services::keys::WrapWith::parse(&body.0.kmskeyid)?;
        Ok(Json(
            self.vault
                .set_tenant_key_wrapping(&caller.0, with)
                .await?
                .into(),
        ))
    }

    /// Add the next version of the tenant's key (sealed with after one cache lifetime; `bunker
    /// keys reencrypt` re-seals older values and retires the old version). Lookups are unchanged.
    #[oai(
        path = "/TenantKeyRotate",
        method = "post",
        operation_id = "TenantKeyRotate"
    )]
    async fn tenant_key_rotate(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<TenantKeyView>, ApiError> {
        Ok(Json(self.vault.rotate_tenant_key(&caller.0).await?.into()))
    }
}
