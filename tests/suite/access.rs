//! Access control through role and user tokens: the CRBAC examples of the design (parents and
//! children, teachers and parents, managers and their team), masking, refusals, and the tokens'
//! own lifecycle.

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

const DENIED: &str = "API access denied";

/// Creates roles, a policy linked to its role, and groups, as root.
async fn policy(app: &TestApp, role: &str, name: &str, document: Value) {
    app.root("RoleCreate", json!({"rolename": role})).await;
    let (status, body) = app
        .root(
            "PolicyCreate",
            json!({"policyname": name, "policy": document}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .root(
            "RoleLinkPolicy",
            json!({"rolename": role, "policyname": name}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn group(app: &TestApp, name: &str) {
    let (status, body) = app.root("GroupCreate", json!({"groupname": name})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A user in a group with a role; returns the user's token.
async fn member(app: &TestApp, profile: Value, group: &str, role: &str) -> String {
    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": profile, "groupname": group, "rolename": role}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A user token for the user with this login.
async fn user_token(app: &TestApp, login: &str) -> String {
    let (status, body) = app
        .root(
            "XTokenCreateForUser",
            json!({"mode": "login", "identity": login}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["xtoken"].as_str().unwrap().to_owned()
}

async fn unlock(app: &TestApp, token: &str) -> String {
    let (status, body) = app.call("BulkListUnlock", token, None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["unlockuuid"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, token: &str, user: &str) -> (StatusCode, Value) {
    app.call(
        "UserGet",
        token,
        None,
        json!({"mode": "token", "identity": user}),
    )
    .await
}

fn logins(rows: &Value) -> Vec<&str> {
    let mut logins: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["profile"]["login"].as_str().unwrap())
        .collect();
    logins.sort();
    logins
}

/// Two families and a class: Alice's child Kim is Mr Lee's student; Bob's child Sam is not.
async fn school(app: &TestApp) -> [String; 6] {
    policy(
        app,
        "parent",
        "parents-read-children",
        json!({
            "Effect": "Allow", "Principal": {"Role": "parent"},
            "Action": ["UserGet", "UserUpdate", "BulkListGroupUsers"],
            "Resource": ["${target_group_members:role/child}.profile", "${target_group_members:role/child}.consent"],
            "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}
        }),
    )
    .await;
    policy(
        app,
        "teacher",
        "teachers-read-parents",
        json!({
            "Effect": "Allow", "Principal": {"Role": "teacher"},
            "Action": ["UserGet", "BulkListGroupUsers"],
            "Resource": ["${target_group_members:role/parent}.profile.name", "${target_group_members:role/parent}.profile.phone"],
            "Condition": {"ListIntersect": {"${principal_group_members:role/student}": "${target_group_members:role/child}"}}
        }),
    )
    .await;
    for role in ["child", "student"] {
        app.root("RoleCreate", json!({"rolename": role})).await;
    }
    for name in ["family-1", "family-2", "class-3b"] {
        group(app, name).await;
    }
    let alice = member(app, json!({"login": "alice", "name": "Alice", "phone": "+447911123456", "email": "alice@example.com", "age": 41}), "family-1", "parent").await;
    let kim = member(
        app,
        json!({"login": "kim", "name": "Kim", "grade": 3}),
        "family-1",
        "child",
    )
    .await;
    let bob = member(
        app,
        json!({"login": "bob", "name": "Bob", "phone": "+447911123457", "email": "bob@example.com"}),
        "family-2",
        "parent",
    )
    .await;
    let sam = member(
        app,
        json!({"login": "sam", "name": "Sam"}),
        "family-2",
        "child",
    )
    .await;
    let lee = member(
        app,
        json!({"login": "lee", "name": "Mr Lee"}),
        "class-3b",
        "teacher",
    )
    .await;
    let (status, _) = app
        .root(
            "GroupAddUser",
            json!({"mode": "token", "identity": kim, "groupname": "class-3b", "rolename": "student"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stranger = app.create_user(json!({"login": "zed"})).await;
    [alice, kim, bob, sam, lee, stranger]
}

#[tokio::test]
async fn parents_read_and_update_their_own_childs_profile_only() {
    let app = TestApp::spawn().await;
    let [alice, kim, bob, sam, lee, _] = school(&app).await;
    let mum = user_token(&app, "alice").await;

    let (status, body) = get(&app, &mum, &kim).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["profile"],
        json!({"login": "kim", "name": "Kim", "grade": 3}),
        "the whole profile"
    );
    let (status, body) = app
        .call(
            "UserUpdate",
            &mum,
            None,
            json!({"mode": "token", "identity": kim, "profile": {"grade": 4}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.root("UserGet", json!({"mode": "token", "identity": kim}))
            .await
            .1["profile"]["grade"],
        4
    );

    for (other, why) in [
        (&sam, "another family's child"),
        (&bob, "another parent"),
        (&lee, "a teacher"),
    ] {
        let (status, body) = get(&app, &mum, other).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}");
        assert_eq!(body["message"], DENIED);
    }
    let (status, _) = app
        .call(
            "UserDelete",
            &mum,
            None,
            json!({"mode": "token", "identity": kim}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not an allowed action");
    let (status, body) = app
        .call(
            "UserGet",
            &mum,
            None,
            json!({"mode": "email", "identity": "nobody@example.com"}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::FORBIDDEN, Some(DENIED)),
        "a missing user answers as a refused one: no probing"
    );

    let unlock = unlock(&app, &mum).await;
    let (status, body) = app
        .call(
            "BulkListGroupUsers",
            &mum,
            None,
            json!({"unlockuuid": unlock, "groupname": "family-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(logins(&body["rows"]), ["kim"], "the child, not the parent");
    assert_eq!(body["total"], 1);
    assert!(
        body["rows"][0].get("rolename").is_none(),
        "groups not granted"
    );
    let (_, body) = app
        .call(
            "BulkListGroupUsers",
            &mum,
            None,
            json!({"unlockuuid": unlock, "groupname": "family-2"}),
        )
        .await;
    assert_eq!(body["rows"], json!([]), "another family");
    assert_eq!(body["total"], 0);
    let _ = alice;
}

#[tokio::test]
async fn teachers_read_only_the_name_and_phone_of_their_students_parents() {
    let app = TestApp::spawn().await;
    let [alice, kim, bob, _, _, _] = school(&app).await;
    let teacher = user_token(&app, "lee").await;

    let (status, body) = get(&app, &teacher, &alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["profile"],
        json!({"login": "***", "name": "Alice", "phone": "+447911123456", "email": "***"}),
        "hidden strings are masked, hidden numbers dropped"
    );
    for (other, why) in [(&bob, "a parent of no student"), (&kim, "a child")] {
        assert_eq!(
            get(&app, &teacher, other).await.0,
            StatusCode::FORBIDDEN,
            "{why}"
        );
    }
    let (status, _) = app
        .call(
            "UserUpdate",
            &teacher,
            None,
            json!({"mode": "token", "identity": alice, "profile": {"name": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read only");

    let unlock = unlock(&app, &teacher).await;
    let (_, body) = app
        .call(
            "BulkListGroupUsers",
            &teacher,
            None,
            json!({"unlockuuid": unlock, "groupname": "family-1"}),
        )
        .await;
    assert_eq!(
        body["rows"],
        json!([{"token": alice, "profile": {"login": "***", "name": "Alice", "phone": "+447911123456", "email": "***"}}])
    );
}

#[tokio::test]
async fn managers_list_their_team_with_name_phone_and_group_only() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    policy(
        &app,
        "manager",
        "ManagerAccess",
        json!({
            "Effect": "Allow", "Principal": {"Role": "manager"},
            "Action": ["UserGet", "BulkListGroupUsers", "BulkListAllUsers"],
            "Resource": [
                "${target_group_members:role/team-member}.profile.name",
                "${target_group_members:role/team-member}.profile.phone",
                "${target_group_members:role/team-member}.group"
            ],
            "Condition": {"StringEquals": {"${user_group_id}": "${target_group_id}"}}
        }),
    )
    .await;
    app.root("RoleCreate", json!({"rolename": "team-member"}))
        .await;
    group(&app, "sales").await;
    group(&app, "support").await;
    member(
        &app,
        json!({"login": "meg", "name": "Meg"}),
        "sales",
        "manager",
    )
    .await;
    let ann = member(&app, json!({"login": "ann", "name": "Ann", "phone": "+447911123458", "salary": 50000, "email": "ann@example.com"}), "sales", "team-member").await;
    let tom = member(
        &app,
        json!({"login": "tom", "name": "Tom", "phone": "+447911123459"}),
        "support",
        "team-member",
    )
    .await;
    let manager = user_token(&app, "meg").await;

    let unlock = unlock(&app, &manager).await;
    let (status, body) = app
        .call(
            "BulkListGroupUsers",
            &manager,
            None,
            json!({"unlockuuid": unlock, "groupname": "sales"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"],
        json!([{"token": ann, "rolename": "team-member",
                "profile": {"login": "***", "name": "Ann", "phone": "+447911123458", "email": "***"}}]),
        "the team member, masked; the role shown (group granted); the manager not listed"
    );
    let (_, body) = app
        .call(
            "BulkListAllUsers",
            &manager,
            None,
            json!({"unlockuuid": unlock}),
        )
        .await;
    assert_eq!(body["total"], 1, "only her own team, counted as such");
    assert_eq!(logins(&body["rows"]), ["***"]);
    assert_eq!(
        get(&app, &manager, &tom).await.0,
        StatusCode::FORBIDDEN,
        "another team"
    );
}

#[tokio::test]
async fn a_role_token_is_refused_commands_outside_its_policy() {
    let app = TestApp::spawn().await;
    policy(
        &app,
        "support",
        "support-reads-profiles",
        json!({"Effect": "Allow", "Action": ["UserGet", "TokenCreate"], "Resource": ["users.profile"]}),
    )
    .await;
    let jane = app
        .create_user(json!({"login": "jane", "name": "Jane"}))
        .await;
    let (status, body) = app
        .root(
            "XTokenCreateForRole",
            json!({"rolename": "support", "finaltime": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let role = body["xtoken"].as_str().unwrap().to_owned();

    let (status, body) = get(&app, &role, &jane).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["profile"]["name"], "Jane");
    let (status, _) = app
        .call(
            "TokenCreate",
            &role,
            None,
            json!({"tokentype": "uint32", "record": "7"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a tenant command its policy allows");
    for (command, body) in [
        (
            "UserUpdate",
            json!({"mode": "token", "identity": jane, "profile": {"name": "x"}}),
        ),
        ("UserDelete", json!({"mode": "token", "identity": jane})),
        ("UserCreate", json!({"profile": {"login": "new"}})),
        (
            "TokenGet",
            json!({"tokenuuid": "00000000-0000-0000-0000-000000000000"}),
        ),
        ("GroupCreate", json!({"groupname": "g"})),
        ("GroupListAllGroups", json!({})),
        ("BulkListUnlock", json!({})),
        ("RoleCreate", json!({"rolename": "boss"})),
        ("PolicyListAllPolicies", json!({})),
        ("TenantGet", json!({"tenantid": 1})),
        ("TenantListTenants", json!({})),
        ("XTokenCreateForRole", json!({"rolename": "support"})),
        (
            "XTokenCreateForUser",
            json!({"mode": "token", "identity": jane}),
        ),
        ("SystemGenerateWrappingKey", json!({})),
    ] {
        let (status, answer) = app.call(command, &role, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
        assert_eq!(answer["message"], DENIED, "{command}");
    }
    let unchanged = app
        .root("UserGet", json!({"mode": "token", "identity": jane}))
        .await
        .1;
    assert_eq!(unchanged["profile"]["name"], "Jane");

    let (status, body) = app
        .call(
            "UserGet",
            &role,
            Some("acme"),
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another tenant: {body}");
}

#[tokio::test]
async fn a_user_token_reads_its_own_record_and_no_other() {
    let app = TestApp::spawn().await;
    let me = app
        .create_user(json!({"login": "me", "email": "me@example.com", "age": 30}))
        .await;
    let other = app.create_user(json!({"login": "other"})).await;
    let (status, body) = app
        .root(
            "XTokenCreateForUser",
            json!({"mode": "email", "identity": "ME@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["token"],
        me.as_str(),
        "the user's token comes back too"
    );
    let xtoken = body["xtoken"].as_str().unwrap().to_owned();

    let (status, body) = get(&app, &xtoken, &me).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["profile"],
        json!({"login": "me", "email": "me@example.com", "age": 30})
    );
    let (status, _) = app
        .call(
            "UserGet",
            &xtoken,
            None,
            json!({"mode": "login", "identity": "me"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "by any mode");
    let (status, _) = app
        .call(
            "UserListVersions",
            &xtoken,
            None,
            json!({"mode": "token", "identity": me}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            "AuditListUserEvents",
            &xtoken,
            None,
            json!({"mode": "token", "identity": me}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(get(&app, &xtoken, &other).await.0, StatusCode::FORBIDDEN);
    for command in ["UserUpdate", "UserPatch", "UserDelete"] {
        let body = json!({"mode": "token", "identity": me, "profile": {"age": 31}, "patch": []});
        let (status, _) = app.call(command, &xtoken, None, body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{command}: changes go through requests"
        );
    }

    // The token is stored hashed, its use is audited under its own kind, and forget-me ends it.
    let db = app.superuser().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM access_tokens WHERE kind = 'user' AND token_hash = sha256($1::text::bytea)",
            &[&xtoken],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let by_user_token: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE actor_kind = 'user' AND action = 'UserGet'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_user_token, 2);
    let created: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'XTokenCreateForUser' AND user_token = $1::text::uuid",
            &[&me],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 1, "issuing is audited in the user's trail");
    app.root("UserDelete", json!({"mode": "token", "identity": me}))
        .await;
    let (status, _) = get(&app, &xtoken, &me).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "forget-me removes the user's tokens"
    );
}

#[tokio::test]
async fn role_and_user_tokens_expire_and_slide() {
    let app = TestApp::spawn_with(TestOptions {
        xtoken_max_seconds: 6,
        ..TestOptions::default()
    })
    .await;
    let me = app.create_user(json!({"login": "me"})).await;
    let (_, body) = app
        .root(
            "XTokenCreateForUser",
            json!({"mode": "token", "identity": me, "finaltime": "10d"}),
        )
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expires = body["expirationtime"].as_i64().unwrap();
    assert!(
        (now + 5..=now + 7).contains(&expires),
        "finaltime is capped by BUNKER_XTOKEN_MAX_SECONDS"
    );
    let (_, body) = app
        .root(
            "XTokenCreateForUser",
            json!({"mode": "token", "identity": me, "finaltime": "2s"}),
        )
        .await;
    let short = body["xtoken"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &short, &me).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = get(&app, &short, &me).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = app
        .root(
            "XTokenCreateForUser",
            json!({"mode": "token", "identity": me, "slidingtime": "2s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sliding = body["xtoken"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(
            get(&app, &sliding, &me).await.0,
            StatusCode::OK,
            "each use renews it"
        );
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        get(&app, &sliding, &me).await.0,
        StatusCode::UNAUTHORIZED,
        "unused, it lapses"
    );

    for bad in [
        json!({"mode": "token", "identity": me, "finaltime": "soon"}),
        json!({"mode": "nope", "identity": me}),
    ] {
        assert_eq!(
            app.root("XTokenCreateForUser", bad).await.0,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.root("XTokenCreateForRole", json!({})).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.root("XTokenCreateForRole", json!({"rolename": "ghost"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_allowed_one_command_is_refused_every_other_command() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    policy(
        &app,
        "reader",
        "read-only",
        json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile"]}),
    )
    .await;
    group(&app, "g").await;
    let jane = member(&app, json!({"login": "jane"}), "g", "reader").await;
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    let event = events["rows"][0]["auditeventuuid"].clone();
    let (status, _) = app
        .root(
            "AppdataCreate",
            json!({"mode": "token", "identity": jane, "appname": "shop", "appdata": {"size": "M"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (command, body) in [
        ("LegalBasisCreate", json!({"brief": "newsletter"})),
        ("ProcessingActivityCreate", json!({"activity": "mailing"})),
        (
            "AgreementAccept",
            json!({"mode": "token", "identity": jane, "brief": "newsletter"}),
        ),
    ] {
        let (status, answer) = app.root(command, body).await;
        assert_eq!(status, StatusCode::OK, "{command}: {answer}");
    }
    // A session and a file of jane's, for the commands on them.
    let session = json!({"sessionuuid": "s-jane", "sessiondata": {"token": jane}});
    let (status, answer) = app.root("SessionUpsert", session.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, file) = app
        .root(
            "FileCreate",
            json!({"mode": "token", "identity": jane, "filename": "a.txt", "filedata": "aGk="}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{file}");
    let root_unlock = unlock(&app, &app.root_token).await;
    let (_, role) = app
        .root("XTokenCreateForRole", json!({"rolename": "reader"}))
        .await;
    let role = role["xtoken"].as_str().unwrap().to_owned();
    let user = user_token(&app, "jane").await;
    // Every field any command needs, so that no command stops at a 400 before deciding.
    let body = json!({
        "mode": "token", "identity": jane, "users": [{"mode": "login", "identity": "jane"}],
        "groupname": "g", "groupid": 1, "rolename": "reader", "auditeventuuid": event, "profile": {"x": 1},
        "patch": [], "tokens": [], "records": [{"profile": {}}], "unlockuuid": root_unlock,
        "tenantname": "other", "tenantorg": "o", "tenantid": 1, "policyname": "p",
        "policy": {"Action": ["UserGet"]}, "tokentype": "uint32", "record": "7",
        "key1": "x", "key2": "x", "key3": "x", "appname": "shop", "appdata": {"x": 1},
        "requestuuid": "5b0e9d4c-5e0a-4a43-9d7c-1d2f5a9e0b11", "brief": "newsletter",
        "activity": "mailing", "sessionuuid": "s-jane", "sessiondata": {"token": jane},
        "fileuuid": file["fileuuid"], "filename": "b.txt", "filedata": "aG8=", "tags": ["t"],
        "tag": "t", "fields": "login", "exptoken": "0b3f3e2a-5d6c-4c1e-9a43-2f7d1e6b9c10"
    });
    // UserExpirationStart's end, for it alone (AgreementAccept would read it as its consent's end).
    let body_of = |command: &str| {
        let mut body = body.clone();
        if command == "UserExpirationStart" {
            body["finaltime"] = json!("1h");
        }
        body
    };
    let commands = app.routed_commands().await;
    assert!(commands.len() > 40, "{commands:?}");
    let own_reads = [
        "UserGet",
        "UserListVersions",
        "AuditListUserEvents",
        "AuditGetEvent",
        "GroupListUserGroups",
        "AppdataGet",
        "AppdataListUserAppNames",
        "AppdataListVersions",
        // A user asks for changes of its own record (never makes them).
        "UserUpdateRequest",
        "UserPatchRequest",
        "UserDeleteRequest",
        "AppdataUpdateRequest",
        "UserRequestListUserRequests",
        // Its own consents: given, read, withdrawn (here as a request: no user control).
        "AgreementAccept",
        "AgreementGet",
        "AgreementListUserAgreements",
        "AgreementCancel",
        "AgreementCancelRequest",
        // What the tenant processes and why.
        "LegalBasisListAgreements",
        "ProcessingActivityListActivities",
        // Its own sessions (ended too: signing out) and files.
        "SessionGet",
        "SessionDelete",
        "SessionListUserSessions",
        "FileGet",
        "FileListUserFiles",
        // Everything held about it (the right of access).
        "SystemGetUserReport",
        "SystemGetUserHTMLReport",
        // Its own expiration flow: read, and cancelled (which keeps its data); never started.
        "UserExpirationGet",
        "UserExpirationCancel",
    ];
    // The public commands take no token (SharedRecordGet's capability is the record's uuid, the
    // expiration links' their flow's).
    let public = [
        "SharedRecordGet",
        "TenantGetUIConf",
        "UserPrelogin",
        "UserLogin",
        "CaptchaCreate",
        "UserExpirationRetain",
        "UserExpirationDelete",
    ];
    for command in commands.iter().filter(|c| !public.contains(&c.as_str())) {
        let (status, answer) = app.call(command, &role, None, body_of(command)).await;
        let expected = if command == "UserGet" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "role token, {command}: {answer}");
        let (status, answer) = app.call(command, &user, None, body_of(command)).await;
        app.root("SessionUpsert", session.clone()).await;
        let expected = if own_reads.contains(&command.as_str()) {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "user token, {command}: {answer}");
    }
    let (_, still) = app
        .root("UserGet", json!({"mode": "token", "identity": jane}))
        .await;
    assert_eq!(
        still["profile"],
        json!({"login": "jane"}),
        "nothing changed"
    );
}

#[tokio::test]
async fn a_user_token_never_changes_its_own_record_even_where_a_policy_allows_changes() {
    let app = TestApp::spawn().await;
    policy(
        &app,
        "editor",
        "edit-profiles",
        json!({"Effect": "Allow", "Action": ["UserUpdate", "UserGet"], "Resource": ["users.profile"]}),
    )
    .await;
    group(&app, "desk").await;
    let ed = member(&app, json!({"login": "ed"}), "desk", "editor").await;
    let other = app.create_user(json!({"login": "other"})).await;
    let token = user_token(&app, "ed").await;
    let update = |who: &str| json!({"mode": "token", "identity": who, "profile": {"note": "x"}});
    let (status, body) = app.call("UserUpdate", &token, None, update(&other)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another user, as the policy allows: {body}"
    );
    let (status, body) = app.call("UserUpdate", &token, None, update(&ed)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "its own record: {body}");
}
