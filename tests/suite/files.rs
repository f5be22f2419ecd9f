//! The file vault against both of its stores, with the same assertions: the local filesystem (an
//! in-process server) and S3 (a `bunker serve` process against moto's S3, with credentials from
//! the environment, as on AWS).

use std::path::PathBuf;

use base64::Engine;
use bunker_tests::{
    answer, files_under, serve_process_with, KmsStandIn, StatusCode, TestApp, TestOptions,
};
use serde_json::{json, Value};

/// A server, with how to look at its stored objects.
struct Vault<'a> {
    address: String,
    root: String,
    http: reqwest::Client,
    store: Store<'a>,
}

enum Store<'a> {
    Local(PathBuf),
    S3 {
        moto: &'a KmsStandIn,
        bucket: &'a str,
        prefix: &'a str,
    },
}

impl Vault<'_> {
    async fn call(&self, command: &str, body: Value) -> (StatusCode, Value) {
        answer(
            self.http
                .post(format!("{}/v2/{command}", self.address))
                .header("X-Bunker-Token", &self.root)
                .json(&body),
        )
        .await
    }

    /// Every stored object: its name under the store's root, and its bytes.
    async fn objects(&self) -> Vec<(String, Vec<u8>)> {
        match &self.store {
            Store::Local(dir) => files_under(dir),
            Store::S3 {
                moto,
                bucket,
                prefix,
            } => moto
                .objects(bucket, prefix)
                .await
                .into_iter()
                .map(|(key, bytes)| {
                    let name = key
                        .strip_prefix(&format!("{prefix}/"))
                        .unwrap_or(&key)
                        .to_owned();
                    (name, bytes)
                })
                .collect(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What a file's content holds, so that its clear text can be looked for.
const MARKER: &[u8] = b"PASSPORT-NO-ZQ7731-";

/// The same assertions on any store.
async fn a_file_vault_keeps_contents_sealed_and_forgets_them(vault: &Vault<'_>) {
    let (_, jane) = vault
        .call(
            "UserCreate",
            json!({"profile": {"login": "jane", "email": "jane@example.com"}}),
        )
        .await;
    let jane = jane["token"].as_str().unwrap().to_owned();
    let (_, bob) = vault
        .call("UserCreate", json!({"profile": {"login": "bob"}}))
        .await;
    let bob = bob["token"].as_str().unwrap().to_owned();
    // Three chunks and a bit: the content streams in pieces.
    let content: Vec<u8> = MARKER.iter().copied().cycle().take(200_000).collect();
    let create = |login: &str, name: &str, bytes: &[u8]| {
        json!({"mode": "login", "identity": login, "filename": name, "filedata": b64(bytes),
               "tags": ["KYC", "passport"]})
    };
    let (status, made) = vault
        .call(
            "FileCreate",
            create("jane", "zq7731-passport.bin", &content),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["duplicate"], false);
    assert_eq!(made["tags"], json!(["kyc", "passport"]));
    assert_eq!(made["token"], jane.as_str());
    let file = made["fileuuid"].as_str().unwrap().to_owned();
    let (status, small) = vault
        .call("FileCreate", create("jane", "note.txt", b"hello"))
        .await;
    assert_eq!(status, StatusCode::OK, "{small}");
    let small = small["fileuuid"].as_str().unwrap().to_owned();

    // Stored as tenant/<id>/<user>/<file>, sealed: no clear text, no name in the object's path.
    let objects = vault.objects().await;
    let mut names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let mut expected = vec![
        format!("tenant/1/{jane}/{file}"),
        format!("tenant/1/{jane}/{small}"),
    ];
    expected.sort();
    assert_eq!(names, expected);
    for (name, bytes) in &objects {
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "{name} holds clear text"
        );
        assert!(
            !bytes.windows(5).any(|w| w == b"hello"),
            "{name} holds clear text"
        );
        assert!(!name.contains("zq7731"), "{name}");
    }

    // Read back as JSON (by uuid or newest of a name) and raw.
    let (status, got) = vault
        .call(
            "FileGet",
            json!({"mode": "login", "identity": "jane", "fileuuid": file}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["filedata"], b64(&content));
    assert_eq!(got["size"], content.len());
    assert_eq!(got["filename"], "zq7731-passport.bin");
    assert_eq!(got["mimetype"], "application/octet-stream");
    let (_, by_name) = vault
        .call(
            "FileGet",
            json!({"mode": "email", "identity": "jane@example.com", "filename": "note.txt"}),
        )
        .await;
    assert_eq!(by_name["fileuuid"], small.as_str());
    let raw = vault
        .http
        .post(format!("{}/v2/FileGet", vault.address))
        .header("X-Bunker-Token", &vault.root)
        .json(&json!({"mode": "login", "identity": "jane", "fileuuid": file, "raw": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    let headers = raw.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"zq7731-passport.bin\""));
    assert_eq!(raw.bytes().await.unwrap().as_ref(), content.as_slice());

    // The same content again: nothing new for jane; a file of bob's own for bob.
    let (_, again) = vault
        .call("FileCreate", create("jane", "copy.bin", &content))
        .await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["fileuuid"], file.as_str());
    let (_, bobs) = vault
        .call("FileCreate", create("bob", "mine.bin", &content))
        .await;
    assert_eq!(bobs["duplicate"], false, "{bobs}");
    assert_eq!(vault.objects().await.len(), 3);
    // Nor does bob's listing tell that jane holds the same content.
    let size = content.len();
    let doublehash = |login: &'static str| async move {
        let (_, listed) = vault
            .call(
                "FileListUserFiles",
                json!({"mode": "login", "identity": login}),
            )
            .await;
        listed["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["size"] == size)
            .map(|f| f["doublehash"].clone())
            .unwrap()
    };
    assert_ne!(doublehash("jane").await, doublehash("bob").await);

    // Tags replaced, listings by tag (the user's, and the tenant's behind an unlock).
    let (status, tags) = vault
        .call(
            "FileReplaceTags",
            json!({"mode": "login", "identity": "jane", "fileuuid": small, "tags": "notes,KYC"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    assert_eq!(tags["tags"], json!(["kyc", "notes"]));
    let (_, listed) = vault
        .call(
            "FileListUserFiles",
            json!({"mode": "login", "identity": "jane", "tag": "notes"}),
        )
        .await;
    let listed = listed["files"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["fileuuid"], small.as_str());
    assert!(listed[0].get("filedata").is_none());
    let (_, all) = vault
        .call(
            "FileListUserFiles",
            json!({"mode": "login", "identity": "jane"}),
        )
        .await;
    assert_eq!(all["files"].as_array().unwrap().len(), 2);

    // FileDelete takes the object; forget-me takes every object of the user, and only theirs.
    let (status, deleted) = vault
        .call(
            "FileDelete",
            json!({"mode": "login", "identity": "jane", "fileuuid": small}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(!vault
        .objects()
        .await
        .iter()
        .any(|(n, _)| n.ends_with(&small)));
    let (status, _) = vault
        .call(
            "FileGet",
            json!({"mode": "login", "identity": "jane", "fileuuid": small}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = vault
        .call("UserDelete", json!({"mode": "login", "identity": "jane"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let left: Vec<String> = vault.objects().await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("tenant/1/{bob}/")), "{left:?}");
}

#[tokio::test]
async fn files_on_the_local_filesystem() {
    let app = TestApp::spawn().await;
    let dir = PathBuf::from(app.files_url.strip_prefix("file://").unwrap());
    let vault = Vault {
        address: app.address.clone(),
        root: app.root_token.clone(),
        http: reqwest::Client::new(),
        store: Store::Local(dir),
    };
    a_file_vault_keeps_contents_sealed_and_forgets_them(&vault).await;
}

#[tokio::test]
async fn files_in_s3() {
    let moto = KmsStandIn::start().await;
    moto.create_bucket("bunker-files").await;
    let app = TestApp::spawn().await;
    let (address, _server) = serve_process_with(
        &app.database_url(),
        &app.wrapping_key,
        None,
        &moto.s3_env("bunker-files", "vault"),
    )
    .await;
    let vault = Vault {
        address,
        root: app.root_token.clone(),
        http: reqwest::Client::new(),
        store: Store::S3 {
            moto: &moto,
            bucket: "bunker-files",
            prefix: "vault",
        },
    };
    a_file_vault_keeps_contents_sealed_and_forgets_them(&vault).await;
}

#[tokio::test]
async fn files_are_bounded_checked_and_hidden_from_other_tenants_and_users() {
    let options = TestOptions {
        max_file_bytes: 100_000,
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(options).await;
    app.create_user(json!({"login": "jane"})).await;
    let bob = app.create_user(json!({"login": "bob"})).await;
    let file = |bytes: &[u8]| json!({"mode": "login", "identity": "jane", "filename": "a.bin", "filedata": b64(bytes)});
    // Over the limit: 413, whatever the body limit.
    let (status, body) = app.root("FileCreate", file(&[7u8; 100_001])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        body["message"],
        "The file is over the limit of 100000 bytes"
    );
    let (status, made) = app.root("FileCreate", file(&[7u8; 100_000])).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    // Bad input: 400 naming the rule, never the value.
    for (field, value, message) in [
        (
            "filedata",
            json!("aGk"),
            "The filedata parameter is not valid base64",
        ),
        (
            "filedata",
            json!("a G k="),
            "The filedata parameter is not valid base64",
        ),
        ("filename", json!(""), "Invalid filename"),
        ("filename", json!("a\nb"), "Invalid filename"),
        (
            "mimetype",
            json!("text/html\r\nX-Evil: 1"),
            "Invalid mimetype",
        ),
        ("tags", json!(["Not Valid"]), "Invalid tags"),
    ] {
        let mut body = file(b"x");
        body[field] = value;
        let (status, answer) = app.root("FileCreate", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().starts_with(message),
            "{field}: {answer}"
        );
    }
    // Detected from the content when not given.
    let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];
    let (_, made_png) = app.root("FileCreate", file(&png)).await;
    let (_, got) = app
        .root(
            "FileGet",
            json!({"mode": "login", "identity": "jane", "fileuuid": made_png["fileuuid"]}),
        )
        .await;
    assert_eq!(got["mimetype"], "image/png");
    // Another user's mode/identity does not reach jane's file, nor does another tenant.
    let id = made["fileuuid"].clone();
    let (status, _) = app
        .root(
            "FileGet",
            json!({"mode": "token", "identity": bob, "fileuuid": id}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, acme) = app.create_tenant("acme").await;
    app.call(
        "UserCreate",
        &acme,
        Some("acme"),
        json!({"profile": {"login": "jane"}}),
    )
    .await;
    for command in ["FileGet", "FileDelete"] {
        let (status, _) = app
            .call(
                command,
                &acme,
                Some("acme"),
                json!({"mode": "login", "identity": "jane", "fileuuid": id}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{command}");
    }
    let (_, listed) = app
        .call(
            "FileListUserFiles",
            &acme,
            Some("acme"),
            json!({"mode": "login", "identity": "jane"}),
        )
        .await;
    assert_eq!(listed["files"], json!([]));
    // A role allowed the profile only is refused files; one granted users.file reaches them.
    app.grant(
        "clerk",
        "clerk-profile",
        json!({"Effect": "Allow", "Action": ["FileGet", "FileListUserFiles"], "Resource": ["users.profile"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let get = json!({"mode": "login", "identity": "jane", "fileuuid": id});
    let (status, _) = app.call("FileGet", &clerk, None, get.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.grant(
        "kyc",
        "kyc-files",
        json!({"Effect": "Allow", "Action": ["FileGet"], "Resource": ["users.file"]}),
    )
    .await;
    let kyc = app.role_token("kyc").await;
    // By token: a look-up by login would confirm a field the role may not see.
    let jane = app
        .root("UserGet", json!({"mode": "login", "identity": "jane"}))
        .await
        .1["token"]
        .clone();
    let get = json!({"mode": "token", "identity": jane, "fileuuid": id});
    let (status, body) = app.call("FileGet", &kyc, None, get).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An upload-only role is refused: the answer to content stored already would name the
    // user's file (a guess confirmed). With FileGet on the user's files too, it may upload.
    app.grant(
        "intake",
        "intake",
        json!({"Effect": "Allow", "Action": ["FileCreate"], "Resource": ["users.file"]}),
    )
    .await;
    let intake = app.role_token("intake").await;
    let upload = json!({"mode": "token", "identity": jane, "filename": "g", "filedata": b64(&[7u8; 100_000])});
    let (status, body) = app.call("FileCreate", &intake, None, upload.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    app.grant(
        "intake",
        "intake-reads",
        json!({"Effect": "Allow", "Action": ["FileGet"], "Resource": ["users.file"]}),
    )
    .await;
    let (status, body) = app.call("FileCreate", &intake, None, upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], true);
    // A file it may reach but that does not exist is refused the same way as one it may not.
    let (status, missing) = app
        .call(
            "FileGet",
            &kyc,
            None,
            json!({"mode": "token", "identity": jane, "fileuuid": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{missing}");
}

#[tokio::test]
async fn the_sweeper_removes_objects_whose_row_is_gone_and_files_past_their_time() {
    // An object left by an upload whose row never came (a crash between the two).
    let dir = std::env::temp_dir()
        .join("bunker-test-files")
        .join(format!("orphans-{}", uuid::Uuid::new_v4()));
    let orphan = dir.join(format!(
        "tenant/1/{}/{}",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"sealed bytes of nobody").unwrap();
    // Older than the grace period (an hour) that spares uploads in flight.
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let options = TestOptions {
        files_url: Some(format!("file://{}", dir.display())),
        sweep_interval: std::time::Duration::from_millis(200),
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(options).await;
    let jane = app.create_user(json!({"login": "jane"})).await;
    let (status, made) = app
        .root(
            "FileCreate",
            json!({"mode": "login", "identity": "jane", "filename": "a.txt",
                   "filedata": b64(b"short-lived"), "finaltime": "1s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let kept = dir.join(format!(
        "tenant/1/{jane}/{}",
        made["fileuuid"].as_str().unwrap()
    ));
    assert!(kept.exists());
    for _ in 0..50 {
        if !orphan.exists() && !kept.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!orphan.exists(), "the orphan is removed");
    assert!(!kept.exists(), "the expired file's object is removed");
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "jane"}),
        )
        .await;
    let actions: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventtype"].as_str())
        .collect();
    assert!(actions.contains(&"FileExpired"), "{events}");
}

#[tokio::test]
async fn a_damaged_or_missing_object_is_refused_before_any_of_it_is_answered() {
    let app = TestApp::spawn().await;
    let jane = app.create_user(json!({"login": "jane"})).await;
    let dir = PathBuf::from(app.files_url.strip_prefix("file://").unwrap());
    // The server's alone.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let content = vec![42u8; 150_000];
    let (_, made) = app
        .root(
            "FileCreate",
            json!({"mode": "login", "identity": "jane", "filename": "a.bin", "filedata": b64(&content)}),
        )
        .await;
    let id = made["fileuuid"].as_str().unwrap().to_owned();
    let object = dir.join(format!("tenant/1/{jane}/{id}"));
    let stored = std::fs::read(&object).unwrap();
    let get = |raw: bool| json!({"mode": "login", "identity": "jane", "fileuuid": id, "raw": raw});
    let damaged = "The stored file is missing or damaged; none of it was answered";
    // Cut short, grown, or gone: refused before a byte of it leaves, as JSON or raw.
    for object_bytes in [
        Some(stored[..stored.len() - 100].to_vec()),
        Some([stored.as_slice(), b"more"].concat()),
        None,
    ] {
        match &object_bytes {
            Some(bytes) => std::fs::write(&object, bytes).unwrap(),
            None => std::fs::remove_file(&object).unwrap(),
        }
        for raw in [false, true] {
            let (status, body) = app.root("FileGet", get(raw)).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
            assert_eq!(body["message"], damaged);
        }
    }
    // A flipped byte: the JSON answer is refused; the raw one is cut off where the damage is.
    let mut flipped = stored.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&object, &flipped).unwrap();
    let (status, body) = app.root("FileGet", get(false)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["message"], damaged);
    let raw = app
        .command("FileGet")
        .header("X-Bunker-Token", &app.root_token)
        .json(&get(true));
    // Cut off: the answer fails to arrive, or arrives short.
    let read = match raw.send().await {
        Ok(answer) => answer.bytes().await.ok(),
        Err(_) => None,
    };
    assert!(
        read.is_none_or(|bytes| bytes.len() < content.len()),
        "a damaged file is never answered whole"
    );
    std::fs::write(&object, &stored).unwrap();
    let (status, body) = app.root("FileGet", get(false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_deleted_tenants_objects_go_with_it_and_no_one_stores_before_being_allowed() {
    let app = TestApp::spawn().await;
    let dir = PathBuf::from(app.files_url.strip_prefix("file://").unwrap());
    let (acme, token) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "UserCreate",
            &token,
            Some("acme"),
            json!({"profile": {"login": "carl"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, made) = app
        .call(
            "FileCreate",
            &token,
            Some("acme"),
            json!({"mode": "login", "identity": "carl", "filename": "a", "filedata": "aGk="}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(files_under(&dir.join(format!("tenant/{acme}"))).len(), 1);
    let (status, body) = app.root("TenantDelete", json!({"tenantid": acme})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(files_under(&dir.join(format!("tenant/{acme}"))).is_empty());

    // A role that may not store files is refused before its upload is even decoded (not 413).
    let jane = app.create_user(json!({"login": "jane"})).await;
    app.grant(
        "clerk",
        "clerk",
        json!({"Effect": "Allow", "Action": ["FileCreate"], "Resource": ["users.profile"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let huge = "A".repeat(22_400_000);
    let (status, body) = app
        .call(
            "FileCreate",
            &clerk,
            None,
            json!({"mode": "token", "identity": jane, "filename": "a", "filedata": huge}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
