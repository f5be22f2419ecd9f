//! HTTPS served by Bunker itself (`BUNKER_TLS_CERT`, `BUNKER_TLS_KEY`: PEM files), with rustls.
//!
//! The certificate and key are read at start (a server whose files do not make a valid pair
//! refuses to start) and again on SIGHUP or when either file changes (looked at every few
//! seconds): a renewed certificate is served to new connections without a restart. A pair that
//! does not load is logged and the previous one kept.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use poem::listener::{IntoTlsConfigStream, RustlsCertificate, RustlsConfig};
use tokio::sync::mpsc;

/// Where the certificate (chain) and its private key are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the TLS certificate and key ({cert}, {key}) cannot be used: {reason}")]
pub struct TlsError {
    cert: String,
    key: String,
    reason: String,
}

/// How often the files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The configurations the listener serves: the one read now, then each reload.
pub type ConfigStream = Pin<Box<dyn Stream<Item = RustlsConfig> + Send>>;

impl TlsFiles {
    /// Reads and checks the pair.
    pub fn load(&self) -> Result<RustlsConfig, TlsError> {
        let refused = |reason: String| TlsError {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
            reason,
        };
        let cert = std::fs::read(&self.cert).map_err(|e| refused(e.to_string()))?;
        let key = std::fs::read(&self.key).map_err(|e| refused(e.to_string()))?;
        check_pair(&cert, &key).map_err(refused)?;
        let config = || {
            RustlsConfig::new()
                .fallback(RustlsCertificate::new().cert(cert.clone()).key(key.clone()))
        };
        // Building the stream builds rustls's server configuration: the same check the listener
        // makes, so that what passes here is what it serves.
        drop(config().into_stream().map_err(|e| refused(e.to_string()))?);
        Ok(config())
    }

    fn modified(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let at = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (at(&self.cert), at(&self.key))
    }

    /// The pair read now, then again on SIGHUP or a change to either file, for as long as the
    /// stream is polled.
    pub fn watch(self) -> Result<ConfigStream, TlsError> {
        let first = self.load()?;
        let (send, receive) = mpsc::channel::<RustlsConfig>(1);
        tokio::spawn(async move {
            let mut seen = self.modified();
            #[cfg(unix)]
            let mut hangups =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hangups.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                let reason = tokio::select! {
                    _ = hangup => "SIGHUP",
                    _ = tokio::time::sleep(WATCH_EVERY) => {
                        let now = self.modified();
                        if now == seen {
                            continue;
                        }
                        seen = now;
                        "file change"
                    }
                };
                match self.load() {
                    Ok(config) => {
                        tracing::info!(reason, "TLS certificate reloaded");
                        if send.send(config).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        tracing::error!(reason, error = %err, "TLS certificate not reloaded; the previous one is served")
                    }
                }
            }
        });
        let reloads = futures_util::stream::unfold(receive, |mut receive| async move {
            receive.recv().await.map(|config| (config, receive))
        });
        Ok(Box::pin(futures_util::StreamExt::chain(
            futures_util::stream::once(async move { first }),
            reloads,
        )))
    }
}

/// That `cert` is a PEM certificate chain and `key` the PEM private key of its first certificate.
/// (The listener's own check reads the two but does not compare them.)
fn check_pair(cert: &[u8], key: &[u8]) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("the key file: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map(drop)
        .map_err(|e| e.to_string())
}
