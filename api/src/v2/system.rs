//! System commands: SystemGenerateWrappingKey.

use bunker_db::audit::Performer;
use bunker_keys::WrappingKey;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use super::{ApiTags, Status};
use crate::http::app::KeyService;
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, JsonBody};
use bunker_services::access::Command;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::keys::{recover_masters, rewrap_masters, KeyAdminError};

/// The system commands.
pub struct SystemApi {
    pub keys: KeyService,
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
}
