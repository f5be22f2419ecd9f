//! The web portals over HTTP (the browser run is tests/web): a user signs in with a code and asks
//! for a change, a DPO signs in with a token and approves it; the session cookie, its CSRF token
//! and its tenant binding; the security headers.

use std::collections::HashMap;

use bunker::http::limits::RateSettings;
use bunker_tests::{TestApp, TestOptions};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::login::{app_with_mail_file, app_with_mail_file_and, captcha, codes_in};

/// A browser without JavaScript: keeps cookies (by name), never follows redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    host: Option<String>,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden input `name` on the page.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).map(|i| i + marker.len());
        start
            .and_then(|s| {
                self.body[s..]
                    .find('"')
                    .map(|e| self.body[s..s + e].to_owned())
            })
            .unwrap_or_default()
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
            host: None,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("cookie", self.cookie_header());
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Signs in to the privacy portal as `email` with the code e-mailed (the `nth` code sent).
    async fn user_sign_in(
        &mut self,
        app: &TestApp,
        tenant: i64,
        email: &str,
        mail: &std::path::PathBuf,
        nth: usize,
    ) {
        let login = self.get("/").await;
        assert_eq!(login.status, StatusCode::OK);
        assert!(
            login.body.contains("The letters in the picture"),
            "{}",
            login.body
        );
        let csrf = login.hidden("csrf");
        // A captcha minted by the vault (a test cannot read the picture), in place of the page's.
        let (id, typed) = captcha(app, tenant).await;
        let sent = self
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("captcha", &id),
                    ("identity", email),
                    ("answer", &typed),
                ],
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        assert!(sent.body.contains("The six-digit code"), "{}", sent.body);
        let codes = codes_in(mail, nth).await;
        let code = codes.get(nth - 1).expect("a code was mailed").clone();
        let csrf = sent.hidden("csrf");
        let signed = self
            .post(
                "/login/code",
                &[("csrf", &csrf), ("identity", email), ("code", &code)],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        assert!(self.cookies.contains_key("bunker_user"));
    }

    async fn admin_sign_in(&mut self, token: &str) -> Page {
        let page = self.get("/admin").await;
        let csrf = page.hidden("csrf");
        self.post("/admin/signin", &[("csrf", &csrf), ("token", token)])
            .await
    }
}

