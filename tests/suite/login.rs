//! Passwordless login (CaptchaCreate, UserPrelogin, UserLogin): a code e-mailed after a captcha,
//! exchanged once for a user token; the same answers for a known and an unknown address; wrong
//! codes lock the identity out; codes expire and are bound to their tenant.

use std::path::PathBuf;
use std::time::Duration;

use bunker::http::mail::MailSettings;
use bunker_db::TenantId;
use bunker_services::login::LOGIN_REFUSED;
use bunker_tests::{answer, SmtpReceiver, StatusCode, TestApp, TestOptions};
use secrecy::SecretString;
use serde_json::{json, Value};

/// A server that writes its login mail to a file of its own.
pub(crate) async fn app_with_mail_file() -> (TestApp, PathBuf) {
    app_with_mail_file_and(TestOptions::default()).await
}

/// The same, with other options.
pub(crate) async fn app_with_mail_file_and(options: TestOptions) -> (TestApp, PathBuf) {
    let dir = std::env::temp_dir().join(format!("bunker-mail-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mail.log");
    let app = TestApp::spawn_with(TestOptions {
        mail: MailSettings {
            log_file: Some(file.clone()),
            ..MailSettings::default()
        },
        ..options
    })
    .await;
    (app, file)
}

/// The six-digit codes in the mail file so far, once there are `count` (or after 10 s).
pub(crate) async fn codes_in(file: &PathBuf, count: usize) -> Vec<String> {
    let mut codes = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        codes = six_digit_codes(&text);
        if codes.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    codes
}

/// The codes of each message: "... is 123456." in its text.
fn six_digit_codes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.starts_with("Your sign-in code for"))
        .filter_map(|line| line.rsplit(" is ").next())
        .map(|tail| tail.trim_end_matches('.').to_owned())
        .filter(|code| code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// A captcha minted by the vault itself (a test cannot read the picture): its id and answer.
pub(crate) async fn captcha(app: &TestApp, tenant: i64) -> (String, String) {
    let vault = crate::audit_chain::vault_of(app).await;
    let made = vault.create_captcha(Some(TenantId(tenant))).await.unwrap();
    (made.code, made.answer.to_string())
}

async fn prelogin(app: &TestApp, tenant: &str, email: &str, code: &str, typed: &str) -> Value {
    let (status, body) = answer(
        app.command("UserPrelogin")
            .header("X-Bunker-Tenant", tenant)
            .json(&json!({"mode": "email", "identity": email, "code": code, "captchacode": typed})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn login(app: &TestApp, tenant: &str, email: &str, code: &str) -> (StatusCode, Value) {
    answer(
        app.command("UserLogin")
            .header("X-Bunker-Tenant", tenant)
            .json(&json!({"mode": "email", "identity": email, "smscode": code})),
    )
    .await
}

/// UserPrelogin with a fresh captcha, answered right.
async fn send_code(app: &TestApp, tenant_id: i64, tenant: &str, email: &str) {
    let (id, typed) = captcha(app, tenant_id).await;
    let body = prelogin(app, tenant, email, &id, &typed).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn a_code_sent_after_the_captcha_is_exchanged_once_for_the_users_own_token() {
    let (app, file) = app_with_mail_file().await;
    let user = app
        .create_user(json!({"email": "jane@example.com", "name": "Jane"}))
        .await;
    // The captcha the page shows: a PNG, the letters spoken, five minutes.
    let (status, shown) = answer(app.command("CaptchaCreate")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let image = shown["image"].as_str().unwrap();
    let png = image.strip_prefix("data:image/png;base64,").unwrap();
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png)
        .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(
        shown.get("audio").is_none(),
        "no spoken letters: a program matches them"
    );
    assert!(image.len() < 100_000, "{} bytes", image.len());
    assert_eq!(shown["expires"], 300);
    // A wrong answer is upstream's captcha-error, and uses the captcha up.
    let (id, typed) = captcha(&app, 1).await;
    let wrong = prelogin(&app, "default", "jane@example.com", &id, "nope").await;
    assert_eq!(
        wrong,
        json!({"status": "error", "message": "captcha-error"})
    );
    let again = prelogin(&app, "default", "jane@example.com", &id, &typed).await;
    assert_eq!(again["message"], "captcha-error", "single use");
    assert!(codes_in(&file, 1).await.is_empty(), "nothing sent");
    // The right answer, in any case: a code by e-mail.
    let (id, typed) = captcha(&app, 1).await;
    let sent = prelogin(
        &app,
        "default",
        "Jane@Example.com",
        &id,
        &typed.to_lowercase(),
    )
    .await;
    assert_eq!(sent, json!({"status": "ok"}));
    let codes = codes_in(&file, 1).await;
    assert_eq!(codes.len(), 1);
    let mail = std::fs::read_to_string(&file).unwrap();
    assert!(mail.contains("To: jane@example.com"), "{mail}");
    let (status, body) = login(&app, "default", "jane@example.com", &codes[0]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], user.as_str());
    let xtoken = body["xtoken"].as_str().unwrap().to_owned();
    // The token reads the user's own record, and no one else's.
    let (status, own) = app
        .call(
            "UserGet",
            &xtoken,
            None,
            json!({"mode": "token", "identity": user}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["profile"]["name"], "Jane");
    let other = app.create_user(json!({"email": "john@example.com"})).await;
    let (status, _) = app
        .call(
            "UserGet",
            &xtoken,
            None,
            json!({"mode": "token", "identity": other}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Once only.
    let (status, body) = login(&app, "default", "jane@example.com", &codes[0]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], LOGIN_REFUSED);
    // The login is in the user's trail; the code and the address are stored nowhere in clear.
    let db = app.superuser().await;
    let logins: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'UserLogin' AND user_token = $1",
            &[&uuid::Uuid::parse_str(&user).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn an_unknown_address_is_answered_as_a_known_one_and_nothing_is_sent() {
    let (app, file) = app_with_mail_file().await;
    app.create_user(json!({"email": "jane@example.com"})).await;
    let (id, typed) = captcha(&app, 1).await;
    let unknown = prelogin(&app, "default", "nobody@example.com", &id, &typed).await;
    let (id, typed) = captcha(&app, 1).await;
    let known = prelogin(&app, "default", "jane@example.com", &id, &typed).await;
    assert_eq!(unknown, known);
    assert_eq!(codes_in(&file, 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = std::fs::read_to_string(&file).unwrap();
    assert!(!mail.contains("nobody"), "{mail}");
    // A login for it is refused as a wrong code is.
    let (status, body) = login(&app, "default", "nobody@example.com", "123456").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], LOGIN_REFUSED);
    // A malformed address is the same 400 in a tenant that exists and in one that does not
    // (the review's probe: it was checked only where the tenant existed).
    let long = format!("{}@example.com", "a".repeat(330));
    for tenant in ["default", "ghost"] {
        let (status, body) = answer(
            app.command("UserPrelogin")
                .header("X-Bunker-Tenant", tenant)
                .json(&json!({"mode": "email", "identity": long, "code": "x", "captchacode": "x"})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tenant}: {body}");
        let (status, body) = login(&app, tenant, &long, "123456").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tenant}: {body}");
    }
    // Fields over their declared lengths are refused, not read.
    let (status, body) = login(&app, "default", "jane@example.com", &"1".repeat(65)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // So is one for a tenant that does not exist (whose captcha never passes).
    let (status, shown) = answer(
        app.command("CaptchaCreate")
            .header("X-Bunker-Tenant", "ghost"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let (status, body) = login(&app, "ghost", "jane@example.com", "123456").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], LOGIN_REFUSED);
}

#[tokio::test]
async fn five_wrong_codes_void_the_code_and_lock_the_identity_out() {
    let (app, file) = app_with_mail_file().await;
    app.create_user(json!({"email": "jane@example.com"})).await;
    app.create_user(json!({"email": "john@example.com"})).await;
    send_code(&app, 1, "default", "jane@example.com").await;
    let right = codes_in(&file, 1).await.remove(0);
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let (status, body) = login(&app, "default", "jane@example.com", wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["message"], LOGIN_REFUSED);
    }
    let (status, _) = login(&app, "default", "jane@example.com", &right).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the code is void");
    // Locked out: asked again, the answer is the same but nothing is sent.
    send_code(&app, 1, "default", "jane@example.com").await;
    // Another identity is not.
    send_code(&app, 1, "default", "john@example.com").await;
    let codes = codes_in(&file, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = std::fs::read_to_string(&file).unwrap();
    assert_eq!(codes.len(), 2, "{mail}");
    assert_eq!(mail.matches("To: jane@example.com").count(), 1);
    let (status, body) = login(&app, "default", "john@example.com", &codes[1]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Once the lock-out is over (moved into the past here), guesses with no code waiting do not
    // count (one wrong guess used to lock the user out again, with no captcha), and a new code works.
    app.superuser()
        .await
        .batch_execute("UPDATE login_codes SET locked_until = now() - interval '1 second'")
        .await
        .unwrap();
    for _ in 0..6 {
        let (status, _) = login(&app, "default", "jane@example.com", wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let locked: bool = app
        .superuser()
        .await
        .query_one("SELECT bool_or(locked_until > now()) FROM login_codes", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!locked, "guesses against no code lock no one out");
    app.superuser()
        .await
        .batch_execute("UPDATE login_codes SET locked_until = now() - interval '1 second'")
        .await
        .unwrap();
    send_code(&app, 1, "default", "jane@example.com").await;
    let codes = codes_in(&file, 3).await;
    // A second code within 30 s of the last is not sent (answered alike).
    send_code(&app, 1, "default", "jane@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        codes_in(&file, 4).await.len(),
        3,
        "no second mail within 30 s"
    );
    let (status, body) = login(&app, "default", "jane@example.com", &codes[2]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_code_expires_and_is_bound_to_its_tenant() {
    let (app, file) = app_with_mail_file().await;
    let (acme_id, acme) = app.create_tenant("acme").await;
    app.create_user(json!({"email": "jane@example.com"})).await;
    let (status, body) = app
        .call(
            "UserCreate",
            &acme,
            Some("acme"),
            json!({"profile": {"email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Acme's code does not open the default tenant's Jane, nor its captcha the default tenant's.
    send_code(&app, acme_id, "acme", "jane@example.com").await;
    let acme_code = codes_in(&file, 1).await.remove(0);
    let (status, _) = login(&app, "default", "jane@example.com", &acme_code).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (id, typed) = captcha(&app, acme_id).await;
    let crossed = prelogin(&app, "default", "jane@example.com", &id, &typed).await;
    assert_eq!(crossed["message"], "captcha-error");
    let (status, body) = login(&app, "acme", "jane@example.com", &acme_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let xtoken = body["xtoken"].as_str().unwrap().to_owned();
    // Its token works in acme only.
    let (status, _) = app
        .call(
            "UserGet",
            &xtoken,
            Some("acme"),
            json!({"mode": "email", "identity": "jane@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            "UserGet",
            &xtoken,
            None,
            json!({"mode": "email", "identity": "jane@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A code past its five minutes (moved into the past here) is refused.
    send_code(&app, 1, "default", "jane@example.com").await;
    let code = codes_in(&file, 2).await.remove(1);
    app.superuser()
        .await
        .batch_execute("UPDATE login_codes SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let (status, body) = login(&app, "default", "jane@example.com", &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], LOGIN_REFUSED);
}

#[tokio::test]
async fn codes_go_through_an_smtp_relay_and_a_tenant_may_turn_login_off() {
    let relay = SmtpReceiver::start().await;
    let app = TestApp::spawn_with(TestOptions {
        mail: MailSettings {
            smtp_url: Some(SecretString::from(relay.url.clone())),
            from: Some("Acme <login@acme.example>".to_owned()),
            ..MailSettings::default()
        },
        ..TestOptions::default()
    })
    .await;
    app.create_user(json!({"email": "jane@example.com"})).await;
    let (_, body) = answer(app.command("TenantGetUIConf")).await;
    assert_eq!(
        body["ui"]["loginmethods"],
        json!({"email": true, "phone": false})
    );
    send_code(&app, 1, "default", "jane@example.com").await;
    let messages = relay.messages(1).await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains("From: Acme <login@acme.example>"),
        "{}",
        messages[0]
    );
    let code = six_digit_codes(&messages[0]).remove(0);
    let (status, body) = login(&app, "default", "jane@example.com", &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Modes other than e-mail and phone are refused.
    let (status, body) = answer(
        app.command("UserLogin")
            .json(&json!({"mode": "login", "identity": "jane", "smscode": "123456"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The tenant turns e-mail login off: the login commands say so.
    let (status, body) = app
        .root("TenantUpdate", json!({"uiconf": {"loginemail": false}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (id, typed) = captcha(&app, 1).await;
    let (status, body) = answer(app.command("UserPrelogin").json(
        &json!({"mode": "email", "identity": "jane@example.com", "code": id, "captchacode": typed}),
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_code_for_a_phone_goes_to_the_sms_gateway_and_signs_the_user_in() {
    let gateway = bunker_tests::WebhookReceiver::start(0).await;
    let app = TestApp::spawn_with(TestOptions {
        mail: MailSettings {
            sms_url: Some(SecretString::from(format!("{}?to={{phone}}", gateway.url))),
            sms_authorization: Some(SecretString::from("Bearer gateway-secret".to_owned())),
            ..MailSettings::default()
        },
        ..TestOptions::default()
    })
    .await;
    let jane = app
        .create_user(json!({"phone": "+44 7911 123456", "name": "Jane"}))
        .await;
    let (status, ui) = answer(app.command("TenantGetUIConf")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ui["ui"]["loginmethods"],
        json!({"email": false, "phone": true})
    );
    let (id, typed) = captcha(&app, 1).await;
    let (status, body) = answer(app.command("UserPrelogin").json(
        &json!({"mode": "phone", "identity": "+447911123456", "code": id, "captchacode": typed}),
    ))
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let sent = gateway.deliveries(1).await;
    assert_eq!(sent.len(), 1);
    let message: Value = serde_json::from_str(&sent[0].1).unwrap();
    assert_eq!(message["phone"], "+447911123456", "E.164");
    let text = message["message"].as_str().unwrap();
    let code = text
        .split(" is ")
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .unwrap()
        .to_owned();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{text}");
    // An unknown number is answered alike, and nothing is sent.
    let (id, typed) = captcha(&app, 1).await;
    let (_, body) = answer(app.command("UserPrelogin").json(
        &json!({"mode": "phone", "identity": "+447911000000", "code": id, "captchacode": typed}),
    ))
    .await;
    assert_eq!(body, json!({"status": "ok"}));
    let (status, body) = answer(
        app.command("UserLogin")
            .json(&json!({"mode": "phone", "identity": "+44 7911 123456", "smscode": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], jane.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.deliveries(1).await.len(), 1, "one message only");
    // By e-mail, with no mail configured: off.
    let (status, _) = answer(app.command("UserPrelogin").json(
        &json!({"mode": "email", "identity": "jane@example.com", "code": "x", "captchacode": "x"}),
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
