//! What a role that may see only some of a user sees, by every way in: JSON Patch (`copy`, `move`,
//! `test`, escaped pointers, the root), merges, search ranking, group memberships and the audit
//! trail.

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

const DENIED: &str = "API access denied";

/// A support role that may read and change the name of any user, and nothing else; returns its
/// token and a user with a hidden SSN.
async fn name_only(app: &TestApp) -> (String, String) {
    app.grant(
        "support",
        "names-only",
        json!({"Effect": "Allow", "Action": ["UserGet", "UserPatch", "UserUpdate", "UserSearch",
               "BulkListUnlock", "GroupListUserGroups", "AuditListUserEvents", "AuditGetEvent"],
               "Resource": ["users.profile.name"]}),
    )
    .await;
    let user = app
        .create_user(json!({"login": "jane", "name": "Jane", "ssn": "123-45-6789", "phone": "+447911123456", "s/n": "serial", "~x": "tilde"}))
        .await;
    (app.role_token("support").await, user)
}

async fn patch(app: &TestApp, token: &str, user: &str, ops: Value) -> (StatusCode, Value) {
    app.call(
        "UserPatch",
        token,
        None,
        json!({"mode": "token", "identity": user, "patch": ops}),
    )
    .await
}

async fn stored(app: &TestApp, user: &str) -> Value {
    app.root("UserGet", json!({"mode": "token", "identity": user}))
        .await
        .1
}