#[tokio::test]
async fn a_user_asks_for_a_change_in_the_portal_and_a_dpo_approves_it_there() {
    let (app, mail) = app_with_mail_file_and(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let jane = app
        .create_user(json!({"name": "Jane Doe", "email": "jane@example.com"}))
        .await;
    let mut user = Browser::new(&app);
    user.user_sign_in(&app, 1, "jane@example.com", &mail, 1)
        .await;
    // The token the portal acts with is never in the cookie: a signed JWT naming the session.
    let jwt = user.cookies["bunker_user"].clone();
    assert_eq!(jwt.split('.').count(), 3, "a JWT");
    let home = user.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Jane Doe"), "{}", home.body);
    for header in [
        "content-security-policy",
        "x-frame-options",
        "referrer-policy",
        "x-content-type-options",
    ] {
        assert!(home.headers.contains_key(header), "{header}");
    }
    assert!(home.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["cache-control"], "no-store");

    // Without the CSRF token (or with another's), the change is refused and nothing is asked.
    let csrf = home.hidden("csrf");
    let forged = user.post("/profile", &[("f.name", "Mallory")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = user
        .post(
            "/profile",
            &[("csrf", &"0".repeat(64)), ("f.name", "Mallory")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = user
        .send(
            user.http
                .post(format!("{}/profile", user.base))
                .header("origin", "https://evil.example")
                .form(&[("csrf", csrf.as_str()), ("f.name", "Mallory")]),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let (_, requests) = app
        .root(
            "UserRequestListUserRequests",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(requests["rows"].as_array().unwrap().len(), 0, "{requests}");

    // With it, the change becomes a request (the tenant does not let users change alone).
    let asked = user
        .post(
            "/profile",
            &[
                ("csrf", &csrf),
                ("f.name", "Jane Smith"),
                ("f.email", "jane@example.com"),
            ],
        )
        .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    assert_eq!(asked.location(), "/?done=requested");
    let listed = user.get("/requests").await;
    assert!(listed.body.contains("Change of profile"), "{}", listed.body);
    assert!(listed.body.contains("open"));

    // The DPO signs in with the root token and approves it from the queue.
    let mut dpo = Browser::new(&app);
    let refused = dpo.admin_sign_in("not-a-token").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused
        .body
        .contains("This token is not valid for this tenant."));
    let user_token = app.user_xtoken("token", &jane).await;
    let refused = dpo.admin_sign_in(&user_token).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "a user's token is not a DPO's"
    );
    let signed = dpo.admin_sign_in(&app.root_token).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert!(!dpo.cookies["bunker_admin"].contains(&app.root_token));
    let queue = dpo.get("/admin").await;
    assert!(queue.body.contains("Change of profile"), "{}", queue.body);
    let (_, requests) = app
        .root(
            "UserRequestListUserRequests",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    let id = requests["rows"][0]["requestuuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let review = dpo.get(&format!("/admin/request?id={id}")).await;
    assert!(
        review.body.contains("Jane Doe") && review.body.contains("Jane Smith"),
        "{}",
        review.body
    );
    assert!(
        review.body.contains("class=\"changed\""),
        "the changed field is marked"
    );
    let csrf = review.hidden("csrf");
    // The user's session is not the DPO's: its cookie does not open /admin, nor its CSRF token.
    let mut mixed = Browser::new(&app);
    mixed.cookies.insert(
        "bunker_admin".to_owned(),
        user.cookies["bunker_user"].clone(),
    );
    let page = mixed.get("/admin").await;
    assert!(
        page.body.contains("Access token"),
        "a user JWT is no admin session"
    );
    // Without what the page showed, no approval.
    let unbound = dpo
        .post(
            "/admin/decide",
            &[("csrf", &csrf), ("id", &id), ("decision", "approve")],
        )
        .await;
    assert_eq!(unbound.status, StatusCode::BAD_REQUEST);
    let approved = dpo
        .post(
            "/admin/decide",
            &[
                ("csrf", &csrf),
                ("id", &id),
                ("decision", "approve"),
                ("reviewed", &review.hidden("reviewed")),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let home = user.get("/").await;
    assert!(home.body.contains("Jane Smith"), "{}", home.body);
    // The DPO finds her by a misspelled address (fuzzy search, behind the unlock), by POST only.
    let found = dpo
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("mode", "search"),
                ("identity", "jane@exampel.com"),
            ],
        )
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.body.contains(&jane), "{}", found.body);
    let by_url = dpo
        .get("/admin/users?mode=email&identity=jane@example.com")
        .await;
    assert!(
        !by_url.body.contains(&jane),
        "no lookup by e-mail from the URL"
    );

    // Signing out ends the session on the server: the old cookie no longer opens anything.
    let csrf = home.hidden("csrf");
    let out = user.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let mut replay = Browser::new(&app);
    replay.cookies.insert("bunker_user".to_owned(), jwt);
    let page = replay.get("/").await;
    assert!(
        page.body.contains("The letters in the picture"),
        "signed out"
    );
}

#[tokio::test]
async fn a_session_of_one_tenant_is_refused_on_another() {
    let (app, mail) = app_with_mail_file().await;
    let (acme, _) = app.create_tenant("acme").await;
    let (status, body) = app
        .call(
            "UserCreate",
            &app.root_token,
            Some("acme"),
            json!({"profile": {"email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.create_user(json!({"email": "jane@example.com"})).await;
    let mut user = Browser::new(&app);
    let mut acme_user = AcmeBrowser(Browser::new(&app));
    acme_user.sign_in(&app, acme, &mail).await;
    let jwt = acme_user.0.cookies["bunker_user"].clone();
    // The same cookie on the default tenant: no session there.
    user.cookies.insert("bunker_user".to_owned(), jwt);
    let page = user.get("/").await;
    assert!(
        page.body.contains("The letters in the picture"),
        "{}",
        page.body
    );
    assert!(
        !user.cookies.contains_key("bunker_user"),
        "the foreign cookie is cleared"
    );
}

/// A browser on tenant acme (the X-Bunker-Tenant header, as the API chooses tenants).
struct AcmeBrowser(Browser);

impl AcmeBrowser {
    async fn sign_in(&mut self, app: &TestApp, tenant: i64, mail: &std::path::PathBuf) {
        let b = &mut self.0;
        let login = b
            .send(
                b.http
                    .get(format!("{}/", b.base))
                    .header("x-bunker-tenant", "acme"),
            )
            .await;
        let csrf = login.hidden("csrf");
        let (id, typed) = captcha(app, tenant).await;
        let sent = b
            .send(
                b.http
                    .post(format!("{}/login", b.base))
                    .header("x-bunker-tenant", "acme")
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("captcha", &id),
                        ("identity", "jane@example.com"),
                        ("answer", &typed),
                    ]),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        let code = codes_in(mail, 1).await[0].clone();
        let csrf = sent.hidden("csrf");
        let signed = b
            .send(
                b.http
                    .post(format!("{}/login/code", b.base))
                    .header("x-bunker-tenant", "acme")
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("identity", "jane@example.com"),
                        ("code", &code),
                    ]),
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        let home = b
            .send(
                b.http
                    .get(format!("{}/", b.base))
                    .header("x-bunker-tenant", "acme"),
            )
            .await;
        assert!(home.body.contains("jane@example.com"), "{}", home.body);
    }
}

#[tokio::test]
async fn the_portal_gives_an_unknown_address_the_same_answer_and_locks_out_wrong_codes() {
    let (app, mail) = app_with_mail_file().await;
    app.create_user(json!({"email": "jane@example.com"})).await;
    let mut b = Browser::new(&app);
    let mut answers = Vec::new();
    for email in ["jane@example.com", "nobody@example.com"] {
        let login = b.get("/").await;
        let csrf = login.hidden("csrf");
        let (id, typed) = captcha(&app, 1).await;
        let sent = b
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("captcha", &id),
                    ("identity", email),
                    ("answer", &typed),
                ],
            )
            .await;
        answers.push((
            sent.status,
            sent.body
                .replace(email, "EMAIL")
                .replace(&sent.hidden("csrf"), "CSRF"),
        ));
    }
    assert_eq!(
        answers[0], answers[1],
        "known and unknown addresses are answered alike"
    );
    let code = codes_in(&mail, 1).await[0].clone();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let login = b.get("/").await;
    let csrf = login.hidden("csrf");
    for _ in 0..5 {
        let page = b
            .post(
                "/login/code",
                &[
                    ("csrf", &csrf),
                    ("identity", "jane@example.com"),
                    ("code", wrong),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("The login code is wrong"),
            "{}",
            page.body
        );
    }
    // Locked out: the right code no longer works.
    let page = b
        .post(
            "/login/code",
            &[
                ("csrf", &csrf),
                ("identity", "jane@example.com"),
                ("code", &code),
            ],
        )
        .await;
    assert!(
        page.body.contains("The login code is wrong"),
        "{}",
        page.body
    );
    assert!(!b.cookies.contains_key("bunker_user"));
    // Without the sign-in form's CSRF cookie value, no code is even tried.
    let page = b
        .post(
            "/login/code",
            &[("identity", "jane@example.com"), ("code", &code)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn one_address_may_try_only_so_many_codes_and_tokens_whatever_the_identity() {
    let mail = std::env::temp_dir().join(format!("bunker-mail-{}.log", uuid::Uuid::new_v4()));
    let app = TestApp::spawn_with(TestOptions {
        mail: bunker::http::mail::MailSettings {
            log_file: Some(mail),
            ..Default::default()
        },
        rates: RateSettings {
            login: bunker_services::core::rate::Rate::parse("3/h").unwrap(),
            ..bunker_tests::default_rates()
        },
        ..TestOptions::default()
    })
    .await;
    for (i, email) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        let (status, body) = bunker_tests::answer(
            app.command("UserLogin")
                .json(&json!({"mode": "email", "identity": email, "smscode": format!("00000{i}")})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // A fourth identity from the same address: over the address's sign-in allowance.
    let (status, body) = bunker_tests::answer(
        app.command("UserLogin")
            .json(&json!({"mode": "email", "identity": "d@example.com", "smscode": "000000"})),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // The DPO sign-in shares it: even the right token is not tried.
    let mut dpo = Browser::new(&app);
    let page = dpo.admin_sign_in(&app.root_token).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("Too many requests"), "{}", page.body);
    assert!(!dpo.cookies.contains_key("bunker_admin"));
}

#[tokio::test]
async fn a_user_downloads_their_own_files_and_sees_what_is_shared() {
    let (app, mail) = app_with_mail_file().await;
    let jane = app
        .create_user(json!({"name": "Jane Doe", "email": "jane@example.com"}))
        .await;
    let bob = app.create_user(json!({"email": "bob@example.com"})).await;
    let create = |token: &str, name: &str, data: &str| json!({"mode": "token", "identity": token, "filename": name, "filedata": data});
    // A page that would run script if it were shown as the portal's own.
    let page = "PGh0bWw+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0PjwvaHRtbD4=";
    let (status, made) = app
        .root("FileCreate", create(&jane, "page \"x\".html", page))
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let file = made["fileuuid"].as_str().unwrap().to_owned();
    let (_, bobs) = app
        .root("FileCreate", create(&bob, "bob.txt", "Ym9i"))
        .await;
    let bobs = bobs["fileuuid"].as_str().unwrap().to_owned();
    let (status, shared) = app
        .root(
            "SharedRecordCreate",
            json!({"mode": "token", "identity": jane, "fields": "name",
                   "partner": "Acme <b>Couriers</b>", "finaltime": "1d"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shared}");
    let record = shared["recorduuid"].as_str().unwrap().to_owned();

    let mut user = Browser::new(&app);
    user.user_sign_in(&app, 1, "jane@example.com", &mail, 1)
        .await;
    let data = user.get("/data").await;
    assert_eq!(data.status, StatusCode::OK);
    assert!(
        data.body.contains("page &#34;x&#34;.html")
            || data.body.contains("page &quot;x&quot;.html"),
        "{}",
        data.body
    );
    assert!(
        data.body.contains(&format!("value=\"{file}\"")),
        "a download form"
    );
    // What is shared, and with whom (escaped), but never the link itself.
    assert!(
        data.body.contains("Acme &#60;b&#62;Couriers&#60;/b&#62;") && !data.body.contains("<b>"),
        "{}",
        data.body
    );
    assert!(
        !data.body.contains(&record),
        "the shared record's uuid is a bearer secret"
    );
    assert!(!data.body.contains("bob.txt"));

    let download = user.get(&format!("/file?id={file}")).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);
    assert_eq!(download.body, "<html><script>alert(1)</script></html>");
    let disposition = download.headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let policies: Vec<&str> = download
        .headers
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(policies.contains(&"sandbox"), "{policies:?}");
    assert!(
        policies.iter().any(|p| p.starts_with("default-src 'self'")),
        "{policies:?}"
    );
    assert_eq!(download.headers["x-content-type-options"], "nosniff");

    // Another user's file is not hers to read: refused, and the same as a file that is not there.
    let foreign = user.get(&format!("/file?id={bobs}")).await;
    let missing = user
        .get("/file?id=00000000-0000-4000-8000-000000000000")
        .await;
    assert!(!foreign.body.contains("bob"), "{}", foreign.body);
    assert!(foreign.headers.get("content-disposition").is_none());
    assert_eq!(foreign.status, missing.status);
    let garbage = user.get("/file?id=%3Cscript%3E").await;
    assert!(garbage.status.is_client_error(), "{}", garbage.status);
    // Signed out, no file.
    let stranger = Browser::new(&app).get(&format!("/file?id={file}")).await;
    assert_eq!(stranger.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_dpo_edits_legal_bases_and_activities_and_filters_the_trail() {
    let app = TestApp::spawn().await;
    let mut dpo = Browser::new(&app);
    assert_eq!(
        dpo.admin_sign_in(&app.root_token).await.status,
        StatusCode::SEE_OTHER
    );
    let page = dpo.get("/admin/consent").await;
    let csrf = page.hidden("csrf");
    let made = dpo
        .post(
            "/admin/legalbasis",
            &[
                ("csrf", &csrf),
                ("existing", ""),
                ("brief", "newsletter"),
                ("basistype", "consent"),
                ("shortdesc", "Our letter"),
                ("fulldesc", ""),
                ("usercontrol", "yes"),
                ("status", "active"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    // Its edit form holds what is stored; saving it renames it and changes its text.
    let edit = dpo.get("/admin/consent?basis=newsletter").await;
    assert!(
        edit.body.contains("Edit the legal basis newsletter"),
        "{}",
        edit.body
    );
    assert_eq!(edit.hidden("existing"), "newsletter");
    let saved = dpo
        .post(
            "/admin/legalbasis",
            &[
                ("csrf", &csrf),
                ("existing", "newsletter"),
                ("brief", "weekly-letter"),
                ("basistype", "consent"),
                ("shortdesc", "Our weekly letter"),
                ("fulldesc", "Sent on Mondays"),
                ("usercontrol", "no"),
                ("status", "active"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, bases) = app.root("LegalBasisListAgreements", json!({})).await;
    let rows = bases["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{bases}");
    assert_eq!(rows[0]["brief"], "weekly-letter");
    assert_eq!(rows[0]["shortdesc"], "Our weekly letter");
    assert_eq!(rows[0]["usercontrol"], false);

    // An activity: created, edited, linked and unlinked.
    for (existing, name, title) in [
        ("", "mailing", "Mailing"),
        ("mailing", "mailing", "Mail-outs"),
    ] {
        let saved = dpo
            .post(
                "/admin/activity",
                &[
                    ("csrf", &csrf),
                    ("existing", existing),
                    ("activity", name),
                    ("title", title),
                    ("fulldesc", ""),
                    ("applicableto", ""),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    }
    let link = |change: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("activity", "mailing".to_owned()),
            ("change", change.to_owned()),
            ("brief", "weekly-letter".to_owned()),
        ]
    };
    let linked = link("link");
    let linked: Vec<(&str, &str)> = linked.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        dpo.post("/admin/link", &linked).await.status,
        StatusCode::SEE_OTHER
    );
    let (_, activities) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(activities["rows"][0]["title"], "Mail-outs", "{activities}");
    let shown = dpo.get("/admin/consent").await;
    assert!(
        shown
            .body
            .contains("<td>mailing</td><td>Mail-outs</td><td>weekly-letter</td>"),
        "{}",
        shown.body
    );
    assert_eq!(
        activities["rows"][0]["briefs"],
        json!(["weekly-letter"]),
        "{activities}"
    );
    let unlinked = link("unlink");
    let unlinked: Vec<(&str, &str)> = unlinked.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        dpo.post("/admin/link", &unlinked).await.status,
        StatusCode::SEE_OTHER
    );
    let (_, activities) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(
        activities["rows"][0]["briefs"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0,
        "{activities}"
    );

    // The trail filtered by event type over the whole trail, not only the newest page.
    let jane = app.create_user(json!({"email": "jane@example.com"})).await;
    app.root("UserGet", json!({"mode": "token", "identity": jane}))
        .await;
    for n in 0..120 {
        app.create_user(json!({"email": format!("u{n}@example.com")}))
            .await;
    }
    let filtered = dpo.get("/admin/audit?eventtype=UserGet").await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(filtered.body.contains("(1 in all)"), "{}", filtered.body);
    let today = dpo
        .get("/admin/audit?eventtype=UserCreate&since=2000-01-01&until=2999-12-31")
        .await;
    assert!(today.body.contains("(121 in all)"), "{}", today.body);
    let older = dpo
        .get("/admin/audit?eventtype=UserCreate&until=2000-01-01")
        .await;
    assert!(older.body.contains("(0 in all)"), "{}", older.body);
    let bad = dpo.get("/admin/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(
        bad.body.contains("The since date is not a date."),
        "{}",
        bad.body
    );
    // The same filters through /v2, bounded.
    let (_, unlock) = app.root("BulkListUnlock", json!({})).await;
    let unlock = unlock["unlockuuid"].as_str().unwrap().to_owned();
    let (status, listed) = app
        .root(
            "BulkListAllAuditEvents",
            json!({"unlockuuid": unlock, "eventtype": "UserGet", "since": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["rows"][0]["eventtype"], "UserGet");
    for body in [
        json!({"unlockuuid": unlock, "since": -1}),
        json!({"unlockuuid": unlock, "until": 1e15}),
        json!({"unlockuuid": unlock, "eventtype": "x".repeat(65)}),
    ] {
        let (status, refused) = app.root("BulkListAllAuditEvents", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    }
}

#[tokio::test]
async fn the_review_page_shows_every_change_a_request_would_make() {
    let app = TestApp::spawn().await;
    let bob = app
        .create_user(json!({"name": "Bob", "email": "bob@example.com", "age": 30}))
        .await;
    let token = app.user_xtoken("token", &bob).await;
    // Two hundred harmless fields first, and the address among them: every change is listed.
    let mut profile = serde_json::Map::new();
    for n in 0..205 {
        profile.insert(format!("a{n:03}"), json!("x"));
    }
    profile.insert("email".to_owned(), json!("attacker@evil.example"));
    profile.insert("age".to_owned(), json!("30"));
    let (status, asked) = app
        .call(
            "UserUpdateRequest",
            &token,
            None,
            json!({"mode": "token", "identity": bob, "profile": profile}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    let (status, patched) = app
        .call(
            "UserPatchRequest",
            &token,
            None,
            json!({"mode": "token", "identity": bob,
                   "patch": [{"op": "replace", "path": "/name", "value": "Mallory"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (_, requests) = app
        .root(
            "UserRequestListUserRequests",
            json!({"mode": "token", "identity": bob}),
        )
        .await;
    let ids: Vec<(String, String)> = requests["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["requesttype"].as_str().unwrap().to_owned(),
                r["requestuuid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let id_of = |kind: &str| ids.iter().find(|(k, _)| k == kind).unwrap().1.clone();
    let mut dpo = Browser::new(&app);
    dpo.admin_sign_in(&app.root_token).await;
    let review = dpo
        .get(&format!("/admin/request?id={}", id_of("change-profile")))
        .await;
    assert_eq!(review.status, StatusCode::OK);
    assert!(
        review.body.contains(
            "<tr class=\"changed\"><th scope=\"row\">email</th><td>bob@example.com</td><td>attacker@evil.example</td></tr>"
        ),
        "{}",
        review.body
    );
    // A number turned into text is a change, shown as JSON so that it can be told apart.
    assert!(
        review.body.contains(
            "<tr class=\"changed\"><th scope=\"row\">age</th><td>30</td><td>&#34;30&#34;</td></tr>"
        ),
        "{}",
        review.body
    );
    assert!(
        review.body.contains("207 field(s) would change"),
        "{}",
        review.body
    );
    assert!(review.body.contains("<th scope=\"row\">a204</th>"));
    let review = dpo
        .get(&format!("/admin/request?id={}", id_of("patch-profile")))
        .await;
    assert!(
        review.body.contains(
            "<tr class=\"changed\"><th scope=\"row\">name</th><td>Bob</td><td>Mallory</td></tr>"
        ),
        "{}",
        review.body
    );
    assert!(
        review.body.contains("1 field(s) would change"),
        "{}",
        review.body
    );
    // A key with a dot is not the nested field it reads like: each has its own row.
    let carol = app
        .create_user(
            json!({"email": "carol@example.com", "addr": {"city": "Paris"}, "addr.city": "Paris"}),
        )
        .await;
    let (status, asked) = app
        .root(
            "UserUpdateRequest",
            json!({"mode": "token", "identity": carol, "profile": {"addr": {"city": "Evil"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    let carols = asked["requestuuid"].as_str().unwrap().to_owned();
    let review = dpo.get(&format!("/admin/request?id={carols}")).await;
    assert!(
        review.body.contains(
            "<tr class=\"changed\"><th scope=\"row\">addr.city</th><td>Paris</td><td>Evil</td></tr>"
        ),
        "{}",
        review.body
    );
    assert!(
        review
            .body
            .contains("<th scope=\"row\">/addr.city</th><td>Paris</td><td>(unchanged)</td>"),
        "{}",
        review.body
    );
    // Approval holds to what the page showed: once the record changed, the old page's approval is
    // refused and nothing is applied.
    let (_, copy) = app
        .root(
            "UserPatchRequest",
            json!({"mode": "token", "identity": carol,
                   "patch": [{"op": "copy", "from": "/addr.city", "path": "/email"}]}),
        )
        .await;
    let copy = copy["requestuuid"].as_str().unwrap().to_owned();
    let stale = dpo.get(&format!("/admin/request?id={copy}")).await;
    let (csrf, reviewed) = (stale.hidden("csrf"), stale.hidden("reviewed"));
    assert_eq!(reviewed.len(), 64, "{}", stale.body);
    let (status, _) = app
        .root(
            "UserUpdate",
            json!({"mode": "token", "identity": carol, "profile": {"addr.city": "x@evil.example"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = dpo
        .post(
            "/admin/decide",
            &[
                ("csrf", &csrf),
                ("id", &copy),
                ("decision", "approve"),
                ("reviewed", &reviewed),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("changed since it was reviewed"),
        "{}",
        refused.body
    );
    let (status, refused) = app
        .root(
            "UserRequestApprove",
            json!({"requestuuid": copy, "reviewdigest": reviewed}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (_, got) = app
        .root("UserGet", json!({"mode": "token", "identity": carol}))
        .await;
    assert_eq!(got["profile"]["email"], "carol@example.com", "{got}");
    // Reviewed again, it goes through.
    let fresh = dpo.get(&format!("/admin/request?id={copy}")).await;
    let approved = dpo
        .post(
            "/admin/decide",
            &[
                ("csrf", &csrf),
                ("id", &copy),
                ("decision", "approve"),
                ("reviewed", &fresh.hidden("reviewed")),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    // A forget-me says what it would do.
    let (_, forget) = app
        .root(
            "UserDeleteRequest",
            json!({"mode": "token", "identity": carol}),
        )
        .await;
    let forget = forget["requestuuid"].as_str().unwrap().to_owned();
    let review = dpo.get(&format!("/admin/request?id={forget}")).await;
    assert!(
        review
            .body
            .contains("Everything held about the user is to be deleted."),
        "{}",
        review.body
    );
    // Through /v2 the same: what approval would store.
    let (_, got) = app
        .root(
            "UserRequestGet",
            json!({"requestuuid": id_of("patch-profile")}),
        )
        .await;
    assert_eq!(got["request"]["proposed"]["name"], "Mallory", "{got}");
    assert_eq!(got["request"]["original"]["name"], "Bob");
}

#[tokio::test]
async fn the_portals_refuse_what_their_forms_do_not_offer_and_bound_the_rest() {
    let (app, mail) = app_with_mail_file_and(TestOptions {
        rates: RateSettings {
            public: bunker_services::core::rate::Rate::parse("5/min").unwrap(),
            ..TestOptions::default().rates
        },
        ..TestOptions::default()
    })
    .await;
    let jane = app
        .create_user(json!({"email": "jane@example.com", "age": 30, "address": {"city": "Leeds"}}))
        .await;
    // A file name that would show its extension backwards is refused.
    let (status, refused) = app
        .root(
            "FileCreate",
            json!({"mode": "token", "identity": jane, "filename": "invoice\u{202e}fdp.exe", "filedata": "aGk="}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, refused) = app
        .root(
            "FileCreate",
            json!({"mode": "token", "identity": jane, "filename": " \u{a0} ", "filedata": "aGk="}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let mut user = Browser::new(&app);
    user.user_sign_in(&app, 1, "jane@example.com", &mail, 1)
        .await;
    let home = user.get("/").await;
    let csrf = home.hidden("csrf");
    // A number stays a number; an object is not the form's to overwrite.
    let page = user
        .post("/profile", &[("csrf", &csrf), ("f.age", "abc")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("age must be a number."), "{}", page.body);
    let page = user
        .post("/profile", &[("csrf", &csrf), ("f.address", "nowhere")])
        .await;
    assert_eq!(page.location(), "/?done=unchanged");

    let mut dpo = Browser::new(&app);
    dpo.admin_sign_in(&app.root_token).await;
    let page = dpo.get("/admin/consent").await;
    let csrf = page.hidden("csrf");
    let page = dpo
        .post(
            "/admin/link",
            &[
                ("csrf", &csrf),
                ("activity", "a"),
                ("change", "delete"),
                ("brief", "b"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // A page beyond any trail is an empty page, not an overflow.
    let page = dpo.get("/admin/audit?offset=9223372036854775807").await;
    assert_eq!(page.status, StatusCode::OK);
    // What the server's own layers answer under the portals carries the portals' headers.
    for path in ["/admin/nope", "/nope"] {
        let page = dpo.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
        assert!(
            page.headers.contains_key("content-security-policy"),
            "{path}"
        );
    }
    // Each sign-in page draws a captcha: it spends the address's public allowance.
    let mut stranger = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(stranger.get("/").await.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = stranger.get("/").await;
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(limited.headers["x-frame-options"], "DENY");
}
