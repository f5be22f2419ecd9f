//! Where the master key's primary wrapping comes from: a local wrapping key (environment or file),
//! or AWS KMS. Exactly one is configured; the master key row records which one wrapped it.

use std::fmt;

use bunker_keys::{KeyError, MasterKey, WrappingKey};
use uuid::Uuid;

/// Why wrapping or unwrapping failed. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("AWS KMS: {0}")]
    Kms(String),
    #[error("the master key is wrapped by {stored}, but {configured} is configured")]
    SourceMismatch {
        stored: String,
        configured: &'static str,
    },
}

/// The configured wrapping source.
pub enum WrappingSource {
    /// A 256-bit key held by the operator (`BUNKER_WRAPPING_KEY[_FILE]`).
    Local(WrappingKey),
    /// A KMS key (`BUNKER_KMS_KEY_ID`).
    #[cfg(feature = "kms")]
    Kms(kms::KmsWrapper),
}

impl WrappingSource {
    /// What wraps the master key, in words (never the key).
    pub fn describe(&self) -> &'static str {
        match self {
            WrappingSource::Local(_) => "a local wrapping key",
            #[cfg(feature = "kms")]
            WrappingSource::Kms(_) => "AWS KMS",
        }
    }
}

impl fmt::Debug for WrappingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

impl WrappingSource {
    /// The name stored in `master_keys.wrap_source`.
    pub fn kind(&self) -> &'static str {
        match self {
            WrappingSource::Local(_) => "local",
            #[cfg(feature = "kms")]
            WrappingSource::Kms(_) => "kms",
        }
    }

    /// Wraps `master` for this installation.
    pub async fn wrap(&self, master: &MasterKey, installation: Uuid) -> Result<Vec<u8>, WrapError> {
        let _ = installation;
        match self {
            WrappingSource::Local(key) => Ok(master.wrap(key)?),
            #[cfg(feature = "kms")]
            WrappingSource::Kms(kms) => kms.wrap(master, installation).await,
        }
    }

    /// Unwraps a master key that this kind of source wrapped.
    pub async fn unwrap(
        &self,
        version: i32,
        wrapped: &[u8],
        stored_source: &str,
        installation: Uuid,
    ) -> Result<MasterKey, WrapError> {
        if stored_source != self.kind() {
            return Err(WrapError::SourceMismatch {
                stored: stored_source.to_owned(),
                configured: self.kind(),
            });
        }
        let _ = installation;
        match self {
            WrappingSource::Local(key) => Ok(MasterKey::unwrap(version, wrapped, key)?),
            #[cfg(feature = "kms")]
            WrappingSource::Kms(kms) => kms.unwrap(version, wrapped, installation).await,
        }
    }
}

#[cfg(feature = "kms")]
pub mod kms {
    //! AWS KMS through the real SDK: the master key is sent to KMS `Encrypt` with an encryption
    //! context naming the installation and the key version, and comes back only via `Decrypt` with
    //! the same context. Bounded: 3 attempts, 3 s to connect, 15 s per operation.

    use std::time::Duration;

    use aws_config::meta::region::RegionProviderChain;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::BehaviorVersion;
    use aws_sdk_kms::error::DisplayErrorContext;
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::Client;
    use bunker_keys::MasterKey;
    use uuid::Uuid;
    use zeroize::Zeroizing;

    use super::WrapError;

