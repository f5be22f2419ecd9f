//! The System commands (reports, statistics, licence, cross-tenant profiles), the public
//! TenantGetUIConf, and the whole `/v2` surface of the contract.

use bunker_tests::{answer, tenant_tables, StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

/// Every live command of shared/api/CONTRACT.md's endpoint index, connectors (retired) excluded.
const CONTRACT_COMMANDS: &[&str] = &[
    "TenantCreate",
    "TenantGet",
    "TenantUpdate",
    "TenantDelete",
    "TenantListTenants",
    "TenantGetUIConf",
    "UserCreate",
    "UserCreateBulk",
    "UserGet",
    "UserUpdate",
    "UserPatch",
    "UserDelete",
    "UserDeleteBulk",
    "UserSearch",
    "UserListVersions",
    "UserUpdateRequest",
    "UserPatchRequest",
    "UserDeleteRequest",
    "UserRequestGet",
    "UserRequestListUserRequests",
    "UserRequestApprove",
    "UserRequestCancel",
    "AppdataCreate",
    "AppdataGet",
    "AppdataUpdate",
    "AppdataUpdateRequest",
    "AppdataDelete",
    "AppdataListUserAppNames",
    "AppdataListAppNames",
    "AppdataListVersions",
    "FileCreate",
    "FileGet",
    "FileListUserFiles",
    "FileReplaceTags",
    "FileDelete",
    "LegalBasisCreate",
    "LegalBasisUpdate",
    "LegalBasisDelete",
    "LegalBasisListAgreements",
    "AgreementAccept",
    "AgreementGet",
    "AgreementListUserAgreements",
    "AgreementCancel",
    "AgreementCancelRequest",
    "AgreementRevokeAll",
    "ProcessingActivityCreate",
    "ProcessingActivityUpdate",
    "ProcessingActivityDelete",
    "ProcessingActivityLinkLegalBasis",
    "ProcessingActivityUnlinkLegalBasis",
    "ProcessingActivityListActivities",
    "GroupCreate",
    "GroupGet",
    "GroupListAllGroups",
    "GroupUpdate",
    "GroupDelete",
    "GroupListUserGroups",
    "GroupAddUser",
    "GroupDeleteUser",
    "RoleCreate",
    "RoleUpdate",
    "RoleLinkPolicy",
    "PolicyCreate",
    "PolicyUpdate",
    "PolicyGet",
    "PolicyListAllPolicies",
    "TokenCreate",
    "TokenCreateBulk",
    "TokenGet",
    "TokenDelete",
    "XTokenCreateForUser",
    "XTokenCreateForRole",
    "BulkListUnlock",
    "BulkListUsers",
    "BulkListAllUsers",
    "BulkListGroupUsers",
    "BulkListAllUserRequests",
    "BulkListAllAuditEvents",
    "BulkListTokens",
    "BulkDeleteTokens",
    "BulkListFilesByTag",
    "AuditListUserEvents",
    "AuditGetEvent",
    "SessionUpsert",
    "SessionGet",
    "SessionDelete",
    "SessionListUserSessions",
    "SharedRecordCreate",
    "SharedRecordGet",
    "SystemGenerateWrappingKey",
    "SystemGetSystemStats",
    "SystemSetLicenseKey",
    "SystemGetUserReport",
    "SystemGetUserHTMLReport",
    "SystemGetUserProfiles",
    "SystemSearchUserProfiles",
    "SystemDeleteUserProfiles",
    "SystemRestoreUserProfile",
    "UserPrelogin",
    "UserLogin",
    "CaptchaCreate",
];

#[tokio::test]
async fn every_live_command_of_the_contract_is_routed_and_answers_an_empty_body_with_a_status() {
    use bunker_services::access::Command;
    // The list above is the contract's: checked against CONTRACT.md where it is at hand.
    let contract =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/api/CONTRACT.md");
    if let Ok(text) = std::fs::read_to_string(&contract) {
        let listed: Vec<String> = text
            .lines()
            .filter_map(|l| l.split("[`").nth(1)?.split('`').next().map(str::to_owned))
            .filter(|name| !name.starts_with("Connector"))
            .filter(|name| text.contains(&format!("| [`{name}`](#")))
            .collect();
        let mut listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        listed.dedup();
        assert_eq!(listed, CONTRACT_COMMANDS, "the contract's index changed");
    }
    assert_eq!(CONTRACT_COMMANDS.len(), 101);
    let app = TestApp::spawn().await;
    let routed = app.routed_commands().await;
    for name in CONTRACT_COMMANDS {
        assert!(routed.iter().any(|r| r == name), "{name} is not routed");
        assert!(Command::from_name(name).is_some(), "{name} has no class");
        let (status, body) =
            answer(app.command(name).header("X-Bunker-Token", &app.root_token)).await;
        assert!(
            body.is_object() && body["status"].is_string(),
            "{name}: {status} {body}"
        );
        assert!(
            status.as_u16() < 500,
            "{name}: an empty body is refused, not failed: {status} {body}"
        );
    }
}

/// Sets up a user with something in every part a report covers; returns its token.
async fn a_user_with_everything(app: &TestApp) -> String {
    let token = app
        .create_user(json!({
            "login": "jane",
            "email": "jane@example.com",
            "name": "<script>alert('x')</script>",
            "address": {"city": "Leeds"},
        }))
        .await;
    let jane = json!({"mode": "login", "identity": "jane"});
    let with = |extra: Value| {
        let mut body = jane.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let calls = [
        ("UserUpdate", with(json!({"profile": {"nickname": "JJ"}}))),
        (
            "AppdataCreate",
            with(json!({"appname": "shop", "appdata": {"basket": ["tea"]}})),
        ),
        (
            "LegalBasisCreate",
            json!({"brief": "newsletter", "usercontrol": true}),
        ),
        ("AgreementAccept", with(json!({"brief": "newsletter"}))),
        (
            "SessionUpsert",
            json!({"sessionuuid": "sess-report-1", "sessiondata": {"login": "jane", "cart": 3}}),
        ),
        (
            "SharedRecordCreate",
            with(json!({"fields": "name", "partner": "Courier Ltd"})),
        ),
        (
            "FileCreate",
            with(json!({"filename": "passport.txt", "filedata": "aGVsbG8=", "tags": ["kyc"]})),
        ),
        ("RoleCreate", json!({"rolename": "member"})),
        ("GroupCreate", json!({"groupname": "Book club"})),
        (
            "GroupAddUser",
            with(json!({"groupname": "Book club", "rolename": "member"})),
        ),
        ("UserGet", jane.clone()),
    ];
    for (command, body) in calls {
        let (status, answer) = app.root(command, body).await;
        assert_eq!(status, StatusCode::OK, "{command}: {answer}");
    }
    let user = app.user_xtoken("login", "jane").await;
    let (status, body) = app
        .call(
            "UserUpdateRequest",
            &user,
            None,
            with(json!({"profile": {"city": "York"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    token
}

#[tokio::test]
async fn a_report_holds_everything_about_the_user_and_is_itself_audited() {
    let app = TestApp::spawn().await;
    let token = a_user_with_everything(&app).await;
    let (status, body) = app
        .root(
            "SystemGetUserReport",
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = &body["report"];
    assert_eq!(r["token"], token.as_str());
    assert_eq!(r["tenant"], "default");
    assert_eq!(r["profile"]["nickname"], "JJ");
    assert_eq!(r["profile"]["address"]["city"], "Leeds");
    assert_eq!(r["omitted"], json!([]));
    let versions = r["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions[0]["profile"].get("nickname").is_none());
    assert_eq!(r["appdata"][0]["appname"], "shop");
    assert_eq!(r["appdata"][0]["data"]["basket"], json!(["tea"]));
    assert_eq!(r["agreements"][0]["brief"], "newsletter");
    assert_eq!(r["agreements"][0]["status"], "yes");
    assert!(!r["agreements"][0]["history"].as_array().unwrap().is_empty());
    assert_eq!(r["requests"][0]["status"], "open");
    assert_eq!(r["requests"][0]["change"]["city"], "York");
    assert_eq!(r["sessions"][0]["data"]["cart"], 3);
    assert_eq!(r["sharedrecords"][0]["partner"], "Courier Ltd");
    assert_eq!(r["sharedrecords"][0]["fields"], json!(["name"]));
    assert_eq!(r["files"][0]["filename"], "passport.txt");
    assert_eq!(r["files"][0]["size"], 5);
    assert_eq!(r["files"][0]["tags"], json!(["kyc"]));
    assert_eq!(r["groups"][0]["group"], "Book club");
    assert_eq!(r["groups"][0]["role"], "member");
    let events = r["audit"]["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "UserCreate",
        "UserUpdate",
        "UserGet",
        "AppdataCreate",
        "FileCreate",
        "UserUpdateRequest",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let update = events.iter().find(|e| e["action"] == "UserUpdate").unwrap();
    assert_eq!(update["actor"], "root");
    assert_eq!(update["fields"], json!(["nickname"]));
    // Never a bearer secret: no session id, no shared-record uuid.
    let text = body.to_string();
    assert!(!text.contains("sess-report-1"), "a session id");
    assert!(r["sharedrecords"][0].get("recorduuid").is_none());
    // The report is itself in the trail.
    let (_, trail) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token, "limit": 100}),
        )
        .await;
    assert!(
        trail["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["eventtype"] == "SystemGetUserReport"),
        "{trail}"
    );

    // The person's own token gets the same report; a role gets only what its policy grants,
    // and is told what was left out.
    let user = app.user_xtoken("token", &token).await;
    let (status, own) = app
        .call(
            "SystemGetUserReport",
            &user,
            None,
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["report"]["omitted"], json!([]));
    assert_eq!(own["report"]["files"][0]["filename"], "passport.txt");
    app.grant(
        "support",
        "report-names",
        json!({"Effect": "Allow", "Action": ["SystemGetUserReport"], "Resource": ["users.profile.name"]}),
    )
    .await;
    let support = app.role_token("support").await;
    let (status, partial) = app
        .call(
            "SystemGetUserReport",
            &support,
            None,
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    let p = &partial["report"];
    assert_eq!(p["profile"]["name"], "<script>alert('x')</script>");
    assert_eq!(p["profile"]["login"], "***");
    for hidden in [
        "versions",
        "appdata",
        "agreements",
        "sessions",
        "sharedrecords",
        "files",
        "groups",
        "audit",
    ] {
        assert!(p[hidden].is_null(), "{hidden}: {p}");
        assert!(
            p["omitted"].as_array().unwrap().iter().any(|o| o == hidden),
            "{hidden} named"
        );
    }
    // A role reaching app data only: the app-data requests, and the report says it is in part.
    app.grant(
        "shopkeeper",
        "report-appdata",
        json!({"Effect": "Allow", "Action": ["SystemGetUserReport"], "Resource": ["users.appdata"]}),
    )
    .await;
    let shopkeeper = app.role_token("shopkeeper").await;
    let (status, apps) = app
        .call(
            "SystemGetUserReport",
            &shopkeeper,
            None,
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps["report"]["appdata"][0]["appname"], "shop");
    assert_eq!(
        apps["report"]["requests"],
        json!([]),
        "no profile change request"
    );
    let omitted = apps["report"]["omitted"].as_array().unwrap();
    assert!(
        omitted.iter().any(|o| o == "requests (in part)"),
        "{omitted:?}"
    );
    // A role with no grant learns nothing, not even whether the user exists.
    app.root("RoleCreate", json!({"rolename": "nobody"})).await;
    let nobody = app.role_token("nobody").await;
    for identity in [token.as_str(), "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = app
            .call(
                "SystemGetUserHTMLReport",
                &nobody,
                None,
                json!({"mode": "token", "identity": identity}),
            )
            .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (StatusCode::FORBIDDEN, Some("API access denied"))
        );
    }
}

#[tokio::test]
async fn the_html_report_escapes_values_and_renders_in_a_browser() {
    let app = TestApp::spawn().await;
    let token = a_user_with_everything(&app).await;
    let (status, body) = app
        .root(
            "SystemGetUserHTMLReport",
            json!({"mode": "login", "identity": "jane"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let html = body["html"].as_str().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "no script, and the value escaped"
    );
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "escaped value"
    );
    assert!(html.contains(&token));
    for shown in [
        "Book club",
        "passport.txt",
        "Courier Ltd",
        "newsletter",
        "Leeds",
        "Who used your data",
    ] {
        assert!(html.contains(shown), "{shown}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched from anywhere"
    );

    // A real browser: Chromium parses the page, runs nothing, and draws it.
    let dir = std::env::temp_dir().join(format!("bunker-report-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let url = format!("file://{}", page.display());
    let browser = chromium();
    let dom = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("run chromium (installed by .ci/run: apt-get install chromium)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Who used your data"), "rendered: {dom}");
    assert!(
        dom.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "the value is text"
    );
    assert!(!dom.contains("<script"), "no script element in the DOM");
    let shot = std::env::var("BUNKER_REPORT_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.join("report.png"));
    let drawn = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        drawn.status.success(),
        "{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a drawn page"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Debian's Chromium.
fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate.to_owned();
        }
    }
    panic!("Chromium is needed for the report's browser check: apt-get install chromium (.ci/run does)");
}

#[tokio::test]
async fn statistics_come_from_counters_in_the_callers_scope_and_the_licence_means_unlimited() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    for login in ["a1", "a2", "a3"] {
        app.create_user(json!({"login": login})).await;
    }
    let (status, body) = app
        .call(
            "UserCreate",
            &acme,
            Some("acme"),
            json!({"profile": {"login": "b1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.root(
        "TokenCreate",
        json!({"tokentype": "creditcard", "record": "4111111111111111"}),
    )
    .await;
    for id in ["s1", "s1", "s2"] {
        let (status, body) = app
            .root(
                "SessionUpsert",
                json!({"sessionuuid": id, "sessiondata": {"n": 1}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app.root("UserDelete", json!({"mode": "login", "identity": "a3"}))
        .await;

    let (status, root) = app.root("SystemGetSystemStats", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    let s = &root["stats"];
    assert_eq!(
        (s["numusers"].as_i64(), s["numtenants"].as_i64()),
        (Some(3), Some(2)),
        "{root}"
    );
    assert_eq!(s["numtokens"], 1);
    assert_eq!(
        s["numsessions"], 2,
        "an upsert of the same session is one session"
    );
    assert_eq!(root["totalnumrecords"], 4);
    assert_eq!(root["licensemaxrecords"], 9_007_199_254_740_991_i64);
    assert_eq!(root["licensefinalexpiration"], 253_402_300_799_i64);
    assert_eq!(root["licensetype"], "none");

    let (status, own) = app
        .call("SystemGetSystemStats", &acme, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["stats"]["numusers"], 1);
    assert_eq!(own["stats"]["numtenants"], 1);
    assert_eq!(own["stats"]["numsessions"], 0);
    app.root("RoleCreate", json!({"rolename": "nobody"})).await;
    let (status, _) = app
        .call(
            "SystemGetSystemStats",
            &app.role_token("nobody").await,
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The counters agree with the tables (counted here, never by the server).
    let db = app.superuser().await;
    let users: i64 = db
        .query_one("SELECT count(*) FROM users WHERE record IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 3);

    // No licence to set: done, without effect, for root only.
    let (status, body) = app
        .root("SystemSetLicenseKey", json!({"licensekey": "ABC"}))
        .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("done")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("no license"));
    let (status, _) = app
        .call(
            "SystemSetLicenseKey",
            &acme,
            Some("acme"),
            json!({"licensekey": "ABC"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_ui_configuration_is_public_and_set_by_the_tenant_admin() {
    let app = TestApp::spawn().await;
    let (acme_id, acme) = app.create_tenant("acme").await;
    let public = |tenant: &'static str| {
        let request = app
            .command("TenantGetUIConf")
            .header("X-Bunker-Tenant", tenant);
        answer(request)
    };
    let (status, before) = public("acme").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(
        before["ui"],
        json!({"loginmethods": {"email": false, "phone": false}})
    );
    let (_, unknown) = public("nosuchtenant").await;
    assert_eq!(
        unknown, before,
        "an unknown tenant looks like one that set nothing"
    );

    let conf = json!({"companytitle": "Acme Ltd", "logourl": "https://cdn.acme.test/logo.svg", "primarycolor": "#112233", "loginphone": false});
    let (status, body) = app
        .call(
            "TenantUpdate",
            &acme,
            Some("acme"),
            json!({"tenantid": acme_id, "uiconf": conf}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, after) = public("acme").await;
    assert_eq!(after["ui"]["companytitle"], "Acme Ltd");
    assert_eq!(after["ui"]["logourl"], "https://cdn.acme.test/logo.svg");
    assert_eq!(
        after["ui"]["loginmethods"],
        json!({"email": false, "phone": false})
    );
    let (_, default) = answer(app.command("TenantGetUIConf")).await;
    assert!(
        default["ui"].get("companytitle").is_none(),
        "another tenant's: {default}"
    );
    // null removes; what is not a name, link or colour is refused; nothing else is kept.
    let (status, _) = app
        .call(
            "TenantUpdate",
            &acme,
            Some("acme"),
            json!({"uiconf": {"primarycolor": null}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = public("acme").await;
    assert!(after["ui"].get("primarycolor").is_none());
    for refused in [
        json!({"logourl": "javascript:alert(1)"}),
        json!({"email": "jane@example.com"}),
        json!({"primarycolor": "red"}),
        json!({"companytitle": "<b>Acme</b>"}),
        json!({"companylink": "/\\evil.example"}),
    ] {
        let (status, body) = app
            .call(
                "TenantUpdate",
                &acme,
                Some("acme"),
                json!({"uiconf": refused}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            !body["message"].as_str().unwrap().contains("jane"),
            "never echoed"
        );
    }
    // Another tenant's admin may not change it; a role may not.
    let (_, globex) = app.create_tenant("globex").await;
    let (status, _) = app
        .call(
            "TenantUpdate",
            &globex,
            Some("globex"),
            json!({"tenantid": acme_id, "uiconf": {"companytitle": "Owned"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The login commands say login is off.
    for (command, body) in [
        (
            "UserPrelogin",
            json!({"mode": "email", "identity": "a@b.c", "code": "c", "captchacode": "x"}),
        ),
        (
            "UserLogin",
            json!({"mode": "email", "identity": "a@b.c", "smscode": "123456"}),
        ),
        ("CaptchaCreate", json!({})),
    ] {
        let (status, body) = answer(app.command(command).json(&body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
        assert_eq!(body["status"], "error");
    }
}

/// Profiles with the same e-mail in three tenants.
async fn three_tenants(app: &TestApp) -> (String, String) {
    let (_, acme) = app.create_tenant("acme").await;
    let (_, globex) = app.create_tenant("globex").await;
    app.create_user(json!({"email": "jane@example.com", "name": "Jane D"}))
        .await;
    for (tenant, token) in [("acme", &acme), ("globex", &globex)] {
        let (status, body) = app
            .call("UserCreate", token, Some(tenant), json!({"profile": {"email": "Jane@Example.com", "name": format!("Jane of {tenant}")}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    (acme, globex)
}

/// The server's own start-up check (every tenant table ENABLE and FORCE row-level security with a
/// tenant policy; the serving role no superuser, no BYPASSRLS, owning nothing), and the flags seen
/// directly.
async fn assert_row_level_security_is_on(app: &TestApp) {
    let db = bunker_db::Database::connect(&app.database_url(), 1)
        .await
        .unwrap();
    db.check_posture().await.expect("the posture check passes");
    let client = app.superuser().await;
    for table in tenant_tables(&client).await {
        let row = client
            .query_one(
                "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = $1",
                &[&table],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "{table}");
    }
}

#[tokio::test]
async fn the_main_root_finds_deletes_and_restores_a_person_across_tenants() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let (acme, _) = three_tenants(&app).await;
    assert_row_level_security_is_on(&app).await;
    let unlock = app.unlock_for(&app.root_token).await;

    let (status, found) = app
        .root(
            "SystemGetUserProfiles",
            json!({"mode": "email", "identity": "JANE@example.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["total"], 3);
    let names: Vec<&str> = found["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenantname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme", "globex"]);
    assert_eq!(found["rows"][1]["profile"]["name"], "Jane of acme");
    let acme_token = found["rows"][1]["token"].as_str().unwrap().to_owned();

    let (status, fuzzy) = app
        .root(
            "SystemSearchUserProfiles",
            json!({"identity": "jane@exmaple.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fuzzy}");
    assert_eq!(fuzzy["rows"].as_array().unwrap().len(), 3, "{fuzzy}");

    // An open request of hers in acme, emptied by the removal.
    let (status, made) = app
        .call(
            "XTokenCreateForUser",
            &app.root_token,
            Some("acme"),
            json!({"mode": "token", "identity": acme_token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let hers = made["xtoken"].as_str().unwrap().to_owned();
    let (status, asked) = app
        .call(
            "UserUpdateRequest",
            &hers,
            Some("acme"),
            json!({"mode": "token", "identity": acme_token, "profile": {"name": "J"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    let request = asked["requestuuid"].clone();

    // Deleted in one tenant only.
    let (status, deleted) = app
        .root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock, "tenantname": "acme"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["total"], 1);
    assert_eq!(
        deleted["rows"][0],
        json!({"token": acme_token, "tenantid": 2, "tenantname": "acme"})
    );
    let get = |tenant: &'static str| {
        app.call(
            "UserGet",
            &app.root_token,
            Some(tenant),
            json!({"mode": "email", "identity": "jane@example.com"}),
        )
    };
    assert_eq!(get("acme").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get("globex").await.0, StatusCode::OK);
    assert_eq!(get("default").await.0, StatusCode::OK);
    let (_, left) = app
        .root(
            "SystemGetUserProfiles",
            json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(left["total"], 2);
    assert_row_level_security_is_on(&app).await;

    // Restored, with its token, profile and index.
    let (status, restored) = app
        .root(
            "SystemRestoreUserProfile",
            json!({"token": acme_token, "unlockuuid": unlock, "tenantid": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["result"], "done");
    assert_eq!(restored["profile"]["name"], "Jane of acme");
    let (status, back) = get("acme").await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["token"], acme_token.as_str());
    let (status, again) = app
        .root(
            "SystemRestoreUserProfile",
            json!({"token": acme_token, "unlockuuid": unlock, "tenantname": "acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "restored already: {again}");
    // Her old request reads as cancelled, with nothing left of what it asked.
    let (status, old) = app
        .call(
            "UserRequestGet",
            &app.root_token,
            Some("acme"),
            json!({"requestuuid": request}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["request"]["status"], "cancelled");
    assert!(old["request"]["change"].is_null(), "{old}");
    // A tenant id and a name that disagree are refused, not one of them picked.
    let (status, body) = app
        .root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock, "tenantid": 2, "tenantname": "globex"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A blank tenant name is not "every tenant".
    let (status, body) = app
        .root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock, "tenantname": " "}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(get("acme").await.0, StatusCode::OK);
    assert_eq!(get("globex").await.0, StatusCode::OK);
    assert_eq!(get("default").await.0, StatusCode::OK);

    // Audited in the user's tenant and in the main tenant.
    let (_, trail) = app
        .call(
            "AuditListUserEvents",
            &app.root_token,
            Some("acme"),
            json!({"mode": "token", "identity": acme_token, "limit": 50}),
        )
        .await;
    let events: Vec<&str> = trail["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventtype"].as_str().unwrap())
        .collect();
    for action in [
        "SystemGetUserProfiles",
        "SystemSearchUserProfiles",
        "SystemDeleteUserProfiles",
        "SystemRestoreUserProfile",
    ] {
        assert!(events.contains(&action), "{action} in {events:?}");
    }
    let db = app.superuser().await;
    let main: Vec<String> = db
        .query(
            "SELECT action FROM audit_events WHERE tenant_id = 1 AND target = 'tenants'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for action in [
        "SystemGetUserProfiles",
        "SystemSearchUserProfiles",
        "SystemDeleteUserProfiles",
        "SystemRestoreUserProfile",
    ] {
        assert!(main.contains(&action.to_owned()), "{action} in {main:?}");
    }

    // Deleted everywhere; a new profile takes the e-mail in acme, so the old one cannot come back.
    let (status, everywhere) = app
        .root(
            "SystemDeleteUserProfiles",
            json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(
        (status, everywhere["total"].as_i64()),
        (StatusCode::OK, Some(3)),
        "{everywhere}"
    );
    let (status, _) = app
        .call(
            "UserCreate",
            &acme,
            Some("acme"),
            json!({"profile": {"email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the e-mail is free again");
    let (status, clash) = app
        .root(
            "SystemRestoreUserProfile",
            json!({"token": acme_token, "unlockuuid": unlock, "tenantname": "acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{clash}");
    assert_eq!(clash["message"], "Duplicate index: email");
    let (status, none) = app
        .root(
            "SystemDeleteUserProfiles",
            json!({"mode": "email", "identity": "nobody@example.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{none}");
    let (status, _) = app
        .root(
            "SystemDeleteUserProfiles",
            json!({"mode": "token", "identity": acme_token, "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a token needs its tenant");
    assert_row_level_security_is_on(&app).await;
}

#[tokio::test]
async fn only_the_main_tenants_root_with_an_unlock_works_across_tenants() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let (acme, _) = three_tenants(&app).await;
    let lookup = |unlock: &str| json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock});
    // A tenant admin, with an unlock of its own tenant.
    let own = {
        let (status, body) = app
            .call("BulkListUnlock", &acme, Some("acme"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["unlockuuid"].as_str().unwrap().to_owned()
    };
    for command in [
        "SystemGetUserProfiles",
        "SystemSearchUserProfiles",
        "SystemDeleteUserProfiles",
    ] {
        let (status, body) = app.call(command, &acme, Some("acme"), lookup(&own)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
        assert_eq!(
            body["message"],
            "Only the main tenant admin can run cross-tenant commands"
        );
    }
    // Root, in another tenant than the main one.
    let unlock = app.unlock_for(&app.root_token).await;
    let (status, _) = app
        .call(
            "SystemGetUserProfiles",
            &app.root_token,
            Some("acme"),
            lookup(&unlock),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A role, whatever its policies.
    app.grant(
        "ops",
        "all",
        json!({"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}),
    )
    .await;
    let role = app.role_token("ops").await;
    let (status, body) = app
        .call("SystemDeleteUserProfiles", &role, None, lookup(&unlock))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::FORBIDDEN, Some("API access denied"))
    );
    // Root with no unlock, a stale one, or a tenant admin's.
    for unlock in ["", "00000000-0000-0000-0000-000000000000", own.as_str()] {
        let (status, body) = app.root("SystemDeleteUserProfiles", lookup(unlock)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{unlock}: {body}");
    }
    let (status, body) = app
        .root("SystemGetUserProfiles", json!({"mode": "token", "identity": "00000000-0000-0000-0000-000000000000", "unlockuuid": unlock}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Nothing was removed by any of them.
    let (_, found) = app.root("SystemGetUserProfiles", lookup(&unlock)).await;
    assert_eq!(found["total"], 3);
}

#[tokio::test]
async fn a_removed_profile_is_restorable_only_within_its_window_then_its_versions_go() {
    let app = TestApp::spawn_with(TestOptions {
        restore_window_seconds: 1,
        sweep_interval: std::time::Duration::from_millis(300),
        ..TestOptions::default()
    })
    .await;
    let token = app.create_user(json!({"email": "jane@example.com"})).await;
    let unlock = app.unlock_for(&app.root_token).await;
    let (status, body) = app
        .root(
            "SystemDeleteUserProfiles",
            json!({"mode": "email", "identity": "jane@example.com", "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let db = app.superuser().await;
    let user = uuid::Uuid::parse_str(&token).unwrap();
    let sql = "SELECT count(*) FROM user_versions WHERE token = $1";
    assert_eq!(
        db.query_one(sql, &[&user]).await.unwrap().get::<_, i64>(0),
        1,
        "kept for the window"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        db.query_one(sql, &[&user]).await.unwrap().get::<_, i64>(0),
        0,
        "the sweeper deleted them after the window"
    );
    let (status, body) = app
        .root(
            "SystemRestoreUserProfile",
            json!({"token": token, "unlockuuid": unlock, "tenantid": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A plain UserDelete keeps nothing to restore.
    let other = app.create_user(json!({"login": "joe"})).await;
    app.root("UserDelete", json!({"mode": "token", "identity": other}))
        .await;
    let (status, _) = app
        .root(
            "SystemRestoreUserProfile",
            json!({"token": other, "unlockuuid": unlock, "tenantid": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_person_removed_by_concurrent_requests_is_removed_and_audited_once() {
    let app = TestApp::spawn_with(TestOptions {
        pool_size: 8,
        ..TestOptions::default()
    })
    .await;
    let unlock = app.unlock_for(&app.root_token).await;
    for (command, login) in [("SystemDeleteUserProfiles", "jane"), ("UserDelete", "joe")] {
        let token = app.create_user(json!({"login": login})).await;
        let body = json!({"mode": "login", "identity": login, "unlockuuid": unlock});
        let answers =
            futures_util::future::join_all((0..6).map(|_| app.root(command, body.clone()))).await;
        let done = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::OK)
            .count();
        assert_eq!(done, 1, "{command}: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND),
            "{answers:?}"
        );
        let (_, trail) = app
            .root(
                "AuditListUserEvents",
                json!({"mode": "token", "identity": token, "limit": 50}),
            )
            .await;
        let removals = trail["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["eventtype"] == command)
            .count();
        assert_eq!(removals, 1, "{command}: {trail}");
    }
}
