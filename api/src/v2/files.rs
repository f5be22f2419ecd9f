//! File commands: FileCreate, FileGet (JSON with base64, or the raw bytes), FileListUserFiles,
//! FileReplaceTags, FileDelete and BulkListFilesByTag.

use poem::http::header;
use poem::{Body, IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{page, ApiTags, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::core::expiry::Expiry;
use bunker_services::core::Mode;
use bunker_services::files::{
    check_mimetype, to_base64, FileCreated, FileInfo, FileSelector, FileUpload, Tags,
};
use bunker_services::Vault;

/// The file commands.
pub struct FileApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct FileWrite {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    /// 1 to 255 characters; sealed.
    filename: String,
    /// The content, base64 (standard alphabet, padded), at most `BUNKER_MAX_FILE_BYTES` decoded.
    filedata: String,
    /// The media type; detected from the content when absent.
    mimetype: Option<String>,
    /// A list of tags (or one string of tags separated by commas): lower-cased, de-duplicated,
    /// sorted; each `^[a-z0-9][a-z0-9._-]{0,49}$`, at most 16.
    tags: Option<Value>,
    /// A sliding window, renewed on every FileGet.
    slidingtime: Option<Value>,
    /// A hard cutoff: a duration or a Unix time.
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct FileCreatedAnswer {
    status: Status,
    token: String,
    fileuuid: String,
    /// The user had this content already: nothing new was stored, and `fileuuid` is that file.
    duplicate: bool,
    tags: Vec<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct FileSelectorBody {
    mode: String,
    identity: String,
    fileuuid: Option<String>,
    /// The newest file of this name (when no `fileuuid` is given).
    filename: Option<String>,
    /// Answer the bytes themselves, with the file's Content-Type and a Content-Disposition.
    raw: Option<bool>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct FileView {
    status: Status,
    token: String,
    fileuuid: String,
    filename: String,
    mimetype: String,
    size: i64,
    /// The content, base64.
    filedata: String,
    tags: Vec<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct FileUser {
    mode: String,
    identity: String,
    /// Only the files carrying this one tag.
    tag: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct FileItem {
    fileuuid: String,
    filename: String,
    mimetype: String,
    size: i64,
    /// Hex of a keyed hash of the content and its owner: the same content of the same user gives
    /// the same value, another user's does not.
    doublehash: String,
    /// Unix seconds.
    creationtime: i64,
    tags: Vec<String>,
}

#[derive(Debug, Object)]
pub struct FileList {
    status: Status,
    token: String,
    files: Vec<FileItem>,
}

#[derive(Debug, Object, Deserialize)]
pub struct FileTagsWrite {
    mode: String,
    identity: String,
    fileuuid: String,
    /// The complete new set (as FileCreate's `tags`).
    tags: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct FileTagsAnswer {
    status: Status,
    tags: Vec<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct FileDeleteBody {
    mode: String,
    identity: String,
    fileuuid: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct FileDeleted {
    status: Status,
    token: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct FilesByTag {
    unlockuuid: String,
    /// One tag (a comma list is not split).
    tag: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct TaggedFile {
    /// The owner's user token.
    token: String,
    #[oai(flatten)]
    file: FileItem,
}

#[derive(Debug, Object)]
pub struct TaggedFiles {
    status: Status,
    total: i64,
    rows: Vec<TaggedFile>,
}

fn file_uuid(text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text.trim())
        .map_err(|_| ApiError::bad_request("Invalid fileuuid: a UUID is expected"))
}

fn item(info: FileInfo) -> FileItem {
    FileItem {
        fileuuid: info.fileuuid.to_string(),
        filename: info.filename,
        mimetype: info.mimetype,
        size: info.size,
        doublehash: info.doublehash,
        creationtime: info.creationtime,
        tags: info.tags,
    }
}

/// FileGet's answer: JSON with the content in base64, or the bytes themselves.
pub enum FileGetAnswer {
    Json(Box<FileView>),
    Raw {
        mimetype: String,
        filename: String,
        size: i64,
        body: Body,
    },
}

/// `attachment`, with the name in ASCII (others replaced) and in full (RFC 6266, RFC 8187).
fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let full = percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{full}")
}

impl IntoResponse for FileGetAnswer {
    fn into_response(self) -> Response {
        match self {
            FileGetAnswer::Json(view) => poem::web::Json(view.to_json()).into_response(),
            FileGetAnswer::Raw {
                mimetype,
                filename,
                size,
                body,
            } => Response::builder()
                .header(header::CONTENT_TYPE, mimetype)
                .header(header::CONTENT_DISPOSITION, content_disposition(&filename))
                .header(header::CONTENT_LENGTH, size)
                // Never rendered as a page of this origin, whatever its type says.
                .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .header(header::CONTENT_SECURITY_POLICY, "sandbox")
                .body(body),
        }
    }
}

impl ApiResponse for FileGetAnswer {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The file: JSON with its content in base64, or (with `raw`) its bytes",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: FileView::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "application/octet-stream",
                        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format(
                            "string", "binary",
                        ))),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        FileView::register(registry);
    }
}

#[OpenApi(tag = "ApiTags::Files")]
impl FileApi {
    /// Store a file for a user (or find the same content stored already).
    #[oai(path = "/FileCreate", method = "post", operation_id = "FileCreate")]
    async fn file_create(
        &self,
        caller: Authenticated,
        body: JsonBody<FileWrite>,
    ) -> Result<Json<FileCreatedAnswer>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let upload = FileUpload {
            filename: request.filename,
            filedata: request.filedata,
            mimetype: request
                .mimetype
                .as_deref()
                .map(check_mimetype)
                .transpose()?,
            tags: Tags::parse(request.tags.as_ref())?,
            expiry: Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?,
        };
        let FileCreated {
            token,
            fileuuid,
            duplicate,
            tags,
        } = self
            .vault
            .create_file(
                &caller.0,
                mode,
                &request.identity,
                upload,
                request.request_metadata,
            )
            .await?;
        Ok(Json(FileCreatedAnswer {
            status: Status::Ok,
            token: token.to_string(),
            fileuuid: fileuuid.to_string(),
            duplicate,
            tags,
        }))
    }

    /// Read a file: by uuid, or the newest of a name; JSON, or the raw bytes.
    #[oai(path = "/FileGet", method = "post", operation_id = "FileGet")]
    async fn file_get(
        &self,
        caller: Authenticated,
        body: JsonBody<FileSelectorBody>,
    ) -> Result<FileGetAnswer, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let selector = match (&request.fileuuid, request.filename) {
            (Some(id), _) => FileSelector::Id(file_uuid(id)?),
            (None, Some(name)) => FileSelector::Name(name),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "Missing API request parameters: fileuuid or filename",
                ))
            }
        };
        let read = self
            .vault
            .get_file(
                &caller.0,
                mode,
                &request.identity,
                selector,
                request.request_metadata,
            )
            .await?;
        let info = read.info;
        if request.raw == Some(true) {
            use futures_util::TryStreamExt;
            let stream = read.content.map_err(|err| {
                // The answer has begun: the connection is cut rather than the file finished.
                std::io::Error::other(err.to_string())
            });
            return Ok(FileGetAnswer::Raw {
                mimetype: info.mimetype,
                filename: info.filename,
                size: info.size,
                body: Body::from_bytes_stream(stream),
            });
        }
        let filedata = to_base64(read.content, info.size).await?;
        Ok(FileGetAnswer::Json(Box::new(FileView {
            status: Status::Ok,
            token: info.token.to_string(),
            fileuuid: info.fileuuid.to_string(),
            filename: info.filename,
            mimetype: info.mimetype,
            size: info.size,
            filedata,
            tags: info.tags,
        })))
    }

    /// The descriptions of a user's files (never their content), of one tag if given.
    #[oai(
        path = "/FileListUserFiles",
        method = "post",
        operation_id = "FileListUserFiles"
    )]
    async fn file_list_user_files(
        &self,
        caller: Authenticated,
        body: JsonBody<FileUser>,
    ) -> Result<Json<FileList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let (token, infos) = self
            .vault
            .list_user_files(
                &caller.0,
                mode,
                &request.identity,
                request.tag,
                request.request_metadata,
            )
            .await?;
        Ok(Json(FileList {
            status: Status::Ok,
            token: token.to_string(),
            files: infos.into_iter().map(item).collect(),
        }))
    }

    /// Replace a file's tags with a new set.
    #[oai(
        path = "/FileReplaceTags",
        method = "post",
        operation_id = "FileReplaceTags"
    )]
    async fn file_replace_tags(
        &self,
        caller: Authenticated,
        body: JsonBody<FileTagsWrite>,
    ) -> Result<Json<FileTagsAnswer>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let file = file_uuid(&request.fileuuid)?;
        let tags = Tags::parse(Some(&request.tags))?;
        let tags = self
            .vault
            .replace_file_tags(
                &caller.0,
                mode,
                &request.identity,
                file,
                tags,
                request.request_metadata,
            )
            .await?;
        Ok(Json(FileTagsAnswer {
            status: Status::Ok,
            tags,
        }))
    }

    /// Delete a file: its key, its description and its stored object.
    #[oai(path = "/FileDelete", method = "post", operation_id = "FileDelete")]
    async fn file_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<FileDeleteBody>,
    ) -> Result<Json<FileDeleted>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let file = file_uuid(&request.fileuuid)?;
        let token = self
            .vault
            .delete_file(
                &caller.0,
                mode,
                &request.identity,
                file,
                request.request_metadata,
            )
            .await?;
        Ok(Json(FileDeleted {
            status: Status::Ok,
            token: token.to_string(),
        }))
    }

    /// Behind an unlock: one page of the tenant's files carrying a tag, with their owners.
    #[oai(
        path = "/BulkListFilesByTag",
        method = "post",
        operation_id = "BulkListFilesByTag"
    )]
    async fn bulk_list_files_by_tag(
        &self,
        caller: Authenticated,
        body: JsonBody<FilesByTag>,
    ) -> Result<Json<TaggedFiles>, ApiError> {
        let request = body.0;
        let (offset, limit) = page(request.offset, request.limit)?;
        let (infos, total) = self
            .vault
            .bulk_list_files_by_tag(
                &caller.0,
                request.unlockuuid,
                request.tag,
                offset,
                limit,
                request.request_metadata,
            )
            .await?;
        Ok(Json(TaggedFiles {
            status: Status::Ok,
            total,
            rows: infos
                .into_iter()
                .map(|info| TaggedFile {
                    token: info.token.to_string(),
                    file: item(info),
                })
                .collect(),
        }))
    }
}
