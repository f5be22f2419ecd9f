//! Who may give or take away memberships and roles, and what a refusal tells: only a member of a
//! group manages it, only with the roles its policies name; a missing group, role, user or value
//! looks the same as a refused one, and an attempt that reveals that a value is taken is recorded
//! in its holder's trail.

use bunker_tests::{StatusCode, TestApp};
use serde_json::{json, Value};

const DENIED: &str = "API access denied";

/// Two families, each with a parent and a child; every role and group exists.
async fn families(app: &TestApp) {
    for role in ["parent", "child"] {
        app.root("RoleCreate", json!({"rolename": role})).await;
    }
    for (group, parent, child) in [("family-1", "alice", "kim"), ("family-2", "bob", "sam")] {
        app.root("GroupCreate", json!({"groupname": group})).await;
        for (login, role) in [(parent, "parent"), (child, "child")] {
            let (status, body) = app
                .root(
                    "UserCreate",
                    json!({"profile": {"login": login, "medical": format!("{login}'s notes")},
                           "groupname": group, "rolename": role}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
}

async fn groups_of(app: &TestApp, login: &str) -> Vec<(String, Value)> {
    let (_, body) = app
        .root(
            "GroupListUserGroups",
            json!({"mode": "login", "identity": login}),
        )
        .await;
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["groupname"].as_str().unwrap().to_owned(),
                r["rolename"].clone(),
            )
        })
        .collect()
}

async fn add(
    app: &TestApp,
    token: &str,
    login: &str,
    group: &str,
    role: &str,
) -> (StatusCode, Value) {
    app.call(
        "GroupAddUser",
        token,
        None,
        json!({"mode": "login", "identity": login, "groupname": group, "rolename": role}),
    )
    .await
}

#[tokio::test]
async fn a_user_token_cannot_make_itself_a_member_of_another_group() {
    let app = TestApp::spawn().await;
    families(&app).await;
    // The reported escalation: GroupAddUser allowed on the user's own record.
    app.grant(
        "parent",
        "own-memberships",
        json!({"Action": ["GroupAddUser"], "Resource": ["${target_user}.group"]}),
    )
    .await;
    app.grant(
        "parent",
        "parents-read-children",
        json!({"Action": ["UserGet"], "Resource": ["${target_group_members:role/child}.profile"],
               "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}}),
    )
    .await;
    let alice = app.user_xtoken("login", "alice").await;
    let (status, body) = add(&app, &alice, "alice", "family-2", "parent").await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::FORBIDDEN, &json!(DENIED))
    );
    assert_eq!(
        groups_of(&app, "alice").await,
        [("family-1".to_owned(), json!("parent"))]
    );
    let (status, _) = app
        .call(
            "UserGet",
            &alice,
            None,
            json!({"mode": "login", "identity": "sam"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "and so never reads the other family's child"
    );
}

#[tokio::test]
async fn a_role_token_cannot_create_users_in_a_group_it_has_nothing_to_do_with() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "intake",
        "creates-users",
        json!({"Action": ["UserCreate", "UserCreateBulk"], "Resource": ["*"]}),
    )
    .await;
    let intake = app.role_token("intake").await;
    let (status, body) = app
        .call(
            "UserCreate",
            &intake,
            None,
            json!({"profile": {"login": "eve"}, "groupname": "family-1", "rolename": "parent"}),
        )
        .await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::FORBIDDEN, &json!(DENIED))
    );
    let (status, body) = app
        .call(
            "UserCreateBulk",
            &intake,
            None,
            json!({"records": [
                {"profile": {"login": "eve2"}, "groupname": "family-1", "rolename": "parent"},
                {"profile": {"login": "plain"}}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["reason"], DENIED);
    assert_eq!(
        body["created"].as_array().unwrap().len(),
        1,
        "the plain user"
    );
    for login in ["eve", "eve2"] {
        let (status, _) = app
            .root("UserGet", json!({"mode": "login", "identity": login}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{login} was not created");
    }
    let (status, _) = app
        .call(
            "UserCreate",
            &intake,
            None,
            json!({"profile": {"login": "free"}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "creating a user in no group stays allowed"
    );
}

#[tokio::test]
async fn a_parent_gives_only_the_child_role_and_only_in_their_own_family() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "parent",
        "parents-manage-children",
        json!({"Action": ["GroupAddUser", "GroupDeleteUser"],
               "Resource": ["${target_group_members:role/child}.group", "${target_group_members:role/child}.profile"],
               "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}}),
    )
    .await;
    let alice = app.user_xtoken("login", "alice").await;
    // Kim is her child: she may take kim out of the family and put her back, as child only.
    let (status, body) = app
        .call(
            "GroupDeleteUser",
            &alice,
            None,
            json!({"mode": "login", "identity": "kim", "groupname": "family-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = add(&app, &alice, "kim", "family-1", "child").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "kim is no longer hers to manage"
    );
    app.root(
        "GroupAddUser",
        json!({"mode": "login", "identity": "kim", "groupname": "family-1", "rolename": "child"}),
    )
    .await;
    for (login, group, role, why) in [
        (
            "kim",
            "family-1",
            "parent",
            "a role the policy does not name",
        ),
        ("kim", "family-2", "child", "another family's group"),
        (
            "sam",
            "family-1",
            "child",
            "a child she has no authority over",
        ),
        ("sam", "family-2", "child", "another family's child"),
    ] {
        let (status, body) = add(&app, &alice, login, group, role).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {body}");
    }
    assert_eq!(
        groups_of(&app, "kim").await,
        [("family-1".to_owned(), json!("child"))]
    );
    assert_eq!(
        groups_of(&app, "sam").await,
        [("family-2".to_owned(), json!("child"))]
    );
}

#[tokio::test]
async fn a_missing_group_role_or_user_looks_the_same_as_a_refused_one() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "clerk",
        "clerks",
        json!({"Action": ["GroupAddUser", "GroupGet", "UserGet"], "Resource": ["users.profile"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let refusal = |(status, body): (StatusCode, Value)| (status, body.to_string());
    let refused = refusal(add(&app, &clerk, "kim", "family-1", "child").await);
    assert_eq!(refused.0, StatusCode::FORBIDDEN);
    for (login, group, role) in [
        ("kim", "no-such-group", "child"),
        ("kim", "family-1", "no-such-role"),
        ("nobody", "family-1", "child"),
    ] {
        assert_eq!(
            refusal(add(&app, &clerk, login, group, role).await),
            refused,
            "{login} {group} {role}"
        );
    }
    let (status, body) = app
        .call(
            "GroupGet",
            &clerk,
            None,
            json!({"groupname": "no-such-group"}),
        )
        .await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::FORBIDDEN, &json!(DENIED))
    );
    let (status, _) = app
        .root("GroupGet", json!({"groupname": "no-such-group"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "admins are told");
}

#[tokio::test]
async fn a_taken_value_is_refused_and_the_attempt_is_recorded_in_the_holders_trail() {
    let app = TestApp::spawn().await;
    let holder = app
        .create_user(json!({"email": "jane@example.com", "name": "Jane"}))
        .await;
    app.grant(
        "intake",
        "creates-users",
        json!({"Action": ["UserCreate", "UserUpdate"], "Resource": ["users.profile"]}),
    )
    .await;
    let intake = app.role_token("intake").await;
    let (status, body) = app
        .call(
            "UserCreate",
            &intake,
            None,
            json!({"profile": {"email": "JANE@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], "Duplicate index: email");
    let other = app.create_user(json!({"login": "other"})).await;
    let (status, _) = app
        .call(
            "UserUpdate",
            &intake,
            None,
            json!({"mode": "token", "identity": other, "profile": {"email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, trail) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": holder}),
        )
        .await;
    let rows = trail["rows"].as_array().unwrap();
    let types: Vec<&str> = rows
        .iter()
        .map(|r| r["eventtype"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["UserUpdate", "UserCreate", "UserCreate"],
        "both attempts are in Jane's trail, newest first, above her own creation"
    );
    let (_, event) = app
        .root(
            "AuditGetEvent",
            json!({"auditeventuuid": rows[0]["auditeventuuid"]}),
        )
        .await;
    assert_eq!(
        event["details"]["refused"], "Duplicate index: email",
        "{event}"
    );
    assert!(
        !event.to_string().contains("jane@"),
        "no value in the trail"
    );
}

#[tokio::test]
async fn only_a_member_renames_or_deletes_a_group() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "clerk",
        "group-clerks",
        json!({"Action": ["GroupUpdate", "GroupDelete"], "Resource": ["*"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    app.grant(
        "parent",
        "parents-name-their-family",
        json!({"Action": ["GroupUpdate"], "Resource": ["users.group"],
               "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}}),
    )
    .await;
    let alice = app.user_xtoken("login", "alice").await;
    for (token, command, group, why) in [
        (
            &clerk,
            "GroupDelete",
            "family-1",
            "a role token is a member of no group",
        ),
        (
            &clerk,
            "GroupUpdate",
            "family-1",
            "a role token is a member of no group",
        ),
        (&alice, "GroupUpdate", "family-2", "not her family"),
        (
            &alice,
            "GroupDelete",
            "family-1",
            "not a command she is allowed",
        ),
    ] {
        let (status, body) = app
            .call(
                command,
                token,
                None,
                json!({"groupname": group, "groupid": group_id(&app, group).await, "groupdesc": "x"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{command} {group}: {why}: {body}"
        );
    }
    assert_eq!(
        groups_of(&app, "kim").await,
        [("family-1".to_owned(), json!("child"))]
    );
    let (status, body) = app
        .call(
            "GroupUpdate",
            &alice,
            None,
            json!({"groupid": group_id(&app, "family-1").await, "groupdesc": "the Smiths"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "her own family: {body}");
}

#[tokio::test]
async fn a_taken_group_name_is_refused_and_the_attempt_is_recorded() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "clerk",
        "group-makers",
        json!({"Action": ["GroupCreate"], "Resource": ["*"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let (status, body) = app
        .call(
            "GroupCreate",
            &clerk,
            None,
            json!({"groupname": "family-2"}),
        )
        .await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::CONFLICT, &json!("Duplicate group name"))
    );
    let holder = group_id(&app, "family-2").await;
    let recorded: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'GroupCreate' AND target = $1",
            &[&format!("group:{holder}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        recorded, 2,
        "its creation, and the attempt that found its name taken"
    );
}

async fn group_id(app: &TestApp, name: &str) -> i64 {
    let (_, body) = app.root("GroupGet", json!({"groupname": name})).await;
    body["groupid"].as_i64().unwrap()
}

#[tokio::test]
async fn deleting_a_group_takes_only_memberships_the_caller_could_take_one_by_one() {
    let app = TestApp::spawn().await;
    families(&app).await;
    app.grant(
        "parent",
        "parents-manage-children",
        json!({"Action": ["GroupDelete", "GroupDeleteUser"], "Resource": ["${target_group_members:role/child}.group", "${target_group_members:role/child}.profile"],
               "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}}),
    )
    .await;
    let alice = app.user_xtoken("login", "alice").await;
    let family = json!({"groupid": group_id(&app, "family-1").await});
    let (status, body) = app.call("GroupDelete", &alice, None, family.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "alice herself holds a role the policy does not name: {body}"
    );
    assert_eq!(
        groups_of(&app, "alice").await,
        [("family-1".to_owned(), json!("parent"))]
    );
    let (status, _) = app.root("GroupDelete", family).await;
    assert_eq!(status, StatusCode::OK);
    let (_, trail) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "kim"}),
        )
        .await;
    assert_eq!(
        trail["rows"][0]["eventtype"], "GroupDelete",
        "each member's trail records it"
    );
}
