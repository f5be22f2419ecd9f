//! The `bunker` command line, run as a user would.

use std::process::Stdio;
use std::time::Duration;

use bunker_tests::{answer, bunker_binary, cluster, fresh_database, run_bunker, StatusCode};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[tokio::test]
async fn init_prints_a_root_token_once_and_refuses_to_run_again() {
    let url = cluster().connection_string(&fresh_database().await);
    let key = "1f".repeat(32);
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", key.as_str()),
    ];

    let (ok, _, stderr) = run_bunker(&["serve"], &env).await;
    assert!(!ok, "serve before init must fail");
    assert!(stderr.contains("bunker init"), "{stderr}");

    let (ok, stdout, stderr) = run_bunker(&["init"], &env).await;
    assert!(ok, "{stderr}");
    let token = stdout
        .split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .expect("a root token is printed")
        .to_owned();
    assert!(!stderr.contains(&token), "the token goes to stdout only");

    let (ok, stdout, stderr) = run_bunker(&["init"], &env).await;
    assert!(!ok, "a second init must fail");
    assert!(stderr.contains("already initialized"), "{stderr}");
    assert!(!stdout.contains(&token) && !stderr.contains(&token));

    let (ok, stdout, stderr) = run_bunker(&["migrate"], &env).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 migration"), "{stdout}");

    let other_key = "3d".repeat(32);
    let wrong = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", other_key.as_str()),
        ("BUNKER_LISTEN", "127.0.0.1:0"),
    ];
    let (ok, _, stderr) = run_bunker(&["serve"], &wrong).await;
    assert!(!ok, "serve must refuse a wrong wrapping key");
    assert!(
        stderr.contains("wrapping key does not open the master key"),
        "{stderr}"
    );
    assert!(!stderr.contains(&other_key), "the key is not echoed");
}

#[tokio::test]
async fn init_takes_the_root_token_from_the_environment() {
    let url = cluster().connection_string(&fresh_database().await);
    let key = "2e".repeat(32);
    let (ok, _, stderr) = run_bunker(
        &["init"],
        &[
            ("BUNKER_DATABASE_URL", url.as_str()),
            ("BUNKER_ROOT_TOKEN", "short"),
            ("BUNKER_WRAPPING_KEY", key.as_str()),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("at least 32 visible ASCII characters"),
        "{stderr}"
    );
    for weak in [
        "a".repeat(40),
        "ab".repeat(20),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "1".repeat(32),
        // Version 4 in form, patterns in fact.
        "12345678-1234-4123-8123-123456781234".to_owned(),
        "{12345678-1234-4123-8123-123456781234}".to_owned(),
        "01234567-0123-4012-0123-012345670123".to_owned(),
        "abcdefghijkl".repeat(3)[..32].to_owned(),
        "the-root-token-abcdefghijklmnopq".to_owned(),
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9".to_owned(),
        "aabbccddeeffgghhiijjkkllmmnnooppqq".to_owned(),
        "0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p".to_owned(),
        "01020304-0506-4708-890a-0b0c0d0e0f10".to_owned(),
        "f47ac10b-58cc-4372-a567-0e02b2c3d479".to_owned(),
        " 8c4c5a56-0b8e-4c47-9d1e-6a3f2b7e9d15 ".to_owned(),
    ] {
        let (ok, _, stderr) = run_bunker(
            &["init"],
            &[
                ("BUNKER_DATABASE_URL", url.as_str()),
                ("BUNKER_ROOT_TOKEN", weak.as_str()),
                ("BUNKER_WRAPPING_KEY", key.as_str()),
            ],
        )
        .await;
        assert!(!ok && stderr.contains("different ones"), "{weak}: {stderr}");
    }
    let chosen = "a-chosen-root-token-for-automation";
    let (ok, stdout, stderr) = run_bunker(
        &["init"],
        &[
            ("BUNKER_DATABASE_URL", url.as_str()),
            ("BUNKER_ROOT_TOKEN", chosen),
            ("BUNKER_WRAPPING_KEY", key.as_str()),
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains(chosen),
        "a token from the environment is not echoed"
    );
}

#[tokio::test]
async fn commands_need_a_database_url() {
    let (ok, _, stderr) = run_bunker::<&str, &str>(&["serve"], &[]).await;
    assert!(!ok);
    assert!(
        stderr.contains("BUNKER_DATABASE_URL is not set"),
        "{stderr}"
    );
    // A blank variable is unset; a malformed one is named.
    let (ok, _, stderr) = run_bunker(&["migrate"], &[("BUNKER_DATABASE_URL", "  ")]).await;
    assert!(
        !ok && stderr.contains("BUNKER_DATABASE_URL is not set"),
        "{stderr}"
    );
    let (ok, _, stderr) = run_bunker(&["serve"], &[("BUNKER_MAX_BODY_BYTES", "lots")]).await;
    assert!(
        !ok && stderr.contains("BUNKER_MAX_BODY_BYTES must be a positive whole number"),
        "{stderr}"
    );
    // A restore window of more than a century (a "never" that would overflow a timestamp and
    // stop the sweeper) is refused.
    let (ok, _, stderr) = run_bunker(
        &["serve"],
        &[("BUNKER_RESTORE_WINDOW_SECONDS", "10000000000000")],
    )
    .await;
    assert!(
        !ok && stderr.contains("BUNKER_RESTORE_WINDOW_SECONDS must be a whole number of seconds"),
        "{stderr}"
    );
    // A secret is never taken from the command line, where ps and shell history keep it.
    let (ok, _, stderr) =
        run_bunker::<&str, &str>(&["migrate", "--database-url=host=/tmp dbname=x"], &[]).await;
    assert!(
        !ok && stderr.contains("give BUNKER_DATABASE_URL in the environment"),
        "{stderr}"
    );
}

/// Starts `bunker demo`, its log appended to `log`, and waits until it serves; returns it and
/// what it printed until then.
async fn start_demo(data_dir: &str, listen: &str, log: &std::path::Path) -> (Child, Vec<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = Command::new(bunker_binary())
        .arg("demo")
        .env("BUNKER_DATA_DIR", data_dir)
        .env("BUNKER_LISTEN", listen)
        .env("BUNKER_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start bunker demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let serving = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Press Ctrl-C") {
                return true;
            }
            printed.push(line);
        }
        false
    })
    .await;
    assert_eq!(
        serving.ok(),
        Some(true),
        "the demo did not start serving: {printed:?}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, printed)
}