    /// A client from the standard AWS credential chain (environment, profile, IRSA on EKS, ...),
    /// optionally pointed at another endpoint (`BUNKER_KMS_ENDPOINT`); bounded as above.
    async fn client(endpoint: Option<String>) -> Client {
        let region = RegionProviderChain::default_provider().or_else("us-east-1");
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(15))
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Client::new(&loader.load().await)
    }

    /// Why a call for a tenant's own key failed: KMS answered no (the key is disabled, pending
    /// deletion, unknown, or Bunker's access was revoked), or could not be reached. The text is
    /// KMS's own (it names the key, never key material).
    #[derive(Debug, thiserror::Error)]
    pub enum KmsFailure {
        #[error("AWS KMS refused: {0}")]
        Refused(String),
        #[error("AWS KMS could not be reached: {0}")]
        Unreachable(String),
    }

    fn failure<E, R>(err: aws_sdk_kms::error::SdkError<E, R>) -> KmsFailure
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let refused = matches!(err, aws_sdk_kms::error::SdkError::ServiceError(_));
        // The SDK's context can carry a whole HTTP answer: its start says what happened.
        let mut text = DisplayErrorContext(err).to_string();
        if let Some((cut, _)) = text.char_indices().nth(300) {
            text.truncate(cut);
            text.push_str("...");
        }
        if refused {
            KmsFailure::Refused(text)
        } else {
            KmsFailure::Unreachable(text)
        }
    }

    /// A client for tenants' own KMS keys: each call names the key (an id or ARN the tenant gave,
    /// possibly in another account, whose key policy or grant lets Bunker's role use it).
    pub struct TenantKms {
        client: Client,
    }

    impl TenantKms {
        pub async fn new(endpoint: Option<String>) -> Self {
            TenantKms {
                client: client(endpoint).await,
            }
        }

        /// Refuses a key that is not enabled (disabled, pending deletion or import, unavailable),
        /// as KMS `DescribeKey` reports it: the cause is then named, and a key whose state a
        /// stand-in does not enforce on Decrypt is refused all the same. A role that may not
        /// describe the key is refused too (Bunker needs kms:DescribeKey, kms:Encrypt and
        /// kms:Decrypt on a tenant's key).
        async fn require_enabled(&self, key_id: &str) -> Result<String, KmsFailure> {
            let described = self
                .client
                .describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(failure)?;
            let metadata = described.key_metadata();
            let state = metadata
                .and_then(|m| m.key_state())
                .map(|s| s.as_str().to_owned());
            let arn = metadata.and_then(|m| m.arn()).unwrap_or(key_id).to_owned();
            match state.as_deref() {
                Some("Enabled") => Ok(arn),
                Some(other) => Err(KmsFailure::Refused(format!("the key is {other}"))),
                None => Err(KmsFailure::Refused("the key's state is unknown".to_owned())),
            }
        }

        /// The key's ARN (an alias or key id resolved), if the key is enabled.
        pub async fn key_arn(&self, key_id: &str) -> Result<String, KmsFailure> {
            self.require_enabled(key_id).await
        }

        /// KMS `Encrypt` of `plain` under `key_id` with this encryption context.
        pub async fn encrypt(
            &self,
            key_id: &str,
            plain: &[u8],
            context: &[(&str, String)],
        ) -> Result<Vec<u8>, KmsFailure> {
            self.require_enabled(key_id).await?;
            let mut call = self
                .client
                .encrypt()
                .key_id(key_id)
                .plaintext(Blob::new(plain.to_vec()));
            for (name, value) in context {
                call = call.encryption_context(*name, value);
            }
            let out = call.send().await.map_err(failure)?;
            out.ciphertext_blob()
                .map(|blob| blob.as_ref().to_vec())
                .ok_or_else(|| KmsFailure::Refused("Encrypt returned no ciphertext".to_owned()))
        }

        /// KMS `Decrypt` of `wrapped` under `key_id` with this encryption context.
        pub async fn decrypt(
            &self,
            key_id: &str,
            wrapped: &[u8],
            context: &[(&str, String)],
        ) -> Result<Zeroizing<Vec<u8>>, KmsFailure> {
            self.require_enabled(key_id).await?;
            let mut call = self
                .client
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(wrapped.to_vec()));
            for (name, value) in context {
                call = call.encryption_context(*name, value);
            }
            let out = call.send().await.map_err(failure)?;
            out.plaintext()
                .map(|blob| Zeroizing::new(blob.as_ref().to_vec()))
                .ok_or_else(|| KmsFailure::Refused("Decrypt returned no plaintext".to_owned()))
        }
    }

    /// A KMS key and a client for it.
    pub struct KmsWrapper {
        client: Client,
        key_id: String,
    }

    impl KmsWrapper {
        /// A client from the standard AWS credential chain (environment, profile, IRSA on EKS, ...),
        /// optionally pointed at another endpoint (`BUNKER_KMS_ENDPOINT`).
        pub async fn new(key_id: String, endpoint: Option<String>) -> Self {
            KmsWrapper {
                client: client(endpoint).await,
                key_id,
            }
        }

        pub(crate) async fn wrap(
            &self,
            master: &MasterKey,
            installation: Uuid,
        ) -> Result<Vec<u8>, WrapError> {
            let out = self
                .client
                .encrypt()
                .key_id(&self.key_id)
                .plaintext(Blob::new(master.expose_for_wrapping().to_vec()))
                .encryption_context("bunker:installation", installation.to_string())
                .encryption_context("bunker:master-key-version", master.version().to_string())
                .send()
                .await
                .map_err(|e| WrapError::Kms(DisplayErrorContext(e).to_string()))?;
            out.ciphertext_blob()
                .map(|blob| blob.as_ref().to_vec())
                .ok_or_else(|| WrapError::Kms("Encrypt returned no ciphertext".to_owned()))
        }

        pub(crate) async fn unwrap(
            &self,
            version: i32,
            wrapped: &[u8],
            installation: Uuid,
        ) -> Result<MasterKey, WrapError> {
            let out = self
                .client
                .decrypt()
                .key_id(&self.key_id)
                .ciphertext_blob(Blob::new(wrapped.to_vec()))
                .encryption_context("bunker:installation", installation.to_string())
                .encryption_context("bunker:master-key-version", version.to_string())
                .send()
                .await
                .map_err(|e| WrapError::Kms(DisplayErrorContext(e).to_string()))?;
            let plain = Zeroizing::new(
                out.plaintext()
                    .map(|blob| blob.as_ref().to_vec())
                    .ok_or_else(|| WrapError::Kms("Decrypt returned no plaintext".to_owned()))?,
            );
            Ok(MasterKey::from_unwrapped(version, &plain)?)
        }
    }
}
