//! Bad and oversized input: every request's work is bounded, refused with a 400 that names the
//! limit or the field (never the value), and nothing is written; numbers come back exactly; tokens
//! are compared as UUIDs.

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("deep"), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn indexed_values_and_search_terms_are_bounded_in_length() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let long = "x".repeat(40_000);
    for field in ["email", "phone", "login", "custom"] {
        let (status, body) = app
            .root("UserCreate", json!({"profile": {field: long}}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(
            body["message"],
            format!("The {field} value must be at most 320 characters")
        );
        let (status, _) = app
            .root("UserGet", json!({"mode": field, "identity": long}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a lookup by {field}");
    }
    let unlock = app.unlock_for(&app.root_token).await;
    let (status, body) = app
        .root(
            "UserSearch",
            json!({"identity": "y".repeat(120_000), "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "The search term must be at most 320 characters"
    );
}

#[tokio::test]
async fn a_patch_is_bounded_in_operations_and_in_what_it_builds() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user(json!({"login": "grows", "blob": "z".repeat(200_000)}))
        .await;
    let patch = |ops: Value| {
        let app = &app;
        let body = json!({"mode": "token", "identity": user, "patch": ops});
        async move { app.root("UserPatch", body).await }
    };
    // Each copy doubles the profile: refused before it is built, not after.
    let doubling: Vec<Value> = (0..30)
        .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
        .collect();
    let (status, body) = patch(json!(doubling)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "The patch would add more than 1048576 bytes as JSON"
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"op": "add", "path": format!("/k{i}"), "value": i}))
        .collect();
    let (status, body) = patch(json!(many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "A patch may hold at most 100 operations");
    let (_, stored) = app
        .root("UserGet", json!({"mode": "token", "identity": user}))
        .await;
    assert_eq!(stored["version"], 1, "nothing was written");
}

#[tokio::test]
async fn no_write_can_nest_a_profile_deeper_than_it_can_be_read() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let user = app
        .create_user(json!({"login": "deep", "a": nested(60)}))
        .await;
    let selector = json!({"mode": "token", "identity": user});
    // Each alone parses; together they would be deeper than any reader accepts.
    let mut update = selector.clone();
    update["profile"] = json!({"a": nested(100)});
    let (status, body) = app.root("UserUpdate", update).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "The profile is nested deeper than 64 levels"
    );
    let pointer = format!("/a{}", "/a".repeat(59));
    let mut patch = selector.clone();
    patch["patch"] = json!([{"op": "add", "path": format!("{pointer}/b"), "value": nested(90)}]);
    let (status, body) = app.root("UserPatch", patch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "The patched profile would be nested deeper than 64 levels"
    );
    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "deeper", "a": nested(80)}}),
        )
        .await;
    assert_eq!(
        (status, &body["message"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("The profile is nested deeper than 64 levels")
        )
    );
    // Every read still works.
    let (status, _) = app.root("UserGet", selector).await;
    assert_eq!(status, StatusCode::OK);
    let unlock = app.unlock_for(&app.root_token).await;
    let (status, _) = app
        .root("BulkListAllUsers", json!({"unlockuuid": unlock}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bulk_requests_and_request_metadata_are_bounded() {
    let app = TestApp::spawn_with(TestOptions {
        max_body_bytes: 4 * 1024 * 1024,
        ..TestOptions::default()
    })
    .await;
    let records: Vec<Value> = (0..10_001).map(|_| json!({"profile": {}})).collect();
    let (status, body) = app
        .root("UserCreateBulk", json!({"records": records}))
        .await;
    assert_eq!(
        (status, &body["message"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("records may hold at most 10000 items")
        )
    );
    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": {}, "request_metadata": {"note": "m".repeat(9000)}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "The request_metadata is larger than 8192 bytes as JSON"
    );
}

#[tokio::test]
async fn expiry_beyond_a_hundred_years_is_a_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.create_user(json!({"login": "x"})).await;
    app.root("RoleCreate", json!({"rolename": "r"})).await;
    let bodies = [
        ("UserCreate", json!({"profile": {}})),
        ("TokenCreate", json!({"tokentype": "text", "record": "v"})),
        (
            "XTokenCreateForUser",
            json!({"mode": "token", "identity": user}),
        ),
        ("XTokenCreateForRole", json!({"rolename": "r"})),
    ];
    for (command, body) in bodies {
        for (field, value) in [
            ("slidingtime", json!("9223372036854775807")),
            ("slidingtime", json!(9223372036854775807i64)),
            ("slidingtime", json!("99999999999d")),
            ("finaltime", json!("10000000000000")),
            ("finaltime", json!(10000000000000u64)),
            ("finaltime", json!("200y")),
        ] {
            let mut request = body.clone();
            request[field] = value.clone();
            let (status, answer) = app.root(command, request).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{command} {field} {value}: {answer}"
            );
            let message = answer["message"].as_str().unwrap();
            assert!(message.contains(field), "{message}");
        }
    }
}

#[tokio::test]
async fn numbers_come_back_exactly_as_given() {
    let app = TestApp::spawn().await;
    let body = r#"{"profile":{"login":"n","big":123456789012345678901234567890,"pi":3.141592653589793238462643383279,"small":1e-400}}"#;
    let (status, created) = bunker_tests::answer(
        app.command("UserCreate")
            .header("X-Bunker-Token", &app.root_token)
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = app
        .command("UserGet")
        .header("X-Bunker-Token", &app.root_token)
        .json(&json!({"mode": "token", "identity": created["token"]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for exact in [
        r#""big":123456789012345678901234567890"#,
        r#""pi":3.141592653589793238462643383279"#,
        r#""small":1e-400"#,
    ] {
        assert!(response.contains(exact), "{exact} in {response}");
    }
}

#[tokio::test]
async fn nul_characters_are_a_400_naming_the_field_except_in_sealed_values() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("acme").await;
    let unlock = app.unlock_for(&app.root_token).await;
    let nul = "a\u{0}b";
    let cases = [
        (
            "GroupCreate",
            json!({"groupname": "g", "grouptype": nul}),
            "grouptype",
        ),
        (
            "RoleCreate",
            json!({"rolename": "r", "roledesc": nul}),
            "roledesc",
        ),
        (
            "PolicyCreate",
            json!({"policyname": nul, "policy": {"Action": ["UserGet"]}}),
            "policyname",
        ),
        (
            "PolicyCreate",
            json!({"policyname": "p", "policy": {"Action": ["UserGet"], "Resource": [nul]}}),
            "policy",
        ),
        (
            "TenantCreate",
            json!({"tenantname": "t", "tenantorg": nul}),
            "tenantorg",
        ),
        ("TenantUpdate", json!({"tenantorg": nul}), "tenantorg"),
        ("TokenGet", json!({"token": nul}), "token"),
        ("TokenDelete", json!({"token": nul}), "token"),
        (
            "BulkListTokens",
            json!({"unlockuuid": unlock, "tokens": [nul]}),
            "tokens",
        ),
        (
            "BulkDeleteTokens",
            json!({"unlockuuid": unlock, "tokens": [nul]}),
            "tokens",
        ),
        (
            "UserCreate",
            json!({"profile": {}, "groupname": "g", "rolename": nul}),
            "rolename",
        ),
        ("XTokenCreateForRole", json!({"rolename": nul}), "rolename"),
        (
            "TokenCreateBulk",
            json!({"records": [{"tokentype": nul, "record": "x"}]}),
            "records[0].tokentype",
        ),
    ];
    for (command, body, field) in cases {
        let (status, answer) = app.root(command, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{command}: {answer}");
        assert_eq!(
            answer["message"],
            format!("Invalid value for parameter: {field}: text may not contain NUL characters"),
            "{command}"
        );
    }
    let (status, _) = app
        .call(
            "TenantUpdate",
            &admin,
            Some("acme"),
            json!({"tenantorg": nul}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Sealed values keep any character.
    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": nul, "note": nul}, "request_metadata": {"why": nul}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, user) = app
        .root("UserGet", json!({"mode": "login", "identity": nul}))
        .await;
    assert_eq!(user["profile"]["note"], nul);
    let (status, _) = app
        .root("TokenCreate", json!({"tokentype": "text", "record": nul}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_answer_is_a_json_envelope_even_for_requests_http_refuses() {
    let app = TestApp::spawn().await;
    let mut request = app
        .command("UserGet")
        .header("X-Bunker-Token", &app.root_token);
    for i in 0..200 {
        request = request.header(format!("x-filler-{i}"), "v");
    }
    let (status, body) = bunker_tests::answer(request.body("{}")).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(body["status"], "error");
    let address = app.address.trim_start_matches("http://").to_owned();
    for raw in [
        "GARBAGE\r\n\r\n",
        "POST /v2/UserGet HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], "error", "{raw:?}");
    }
}

#[tokio::test]
async fn policy_errors_name_the_position_and_the_rule_not_the_text() {
    let app = TestApp::spawn().await;
    let secret = "jane.doe@example.com";
    for policy in [
        json!({"Action": ["UserGet", secret]}),
        json!({"Action": ["UserGet"], "Resource": [secret]}),
        json!({"Effect": secret, "Action": ["UserGet"]}),
        json!({"Action": ["UserGet"], secret: 1}),
        json!({"Action": ["UserGet"], "Condition": {secret: {}}}),
        json!({"Action": ["UserGet"], "Condition": {"StringEquals": {format!("${{{secret}}}"): "x"}}}),
    ] {
        let (status, body) = app
            .root("PolicyCreate", json!({"policyname": "p", "policy": policy}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("Invalid policy: "), "{message}");
        assert!(!message.contains("jane"), "{message} quotes the input");
    }
}

#[tokio::test]
async fn a_uuid_token_works_however_it_is_written() {
    let app = TestApp::spawn().await;
    for written in [
        app.root_token.to_uppercase(),
        app.root_token.replace('-', ""),
        format!("{{{}}}", app.root_token),
    ] {
        let (status, body) = app
            .call("TenantListTenants", &written, None, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{written}: {body}");
    }
    let (_, admin) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "TenantGet",
            &admin.to_uppercase(),
            Some("acme"),
            json!({"tenantid": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn patched_numbers_are_kept_exactly_too() {
    let app = TestApp::spawn().await;
    let user = app.create_user(json!({"login": "n"})).await;
    let body = format!(
        r#"{{"mode":"token","identity":"{user}","patch":[{{"op":"add","path":"/big","value":18446744073709551616}},{{"op":"add","path":"/list","value":[-9223372036854775809]}}]}}"#
    );
    let (status, answer) = bunker_tests::answer(
        app.command("UserPatch")
            .header("X-Bunker-Token", &app.root_token)
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let read = app
        .command("UserGet")
        .header("X-Bunker-Token", &app.root_token)
        .json(&json!({"mode": "token", "identity": user}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(read.contains(r#""big":18446744073709551616"#), "{read}");
    assert!(read.contains(r#""list":[-9223372036854775809]"#), "{read}");
    let (status, _) = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": user, "patch": [{"op": "add", "path": "/x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an add needs a value");
}

#[tokio::test]
async fn token_records_that_become_text_are_bounded_and_refuse_nul() {
    let app = TestApp::spawn().await;
    for record in [
        "a@b\u{0}c.com".to_owned(),
        "a@b\u{202e}c.com".to_owned(),
        format!("a@{}.com", "b".repeat(500_000)),
    ] {
        for (command, body) in [
            (
                "TokenCreate",
                json!({"tokentype": "email", "record": record}),
            ),
            (
                "TokenCreateBulk",
                json!({"records": [{"tokentype": "email", "record": record}]}),
            ),
        ] {
            let (status, answer) = app.root(command, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{command}: {answer}");
        }
    }
}
