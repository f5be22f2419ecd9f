//! The master key wrapped by AWS KMS, through the real aws-sdk-kms client against a local stand-in.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bunker_tests::{
    answer, bunker_binary, cluster, fresh_database, run_bunker, KmsStandIn, StatusCode,
};
use serde_json::json;

fn command(args: &[&str], env: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bunker_binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
}

/// Runs `bunker serve` with `env`, calls `UserCreate` (first) or `UserGet`, and stops it.
async fn serve_and(env: &[(String, String)], create: bool) -> (StatusCode, serde_json::Value) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = env.to_vec();
    env.push(("BUNKER_LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut server = command(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let root = env
        .iter()
        .find(|(k, _)| k == "BUNKER_ROOT_TOKEN")
        .unwrap()
        .1
        .clone();
    let (command, body) = if create {
        (
            "UserCreate",
            json!({"profile": {"email": "kms@example.test"}}),
        )
    } else {
        (
            "UserGet",
            json!({"mode": "email", "identity": "kms@example.test"}),
        )
    };
    let result = answer(
        http.post(format!("{base}/v2/{command}"))
            .header("X-Bunker-Token", root)
            .json(&body),
    )
    .await;
    server.kill().await.unwrap();
    result
}

#[tokio::test]
async fn the_master_key_can_live_wrapped_by_kms_and_move_to_and_from_it() {
    let kms = KmsStandIn::start().await;
    let key_id = kms.create_key().await;
    let url = cluster().connection_string(&fresh_database().await);
    let mut env = kms.env(&key_id);
    env.push(("BUNKER_DATABASE_URL".into(), url.clone()));
    env.push((
        "BUNKER_ROOT_TOKEN".into(),
        "kms-test-root-token-0001-x7Qp2mZrWk".into(),
    ));

    let (ok, _, stderr) = run_bunker(&["init"], &env).await;
    assert!(ok, "{stderr}");
    let (_, status, _) = run_bunker(&["keys", "status"], &env).await;
    assert!(status.contains("master key v1: wrapped by kms"), "{status}");
    let (code, body) = serve_and(&env, true).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "a KMS-wrapped master key serves: {body}"
    );
    let (code, _) = serve_and(&env, false).await;
    assert_eq!(code, StatusCode::OK, "and opens again after a restart");

    // KMS -> a local key, and back to another KMS key.
    let (ok, stdout, stderr) = run_bunker(&["keys", "rotate-wrapping"], &env).await;
    assert!(ok, "{stderr}");
    let local = stdout
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap()
        .to_owned();
    let local_env: Vec<(String, String)> = vec![
        ("BUNKER_DATABASE_URL".into(), url.clone()),
        (
            "BUNKER_ROOT_TOKEN".into(),
            "kms-test-root-token-0001-x7Qp2mZrWk".into(),
        ),
        ("BUNKER_WRAPPING_KEY".into(), local.clone()),
    ];
    let (code, _) = serve_and(&local_env, false).await;
    assert_eq!(code, StatusCode::OK, "the local key serves");
    let (ok, _, stderr) = run_bunker(&["serve"], &env).await;
    assert!(!ok, "KMS no longer wraps it");
    assert!(stderr.contains("wrapped by local"), "{stderr}");

    let second = kms.create_key().await;
    let mut to_kms = kms.env(&second);
    to_kms.retain(|(k, _)| k != "BUNKER_KMS_KEY_ID");
    to_kms.extend(local_env.iter().cloned());
    let (ok, _, stderr) =
        run_bunker(&["keys", "rotate-wrapping", "--to-kms", &second], &to_kms).await;
    assert!(ok, "{stderr}");
    let mut second_env = kms.env(&second);
    second_env.push(("BUNKER_DATABASE_URL".into(), url.clone()));
    second_env.push((
        "BUNKER_ROOT_TOKEN".into(),
        "kms-test-root-token-0001-x7Qp2mZrWk".into(),
    ));
    let (code, body) = serve_and(&second_env, false).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "every record readable under the new KMS key: {body}"
    );
}

#[tokio::test]
async fn an_unreachable_kms_fails_the_start_clearly_and_quickly() {
    let kms = KmsStandIn::start().await;
    let key_id = kms.create_key().await;
    let url = cluster().connection_string(&fresh_database().await);
    let mut env = kms.env(&key_id);
    env.push(("BUNKER_DATABASE_URL".into(), url));
    let (ok, _, stderr) = run_bunker(&["init"], &env).await;
    assert!(ok, "{stderr}");
    drop(kms);

    let started = Instant::now();
    let (ok, _, stderr) = run_bunker(&["serve"], &env).await;
    assert!(!ok, "serve must fail without KMS");
    assert!(stderr.contains("AWS KMS"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
}
