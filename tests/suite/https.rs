//! HTTPS served by Bunker itself (BUNKER_TLS_CERT, BUNKER_TLS_KEY), with HSTS, and the
//! certificate reloaded when its files change.

use std::time::Duration;

use bunker::http::tls::TlsFiles;
use bunker_tests::{cluster, StatusCode, TestApp, TestOptions};
use serde_json::json;

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn certificate(name: &str) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A client that trusts only `cert`.
fn client(cert: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .use_rustls_tls()
        // A new connection each time: a reloaded certificate is served to new connections.
        .pool_max_idle_per_host(0)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_is_served_with_hsts_and_a_renewed_certificate_is_picked_up() {
    let dir = cluster()
        .run_dir()
        .with_file_name(format!("https-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let (first, first_key) = certificate("first");
    std::fs::write(&files.cert, &first).unwrap();
    std::fs::write(&files.key, &first_key).unwrap();
    let app = TestApp::spawn_with(TestOptions {
        tls: Some(files.clone()),
        ..TestOptions::default()
    })
    .await;
    assert!(app.address.starts_with("https://127.0.0.1:"));
    let trusting_first = client(&first);
    let health = trusting_first
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let created = trusting_first
        .post(format!("{}/v2/UserCreate", app.address))
        .header("X-Bunker-Token", &app.root_token)
        .json(&json!({"profile": {"login": "over-tls"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = app.address.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/health")).await.is_err());

    // A renewed certificate (and a broken one before it, which is not taken).
    std::fs::write(&files.cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = trusting_first
        .get(format!("{}/health", app.address))
        .send()
        .await;
    assert!(still.is_ok_and(|r| r.status() == StatusCode::OK));
    let (second, second_key) = certificate("second");
    std::fs::write(&files.key, &second_key).unwrap();
    std::fs::write(&files.cert, &second).unwrap();
    let trusting_second = client(&second);
    let mut renewed = false;
    for _ in 0..60 {
        if trusting_second
            .get(format!("{}/health", app.address))
            .send()
            .await
            .is_ok()
        {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        renewed,
        "the renewed certificate was not served within 15 s"
    );
    assert!(trusting_first
        .get(format!("{}/health", app.address))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_certificate_that_does_not_load_is_refused_at_start() {
    let dir = cluster()
        .run_dir()
        .with_file_name(format!("https-bad-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate("mine");
    let (_, other_key) = certificate("other");
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("other.pem"), other_key).unwrap();
    let pair = |key: &str| TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join(key),
    };
    assert!(pair("key.pem").load().is_ok());
    for wrong in ["other.pem", "missing.pem", "cert.pem"] {
        let refused = pair(wrong).load().err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("cannot be used")),
            "{wrong}: {refused:?}"
        );
    }
    let only_cert = std::process::Command::new(bunker_tests::bunker_binary())
        .arg("serve")
        .env("BUNKER_TLS_CERT", dir.join("cert.pem"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&only_cert.stderr).into_owned();
    assert!(!only_cert.status.success());
    assert!(said.contains("BUNKER_TLS_KEY"), "{said}");
}
