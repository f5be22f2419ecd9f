//! Where file contents live: object storage through the `object_store` crate, on the local
//! filesystem (`file:///path`, the demo's default) or in S3 (`s3://bucket/prefix`, credentials from
//! the environment's AWS chain: variables, web identity (IRSA), container or instance
//! credentials; `BUNKER_S3_ENDPOINT` for a stand-in or an S3-compatible store).
//!
//! Objects are named `tenant/<tenant id>/<user token>/<file id>` and carry no metadata: no personal
//! data is in a name, and the content is sealed (see [`super::chunks`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use uuid::Uuid;

use crate::core::VaultError;

/// Where the file vault stores, as configured.
#[derive(Clone, Debug)]
pub struct FilesSettings {
    /// `BUNKER_FILES_URL`: `file:///path` or `s3://bucket/prefix` (none: no file vault).
    pub url: Option<String>,
    /// `BUNKER_S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
    /// `BUNKER_MAX_FILE_BYTES`.
    pub max_file_bytes: u64,
    /// How old an object without a row must be before the sweeper removes it (an upload has its
    /// row a moment after its object): an hour, less in tests.
    pub orphan_grace: Duration,
}

/// How large a part an upload buffers before sending it (S3's parts are at least 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// The object store of the file vault.
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    /// What the store is, for logs (never a credential).
    kind: &'static str,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("kind", &self.kind)
            .finish()
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("BUNKER_FILES_URL: {0}")]
pub struct StoreConfigError(String);

impl FileStore {
    /// Opens the store `url` names.
    pub fn open(url: &str, s3_endpoint: Option<&str>) -> Result<Self, StoreConfigError> {
        let parsed = url::Url::parse(url).map_err(|_| {
            StoreConfigError("not a URL: use file:///path or s3://bucket/prefix".into())
        })?;
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|_| StoreConfigError("a file URL needs an absolute path".into()))?;
                std::fs::create_dir_all(&path).map_err(|err| {
                    StoreConfigError(format!("cannot create {}: {err}", path.display()))
                })?;
                // The server's alone, as PostgreSQL's data directory is.
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                        .map_err(|err| {
                            StoreConfigError(format!("cannot restrict {}: {err}", path.display()))
                        })?;
                }
                let local = LocalFileSystem::new_with_prefix(&path)
                    .map_err(|err| StoreConfigError(err.to_string()))?
                    .with_automatic_cleanup(true);
                Ok(FileStore {
                    store: Arc::new(local),
                    kind: "file",
                })
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| StoreConfigError("an s3 URL names a bucket".into()))?;
                // A stalled store answers 503 within about half a minute rather than holding the
                // request for minutes (object_store's default retries for up to 3 minutes).
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(Duration::from_secs(20))
                            .with_connect_timeout(Duration::from_secs(5)),
                    )
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig::default(),
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(15),
                    });
                if let Some(endpoint) = s3_endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder
                    .build()
                    .map_err(|err| StoreConfigError(err.to_string()))?;
                let prefix = parsed.path().trim_matches('/');
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                };
                Ok(FileStore { store, kind: "s3" })
            }
            _ => Err(StoreConfigError(
                "unknown scheme: use file:///path or s3://bucket/prefix".into(),
            )),
        }
    }

    /// The object of a file.
    pub(crate) fn path(tenant: i64, user: Uuid, file: Uuid) -> Path {
        Path::from(format!("tenant/{tenant}/{user}/{file}"))
    }

    /// A new upload to `path`; nothing is visible under it until [`Upload::finish`].
    pub(crate) fn upload(&self, path: Path) -> Upload {
        Upload {
            writer: BufWriter::with_capacity(self.store.clone(), path, PART_BYTES),
        }
    }

    /// The stored bytes of `path`, as they come, once the object is found to be `size` bytes long.
    pub(crate) async fn read(
        &self,
        path: &Path,
        size: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, VaultError>>, VaultError> {
        let got = self.store.get(path).await.map_err(|err| match err {
            object_store::Error::NotFound { .. } => {
                tracing::error!(object = %path, "a file's object is missing from the store");
                VaultError::FileDamaged
            }
            err => unavailable(self.kind, "read", err),
        })?;
        // A cut or grown object is refused before anything is answered.
        if got.meta.size != size {
            tracing::error!(object = %path, "a file's object is not the size it was stored with");
            return Err(VaultError::FileDamaged);
        }
        let kind = self.kind;
        Ok(got
            .into_stream()
            .map_err(move |err| unavailable(kind, "read", err))
            .boxed())
    }

    /// Removes `path` (already gone is fine).
    pub(crate) async fn remove(&self, path: &Path) -> Result<(), VaultError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(self.kind, "delete", err)),
        }
    }

    /// The file objects under `prefix` (`tenant/`, `tenant/<id>/`, `tenant/<id>/<user>/`);
    /// objects of other shapes are left out.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, VaultError> {
        let prefix = Path::from(prefix);
        let now = SystemTime::now();
        let mut found = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|err| unavailable(self.kind, "list", err))?;
            let parts: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_owned())
                .collect();
            let [root, tenant, _user, file] = parts.as_slice() else {
                continue;
            };
            let Ok(file) = Uuid::parse_str(file) else {
                continue;
            };
            if root != "tenant" {
                continue;
            }
            let modified: SystemTime = meta.last_modified.into();
            found.push(Listed {
                path: meta.location,
                tenant: tenant.parse().ok(),
                file,
                age: now.duration_since(modified).unwrap_or_default(),
            });
        }
        Ok(found)
    }
}

/// An object found by [`FileStore::list`].
pub(crate) struct Listed {
    pub path: Path,
    pub tenant: Option<i64>,
    pub file: Uuid,
    pub age: Duration,
}

/// An upload in progress.
pub(crate) struct Upload {
    writer: BufWriter,
}

impl Upload {
    /// Adds bytes to the object.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<(), VaultError> {
        self.writer
            .put(bytes)
            .await
            .map_err(|err| unavailable("object store", "write", err))
    }

    /// Completes the object.
    pub(crate) async fn finish(mut self) -> Result<(), VaultError> {
        use tokio::io::AsyncWriteExt;
        self.writer.shutdown().await.map_err(|err| {
            tracing::error!(error = %err, "a file upload could not be completed");
            VaultError::StorageUnavailable
        })
    }

    /// Gives the upload up, leaving nothing behind (as far as the store allows).
    pub(crate) async fn abort(mut self) {
        if let Err(err) = self.writer.abort().await {
            tracing::warn!(error = %err, "an abandoned file upload could not be cleaned up");
        }
    }
}

/// Logs why the store failed (its message names paths of ids, never personal data) and answers
/// 503.
fn unavailable(kind: &str, doing: &str, err: object_store::Error) -> VaultError {
    tracing::error!(store = kind, doing, error = %err, "the file store failed");
    VaultError::StorageUnavailable
}