#[tokio::test]
async fn a_patch_cannot_copy_move_or_test_a_hidden_field() {
    let app = TestApp::spawn().await;
    let (support, jane) = name_only(&app).await;
    let before = stored(&app, &jane).await;

    let (status, body) = patch(
        &app,
        &support,
        &jane,
        json!([{"op": "replace", "path": "/name", "value": "Janet"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a visible field: {body}");

    for (ops, what) in [
        (
            json!([{"op": "copy", "from": "/ssn", "path": "/name"}]),
            "copy from a hidden field",
        ),
        (
            json!([{"op": "move", "from": "/ssn", "path": "/name"}]),
            "move from a hidden field",
        ),
        (
            json!([{"op": "test", "path": "/ssn", "value": "123-45-6789"}]),
            "test a hidden field (right value)",
        ),
        (
            json!([{"op": "test", "path": "/ssn", "value": "000-00-0000"}]),
            "test a hidden field (wrong value)",
        ),
        (
            json!([{"op": "test", "path": "/ssn/0", "value": "x"}]),
            "test inside a hidden field",
        ),
        (
            json!([{"op": "replace", "path": "/s~1n", "value": "x"}]),
            "an escaped pointer to a hidden field (s/n)",
        ),
        (
            json!([{"op": "remove", "path": "/~0x"}]),
            "an escaped pointer to a hidden field (~x)",
        ),
        (
            json!([{"op": "replace", "path": "", "value": {"name": "Jane"}}]),
            "the whole profile",
        ),
        (
            json!([{"op": "copy", "from": "", "path": "/name"}]),
            "a copy of the whole profile",
        ),
    ] {
        let (status, body) = patch(&app, &support, &jane, ops).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(
            body["message"], DENIED,
            "{what}: the same refusal whatever the value"
        );
    }
    let after = stored(&app, &jane).await;
    assert_eq!(after["profile"]["ssn"], before["profile"]["ssn"]);
    assert_eq!(after["profile"]["name"], "Janet");
    assert_eq!(
        after["version"], 2,
        "only the allowed patch wrote a version"
    );

    // Merges the same way: a nested object or a null on a hidden field is a change of it.
    for (profile, what) in [
        (json!({"ssn": null}), "null removes a hidden field"),
        (
            json!({"ssn": {"x": 1}}),
            "a nested merge into a hidden field",
        ),
    ] {
        let (status, _) = app
            .call(
                "UserUpdate",
                &support,
                None,
                json!({"mode": "token", "identity": jane, "profile": profile}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(stored(&app, &jane).await, after);
}

#[tokio::test]
async fn a_patch_that_changes_nothing_writes_no_version_but_is_audited() {
    let app = TestApp::spawn().await;
    let jane = app
        .create_user(json!({"login": "jane", "name": "Jane"}))
        .await;
    let (status, body) = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": jane, "patch": [{"op": "test", "path": "/name", "value": "Jane"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .root(
            "UserUpdate",
            json!({"mode": "token", "identity": jane, "profile": {"name": "Jane"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored(&app, &jane).await["version"], 1);
    let (_, versions) = app
        .root(
            "UserListVersions",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    let types: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventtype"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"UserPatch") && types.contains(&"UserUpdate"),
        "{types:?}"
    );
}

#[tokio::test]
async fn search_ranks_only_the_fields_the_caller_may_see() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let (support, _) = name_only(&app).await;
    let unlock = app.unlock_for(&support).await;
    // The phone (hidden) matches exactly, the login (hidden) nearly: neither may rank Jane.
    for term in ["07911 123456", "447911123456", "jane", "janee"] {
        let (status, body) = app
            .call(
                "UserSearch",
                &support,
                None,
                json!({"identity": term, "unlockuuid": unlock}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["rows"], json!([]), "{term} matches only hidden fields");
    }
    let (_, body) = app
        .root(
            "UserSearch",
            json!({"identity": "07911 123456", "unlockuuid": app.unlock_for(&app.root_token).await}),
        )
        .await;
    assert_eq!(
        body["rows"].as_array().unwrap().len(),
        1,
        "an admin finds her"
    );
}

#[tokio::test]
async fn group_memberships_need_the_group_section_and_every_listing_is_audited() {
    let app = TestApp::spawn().await;
    let (support, jane) = name_only(&app).await;
    app.root("GroupCreate", json!({"groupname": "The Smith family"}))
        .await;
    app.root(
        "GroupAddUser",
        json!({"mode": "token", "identity": jane, "groupname": "The Smith family"}),
    )
    .await;
    let list = json!({"mode": "token", "identity": jane});
    let (status, body) = app
        .call("GroupListUserGroups", &support, None, list.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.to_string().contains("Smith"));

    app.grant(
        "clerk",
        "groups-of-users",
        json!({"Action": ["GroupListUserGroups"], "Resource": ["users.group"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let (status, body) = app
        .call("GroupListUserGroups", &clerk, None, list.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["groupname"], "The Smith family");
    let listed: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'GroupListUserGroups' AND user_token = $1",
            &[&uuid::Uuid::parse_str(&jane).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        listed, 1,
        "the answer that revealed the memberships is audited"
    );
}

#[tokio::test]
async fn the_audit_trail_of_a_user_needs_the_whole_profile() {
    let app = TestApp::spawn().await;
    let (support, jane) = name_only(&app).await;
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    let event = events["rows"][0]["auditeventuuid"].clone();
    let (status, _) = app
        .call(
            "AuditListUserEvents",
            &support,
            None,
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a name-only role sees no trail"
    );
    let (status, body) = app
        .call(
            "AuditGetEvent",
            &support,
            None,
            json!({"auditeventuuid": event}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(
            "AuditGetEvent",
            &support,
            None,
            json!({"auditeventuuid": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::FORBIDDEN, &json!(DENIED)),
        "an unknown event looks the same"
    );
}

#[tokio::test]
async fn a_lookup_by_a_hidden_field_finds_no_one() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let (support, jane) = name_only(&app).await;
    app.grant(
        "support",
        "support-lists",
        json!({"Action": ["BulkListUsers"], "Resource": ["users.profile.name"]}),
    )
    .await;
    let missing = app
        .call(
            "UserGet",
            &support,
            None,
            json!({"mode": "login", "identity": "nobody"}),
        )
        .await;
    for (mode, identity) in [("login", "jane"), ("phone", "07911 123456")] {
        let found = app
            .call(
                "UserGet",
                &support,
                None,
                json!({"mode": mode, "identity": identity}),
            )
            .await;
        assert_eq!(found, missing, "{mode}: the same refusal as for no one");
    }
    let (status, _) = app
        .call(
            "UserGet",
            &support,
            None,
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "by token she is found");
    let unlock = app.unlock_for(&support).await;
    let (status, body) = app
        .call(
            "BulkListUsers",
            &support,
            None,
            json!({"unlockuuid": unlock, "users": [{"mode": "phone", "identity": "+447911123400"},
                                                    {"mode": "phone", "identity": "+447911123456"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"],
        json!([]),
        "guessing a hidden phone confirms nothing"
    );
}

#[tokio::test]
async fn a_nested_field_is_not_granted_on_its_own() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .root(
            "PolicyCreate",
            json!({"policyname": "first-names", "policy": {"Action": ["UserGet"], "Resource": ["users.profile.name.first"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid policy: Resource[0] is malformed"));
}

#[tokio::test]
async fn a_refused_change_tells_nothing_of_the_size_or_depth_of_hidden_fields() {
    let app = TestApp::spawn().await;
    let (support, small) = name_only(&app).await;
    let deep = (0..60).fold(json!("x"), |inner, _| json!({ "a": inner }));
    let big = app
        .create_user(json!({"name": "Big", "bio": "b".repeat(900_000), "deep": deep}))
        .await;
    for (length, accepted) in [(100_000, true), (300_000, false)] {
        let mut answers = Vec::new();
        for user in [&small, &big] {
            let (status, body) = app
                .call(
                    "UserUpdate",
                    &support,
                    None,
                    json!({"mode": "token", "identity": user, "profile": {"name": "n".repeat(length)}}),
                )
                .await;
            answers.push((status, body));
        }
        assert_eq!(
            answers[0], answers[1],
            "a name of {length}: the same answer for both users"
        );
        assert_eq!(answers[0].0 == StatusCode::OK, accepted, "{:?}", answers[0]);
    }
    let (status, body) = patch(
        &app,
        &support,
        &big,
        json!([{"op": "move", "from": "/name", "path": "/name"}]),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a hidden deep field does not matter: {body}"
    );
}

#[tokio::test]
async fn forgetting_a_user_or_listing_versions_needs_the_whole_profile() {
    let app = TestApp::spawn().await;
    let (support, jane) = name_only(&app).await;
    app.grant(
        "support",
        "support-forgets",
        json!({"Action": ["UserDelete", "UserDeleteBulk", "UserListVersions"], "Resource": ["users.profile.name"]}),
    )
    .await;
    let selector = json!({"mode": "token", "identity": jane});
    for command in ["UserDelete", "UserListVersions"] {
        let (status, _) = app.call(command, &support, None, selector.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}");
    }
    let (_, body) = app
        .call(
            "UserDeleteBulk",
            &support,
            None,
            json!({"users": [selector]}),
        )
        .await;
    assert_eq!(body["deleted_count"], 0, "{body}");
    assert_eq!(stored(&app, &jane).await["profile"]["name"], "Jane");
}

#[tokio::test]
async fn a_hidden_value_decides_nothing_in_a_listing_of_several_lookups() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    app.create_user(json!({"name": "Ann", "email": "ann@example.com", "phone": "+447911123456"}))
        .await;
    app.grant(
        "mailer",
        "names-and-emails",
        json!({"Action": ["BulkListUsers", "BulkListUnlock"], "Resource": ["users.profile.name", "users.profile.email"]}),
    )
    .await;
    let mailer = app.role_token("mailer").await;
    let unlock = app.unlock_for(&mailer).await;
    let mut answers = Vec::new();
    for guess in ["+447911123456", "+447911123400"] {
        let (status, body) = app
            .call(
                "BulkListUsers",
                &mailer,
                None,
                json!({"unlockuuid": unlock, "users": [
                    {"mode": "email", "identity": "ann@example.com"},
                    {"mode": "phone", "identity": guess}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        answers.push(body);
    }
    assert_eq!(
        answers[0], answers[1],
        "a right and a wrong guess of the hidden phone"
    );
    assert_eq!(
        answers[0]["rows"].as_array().unwrap().len(),
        1,
        "found by her e-mail"
    );
}

#[tokio::test]
async fn a_hidden_value_admits_no_one_past_another_fields_candidates() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let term = "abcdefghijkl";
    // Decoys share more of the term's trigrams than the near match does (relative to their
    // size), yet are not alike: they fill the login field's 50 candidates, leaving the near
    // match (whose login contains the term, among much else) out of that field's query.
    let decoys: Vec<Value> = (0..55)
        .map(|i| json!({"profile": {"login": format!("abcdefghijZZ{i:02}")}}))
        .collect();
    let (status, body) = app.root("UserCreateBulk", json!({"records": decoys})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.grant(
        "logins",
        "logins-only",
        json!({"Action": ["UserSearch", "BulkListUnlock"], "Resource": ["users.profile.login"]}),
    )
    .await;
    let logins = app.role_token("logins").await;
    let near = app
        .create_user(json!({"login": format!("{term}-and-a-great-deal-more-besides-it"), "custom": "unrelated"}))
        .await;
    let search = || {
        let app = &app;
        let logins = &logins;
        async move {
            let unlock = app.unlock_for(logins).await;
            app.call(
                "UserSearch",
                logins,
                None,
                json!({"identity": term, "unlockuuid": unlock}),
            )
            .await
            .1
        }
    };
    let unrelated = search().await;
    assert_eq!(
        unrelated["rows"],
        json!([]),
        "crowded out of the login candidates"
    );
    app.root(
        "UserUpdate",
        json!({"mode": "token", "identity": near, "profile": {"custom": term}}),
    )
    .await;
    assert_eq!(
        search().await,
        unrelated,
        "her hidden custom value, equal to the term, does not bring her in"
    );
    let unlock = app.unlock_for(&app.root_token).await;
    let (_, admin) = app
        .root(
            "UserSearch",
            json!({"identity": term, "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(
        admin["rows"][0]["token"], near,
        "an admin finds her by custom"
    );
}
