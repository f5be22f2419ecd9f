//! Nothing personal in clear: not in the database (as `pg_dump` shows it), not in the server log.

use base64::Engine;
use bunker_keys::WrappingKey;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::setup::{init_database, RootToken};
use bunker_tests::{answer, cluster, files_under, fresh_database, serve_process_with, StatusCode};
use md5::Md5;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Distinctive values, as sent and as Bunker normalizes them for its indexes.
const VALUES: &[&str] = &[
    "Zelda.Quixote.7731@Mailinator.test",
    "zelda.quixote.7731@mailinator.test",
    "+1 650 253 7731",
    "+16502537731",
    "zq7731-login",
    "CUST-ZQ-7731",
    "Zelda Quixotevic",
    "allergic-to-penicillin-7731",
    "meta-zq-7731",
    "zelda.renamed.7731@mailinator.test",
    "bulk-zq-7731@mailinator.test",
    "4012888888881881",
    "4012 8888 8888 1881",
    "token.zq7731@mailinator.test",
    "ssn-zq-7731-text",
    "3141592653",
    "parcel-locker-zq-7731",
    "loyalty-tier-zq-7731",
    "requested-city-zq-7731",
    "cancel-reason-zq-7731",
    "consent-ref-zq-7731",
    "dpo-clerk-zq-7731",
    "pending.zq7731@mailinator.test",
    "waiting-ref-zq-7731",
    "session-cart-zq-7731",
    "partner-courier-zq-7731",
    "passport-scan-zq-7731.pdf",
    "file-content-zq-7731",
    "s%3Asession-id-zq-7731",
];

