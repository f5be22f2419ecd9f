//! What an adversarial review of `/v1` found, each held by a test: races of the expiration links
//! with forget-me and cancel, bodies read as upstream reads them, and `bunker import-v1` against a
//! hostile or broken source (a stand-in OSS server answering canned JSON).

use std::sync::Arc;

use bunker_tests::{StatusCode, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::v1::V1;

/// `POST /v1{path}` with no token: status and body text.
async fn post(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1{path}", app.address))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// As root, `method /v1{path}`: status and JSON.
async fn root(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/v1{path}", app.address))
        .header("X-Bunker-Token", &app.root_token);
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiration_links_racing_forget_me_and_cancel_never_fail_and_never_say_kept_for_a_forgotten_user(
) {
    let app = Arc::new(TestApp::spawn().await);
    for round in 0..12 {
        let token = app
            .create_user(json!({"email": format!("race{round}@example.com")}))
            .await;
        let link = V1::new(&app).start_flow(&token, "1h").await;
        // The delete link against forget-me (UserDelete) or against a cancel, at once: before
        // the fix they deadlocked (500), or the cancel said ok for a user then forgotten.
        let (a, b) = (app.clone(), app.clone());
        let (link_path, user) = (format!("/exp/delete/{link}"), token.clone());
        let other = if round % 2 == 0 {
            format!("/user/token/{user}")
        } else {
            format!("/exp/cancel/token/{user}")
        };
        let (linked, other_answer) = tokio::join!(
            tokio::spawn(async move { post(&a, &link_path).await }),
            tokio::spawn(async move { root(&b, reqwest::Method::DELETE, &other, None).await })
        );
        let (linked, (other_status, other_answer)) = (linked.unwrap(), other_answer.unwrap());
        assert!(linked.0.as_u16() < 500, "link: {linked:?}");
        assert!(
            other_status.as_u16() < 500,
            "round {round}: {other_status} {other_answer}"
        );
        let (found, _) = root(
            &app,
            reqwest::Method::GET,
            &format!("/user/token/{token}"),
            None,
        )
        .await;
        if round % 2 == 1 && other_status == StatusCode::OK {
            // The cancel won: the user is kept and the link is spent.
            assert_eq!(
                found,
                StatusCode::OK,
                "round {round}: cancel said ok, user gone"
            );
            assert_eq!(linked.0, StatusCode::NOT_FOUND, "round {round}");
        } else {
            assert_eq!(found, StatusCode::NOT_FOUND, "round {round}");
        }
        // Whoever won, no flow is left behind for a forgotten user.
        let left: i64 = app
            .superuser()
            .await
            .query_one(
                "SELECT count(*) FROM user_expirations e JOIN users u USING (tenant_id, token)
                  WHERE u.record IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "round {round}");
    }
    // A start for a user forgotten a moment ago is refused, not answered with a new link.
    let token = app.create_user(json!({"email": "gone@example.com"})).await;
    root(
        &app,
        reqwest::Method::DELETE,
        &format!("/user/token/{token}"),
        None,
    )
    .await;
    let (status, answer) = root(
        &app,
        reqwest::Method::POST,
        &format!("/exp/start/token/{token}"),
        Some(("application/json", json!({"expiration": "1h"}).to_string())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test]
async fn v1_bodies_are_read_as_upstream_reads_them() {
    let app = TestApp::spawn().await;
    // A JSON object under the form type (`curl -d '{…}'`) is refused, not stored as one key.
    let (status, answer) = root(
        &app,
        reqwest::Method::POST,
        "/user",
        Some((
            "application/x-www-form-urlencoded",
            json!({"email": "alice@example.com"}).to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = root(
        &app,
        reqwest::Method::POST,
        "/user",
        Some((
            "application/x-www-form-urlencoded",
            "email=alice%40example.com&name=Alice".to_owned(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a real form is a form");
    // A status that is no text is no status: never read as `wait`, which schedules a deletion.
    for status in [json!({"retain": true}), json!(["retain"])] {
        let (code, answer) = root(
            &app,
            reqwest::Method::POST,
            "/exp/start/email/alice@example.com",
            Some((
                "application/json",
                json!({"expiration": "3d", "status": status}).to_string(),
            )),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
    }
    let (_, flow) = root(
        &app,
        reqwest::Method::GET,
        "/exp/status/email/alice@example.com",
        None,
    )
    .await;
    assert_eq!(flow["expstatus"], "", "no flow was started: {flow}");
    // /v1 speaks of its own units: `m` is a month there.
    let (code, answer) = root(
        &app,
        reqwest::Method::POST,
        "/exp/start/email/alice@example.com",
        Some(("application/json", json!({"expiration": "0"}).to_string())),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        !answer.to_string().contains("finaltime"),
        "the message names /v1's field: {answer}"
    );
    // An agreement's status that is not text is refused (`false` must not give a consent);
    // null is no status: given, as upstream.
    let (code, _) = app
        .root(
            "LegalBasisCreate",
            json!({"brief": "newsletter", "basistype": "consent", "usercontrol": true}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    for status in [json!(false), json!(0), json!({}), json!([]), json!(null)] {
        let (code, answer) = root(
            &app,
            reqwest::Method::POST,
            "/agreement/newsletter/email/alice@example.com",
            Some(("application/json", json!({"status": status}).to_string())),
        )
        .await;
        if !status.is_null() {
            assert_eq!(code, StatusCode::BAD_REQUEST, "{status}: {answer}");
            continue;
        }
        assert_eq!(code, StatusCode::OK, "{answer}");
        let (_, got) = app
            .root(
                "AgreementGet",
                json!({"mode": "email", "identity": "alice@example.com", "brief": "newsletter"}),
            )
            .await;
        assert_eq!(got["agreement"]["status"], "yes", "{status}: {got}");
    }
    // The links' page answers HEAD as GET.
    let head = reqwest::Client::new()
        .head(format!(
            "{}/v1/exp/delete/{}",
            app.address,
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
}

/// A stand-in OSS server: each request's path (with its query) is answered by `answer`.
async fn fake_oss(answer: fn(&str) -> (u16, String)) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, body) = answer(&path);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    address
}

const FIRST: &str = "11111111-1111-4111-8111-111111111111";
const SECOND: &str = "22222222-2222-4222-8222-222222222222";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Two users on every page (a source that never ends), the second with an app name Bunker
/// refuses; the first with a consent that ends and one that has ended.
fn broken_source(path: &str) -> (u16, String) {
    let ok = |fields: Value| {
        let mut answer = json!({"status": "ok"});
        answer
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        (200, answer.to_string())
    };
    match path {
        "/v1/lbasis" => ok(json!({"total": 2, "rows": [
            {"brief": "news", "basistype": "consent", "shortdesc": "News", "usercontrol": true},
            {"brief": "old", "basistype": "consent", "shortdesc": "Old", "usercontrol": true}]})),
        p if p.starts_with("/v1/users") => ok(json!({"total": 1_000_000, "rows": [
            {"token": FIRST, "data": {"email": "first@oss.test", "name": "First"}},
            {"token": SECOND, "data": {"email": "second@oss.test", "name": "Second"}}]})),
        p if p == format!("/v1/userapp/token/{FIRST}") => ok(json!({"apps": ["shop"]})),
        p if p == format!("/v1/userapp/token/{FIRST}/shop") => ok(json!({"data": {"cart": 1}})),
        p if p == format!("/v1/userapp/token/{SECOND}") => ok(json!({"apps": ["bad app"]})),
        p if p == format!("/v1/userapp/token/{SECOND}/bad%20app") => ok(json!({"data": {"x": 1}})),
        p if p.starts_with("/v1/agreements/token/") => ok(json!({"total": 2, "rows": [
            {"brief": "news", "status": "yes", "starttime": now() - 100,
             "endtime": (now() + 3600).to_string()},
            {"brief": "old", "status": "yes", "endtime": now() - 10}]})),
        _ => (
            404,
            json!({"status": "error", "message": "not found"}).to_string(),
        ),
    }
}

fn hostile_source(_path: &str) -> (u16, String) {
    let message = "secret \u{1b}]0;pwned\u{7} alice@example.com";
    (
        403,
        json!({"status": "error", "message": format!("{message}{}", "x".repeat(5000))}).to_string(),
    )
}

async fn import(from: &str, target: &TestApp) -> (bool, String) {
    let output = tokio::process::Command::new(bunker_tests::bunker_binary())
        .args(["import-v1", "--from", from, "--to", &target.address])
        .env("BUNKER_IMPORT_FROM_TOKEN", "oss-root")
        .env("BUNKER_IMPORT_TO_TOKEN", &target.root_token)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_v1_copies_a_user_whole_or_not_at_all_and_keeps_a_consents_end() {
    let target = TestApp::spawn().await;
    let source = fake_oss(broken_source).await;
    let (succeeded, said) = import(&source, &target).await;
    assert!(
        !succeeded,
        "the second user's app record is refused: {said}"
    );
    assert!(said.contains("taken back whole"), "{said}");
    // The first user came whole: its app record, and its consent with its start and end; the
    // consent that had ended was not given again.
    let (_, app) = target
        .root(
            "AppdataGet",
            json!({"mode": "email", "identity": "first@oss.test", "appname": "shop"}),
        )
        .await;
    assert_eq!(app["appdata"], json!({"cart": 1}), "{app}");
    let (_, news) = target
        .root(
            "AgreementGet",
            json!({"mode": "email", "identity": "first@oss.test", "brief": "news"}),
        )
        .await;
    let end = news["agreement"]["finaltime"].as_i64().unwrap_or(0);
    assert!((now() + 3500..now() + 3700).contains(&end), "{news}");
    let (status, old) = target
        .root(
            "AgreementGet",
            json!({"mode": "email", "identity": "first@oss.test", "brief": "old"}),
        )
        .await;
    assert_ne!(old["agreement"]["status"], "yes", "{status} {old}");
    // The second is not left half-copied: a new run (the cause fixed) would copy it whole.
    let (status, second) = target
        .root(
            "UserGet",
            json!({"mode": "email", "identity": "second@oss.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{second}");

    // A source answering the same users on every page ends the import rather than looping: once
    // the second user is refused no more, the run ends after the page that brings no one new.
    let target = TestApp::spawn().await;
    fn repeating(path: &str) -> (u16, String) {
        match path {
            p if p.starts_with("/v1/userapp/token/") => {
                (200, json!({"status": "ok", "apps": []}).to_string())
            }
            p => broken_source(p),
        }
    }
    let source = fake_oss(repeating).await;
    let (succeeded, said) =
        tokio::time::timeout(std::time::Duration::from_secs(60), import(&source, &target))
            .await
            .expect("the import ends");
    assert!(succeeded, "{said}");
    assert!(said.contains("2 users"), "{said}");

    // A source's message is quoted without its terminal escapes, and cut short.
    let source = fake_oss(hostile_source).await;
    let (succeeded, said) = import(&source, &target).await;
    assert!(!succeeded);
    assert!(said.contains("secret"), "{said}");
    assert!(
        !said.contains('\u{1b}') && !said.contains('\u{7}'),
        "{said:?}"
    );
    assert!(said.len() < 1000, "{}", said.len());
}
