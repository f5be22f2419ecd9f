//! The `/v1` routes of shared/api/V1-CONTRACT.md over HTTP, with the shapes clients parse; the
//! tenancy of a request that names none (its token's tenant), and another tenant's token reaching
//! nothing.

use bunker_tests::{StatusCode, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::login::{app_with_mail_file, captcha, codes_in};

/// A `/v1` client.
pub(crate) struct V1<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
}

impl<'a> V1<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        V1 {
            app,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1{path}", self.app.address));
        if let Some(token) = token {
            request = request.header("X-Bunker-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// As root.
    async fn root(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(method, path, Some(&self.app.root_token), body)
            .await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.root(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
        assert_eq!(answer["status"], "ok", "{method} {path}: {answer}");
        answer
    }

    /// As root, starts the expiration flow of the user with `token`: the link's capability.
    pub(crate) async fn start_flow(&self, token: &str, expiration: &str) -> String {
        let path = format!("/exp/start/token/{token}");
        let body = json!({"expiration": expiration});
        let started = self.ok(Method::POST, &path, Some(body)).await;
        started["exptoken"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn users_and_their_app_records_through_v1() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let v1 = V1::new(&app);
    // @databunker/store posts to /v1/user/ (a trailing slash): served, not redirected.
    let made = v1
        .ok(
            Method::POST,
            "/user/",
            Some(
                json!({"email": "Jane@Example.com", "login": "jane", "phone": "+44 7911 123456",
                        "name": "Jane", "age": 30}),
            ),
        )
        .await;
    let jane = made["token"].as_str().unwrap().to_owned();
    assert_eq!(made, json!({"status": "ok", "token": jane}));
    // A form body: every value text.
    let form = reqwest::Client::new()
        .post(format!("{}/v1/user", app.address))
        .header("X-Bunker-Token", &app.root_token)
        .form(&[("email", "bob@example.com"), ("name", "Bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let bob: Value = form.json().await.unwrap();
    let bob = bob["token"].as_str().unwrap().to_owned();
    // Found by each mode; a path's %40 is an @, and a + in a phone stays a +.
    for path in [
        format!("/user/token/{jane}"),
        "/user/email/jane%40example.com".to_owned(),
        "/user/email/jane@example.com".to_owned(),
        "/user/login/jane".to_owned(),
        "/user/phone/+447911123456".to_owned(),
    ] {
        let got = v1.ok(Method::GET, &path, None).await;
        assert_eq!(got["token"], jane.as_str(), "{path}");
        assert_eq!(got["data"]["name"], "Jane", "{path}");
        assert_eq!(got["data"]["age"], 30, "{path}");
    }
    // PUT changes the named fields; a null removes one.
    let put = v1
        .ok(
            Method::PUT,
            &format!("/user/token/{jane}"),
            Some(json!({"name": "Jane Doe", "age": null})),
        )
        .await;
    assert_eq!(put["token"], jane.as_str());
    let got = v1.ok(Method::GET, "/user/login/jane", None).await;
    assert_eq!(got["data"]["name"], "Jane Doe");
    assert!(got["data"].get("age").is_none(), "{got}");
    // Refusals: the envelope, with codes that say what happened.
    let (status, answer) = v1
        .root(Method::GET, "/user/email/nobody@example.com", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer, json!({"status": "error", "message": "not found"}));
    let (status, answer) = v1.root(Method::GET, "/user/nonsense/x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["status"], "error");
    let (status, answer) = v1
        .root(
            Method::POST,
            "/user",
            Some(json!({"email": "jane@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = v1.send(Method::GET, "/user/login/jane", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["status"], "error");
    let (status, answer) = v1
        .send(Method::GET, "/user/login/jane", Some("not-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = v1.root(Method::GET, "/nothing/here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["status"], "error");
    let bad_json = reqwest::Client::new()
        .post(format!("{}/v1/user", app.address))
        .header("X-Bunker-Token", &app.root_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    // The listing (needs BUNKER_LIST_USERS, as upstream's list_users).
    let listed = v1.ok(Method::POST, "/users?offset=0&limit=1", None).await;
    assert_eq!(listed["total"], 2, "{listed}");
    assert_eq!(listed["rows"].as_array().unwrap().len(), 1);
    assert!(listed["rows"][0]["token"].is_string());

    // App records: created, read, replaced, changed, listed, deleted.
    let path = format!("/userapp/token/{jane}/shop");
    v1.ok(
        Method::POST,
        &path,
        Some(json!({"cart": ["tea"], "size": "M"})),
    )
    .await;
    let got = v1.ok(Method::GET, &path, None).await;
    assert_eq!(got["data"], json!({"cart": ["tea"], "size": "M"}));
    v1.ok(Method::POST, &path, Some(json!({"cart": ["coffee"]})))
        .await;
    let got = v1.ok(Method::GET, "/userapp/login/jane/shop", None).await;
    assert_eq!(got["data"], json!({"cart": ["coffee"]}), "POST replaces");
    v1.ok(Method::PUT, &path, Some(json!({"size": "L"}))).await;
    let got = v1.ok(Method::GET, &path, None).await;
    assert_eq!(
        got["data"],
        json!({"cart": ["coffee"], "size": "L"}),
        "PUT merges"
    );
    let apps = v1
        .ok(Method::GET, &format!("/userapp/token/{jane}"), None)
        .await;
    assert_eq!(apps["apps"], json!(["shop"]));
    let apps = v1.ok(Method::GET, "/userapps", None).await;
    assert_eq!(apps["apps"], json!(["shop"]));
    v1.ok(Method::DELETE, &path, None).await;
    let (status, _) = v1.root(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Sessions: the caller picks the id; the body is the data; express-session's shape.
    let sid = uuid::Uuid::new_v4().to_string();
    let made = v1
        .ok(
            Method::POST,
            &format!("/session/{sid}"),
            Some(json!({"cookie": {"path": "/"}, "login": "jane", "expiration": "1m"})),
        )
        .await;
    assert_eq!(made["session"], sid.as_str());
    let got = v1.ok(Method::GET, &format!("/session/{sid}"), None).await;
    assert_eq!(got["data"]["cookie"]["path"], "/");
    assert!(got["data"].get("expiration").is_none());
    let listed = v1.ok(Method::GET, "/sessions/login/jane", None).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["rows"][0]["session"], sid.as_str());
    v1.ok(Method::DELETE, &format!("/session/{sid}"), None)
        .await;
    let (status, answer) = v1.root(Method::GET, &format!("/session/{sid}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["message"], "not found");

    // DELETE forgets the user.
    let gone = v1
        .ok(Method::DELETE, &format!("/user/token/{bob}"), None)
        .await;
    assert_eq!(gone["result"], "done");
    let (status, _) = v1
        .root(Method::GET, &format!("/user/token/{bob}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn legal_bases_agreements_and_activities_through_v1() {
    let app = TestApp::spawn().await;
    let v1 = V1::new(&app);
    let jane = app
        .create_user(json!({"email": "jane@example.com", "login": "jane"}))
        .await;
    v1.ok(
        Method::POST,
        "/lbasis/newsletter",
        Some(json!({"basistype": "consent", "shortdesc": "Letters", "usercontrol": "true"})),
    )
    .await;
    // The same path again updates it; a `brief` in the body renames it.
    v1.ok(
        Method::POST,
        "/lbasis/newsletter",
        Some(json!({"shortdesc": "Weekly letters"})),
    )
    .await;
    let bases = v1.ok(Method::GET, "/lbasis", None).await;
    assert_eq!(bases["total"], 1, "{bases}");
    assert_eq!(bases["rows"][0]["shortdesc"], "Weekly letters");
    assert_eq!(bases["rows"][0]["usercontrol"], true);
    v1.ok(
        Method::POST,
        "/lbasis/contract",
        Some(json!({"basistype": "contract"})),
    )
    .await;

    v1.ok(
        Method::POST,
        "/agreement/newsletter/email/jane@example.com",
        Some(json!({"agreementmethod": "web-form", "referencecode": "r-1"})),
    )
    .await;
    let got = v1
        .ok(
            Method::GET,
            &format!("/agreement/newsletter/token/{jane}"),
            None,
        )
        .await;
    assert_eq!(got["data"]["brief"], "newsletter", "{got}");
    let listed = v1.ok(Method::GET, "/agreements/login/jane", None).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let withdrawn = v1
        .ok(Method::DELETE, "/agreement/newsletter/login/jane", None)
        .await;
    assert_eq!(withdrawn, json!({"status": "ok"}));
    // A `status` that is not a yes withdraws too.
    v1.ok(Method::POST, "/agreement/newsletter/login/jane", None)
        .await;
    v1.ok(
        Method::POST,
        "/agreement/newsletter/login/jane",
        Some(json!({"status": "no"})),
    )
    .await;
    let got = v1
        .ok(Method::GET, "/agreement/newsletter/login/jane", None)
        .await;
    assert_ne!(got["data"]["status"], "yes", "{got}");
    let (status, _) = v1
        .root(Method::POST, "/agreement/nothing/login/jane", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    v1.ok(Method::DELETE, "/agreement/newsletter", None).await;

    v1.ok(
        Method::POST,
        "/pactivity/mailing",
        Some(json!({"title": "Mailing"})),
    )
    .await;
    v1.ok(
        Method::POST,
        "/pactivity/mailing",
        Some(json!({"title": "Mail-outs"})),
    )
    .await;
    v1.ok(Method::POST, "/pactivity/mailing/newsletter", None)
        .await;
    let activities = v1.ok(Method::GET, "/pactivity", None).await;
    assert_eq!(activities["total"], 1, "{activities}");
    assert_eq!(activities["rows"][0]["title"], "Mail-outs");
    assert_eq!(activities["rows"][0]["briefs"], json!(["newsletter"]));
    v1.ok(Method::DELETE, "/pactivity/mailing/newsletter", None)
        .await;
    v1.ok(Method::DELETE, "/pactivity/mailing", None).await;
    v1.ok(Method::DELETE, "/lbasis/contract", None).await;
    let bases = v1.ok(Method::GET, "/lbasis", None).await;
    assert_eq!(bases["total"], 1, "{bases}");
}

#[tokio::test]
async fn requests_shared_records_audit_and_login_through_v1() {
    let (app, mail) = app_with_mail_file().await;
    let v1 = V1::new(&app);
    let jane = app
        .create_user(json!({"email": "jane@example.com", "name": "Jane", "phone": "+447911123456"}))
        .await;
    // A user's own token may not change its record alone: the change becomes a request.
    let own = app.user_xtoken("token", &jane).await;
    let (status, asked) = v1
        .send(
            Method::PUT,
            &format!("/user/token/{jane}"),
            Some(&own),
            Some(json!({"name": "Jane Smith"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["result"], "request-created");
    let request = asked["rtoken"].as_str().unwrap().to_owned();
    let got = v1
        .ok(Method::GET, &format!("/request/{request}"), None)
        .await;
    assert_eq!(got["original"]["name"], "Jane", "{got}");
    assert_eq!(got["change"]["name"], "Jane Smith");
    let all = v1.ok(Method::GET, "/requests?status=open", None).await;
    assert_eq!(all["total"], 1, "{all}");
    let hers = v1
        .ok(Method::GET, &format!("/requests/token/{jane}"), None)
        .await;
    assert_eq!(hers["total"], 1, "{hers}");
    let approved = v1
        .ok(Method::POST, &format!("/request/{request}"), None)
        .await;
    assert_eq!(approved["result"], "done");
    let got = v1
        .ok(Method::GET, &format!("/user/token/{jane}"), None)
        .await;
    assert_eq!(got["data"]["name"], "Jane Smith");
    // The user's own token may not decide requests.
    let (status, _) = v1
        .send(
            Method::POST,
            &format!("/request/{request}"),
            Some(&own),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A forget-me by the user's own token: a request, cancelled by the DPO.
    let (_, asked) = v1
        .send(
            Method::DELETE,
            &format!("/user/token/{jane}"),
            Some(&own),
            None,
        )
        .await;
    assert_eq!(asked["result"], "request-created", "{asked}");
    let forget = asked["rtoken"].as_str().unwrap().to_owned();
    let cancelled = v1
        .ok(
            Method::DELETE,
            &format!("/request/{forget}"),
            Some(json!({"reason": "kept by contract"})),
        )
        .await;
    assert_eq!(cancelled["result"], "done");

    // A shared record: made by root, read by anyone holding it, the listed fields only.
    let shared = v1
        .ok(
            Method::POST,
            &format!("/sharedrecord/token/{jane}"),
            Some(json!({"fields": "name", "partner": "courier", "expiration": "1d"})),
        )
        .await;
    let record = shared["record"].as_str().unwrap().to_owned();
    let (status, got) = v1
        .send(Method::GET, &format!("/get/{record}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, json!({"status": "ok", "data": {"name": "Jane Smith"}}));
    let (status, got) = v1
        .send(
            Method::GET,
            "/get/00000000-0000-4000-8000-000000000000",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{got}");

    // The audit trail: the tenant's, the user's, one event.
    let trail = v1.ok(Method::GET, "/audit/admin?limit=5", None).await;
    assert!(trail["total"].as_i64().unwrap() > 5, "{trail}");
    assert_eq!(trail["rows"].as_array().unwrap().len(), 5);
    let hers = v1
        .ok(Method::GET, &format!("/audit/list/{jane}?limit=100"), None)
        .await;
    let event = hers["rows"][0]["auditeventuuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = v1
        .ok(Method::GET, &format!("/audit/get/{event}"), None)
        .await;
    assert_eq!(got["event"]["atoken"], event.as_str(), "{got}");
    assert!(got["event"]["title"].is_string(), "{got}");

    // Passwordless login through /v1: a captcha from /v2, a code by mail, an xtoken.
    let (id, typed) = captcha(&app, 1).await;
    let (status, sent) = v1
        .send(
            Method::GET,
            &format!("/prelogin/email/jane@example.com/{id}/{typed}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent, json!({"status": "ok", "result": "done"}));
    let code = codes_in(&mail, 1).await[0].clone();
    let (status, signed) = v1
        .send(
            Method::GET,
            &format!("/login/email/jane@example.com/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["token"], jane.as_str());
    let xtoken = signed["xtoken"].as_str().unwrap().to_owned();
    let (status, mine) = v1
        .send(
            Method::GET,
            &format!("/user/token/{jane}"),
            Some(&xtoken),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let (id, _) = captcha(&app, 1).await;
    let (_, wrong) = v1
        .send(
            Method::GET,
            &format!("/prelogin/email/jane@example.com/{id}/WRONG"),
            None,
            None,
        )
        .await;
    assert_eq!(wrong["result"], "captcha-error", "{wrong}");

    // System routes.
    let status = reqwest::get(format!("{}/v1/status", app.address))
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::OK);
    assert_eq!(status.text().await.unwrap(), "OK");
    let probe = reqwest::Client::new()
        .head(format!("{}/v1/status/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        probe.status(),
        StatusCode::OK,
        "HEAD, as load balancers probe"
    );
    let (status, answer) = v1.root(Method::GET, "/sys/backup", None).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(answer["status"], "error");
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/v1/user", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no cross-origin use"
    );
}

#[tokio::test]
async fn a_v1_request_runs_in_its_tokens_tenant_and_reaches_no_other() {
    let app = TestApp::spawn().await;
    let v1 = V1::new(&app);
    let (_, acme) = app.create_tenant("acme").await;
    let outsider = app
        .create_user(json!({"email": "jane@example.com", "name": "Default Jane"}))
        .await;
    // With no tenant named, acme's token works in acme.
    let (status, made) = v1
        .send(
            Method::POST,
            "/user",
            Some(&acme),
            Some(json!({"email": "jane@example.com", "name": "Acme Jane"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let acme_jane = made["token"].as_str().unwrap().to_owned();
    let (status, got) = v1
        .send(
            Method::GET,
            "/user/email/jane@example.com",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["data"]["name"], "Acme Jane");
    // Root with no tenant named is in the default tenant.
    let got = v1
        .ok(Method::GET, "/user/email/jane@example.com", None)
        .await;
    assert_eq!(got["data"]["name"], "Default Jane");
    let (status, _) = app
        .call(
            "UserGet",
            &acme,
            Some("acme"),
            json!({"mode": "token", "identity": acme_jane}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "made in acme");
    // Another tenant's record is not found through acme's token, by any route.
    for (method, path) in [
        (Method::GET, format!("/user/token/{outsider}")),
        (Method::PUT, format!("/user/token/{outsider}")),
        (Method::DELETE, format!("/user/token/{outsider}")),
        (Method::GET, format!("/userapp/token/{outsider}")),
        (Method::GET, format!("/agreements/token/{outsider}")),
        (Method::GET, format!("/sessions/token/{outsider}")),
        (Method::GET, format!("/requests/token/{outsider}")),
        (Method::GET, format!("/audit/list/{outsider}")),
    ] {
        let (status, answer) = v1
            .send(
                method.clone(),
                &path,
                Some(&acme),
                Some(json!({"name": "x"})),
            )
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
            "{method} {path}: {status} {answer}"
        );
    }
    // Naming the other tenant does not help.
    let response = reqwest::Client::new()
        .get(format!("{}/v1/user/token/{outsider}", app.address))
        .header("X-Bunker-Token", &acme)
        .header("X-Bunker-Tenant", "default")
        .send()
        .await
        .unwrap();
    // Under the default tenant, acme's token is not even found.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let got = v1
        .ok(Method::GET, &format!("/user/token/{outsider}"), None)
        .await;
    assert_eq!(got["data"]["name"], "Default Jane", "untouched");
}

#[tokio::test]
async fn an_oss_installation_moves_into_bunker_with_import_v1() {
    let source = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let target = TestApp::spawn().await;
    let (status, _) = source
        .root(
            "LegalBasisCreate",
            json!({"brief": "newsletter", "basistype": "consent", "shortdesc": "Letters", "usercontrol": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut tokens = Vec::new();
    for n in 0..25 {
        tokens.push(
            source
                .create_user(
                    json!({"email": format!("u{n}@example.com"), "name": format!("User {n}")}),
                )
                .await,
        );
    }
    let (status, _) = source
        .root(
            "AppdataCreate",
            json!({"mode": "token", "identity": tokens[0], "appname": "shop", "appdata": {"cart": ["tea"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = source
        .root(
            "AgreementAccept",
            json!({"mode": "token", "identity": tokens[1], "brief": "newsletter", "referencecode": "r-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // One of them is in Bunker already: left as it is.
    target
        .create_user(json!({"email": "u2@example.com", "name": "Kept"}))
        .await;
    // The servers run on this test's runtime: the command is waited for without blocking it.
    let run = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(bunker_tests::bunker_binary());
        command
            .arg("import-v1")
            .args(args)
            .env("BUNKER_IMPORT_FROM_TOKEN", &source.root_token)
            .env("BUNKER_IMPORT_TO_TOKEN", &target.root_token)
            .kill_on_drop(true);
        async move { command.output().await.unwrap() }
    };
    let output = run(vec![
        "--from".into(),
        source.address.clone(),
        "--to".into(),
        target.address.clone(),
        "--page-size".into(),
        "10".into(),
    ])
    .await;
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("imported: 1 legal bases, 24 users (1 already there, left as they were), 1 app records, 1 agreements"),
        "{said}"
    );
    assert!(
        !said.contains("@example.com"),
        "nothing personal is printed: {said}"
    );
    let (_, got) = target
        .root(
            "UserGet",
            json!({"mode": "email", "identity": "u0@example.com"}),
        )
        .await;
    assert_eq!(got["profile"]["name"], "User 0", "{got}");
    let moved = got["token"].as_str().unwrap().to_owned();
    let (_, app) = target
        .root(
            "AppdataGet",
            json!({"mode": "token", "identity": moved, "appname": "shop"}),
        )
        .await;
    assert_eq!(app["appdata"], json!({"cart": ["tea"]}), "{app}");
    let (_, agreements) = target
        .root(
            "AgreementListUserAgreements",
            json!({"mode": "email", "identity": "u1@example.com"}),
        )
        .await;
    assert_eq!(agreements["rows"][0]["brief"], "newsletter", "{agreements}");
    let (_, kept) = target
        .root(
            "UserGet",
            json!({"mode": "email", "identity": "u2@example.com"}),
        )
        .await;
    assert_eq!(kept["profile"]["name"], "Kept");
    let (_, last) = target
        .root(
            "UserGet",
            json!({"mode": "email", "identity": "u24@example.com"}),
        )
        .await;
    assert_eq!(last["profile"]["name"], "User 24", "past the first pages");
    // A token on the command line is refused (it would show in the process list).
    let output = run(vec![
        "--from".into(),
        source.address.clone(),
        "--from-token".into(),
        source.root_token.clone(),
    ])
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("BUNKER_IMPORT_FROM_TOKEN"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `done` every 200 ms for up to 20 seconds.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{what}: not within 20 seconds");
}

#[tokio::test]
async fn the_expiration_flow_schedules_keeps_and_deletes_through_v1_and_its_links() {
    let app = TestApp::spawn_with(TestOptions {
        sweep_interval: std::time::Duration::from_millis(300),
        ..TestOptions::default()
    })
    .await;
    let v1 = V1::new(&app);
    let jane = app
        .create_user(json!({"email": "jane@example.com", "name": "Jane"}))
        .await;
    let bob = app
        .create_user(json!({"email": "bob@example.com", "name": "Bob"}))
        .await;
    let carol = app
        .create_user(json!({"email": "carol@example.com", "name": "Carol"}))
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Root starts Jane's flow: a link capability, shown this once.
    let started = v1
        .ok(
            Method::POST,
            "/exp/start/email/jane@example.com",
            Some(json!({"expiration": "1h"})),
        )
        .await;
    let link = started["exptoken"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&link).unwrap();
    let status = v1
        .ok(Method::GET, &format!("/exp/status/token/{jane}"), None)
        .await;
    assert_eq!(status["expstatus"], "wait");
    let exptime = status["exptime"].as_i64().unwrap();
    assert!((now + 3590..now + 3610).contains(&exptime), "{status}");
    assert!(status.get("exptoken").is_none(), "stored hashed: {status}");
    // The person's own report says it, in JSON and on the page (never the link).
    let (code, report) = app
        .root(
            "SystemGetUserReport",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{report}");
    let expiration = &report["report"]["expiration"];
    assert_eq!(
        (&expiration["expstatus"], &expiration["exptime"]),
        (&json!("wait"), &json!(exptime)),
        "{report}"
    );
    assert!(!report.to_string().contains(&link));
    let (_, page) = app
        .root(
            "SystemGetUserHTMLReport",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert!(page.to_string().contains("to be deleted on"), "{page}");

    // A link fetched (by a person, a mail scanner, a preview) only asks: the same page for a
    // link that opens nothing, and the flow is untouched.
    let http = reqwest::Client::new();
    let page = |path: String| {
        let http = http.clone();
        let url = format!("{}/v1{path}", app.address);
        async move {
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers().clone();
            assert_eq!(headers["cache-control"], "no-store");
            assert_eq!(headers["referrer-policy"], "no-referrer");
            assert!(headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"));
            response.text().await.unwrap()
        }
    };
    let retain_page = page(format!("/exp/retain/{link}")).await;
    assert!(
        retain_page.contains("<form method=\"post\">"),
        "{retain_page}"
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(page(format!("/exp/retain/{unknown}")).await, retain_page);
    assert!(page(format!("/exp/delete/{link}"))
        .await
        .contains("cannot be undone"));
    let status = v1
        .ok(Method::GET, &format!("/exp/status/token/{jane}"), None)
        .await;
    assert_eq!(status["expstatus"], "wait", "a GET decides nothing");

    // The POSTs act, with no token: keep, then delete after all.
    let post = |path: String| {
        let http = http.clone();
        let url = format!("{}/v1{path}", app.address);
        async move {
            let response = http.post(url).send().await.unwrap();
            let status = response.status();
            (status, response.text().await.unwrap())
        }
    };
    assert_eq!(
        post(format!("/exp/retain/{link}")).await,
        (StatusCode::OK, "OK".to_owned())
    );
    let status = v1
        .ok(Method::GET, &format!("/exp/status/token/{jane}"), None)
        .await;
    assert_eq!(status["expstatus"], "retain");
    let (code, body) = post(format!("/exp/retain/{unknown}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("not found"), "{body}");
    let (code, body) = post("/exp/retain/not-a-uuid".to_owned()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        post(format!("/exp/delete/{link}")).await,
        (StatusCode::OK, "OK".to_owned())
    );
    let (code, _) = v1
        .root(Method::GET, &format!("/user/token/{jane}"), None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "Jane is forgotten");
    for action in ["retain", "delete"] {
        let (code, body) = post(format!("/exp/{action}/{link}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "a spent link: {body}");
    }
    // The trail says the link did it (its flow's row, never the capability).
    let (code, trail) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": jane, "limit": 100}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{trail}");
    let trail_rows = |trail: &Value, action: &str| {
        trail["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["eventtype"] == action)
            .map(|row| row["auditeventuuid"].clone())
            .unwrap()
    };
    let listed = trail.clone();
    let trail = trail.to_string();
    for action in [
        "UserExpirationStart",
        "UserExpirationRetain",
        "UserExpirationDelete",
    ] {
        assert!(trail.contains(action), "{action} in {trail}");
    }
    assert!(
        !trail.contains(&link),
        "the capability is never in the trail"
    );
    let deleted = trail_rows(&listed, "UserExpirationDelete");
    let (code, event) = app
        .root("AuditGetEvent", json!({"auditeventuuid": deleted}))
        .await;
    assert_eq!(code, StatusCode::OK, "{event}");
    let id = uuid::Uuid::parse_str(deleted.as_str().unwrap()).unwrap();
    let actor: String = app
        .superuser()
        .await
        .query_one("SELECT actor_kind FROM audit_events WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "expiration_link");

    // Bob's flow waits: the sweeper forgets him at its end. Carol's says retain: she stays.
    v1.ok(
        Method::POST,
        "/exp/start/email/bob@example.com",
        Some(json!({"expiration": "2s"})),
    )
    .await;
    v1.ok(
        Method::POST,
        &format!("/exp/start/token/{carol}"),
        Some(json!({"expiration": "1s", "status": "retain"})),
    )
    .await;
    eventually("the sweeper forgets Bob", || async {
        v1.root(Method::GET, &format!("/user/token/{bob}"), None)
            .await
            .0
            == StatusCode::NOT_FOUND
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let got = v1
        .ok(Method::GET, &format!("/user/token/{carol}"), None)
        .await;
    assert_eq!(got["data"]["name"], "Carol", "retained past its end");

    // A new start replaces the link; a cancel ends flow and link.
    let first = v1.start_flow(&carol, "10d").await;
    let second = v1.start_flow(&carol, "10d").await;
    let (code, _) = post(format!("/exp/delete/{first}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "the old link is replaced");
    v1.ok(Method::DELETE, &format!("/exp/cancel/token/{carol}"), None)
        .await;
    let status = v1
        .ok(Method::GET, &format!("/exp/status/token/{carol}"), None)
        .await;
    assert_eq!(
        (&status["expstatus"], &status["exptime"]),
        (&json!(""), &json!(0))
    );
    let (code, _) = post(format!("/exp/delete/{second}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a cancelled flow's link");
    v1.ok(Method::GET, &format!("/user/token/{carol}"), None)
        .await;

    // Bad input: a status that is neither wait nor retain, an expiration that is none.
    for body in [
        json!({"expiration": "1h", "status": "forget"}),
        json!({"expiration": "soon"}),
    ] {
        let (code, answer) = v1
            .root(
                Method::POST,
                &format!("/exp/start/token/{carol}"),
                Some(body),
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
    }

    // Carol's own token reads and cancels her flow, never starts one, and reaches no one else's.
    let own = app.user_xtoken("token", &carol).await;
    let (code, answer) = v1
        .send(
            Method::POST,
            &format!("/exp/start/token/{carol}"),
            Some(&own),
            Some(json!({"expiration": "1h"})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{answer}");
    v1.ok(
        Method::POST,
        &format!("/exp/start/token/{carol}"),
        Some(json!({"expiration": "1h"})),
    )
    .await;
    let (code, answer) = v1
        .send(
            Method::GET,
            &format!("/exp/status/token/{carol}"),
            Some(&own),
            None,
        )
        .await;
    assert_eq!(
        (code, &answer["expstatus"]),
        (StatusCode::OK, &json!("wait"))
    );
    let (code, answer) = v1
        .send(
            Method::DELETE,
            &format!("/exp/cancel/token/{carol}"),
            Some(&own),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let dave = app
        .create_user(json!({"email": "dave@example.com", "name": "Dave"}))
        .await;
    for (method, path) in [
        (Method::GET, format!("/exp/status/token/{dave}")),
        (Method::DELETE, format!("/exp/cancel/token/{dave}")),
        (Method::POST, format!("/exp/start/token/{dave}")),
        (
            Method::GET,
            "/exp/status/email/nobody@example.com".to_owned(),
        ),
    ] {
        let (code, answer) = v1.send(method.clone(), &path, Some(&own), None).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }

    // Another tenant's admin reaches no flow here; a link works whatever tenant is named.
    let (_, acme) = app.create_tenant("acme").await;
    let (code, answer) = v1
        .send(
            Method::POST,
            &format!("/exp/start/token/{dave}"),
            Some(&acme),
            Some(json!({"expiration": "1h"})),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{answer}");
    let dave_link = v1.start_flow(&dave, "1h").await;
    let response = http
        .post(format!("{}/v1/exp/retain/{dave_link}", app.address))
        .header("X-Bunker-Tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Under row-level security, the capability shows its one row and nothing else, and writes
    // nothing.
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            uuid::Uuid::parse_str(&dave_link).unwrap().as_bytes(),
        ))
    };
    let mut db = app.app_role().await;
    let tx = db.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('bunker.expiration_link', $1, true)",
        &[&hash],
    )
    .await
    .unwrap();
    let seen: i64 = tx
        .query_one("SELECT count(*) FROM user_expirations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1);
    let changed = tx
        .execute("UPDATE user_expirations SET status = 'wait'", &[])
        .await
        .unwrap();
    assert_eq!(changed, 0, "the capability writes nothing");
    tx.rollback().await.unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('bunker.expiration_link', $1, true)",
        &[&hex::encode([7u8; 32])],
    )
    .await
    .unwrap();
    let seen: i64 = tx
        .query_one("SELECT count(*) FROM user_expirations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
}
