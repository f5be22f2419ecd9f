//! The connection to PostgreSQL: the database URL (or libpq `key=value` string) with libpq's
//! `sslmode` and `sslrootcert`, over rustls.
//!
//! tokio-postgres knows `sslmode` only as `disable`, `prefer` and `require`, and no `sslrootcert`:
//! this module takes both out of the string, lets tokio-postgres parse the rest, and builds the TLS
//! client that does what libpq does for each mode:
//!
//! | sslmode | encrypts | checks the certificate chain | checks the host name |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `prefer` | if the server offers it | if `sslrootcert` is given | no |
//! | `require` | yes | if `sslrootcert` is given | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Without `sslmode`: `disable` for a Unix socket, `prefer` for the loopback host, `require` for
//! any other host. The certificates trusted are those of `sslrootcert` (a PEM file, such as the RDS
//! CA bundle), else the system's.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::DbError;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = DbError;

    fn from_str(value: &str) -> Result<Self, DbError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(DbError::Tls(
                    "sslmode must be disable, prefer, require, verify-ca or verify-full".into(),
                ))
            }
        })
    }
}

/// How to connect: the driver's configuration and the TLS client it uses.
#[derive(Clone)]
pub struct Connection {
    pub config: Config,
    pub tls: Tls,
    pub mode: SslMode,
}

/// The TLS client of a connection. The driver asks for one for every host, Unix sockets included
/// (whose paths are no server names, and over which PostgreSQL never speaks TLS): a socket (the
/// driver gives an empty name) gets a client for `localhost` that is never used. Any other host
/// is checked as it is named, and one that is no valid server name is refused.
#[derive(Clone)]
pub struct Tls(MakeRustlsConnect);

impl<S> MakeTlsConnect<S> for Tls
where
    MakeRustlsConnect: MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
        // The driver names no host for a Unix socket (an empty string); a path is passed on too.
        let name = if host.is_empty() || host.starts_with('/') {
            "localhost"
        } else {
            host
        };
        self.0.make_tls_connect(name)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Parses a database URL or libpq string (see the module).
pub fn parse(url: &str) -> Result<Connection, DbError> {
    let (rest, options) = take_tls_options(url)?;
    let mut config = Config::from_str(&rest)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("bunker");
    let mode = match &options.mode {
        Some(mode) => mode.parse()?,
        None => default_mode(&config),
    };
    if mode == SslMode::VerifyFull && config.get_hosts().len() < config.get_hostaddrs().len() {
        // The driver would check such an address's certificate against no name at all.
        return Err(DbError::Tls(
            "sslmode=verify-full needs a host naming the server for every hostaddr".to_owned(),
        ));
    }
    config.ssl_mode(match mode {
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer => DriverSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
    });
    let tls = Tls(MakeRustlsConnect::new(client_config(
        mode,
        options.root_cert.as_deref(),
    )?));
    Ok(Connection { config, tls, mode })
}

/// `disable` when every host is a Unix socket, `require` when any is a host other than the
/// loopback, `prefer` otherwise.
fn default_mode(config: &Config) -> SslMode {
    let hosts = config.get_hosts();
    // A `hostaddr` is where the connection goes, whatever `host` names.
    let addresses = config.get_hostaddrs();
    let remote = hosts.iter().any(|host| match host {
        Host::Tcp(name) => !matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
        Host::Unix(_) => false,
    }) || addresses.iter().any(|a| !a.is_loopback());
    if remote {
        SslMode::Require
    } else if addresses.is_empty()
        && !hosts.is_empty()
        && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
    {
        SslMode::Disable
    } else {
        SslMode::Prefer
    }
}

fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, DbError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => {
            Arc::new(AnyCertificate(provider))
        }
        (SslMode::VerifyFull, _) => webpki(roots(root_cert)?, &provider)?,
        (SslMode::VerifyCa | SslMode::Prefer | SslMode::Require, _) => Arc::new(ChainOnly {
            inner: webpki(roots(root_cert)?, &provider)?,
        }),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, DbError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| DbError::Tls(format!("no usable root certificate: {e}")))?;
    Ok(verifier)
}

/// The certificates of `sslrootcert`, else the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, DbError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| DbError::Tls(format!("cannot read sslrootcert {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    DbError::Tls(format!(
                        "sslrootcert {path} is not a PEM certificate file: {e}"
                    ))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| DbError::Tls(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is skipped, as libpq's OpenSSL would.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(DbError::Tls(match root_cert {
            Some(path) => format!("sslrootcert {path} holds no PEM certificate"),
            None => "no system certificates to verify the database server with: give sslrootcert"
                .to_owned(),
        }));
    }
    Ok(roots)
}