#[tokio::test]
async fn seeded_values_appear_neither_in_a_database_dump_nor_in_the_server_log() {
    let database = fresh_database().await;
    let url = cluster().connection_string(&database);
    let wrapping = WrappingKey::generate();
    let root = "root-token-for-the-at-rest-test";
    let hex = wrapping.to_hex().to_string();
    init_database(
        &url,
        RootToken::Given(root.to_owned().into()),
        &WrappingSource::Local(wrapping),
    )
    .await
    .unwrap();
    // Inside the run's cluster directory, which goes with the cluster whatever the outcome.
    let log_path = cluster()
        .run_dir()
        .with_file_name(format!("at-rest-{database}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let files = std::env::temp_dir()
        .join("bunker-test-files")
        .join(format!("at-rest-{database}"));
    // JSON lines, as production runs them: the values must not appear in that format either.
    let env = [
        (
            "BUNKER_FILES_URL".to_owned(),
            format!("file://{}", files.display()),
        ),
        ("BUNKER_LOG_FORMAT".to_owned(), "json".to_owned()),
    ];
    let (base, mut server) = serve_process_with(&url, &hex, Some(log), &env).await;
    let http = reqwest::Client::new();
    let call = |command: &str, body: Value| {
        http.post(format!("{base}/v2/{command}"))
            .header("X-Bunker-Token", root)
            .json(&body)
    };
    let seed = [
        (
            "UserCreate",
            json!({"profile": {"email": VALUES[0], "phone": VALUES[2], "login": VALUES[4],
            "custom": VALUES[5], "name": VALUES[6], "medical": VALUES[7]}, "request_metadata": {"note": VALUES[8]}}),
        ),
        ("UserGet", json!({"mode": "email", "identity": VALUES[1]})),
        ("UserGet", json!({"mode": "phone", "identity": VALUES[2]})),
        (
            "UserUpdate",
            json!({"mode": "login", "identity": VALUES[4], "profile": {"email": VALUES[9]}}),
        ),
        (
            "UserPatch",
            json!({"mode": "custom", "identity": VALUES[5], "patch": [{"op": "add", "path": "/alias", "value": VALUES[6]}]}),
        ),
        (
            "UserListVersions",
            json!({"mode": "email", "identity": VALUES[9]}),
        ),
        (
            "UserCreateBulk",
            json!({"records": [{"profile": {"email": VALUES[10], "name": VALUES[6]}}]}),
        ),
        (
            "UserGet",
            json!({"mode": "email", "identity": "absent-zq-7731@mailinator.test"}),
        ),
        ("UserCreate", json!({"profile": {"email": VALUES[9]}})),
        (
            "TokenCreate",
            json!({"tokentype": "creditcard", "record": VALUES[12], "unique": true}),
        ),
        (
            "TokenCreate",
            json!({"tokentype": "email", "record": VALUES[13]}),
        ),
        (
            "TokenCreateBulk",
            json!({"records": [{"tokentype": "text", "record": VALUES[14]}, {"tokentype": "uint32", "record": VALUES[15]}], "unique": true}),
        ),
        (
            "AppdataCreate",
            json!({"mode": "login", "identity": VALUES[4], "appname": "shop",
                   "appdata": {"locker": VALUES[16]}}),
        ),
        (
            "AppdataUpdate",
            json!({"mode": "login", "identity": VALUES[4], "appname": "shop",
                   "appdata": {"tier": VALUES[17]}}),
        ),
        (
            "AppdataGet",
            json!({"mode": "login", "identity": VALUES[4], "appname": "shop", "version": 1}),
        ),
        (
            "AppdataListVersions",
            json!({"mode": "login", "identity": VALUES[4], "appname": "shop"}),
        ),
        (
            "UserUpdateRequest",
            json!({"mode": "login", "identity": VALUES[4], "profile": {"city": VALUES[18]},
                   "request_metadata": {"note": VALUES[8]}}),
        ),
        (
            "AppdataUpdateRequest",
            json!({"mode": "login", "identity": VALUES[4], "appname": "shop",
                   "appdata": {"tier": VALUES[17]}}),
        ),
        ("LegalBasisCreate", json!({"brief": "health-programme"})),
        (
            "AgreementAccept",
            json!({"mode": "login", "identity": VALUES[4], "brief": "health-programme",
                   "referencecode": VALUES[20], "lastmodifiedby": VALUES[21],
                   "request_metadata": {"note": VALUES[8]}}),
        ),
        (
            "AgreementAccept",
            json!({"mode": "email", "identity": VALUES[22], "brief": "health-programme",
                   "referencecode": VALUES[23]}),
        ),
        (
            "AgreementGet",
            json!({"mode": "email", "identity": VALUES[22], "brief": "health-programme"}),
        ),
        (
            "AgreementCancelRequest",
            json!({"mode": "login", "identity": VALUES[4], "brief": "health-programme"}),
        ),
        (
            "AgreementListUserAgreements",
            json!({"mode": "login", "identity": VALUES[4]}),
        ),
    ];
    // A session, a shared record and a file, with personal data in each (the file's content is
    // over three chunks, the value in each).
    let content = VALUES[27].repeat(10_000);
    let filedata = base64::engine::general_purpose::STANDARD.encode(content.as_bytes());
    let seed = seed.into_iter().chain([
        (
            "SessionUpsert",
            json!({"sessionuuid": VALUES[28], "sessiondata": {"login": VALUES[4], "cart": VALUES[24]}}),
        ),
        ("SessionGet", json!({"sessionuuid": VALUES[28]})),
        (
            "SessionListUserSessions",
            json!({"mode": "login", "identity": VALUES[4]}),
        ),
        (
            "SharedRecordCreate",
            json!({"mode": "login", "identity": VALUES[4], "fields": "name", "partner": VALUES[25]}),
        ),
        (
            "FileCreate",
            json!({"mode": "login", "identity": VALUES[4], "filename": VALUES[26], "filedata": filedata,
                   "tags": ["kyc"]}),
        ),
        (
            "FileListUserFiles",
            json!({"mode": "login", "identity": VALUES[4]}),
        ),
    ]);
    let mut shared = None;
    for (command, body) in seed {
        let (status, reply) = answer(call(command, body)).await;
        if command == "SharedRecordCreate" {
            shared = reply["recorduuid"].as_str().map(str::to_owned);
        }
        assert!(
            status == StatusCode::OK
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::CONFLICT,
            "{command}: {status} {reply}"
        );
    }
    let (status, reply) = answer(
        http.post(format!("{base}/v2/SharedRecordGet"))
            .json(&json!({"recorduuid": shared.expect("a shared record")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, opened) = answer(call(
        "UserDeleteRequest",
        json!({"mode": "login", "identity": VALUES[4]}),
    ))
    .await;
    let cancel = json!({"requestuuid": opened["requestuuid"], "reason": VALUES[19]});
    let (status, reply) = answer(call("UserRequestCancel", cancel)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let dump = std::process::Command::new(cluster().tool("pg_dump"))
        .args([
            "-h",
            &cluster().run_dir().to_string_lossy(),
            "-p",
            "5432",
            "-U",
            "postgres",
            &database,
        ])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).to_lowercase();
    assert!(
        dump.contains("copy public.users"),
        "the dump has the vault's tables"
    );
    server.kill().await.unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap().to_lowercase();
    let _ = std::fs::remove_file(&log_path);
    assert!(log.contains("/v2/usercreate"), "the log has the requests");

    let objects = files_under(&files);
    assert_eq!(objects.len(), 1, "the file's object is stored");
    let _ = std::fs::remove_dir_all(&files);
    for value in VALUES {
        let forms = [
            value.to_lowercase(),
            hex::encode(Sha256::digest(value.as_bytes())),
            hex::encode(Md5::digest(value.as_bytes())),
        ];
        for form in forms {
            assert!(
                !dump.contains(&form),
                "the database dump contains {value} (as {form})"
            );
            assert!(
                !log.contains(&form),
                "the server log contains {value} (as {form})"
            );
            for (name, bytes) in &objects {
                let stored = String::from_utf8_lossy(bytes).to_lowercase();
                assert!(
                    !stored.contains(&form) && !name.to_lowercase().contains(&form),
                    "the stored object {name} contains {value} (as {form})"
                );
            }
        }
    }
    assert!(!log.contains(root), "nor the root token");
}
