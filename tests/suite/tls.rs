//! TLS to PostgreSQL: `sslmode` and `sslrootcert` honoured as libpq does, against throwaway clusters
//! listening on the loopback, one with a certificate made here and one without TLS.

use std::path::{Path, PathBuf};

use bunker::cli::cluster::{find_bindir, LocalCluster};
use bunker_db::OwnerConnection;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A certificate authority and, optionally, a server certificate it signed for `localhost`.
struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        Authority { certificate, key }
    }

    /// A certificate for `localhost` and its key, as PEM.
    fn server(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.certificate.pem()).unwrap();
        path
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A running cluster, stopped when dropped (also when a test fails).
struct Running(LocalCluster);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.stop(bunker::cli::cluster::StopMode::Immediate);
    }
}

/// A cluster on 127.0.0.1:`port`, with TLS when given a certificate and key (PEM).
fn cluster(root: &Path, port: u16, tls: Option<(String, String)>) -> Running {
    let bindir = find_bindir(
        std::env::var_os("BUNKER_PG_BINDIR")
            .map(PathBuf::from)
            .as_deref(),
    )
    .unwrap();
    let mut cluster = LocalCluster::new(root, bindir)
        .unwrap()
        .with_setting("listen_addresses", "127.0.0.1")
        .with_setting("port", &port.to_string());
    cluster.initdb().unwrap();
    if let Some((certificate, key)) = tls {
        let data = cluster.data_dir();
        std::fs::write(data.join("server.crt"), certificate).unwrap();
        std::fs::write(data.join("server.key"), key).unwrap();
        // PostgreSQL reads its key only if no one else may: owned by the cluster's user, 0600.
        let owner = std::fs::metadata(data.join("PG_VERSION")).unwrap();
        for file in ["server.crt", "server.key"] {
            let path = data.join(file);
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        cluster = cluster
            .with_setting("ssl", "on")
            .with_setting("ssl_cert_file", "server.crt")
            .with_setting("ssl_key_file", "server.key");
    }
    cluster.start().unwrap();
    Running(cluster)
}

/// What connecting says when it refuses `url` (empty when it connects). The clusters here are
/// bare (no Bunker schema): the owner's connection is the one that needs nothing of it.
async fn refusal(url: &str) -> String {
    match OwnerConnection::connect(url).await {
        Ok(_) => String::new(),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn verify_full_connects_to_a_server_with_a_trusted_certificate_and_nothing_else() {
    let dir = tempfile_dir("tls");
    let authority = Authority::new("Bunker test CA");
    let stranger = Authority::new("Someone else's CA");
    let ca = authority.write(&dir, "ca.pem");
    let wrong_ca = stranger.write(&dir, "wrong-ca.pem");
    let port = free_port();
    let _secure = cluster(&dir.join("secure"), port, Some(authority.server()));
    let plain_port = free_port();
    let _plain = cluster(&dir.join("plain"), plain_port, None);
    let url = |host: &str, port: u16, mode: &str, root: &Path| {
        format!(
            "host={host} port={port} user=postgres dbname=postgres sslmode={mode} sslrootcert='{}'",
            root.display()
        )
    };

    let verified = OwnerConnection::connect(&url("localhost", port, "verify-full", &ca)).await;
    assert!(verified.is_ok(), "{:?}", verified.err());
    let as_url = format!(
        "postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    assert!(
        OwnerConnection::connect(&as_url).await.is_ok(),
        "the URL form"
    );

    let wrong = refusal(&url("localhost", port, "verify-full", &wrong_ca)).await;
    assert!(
        wrong.contains("invalid peer certificate: UnknownIssuer"),
        "a clear message: {wrong}"
    );
    let other_name = refusal(&url("127.0.0.1", port, "verify-full", &ca)).await;
    assert!(
        !other_name.is_empty(),
        "verify-full checks the name (the certificate is for localhost)"
    );
    assert!(
        OwnerConnection::connect(&url("127.0.0.1", port, "verify-ca", &ca))
            .await
            .is_ok(),
        "verify-ca checks the chain only"
    );
    let unencrypted = refusal(&url("localhost", plain_port, "require", &ca)).await;
    assert!(
        unencrypted.contains("server does not support TLS"),
        "a server without TLS is refused under require: {unencrypted}"
    );
    let plain_ok = OwnerConnection::connect(&format!(
        "host=localhost port={plain_port} user=postgres dbname=postgres sslmode=prefer"
    ))
    .await;
    assert!(plain_ok.is_ok(), "prefer falls back, as libpq does");

    drop((_secure, _plain));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory that the cluster's user can enter.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bunker-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