async fn interrupt(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    assert!(
        exit.expect("demo stops").unwrap().success(),
        "demo exits cleanly on Ctrl-C"
    );
}

/// The demo's data directory, removed (with any cluster still running in it) however the test ends.
struct DemoDir(std::path::PathBuf);

impl Drop for DemoDir {
    fn drop(&mut self) {
        use bunker::cli::cluster::{find_bindir, LocalCluster, StopMode};
        if let Ok(bindir) = find_bindir(None) {
            if let Ok((cluster, moved)) = LocalCluster::for_data_dir(&self.0, bindir) {
                let _ = cluster.stop(StopMode::Immediate);
                if moved {
                    let _ = std::fs::remove_dir_all(cluster.root());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("log"));
    }
}

#[tokio::test]
async fn demo_serves_with_no_setup_and_keeps_its_data_across_runs() {
    let guard =
        DemoDir(std::env::temp_dir().join(format!("bunker-demo-test-{}", std::process::id())));
    let dir = guard.0.clone();
    let data_dir = dir.to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let create = |http: &reqwest::Client| {
        http.post(format!("http://{listen}/v2/TenantCreate"))
            .header("X-Bunker-Token", "DEMO")
            .body(r#"{"tenantname":"acme","tenantorg":"acme"}"#)
    };

    let log = dir.with_extension("log");
    let (demo, _) = start_demo(&data_dir, &listen, &log).await;
    let (status, body) = answer(create(&http)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let xtoken = body["xtoken"].as_str().expect("xtoken").to_owned();
    let user = |command: &str, body: &str| {
        http.post(format!("http://{listen}/v2/{command}"))
            .header("X-Bunker-Token", "DEMO")
            .body(body.to_owned())
    };
    let (status, created) = answer(user(
        "UserCreate",
        r#"{"profile":{"email":"demo@example.com","name":"Demo"}}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    interrupt(demo).await;
    let key_file = dir.join("wrapping.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "the demo's wrapping key is readable by its owner only"
    );

    let (demo, _) = start_demo(&data_dir, &listen, &log).await;
    let (status, body) = answer(create(&http)).await;
    assert_eq!(status, StatusCode::CONFLICT, "acme is still there: {body}");
    let (status, body) = answer(
        http.post(format!("http://{listen}/v2/TenantListTenants"))
            .header("X-Bunker-Token", "DEMO"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"][1]["tenantname"], json!("acme"));
    let (status, found) = answer(user(
        "UserGet",
        r#"{"mode":"email","identity":"demo@example.com"}"#,
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the user opens again after a restart: {found}"
    );
    assert_eq!(found["token"], created["token"]);
    interrupt(demo).await;

    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("/v2/TenantCreate"), "requests are logged");
    assert!(
        !log_text.contains(&xtoken),
        "an issued token never reaches the log, even at debug level"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&log);
}

/// A fresh folder under the temp directory that only root may enter, or None (said on stderr)
/// when the tests do not run as root: then PostgreSQL runs as this user, and a demo never moves
/// its cluster or changes anything on another user's behalf.
fn root_only_folder(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if !bunker::cli::cluster::running_as_root().unwrap_or(false) {
        eprintln!("not root: nothing to test here");
        return None;
    }
    let folder = std::env::temp_dir().join(format!("bunker-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    Some(folder)
}

#[tokio::test]
async fn demo_runs_from_a_folder_the_postgres_user_cannot_enter() {
    use std::os::unix::fs::PermissionsExt;
    // As for a clone under /root: only root may enter the folder above the data directory.
    let Some(private) = root_only_folder("private") else {
        return;
    };
    let guard = DemoDir(private.join("bunker-data"));
    let data_dir = guard.0.to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log = private.with_extension("log");
    let (demo, printed) = start_demo(&data_dir, &listen, &log).await;
    let said = printed.join("\n");
    assert!(
        said.contains(&format!("The postgres user cannot enter {data_dir}")),
        "it says where PostgreSQL's files went: {said}"
    );
    let recorded = std::fs::read_to_string(guard.0.join("cluster-location")).unwrap();
    let cluster = std::path::PathBuf::from(recorded.trim());
    assert!(
        !cluster.starts_with(&private) && cluster.join("pg").join("PG_VERSION").is_file(),
        "{cluster:?}"
    );
    // Under a folder only root may change: the postgres user cannot swap it for a link.
    for dir in [cluster.as_path(), cluster.parent().unwrap()] {
        let meta = std::fs::symlink_metadata(dir).unwrap();
        assert!(
            meta.is_dir()
                && std::os::unix::fs::MetadataExt::uid(&meta) == 0
                && meta.permissions().mode() & 0o022 == 0,
            "{dir:?}"
        );
    }
    assert!(
        guard.0.join("wrapping.key").is_file(),
        "everything else stays in the data directory"
    );
    let http = reqwest::Client::new();
    let call = |command: &str, body: &str| {
        http.post(format!("http://{listen}/v2/{command}"))
            .header("X-Bunker-Token", "DEMO")
            .body(body.to_owned())
    };
    let (status, created) = answer(call("UserCreate", r#"{"profile":{"login":"newcomer"}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    interrupt(demo).await;
    // The next run finds the same cluster, and the user in it.
    let (demo, _) = start_demo(&data_dir, &listen, &log).await;
    let (status, found) =
        answer(call("UserGet", r#"{"mode":"login","identity":"newcomer"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    interrupt(demo).await;
    drop(guard);
    assert!(!cluster.exists(), "the test leaves no cluster behind");
    let _ = std::fs::remove_dir_all(&private);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn the_demo_run_as_root_refuses_folders_another_user_could_change() {
    use std::os::unix::fs::PermissionsExt;
    let Some(base) = root_only_folder("unsafe") else {
        return;
    };
    // A data directory others may write to (another user could leave links or notes in it).
    let open = base.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = open.to_string_lossy().into_owned();
    let (ok, _, stderr) = run_bunker(&["demo"], &[("BUNKER_DATA_DIR", open.as_str())]).await;
    assert!(
        !ok && stderr.contains("could be changed by another user"),
        "{stderr}"
    );
    // A note sending the cluster anywhere but the demo's own folder.
    let private = base.join("private");
    std::fs::create_dir_all(private.join("bunker-data")).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(private.join("bunker-data/cluster-location"), "/etc\n").unwrap();
    let data_dir = private.join("bunker-data").to_string_lossy().into_owned();
    let (ok, _, stderr) = run_bunker(&["demo"], &[("BUNKER_DATA_DIR", data_dir.as_str())]).await;
    assert!(
        !ok && stderr.contains("names no folder of /var/lib/bunker-demo"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn a_new_data_directory_where_a_moved_one_was_gets_a_cluster_of_its_own() {
    use bunker::cli::cluster::{find_bindir, LocalCluster};
    let Some(private) = root_only_folder("moved") else {
        return;
    };
    let (here, there) = (private.join("a"), private.join("b"));
    let bindir = find_bindir(None).unwrap();
    let (first, moved) = LocalCluster::for_data_dir(&here, bindir.clone()).unwrap();
    assert!(moved);
    std::fs::create_dir_all(first.root()).unwrap(); // as a run of the demo would have
    std::fs::rename(&here, &there).unwrap();
    let (followed, _) = LocalCluster::for_data_dir(&there, bindir.clone()).unwrap();
    assert_eq!(
        followed.root(),
        first.root(),
        "a moved data directory keeps its cluster"
    );
    let (second, moved) = LocalCluster::for_data_dir(&here, bindir).unwrap();
    assert!(moved);
    assert_ne!(
        second.root(),
        first.root(),
        "and a new one at its old path gets another"
    );
    let _ = std::fs::remove_dir_all(first.root());
    let _ = std::fs::remove_dir_all(&private);
}
