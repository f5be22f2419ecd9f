//! App data: per-user, per-application records sealed with the user's own key.

use bunker_tests::{StatusCode, TestApp};
use serde_json::{json, Value};

fn get(app: &str) -> Value {
    json!({"mode": "login", "identity": "jane", "appname": app})
}

#[tokio::test]
async fn app_data_is_stored_merged_versioned_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let token = app
        .create_user(json!({"login": "jane", "email": "jane@example.com"}))
        .await;
    let (status, body) = app
        .root(
            "AppdataCreate",
            json!({"mode": "login", "identity": "jane", "appname": "Shop",
                   "appdata": {"size": "M", "colour": "blue", "address": {"city": "Leeds"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "ok"}));
    // The name is lower-cased; the data reads back as stored, by any of the user's identities.
    let (status, body) = app
        .root(
            "AppdataGet",
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["appdata"],
        json!({"size": "M", "colour": "blue", "address": {"city": "Leeds"}})
    );
    // A second create does not overwrite.
    let (status, body) = app
        .root(
            "AppdataCreate",
            json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "S"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Update merges: given keys replace, null removes, nested objects merge.
    let (status, body) = app
        .root(
            "AppdataUpdate",
            json!({"mode": "email", "identity": "jane@example.com", "appname": "shop",
                   "appdata": {"colour": "red", "size": null, "address": {"zip": "LS1"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.root("AppdataGet", get("shop")).await;
    assert_eq!(
        body["appdata"],
        json!({"colour": "red", "address": {"city": "Leeds", "zip": "LS1"}})
    );
    // Both versions are kept and read back; their checksums differ.
    let (status, body) = app.root("AppdataListVersions", get("shop")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{body}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["version"], 2);
    assert_ne!(versions[0]["md5"], versions[1]["md5"]);
    assert!(versions[0]["optime"].as_i64().unwrap() > 0);
    let mut first = get("shop");
    first["version"] = json!(1);
    let (status, body) = app.root("AppdataGet", first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["appdata"]["size"], "M");
    let mut missing = get("shop");
    missing["version"] = json!(9);
    assert_eq!(
        app.root("AppdataGet", missing).await.0,
        StatusCode::NOT_FOUND
    );
    // Names: the user's, and the tenant's.
    let (status, _) = app
        .root(
            "AppdataCreate",
            json!({"mode": "login", "identity": "jane", "appname": "loyalty", "appdata": {"points": 10}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .root(
            "AppdataListUserAppNames",
            json!({"mode": "login", "identity": "jane"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apps"], json!(["loyalty", "shop"]));
    app.create_user(json!({"login": "john"})).await;
    app.root(
        "AppdataCreate",
        json!({"mode": "login", "identity": "john", "appname": "newsletter", "appdata": {}}),
    )
    .await;
    // The SDK sends no body at all.
    let (status, body) = bunker_tests::answer(
        app.command("AppdataListAppNames")
            .header("X-Bunker-Token", &app.root_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apps"], json!(["loyalty", "newsletter", "shop"]));
    // Delete removes the data and its versions.
    let (status, body) = app.root("AppdataDelete", get("loyalty")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.root("AppdataGet", get("loyalty")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.root("AppdataListVersions", get("loyalty")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.root("AppdataDelete", get("loyalty")).await.0,
        StatusCode::NOT_FOUND
    );
    // Every operation is in the user's trail, naming the command.
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "jane", "limit": 100}),
        )
        .await;
    let actions: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventtype"].as_str())
        .collect();
    for action in [
        "AppdataCreate",
        "AppdataGet",
        "AppdataUpdate",
        "AppdataListVersions",
        "AppdataListUserAppNames",
        "AppdataDelete",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[tokio::test]
async fn bad_app_names_and_app_data_are_refused_by_rule() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane"})).await;
    for name in [
        "a",
        "1shop",
        "shop-app",
        "x_very_long_application_name_over_31",
        "",
    ] {
        let (status, body) = app
            .root(
                "AppdataCreate",
                json!({"mode": "login", "identity": "jane", "appname": name, "appdata": {"a": 1}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("Invalid appname"), "{message}");
        if name.len() > 3 {
            assert!(!message.contains(name), "{message} echoes the name");
        }
    }
    for appdata in [json!("text"), json!([1, 2]), json!(5)] {
        let (status, body) = app
            .root(
                "AppdataCreate",
                json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": appdata}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["message"], "appdata must be a JSON object");
    }
    let (status, body) = app
        .root(
            "AppdataCreate",
            json!({"mode": "login", "identity": "jane", "appname": "shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Missing API request parameters: appdata");
    let (status, _) = app
        .root(
            "AppdataCreate",
            json!({"mode": "login", "identity": "nobody", "appname": "shop", "appdata": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_data_is_sealed_with_the_users_key_and_forget_me_destroys_it() {
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    let db = app.superuser().await;
    let key_of = |token: String| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT data_key FROM users WHERE token = $1::text::uuid",
                &[&token],
            )
            .await
            .unwrap()
            .get::<_, Option<Vec<u8>>>(0)
        }
    };
    assert!(
        key_of(token.clone()).await.is_none(),
        "no key before it is needed"
    );
    let secret = "size-M-for-jane-4f1c";
    app.root(
        "AppdataCreate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"note": secret}}),
    )
    .await;
    let wrapped = key_of(token.clone()).await.expect("a key once needed");
    assert!(wrapped.len() > 32 + 16, "the key is stored wrapped");
    let rows = db
        .query(
            "SELECT record FROM app_data UNION ALL SELECT record FROM app_data_versions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let sealed: Vec<u8> = row.get(0);
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // The key made once serves every later write.
    app.root(
        "AppdataUpdate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"more": 1}}),
    )
    .await;
    assert_eq!(key_of(token.clone()).await, Some(wrapped));
    // Forget-me destroys the key with the record, and the app data with it.
    let (status, body) = app
        .root("UserDelete", json!({"mode": "login", "identity": "jane"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(key_of(token.clone()).await.is_none());
    let left: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM app_data) + (SELECT count(*) FROM app_data_versions)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let (status, _) = app
        .root(
            "AppdataGet",
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_data_needs_a_policy_on_the_appdata_section_and_a_user_changes_its_own_only_by_request()
{
    let app = TestApp::spawn().await;
    let jane_token = app.create_user(json!({"login": "jane"})).await;
    app.create_user(json!({"login": "john"})).await;
    app.root(
        "AppdataCreate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "M"}}),
    )
    .await;
    // Profiles only: no app data.
    app.grant(
        "clerk",
        "clerk-profiles",
        json!({"Effect": "Allow", "Action": ["*"], "Resource": ["users.profile"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    for (command, body) in [
        ("AppdataGet", get("shop")),
        ("AppdataListVersions", get("shop")),
        (
            "AppdataListUserAppNames",
            json!({"mode": "login", "identity": "jane"}),
        ),
        (
            "AppdataUpdate",
            json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "S"}}),
        ),
        ("AppdataDelete", get("shop")),
        // A user that does not exist: the same refusal.
        (
            "AppdataGet",
            json!({"mode": "login", "identity": "nobody", "appname": "shop"}),
        ),
    ] {
        let (status, answer) = app.call(command, &clerk, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
        assert_eq!(answer["message"], "API access denied");
    }
    // The appdata section, for reading only.
    app.grant(
        "shop",
        "shop-reads",
        json!({"Effect": "Allow", "Action": ["AppdataGet", "AppdataListUserAppNames"],
               "Resource": ["users.appdata"]}),
    )
    .await;
    let shop = app.role_token("shop").await;
    // Looking a user up by a field the role may not see would confirm that field's value: refused.
    let (status, _) = app.call("AppdataGet", &shop, None, get("shop")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let by_token = json!({"mode": "token", "identity": jane_token, "appname": "shop"});
    let (status, body) = app.call("AppdataGet", &shop, None, by_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["appdata"], json!({"size": "M"}));
    let (status, _) = app
        .call(
            "AppdataUpdate",
            &shop,
            None,
            json!({"mode": "token", "identity": jane_token, "appname": "shop", "appdata": {"size": "S"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A user's own token reads its app data, but may not change it directly, nor read another's.
    let jane = app.user_xtoken("login", "jane").await;
    let (status, body) = app.call("AppdataGet", &jane, None, get("shop")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (command, body) in [
        (
            "AppdataUpdate",
            json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "S"}}),
        ),
        (
            "AppdataCreate",
            json!({"mode": "login", "identity": "jane", "appname": "other", "appdata": {}}),
        ),
        ("AppdataDelete", get("shop")),
        (
            "AppdataGet",
            json!({"mode": "login", "identity": "john", "appname": "shop"}),
        ),
    ] {
        let (status, answer) = app.call(command, &jane, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
    }
    let (_, body) = app.root("AppdataGet", get("shop")).await;
    assert_eq!(body["appdata"], json!({"size": "M"}), "nothing was changed");
    // AppdataListAppNames is decided once: a token no policy allows it is refused.
    let (status, _) = app
        .call("AppdataListAppNames", &shop, None, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_tenant_reaches_none_of_a_users_app_data() {
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    app.root(
        "AppdataCreate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "M"}}),
    )
    .await;
    let (_, acme) = app.create_tenant("acme").await;
    for (command, body) in [
        (
            "AppdataGet",
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        ),
        (
            "AppdataListVersions",
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        ),
        (
            "AppdataListUserAppNames",
            json!({"mode": "token", "identity": token}),
        ),
        (
            "AppdataUpdate",
            json!({"mode": "token", "identity": token, "appname": "shop", "appdata": {"x": 1}}),
        ),
        (
            "AppdataDelete",
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        ),
        (
            "AppdataCreate",
            json!({"mode": "token", "identity": token, "appname": "shop", "appdata": {"x": 1}}),
        ),
    ] {
        let (status, body) = app.call(command, &acme, Some("acme"), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{command}: {body}");
    }
    let (status, body) = app
        .call("AppdataListAppNames", &acme, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apps"], json!([]));
    // Acme's token in the default tenant is refused outright.
    let (status, _) = app
        .call(
            "AppdataGet",
            &acme,
            None,
            json!({"mode": "token", "identity": token, "appname": "shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = app.root("AppdataGet", get("shop")).await;
    assert_eq!(body["appdata"], json!({"size": "M"}));
}

#[tokio::test]
async fn after_forget_me_a_kept_copy_of_a_users_app_data_or_pending_change_opens_with_no_key_bunker_holds(
) {
    use bunker_keys::{Label, WrappingKey};
    use bunker_services::keys::load_keyring;
    use bunker_services::keys::wrapping::WrappingSource;

    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    app.root(
        "AppdataCreate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "M"}}),
    )
    .await;
    app.root(
        "AppdataUpdate",
        json!({"mode": "login", "identity": "jane", "appname": "shop", "appdata": {"size": "L"}}),
    )
    .await;
    // A pending change of her profile, with its metadata.
    let (status, _) = app
        .root(
            "UserUpdateRequest",
            json!({"mode": "login", "identity": "jane", "profile": {"city": "York"},
                   "request_metadata": {"ticket": "T-1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // What a backup taken now would hold of her: the sealed rows and her wrapped key.
    let db = app.superuser().await;
    let copies: Vec<(String, Vec<u8>)> = db
        .query(
            "SELECT 'appdata', token::text || '/' || appname, record FROM app_data
             UNION ALL
             SELECT 'appdata_version', token::text || '/' || appname || '/' || version, record
               FROM app_data_versions
             UNION ALL
             SELECT 'request_change', uuid::text, change FROM user_requests
             UNION ALL
             SELECT 'request_metadata', uuid::text, metadata FROM user_requests",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                format!("{}|{}", row.get::<_, String>(0), row.get::<_, String>(1)),
                row.get(2),
            )
        })
        .collect();
    assert_eq!(copies.len(), 5);
    let (status, _) = app
        .root("UserDelete", json!({"mode": "login", "identity": "jane"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Every key Bunker holds now: the master keys, the tenant's own key and the keys derived from
    // them. None of them opens the copies (they were sealed with her key, which is gone from the database).
    let store = bunker_db::Database::connect(&app.database_url(), 1)
        .await
        .unwrap();
    let source = WrappingSource::Local(WrappingKey::from_hex(&app.wrapping_key).unwrap());
    let (keyring, _) = load_keyring(&store, &source).await.unwrap();
    let tenant: i64 = db
        .query_one("SELECT id FROM tenants WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    // The tenant's own key (unwrapped by the master key), with the master-derived keys besides.
    let row = db
        .query_one(
            "SELECT wrapped, master_version FROM tenant_keys WHERE tenant_id = $1 AND version = 1",
            &[&tenant],
        )
        .await
        .unwrap();
    let (wrapped, master_version): (Vec<u8>, i32) = (row.get(0), row.get(1));
    let own = bunker_keys::TenantKey::unwrap(
        1,
        &wrapped,
        keyring.master(master_version).unwrap(),
        tenant,
    )
    .unwrap();
    let keys = bunker_keys::TenantKeys::from_tenant_key(tenant, &own, &[], Some(&keyring));
    for (what, sealed) in &copies {
        let (kind, row) = what.split_once('|').unwrap();
        let label = Label { tenant, kind, row };
        for (name, seal_keys) in [
            ("records", &keys.records),
            ("audit", &keys.audit),
            ("tokens", &keys.tokens),
        ] {
            assert!(
                seal_keys.open(&label, sealed).is_err(),
                "{what} opened with the tenant's {name} key"
            );
        }
    }
    let key_left: Option<Vec<u8>> = db
        .query_one(
            "SELECT data_key FROM users WHERE token = $1::text::uuid",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(key_left.is_none());
}