/// The options this module handles, as found in the string.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` off a URL (`postgresql://…?sslmode=verify-full&…`) or a libpq
/// string (`host=… sslmode=verify-full sslrootcert='/path'`), returning the rest as it was.
fn take_tls_options(url: &str) -> Result<(String, TlsOptions), DbError> {
    let mut options = TlsOptions::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), options));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            // Keys are percent-decoded too (by the driver, as by libpq): `ssl%6Dode` is `sslmode`.
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(key)?.as_str() {
                "sslmode" => set_once(&mut options.mode, "sslmode", percent_decode(value)?)?,
                "sslrootcert" => set_once(
                    &mut options.root_cert,
                    "sslrootcert",
                    percent_decode(value)?,
                )?,
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, options));
    }
    let mut kept = Vec::new();
    for (key, value) in libpq_pairs(url)? {
        match key.as_str() {
            "sslmode" => set_once(&mut options.mode, "sslmode", value)?,
            "sslrootcert" => set_once(&mut options.root_cert, "sslrootcert", value)?,
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), options))
}

/// Sets a TLS option given once: a second value (where libpq would take the last, so that an
/// appended `sslmode=disable` silently wins) is refused.
fn set_once(slot: &mut Option<String>, name: &str, value: String) -> Result<(), DbError> {
    if slot.is_some() {
        return Err(DbError::Tls(format!(
            "{name} is given twice in the database URL"
        )));
    }
    *slot = Some(value);
    Ok(())
}

/// The `key=value` pairs of a libpq string: whitespace between pairs and around `=`; a value may be
/// single-quoted, with `\'` and `\\` inside.
fn libpq_pairs(text: &str) -> Result<Vec<(String, String)>, DbError> {
    let malformed = || DbError::Tls("the database connection string is not key=value pairs".into());
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(malformed());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next().ok_or_else(malformed)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or_else(malformed)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
}

fn percent_decode(value: &str) -> Result<String, DbError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DbError::Tls("a malformed %-escape in the database URL".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DbError::Tls("the database URL is not UTF-8".into()))
}

/// `require` and `prefer` without a root certificate: encrypted, not authenticated (as libpq).
/// The handshake's signatures are still checked, so the session is bound to the certificate shown.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_off_urls_and_libpq_strings() {
        let (rest, options) = take_tls_options(
            "postgresql://u:p@db.example.com/bunker?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Frds.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgresql://u:p@db.example.com/bunker?application_name=x"
        );
        assert_eq!(options.mode.as_deref(), Some("verify-full"));
        assert_eq!(options.root_cert.as_deref(), Some("/etc/rds.pem"));
        let (rest, options) = take_tls_options(
            "host=db port = 5432 sslmode=verify-ca sslrootcert='/a b/c\\'s.pem' user=u",
        )
        .unwrap();
        assert_eq!(rest, "host='db' port='5432' user='u'");
        assert_eq!(options.mode.as_deref(), Some("verify-ca"));
        assert_eq!(options.root_cert.as_deref(), Some("/a b/c's.pem"));
        assert!(take_tls_options("host=db sslmode").is_err());
        let (rest, options) =
            take_tls_options("postgresql://127.0.0.1/b?ssl%6Dode=require&x=1").unwrap();
        assert_eq!(rest, "postgresql://127.0.0.1/b?x=1");
        assert_eq!(options.mode.as_deref(), Some("require"));
        for twice in [
            "postgresql://db/b?sslmode=require&sslmode=disable",
            "postgresql://db/b?sslmode=require&ssl%6Dode=disable",
            "host=db sslrootcert=/a sslrootcert=/b",
        ] {
            assert!(take_tls_options(twice).is_err(), "{twice}");
        }
    }

    #[test]
    fn the_default_mode_depends_on_the_host() {
        for (url, mode) in [
            ("host=/run/postgresql dbname=b", SslMode::Disable),
            ("host=localhost dbname=b", SslMode::Prefer),
            ("postgresql://db.example.com/b", SslMode::Require),
            (
                "postgresql://db.example.com/b?sslmode=disable",
                SslMode::Disable,
            ),
            // The address is where the connection goes, whatever the host says.
            (
                "host=localhost hostaddr=10.0.0.5 dbname=b",
                SslMode::Require,
            ),
            ("host=/tmp hostaddr=10.0.0.5 dbname=b", SslMode::Require),
            ("hostaddr=127.0.0.1 dbname=b", SslMode::Prefer),
        ] {
            assert_eq!(parse(url).unwrap().mode, mode, "{url}");
        }
        assert!(parse("postgresql://db/b?sslmode=sometimes").is_err());
        // verify-full has no name to check an address's certificate against.
        assert!(parse("hostaddr=10.0.0.5 dbname=b sslmode=verify-full").is_err());
    }
}
