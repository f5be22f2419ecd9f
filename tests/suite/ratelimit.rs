//! Rate limits: per tenant (root sets a tenant's own quota), per token, per client address (from
//! X-Forwarded-For only through a trusted proxy), stricter for the public and the costly commands;
//! 429 with Retry-After and the IETF RateLimit headers, counted in /metrics.

use bunker::http::limits::RateSettings;
use bunker_services::core::rate::Rate;
use bunker_tests::{answer, default_rates, StatusCode, TestApp, TestOptions};
use serde_json::json;

fn rate(text: &str) -> Option<Rate> {
    Rate::parse(text).unwrap()
}

/// The status, the JSON body and the rate-limit headers of a request.
async fn limited(request: reqwest::RequestBuilder) -> (StatusCode, serde_json::Value, [String; 3]) {
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let headers = [
        header("retry-after"),
        header("ratelimit-policy"),
        header("ratelimit"),
    ];
    let status = response.status();
    let body = response.json().await.unwrap();
    (status, body, headers)
}

fn create_user(app: &TestApp, token: &str, tenant: &str, n: usize) -> reqwest::RequestBuilder {
    app.command("UserCreate")
        .header("X-Bunker-Token", token)
        .header("X-Bunker-Tenant", tenant)
        .json(&json!({"profile": {"login": format!("user{n}")}}))
}

