//! App data commands: AppdataCreate, AppdataGet, AppdataUpdate, AppdataDelete,
//! AppdataListUserAppNames, AppdataListAppNames, AppdataListVersions.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::tenants::NoFields;
use super::users::VersionList;
use super::{object, ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::appdata::AppName;
use bunker_services::core::Mode;
use bunker_services::Vault;

/// The app data commands.
pub struct AppdataApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct AppdataWrite {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    /// 2 to 31 characters: a letter, then letters, digits or `_` (lower-cased).
    appname: String,
    /// Any JSON object; sealed with the user's own key. For AppdataUpdate, merged into what is
    /// stored (given keys replace, `null` removes, nested objects merge).
    appdata: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AppdataSelector {
    mode: String,
    identity: String,
    appname: String,
    /// AppdataGet: a kept version (from 1); the current data when absent.
    #[serde(default, deserialize_with = "lenient::opt_int")]
    version: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AppdataUser {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct AppdataView {
    status: Status,
    appdata: Value,
}

#[derive(Debug, Object)]
pub struct AppNames {
    status: Status,
    apps: Vec<String>,
}

#[OpenApi(tag = "ApiTags::Appdata")]
impl AppdataApi {
    /// Store an object under an app name for a user, sealed with the user's key.
    #[oai(
        path = "/AppdataCreate",
        method = "post",
        operation_id = "AppdataCreate"
    )]
    async fn appdata_create(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let app = AppName::parse(&request.appname)?;
        let data = object(request.appdata, "appdata")?;
        self.vault
            .create_app_data(
                &caller.0,
                mode,
                &request.identity,
                app,
                data,
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Read a user's app data (or a kept version of it).
    #[oai(path = "/AppdataGet", method = "post", operation_id = "AppdataGet")]
    async fn appdata_get(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataSelector>,
    ) -> Result<Json<AppdataView>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let app = AppName::parse(&request.appname)?;
        let version = request
            .version
            .map(|v| i32::try_from(v).map_err(|_| ApiError::bad_request("Invalid version")))
            .transpose()?;
        let data = self
            .vault
            .get_app_data(
                &caller.0,
                mode,
                &request.identity,
                app,
                version,
                request.request_metadata,
            )
            .await?;
        Ok(Json(AppdataView {
            status: Status::Ok,
            appdata: Value::Object(data),
        }))
    }

    /// Merge changes into a user's app data; the result is kept as a new version.
    #[oai(
        path = "/AppdataUpdate",
        method = "post",
        operation_id = "AppdataUpdate"
    )]
    async fn appdata_update(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let app = AppName::parse(&request.appname)?;
        let change = object(request.appdata, "appdata")?;
        self.vault
            .update_app_data(
                &caller.0,
                mode,
                &request.identity,
                app,
                change,
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Delete a user's app data and its versions.
    #[oai(
        path = "/AppdataDelete",
        method = "post",
        operation_id = "AppdataDelete"
    )]
    async fn appdata_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let app = AppName::parse(&request.appname)?;
        self.vault
            .delete_app_data(
                &caller.0,
                mode,
                &request.identity,
                app,
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// The names of the apps a user has data for.
    #[oai(
        path = "/AppdataListUserAppNames",
        method = "post",
        operation_id = "AppdataListUserAppNames"
    )]
    async fn appdata_list_user_app_names(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataUser>,
    ) -> Result<Json<AppNames>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let apps = self
            .vault
            .list_user_app_names(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(AppNames {
            status: Status::Ok,
            apps,
        }))
    }

    /// The names of the apps any user of the tenant has data for.
    #[oai(
        path = "/AppdataListAppNames",
        method = "post",
        operation_id = "AppdataListAppNames"
    )]
    async fn appdata_list_app_names(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<AppNames>, ApiError> {
        let apps = self.vault.list_app_names(&caller.0).await?;
        Ok(Json(AppNames {
            status: Status::Ok,
            apps,
        }))
    }

    /// List the kept versions of a user's app data.
    #[oai(
        path = "/AppdataListVersions",
        method = "post",
        operation_id = "AppdataListVersions"
    )]
    async fn appdata_list_versions(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataSelector>,
    ) -> Result<Json<VersionList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let app = AppName::parse(&request.appname)?;
        let versions = self
            .vault
            .list_app_data_versions(
                &caller.0,
                mode,
                &request.identity,
                app,
                request.request_metadata,
            )
            .await?;
        Ok(Json(VersionList::of(versions)))
    }
}