#[tokio::test]
async fn a_tenant_over_its_quota_is_refused_with_when_to_retry_and_another_tenant_is_not() {
    let app = TestApp::spawn().await;
    let (noisy_id, noisy) = app.create_tenant("noisy").await;
    let (_, quiet) = app.create_tenant("quiet").await;
    // A tenant admin cannot raise its own quota; root sets it.
    let (status, body) = app
        .call(
            "TenantUpdate",
            &noisy,
            Some("noisy"),
            json!({"ratelimit": "1000000/s", "tenantorg": "changed"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(
            "TenantUpdate",
            &noisy,
            Some("noisy"),
            json!({"ratelimit": "garbage"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "whatever it holds: {body}");
    let (status, body) = app.root("TenantGet", json!({"tenantid": noisy_id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tenantorg"], "noisy org", "nothing changed: {body}");
    assert_eq!(body["ratelimit"], json!(null));
    let (status, body) = app
        .root(
            "TenantUpdate",
            json!({"tenantid": noisy_id, "ratelimit": "every second"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .root(
            "TenantUpdate",
            json!({"tenantid": noisy_id, "ratelimit": "3/min"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.root("TenantGet", json!({"tenantid": noisy_id})).await;
    assert_eq!(body["ratelimit"], "3/min");

    for n in 0..3 {
        let (status, body) = answer(create_user(&app, &noisy, "noisy", n)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, [retry, policy, remaining]) =
        limited(create_user(&app, &noisy, "noisy", 3)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["status"], "error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("tenant's rate limit (3/min)"),
        "{body}"
    );
    // One request comes back every 20 s.
    let seconds: u64 = retry.parse().unwrap();
    assert!((1..=20).contains(&seconds), "Retry-After {retry}");
    assert_eq!(policy, "\"tenant\";q=3;w=60");
    assert_eq!(remaining, format!("\"tenant\";r=0;t={seconds}"));
    // Nothing was written by the refused request.
    let (status, _) = app
        .call(
            "UserGet",
            &noisy,
            Some("noisy"),
            json!({"mode": "login", "identity": "user3"}),
        )
        .await;
    assert!(status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::NOT_FOUND);

    // The other tenant is not held to the noisy one's quota.
    for n in 0..5 {
        let (status, body) = answer(create_user(&app, &quiet, "quiet", n)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Back to the installation's default: a fresh allowance within a second (a refusal is
    // repeated that long without asking the database).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = app
        .root(
            "TenantUpdate",
            json!({"tenantid": noisy_id, "ratelimit": "default"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(create_user(&app, &noisy, "noisy", 4)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("bunker_rate_limited_total{kind=\"tenant\"} ") && !l.ends_with(" 0")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn requests_that_fail_to_authenticate_do_not_spend_a_tenants_quota() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_tenant("acme").await;
    app.root("TenantUpdate", json!({"tenantid": id, "ratelimit": "2/h"}))
        .await;
    for n in 0..20 {
        let request = create_user(&app, &uuid::Uuid::new_v4().to_string(), "acme", n);
        let (status, _) = answer(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for n in 0..2 {
        let (status, body) = answer(create_user(&app, &token, "acme", n)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = answer(create_user(&app, &token, "acme", 2)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn each_token_and_the_costly_commands_have_their_own_allowance() {
    let app = TestApp::spawn_with(TestOptions {
        rates: RateSettings {
            token: rate("4/h"),
            costly: rate("1/h"),
            ..default_rates()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("acme").await;
    let (status, _) = app
        .call("BulkListUnlock", &admin, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let request = app
        .command("BulkListUnlock")
        .header("X-Bunker-Token", &admin)
        .header("X-Bunker-Tenant", "acme");
    let (status, body, [_, policy, _]) = limited(request).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(policy, "\"costly\";q=1;w=3600");
    // Other commands go on under the token's own allowance, until it is spent.
    for n in 0..2 {
        let (status, _) = answer(create_user(&app, &admin, "acme", n)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, [_, policy, _]) = limited(create_user(&app, &admin, "acme", 9)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(policy, "\"token\";q=4;w=3600");
    // Another token of the same tenant is not held to it.
    let (status, body) = app
        .root("UserCreate", json!({"profile": {"login": "x"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn addresses_are_limited_from_forwarded_for_only_through_trusted_proxies() {
    let options = |trusted: &str| TestOptions {
        rates: RateSettings {
            public: rate("2/h"),
            ip: rate("6/h"),
            trusted_proxies: trusted
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap())
                .collect(),
            ..default_rates()
        },
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(options("127.0.0.1/32")).await;
    let uiconf = |client: &str| {
        app.command("TenantGetUIConf")
            .header("X-Forwarded-For", format!("{client}, 10.9.9.9"))
            .json(&json!({}))
    };
    // 10.9.9.9 is not a trusted proxy: the client is the entry it added, 10.9.9.9 itself.
    for _ in 0..2 {
        assert_eq!(answer(uiconf("198.51.100.1")).await.0, StatusCode::OK);
    }
    let (status, body, [_, policy, _]) = limited(uiconf("198.51.100.2")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(policy, "\"public\";q=2;w=3600");

    let app = TestApp::spawn_with(options("127.0.0.1/32,10.0.0.0/8")).await;
    let uiconf = |client: &str| {
        app.command("TenantGetUIConf")
            .header("X-Forwarded-For", format!("{client}, 10.9.9.9"))
            .json(&json!({}))
    };
    for _ in 0..2 {
        assert_eq!(answer(uiconf("198.51.100.1")).await.0, StatusCode::OK);
    }
    assert_eq!(
        answer(uiconf("198.51.100.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Through trusted proxies each client has its own allowance.
    assert_eq!(answer(uiconf("198.51.100.2")).await.0, StatusCode::OK);
    // The probes are never limited; every other request counts against the address.
    for _ in 0..10 {
        let health = app
            .http
            .get(format!("{}/health", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.root("TenantListTenants", json!({})).await.0);
    }
    // The proxied requests above were their clients', not the proxy's.
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let (status, body, [_, policy, _]) = limited(
        app.command("TenantListTenants")
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(policy, "\"ip\";q=6;w=3600");
}

#[tokio::test]
async fn a_tenant_at_its_connection_cap_waits_without_holding_up_another_tenant() {
    let app = TestApp::spawn_with(TestOptions {
        tenant_max_connections: Some(1),
        ..TestOptions::default()
    })
    .await;
    let (_, busy) = app.create_tenant("busy").await;
    let (_, other) = app.create_tenant("other").await;
    let create = |token: &str, tenant: &str, login: &str| {
        let request = app
            .command("UserCreate")
            .header("X-Bunker-Token", token)
            .header("X-Bunker-Tenant", tenant)
            .json(&json!({"profile": {"login": login}}));
        answer(request)
    };
    let (_, held) = create(&busy, "busy", "held").await;
    let (_, read) = create(&busy, "busy", "read").await;
    let held = held["token"].as_str().unwrap().to_owned();
    let read = read["token"].as_str().unwrap().to_owned();
    // The busy tenant's one connection waits on a row another transaction holds.
    let mut db = app.superuser().await;
    let lock = db.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM users WHERE token = $1::text::uuid FOR UPDATE",
        &[&held],
    )
    .await
    .unwrap();
    let update = app
        .command("UserUpdate")
        .header("X-Bunker-Token", &busy)
        .header("X-Bunker-Tenant", "busy")
        .json(&json!({"mode": "token", "identity": held, "profile": {"login": "held2"}}));
    let blocked = tokio::spawn(answer(update));
    app.until_a_query_waits_for_a_lock().await;
    // The busy tenant's next request waits for its slot; the other tenant's is answered.
    let get = app
        .command("UserGet")
        .header("X-Bunker-Token", &busy)
        .header("X-Bunker-Tenant", "busy")
        .json(&json!({"mode": "token", "identity": read}));
    let waiting = tokio::spawn(answer(get));
    for n in 0..3 {
        let (status, body) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            create(&other, "other", &format!("o{n}")),
        )
        .await
        .expect("the other tenant is not held up");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the busy tenant went past its cap");
    lock.rollback().await.unwrap();
    let (status, body) = blocked.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}
