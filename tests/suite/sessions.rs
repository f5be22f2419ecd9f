//! Sessions and shared records: who may reach them, what a partner sees, and that another tenant
//! reaches none of it.

use bunker_tests::{answer, StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

async fn shared_get(app: &TestApp, record: &Value, tenant: Option<&str>) -> (StatusCode, Value) {
    let mut request = app
        .command("SharedRecordGet")
        .json(&json!({"recorduuid": record}));
    if let Some(tenant) = tenant {
        request = request.header("X-Bunker-Tenant", tenant);
    }
    answer(request).await
}

#[tokio::test]
async fn sessions_are_linked_held_to_policies_and_kept_within_their_tenant() {
    let app = TestApp::spawn().await;
    let jane = app
        .create_user(json!({"login": "jane", "email": "jane@example.com"}))
        .await;
    let bob = app.create_user(json!({"login": "bob"})).await;
    let upsert = |id: &str, data: Value| json!({"sessionuuid": id, "sessiondata": data});
    let (status, body) = app
        .root(
            "SessionUpsert",
            upsert("s-jane", json!({"email": "Jane@Example.com", "n": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = app
        .root("SessionGet", json!({"sessionuuid": "s-jane"}))
        .await;
    assert_eq!(got["token"], jane.as_str(), "linked by the e-mail it names");
    // A session naming a user who does not exist is refused, not kept out of forget-me's reach.
    let (status, body) = app
        .root("SessionUpsert", upsert("s-x", json!({"login": "nobody"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A final time that has passed is refused, not read as a lifetime of decades.
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let mut late = upsert("s-late", json!({"login": "jane"}));
    late["finaltime"] = json!(past);
    let (status, body) = app.root("SessionUpsert", late).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Bad ids and data.
    for (id, data) in [("", json!({})), ("a b", json!({})), ("ok", json!([1]))] {
        let (status, body) = app.root("SessionUpsert", upsert(id, data)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    // A role with the session section of users reaches sessions; one with the profile only, none.
    app.grant(
        "store",
        "session-store",
        json!({"Effect": "Allow", "Action": ["Session*"], "Resource": ["users.session"]}),
    )
    .await;
    app.grant(
        "clerk",
        "clerk",
        json!({"Effect": "Allow", "Action": ["Session*"], "Resource": ["users.profile"]}),
    )
    .await;
    let store = app.role_token("store").await;
    let clerk = app.role_token("clerk").await;
    let get = json!({"sessionuuid": "s-jane"});
    let (status, body) = app.call("SessionGet", &store, None, get.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (command, body) in [
        ("SessionGet", get.clone()),
        ("SessionDelete", get.clone()),
        ("SessionUpsert", upsert("s-jane", json!({"n": 2}))),
        ("SessionUpsert", upsert("s-new", json!({"n": 2}))),
        (
            "SessionListUserSessions",
            json!({"mode": "login", "identity": "jane"}),
        ),
    ] {
        let (status, answer) = app.call(command, &clerk, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
    }
    // Missing and forbidden look alike to a role.
    let (status, _) = app
        .call("SessionGet", &store, None, json!({"sessionuuid": "s-none"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Jane's session cannot be taken over by a role kept away from jane.
    app.grant(
        "bobs",
        "bobs-sessions",
        json!({"Effect": "Allow", "Action": ["SessionUpsert"], "Resource": ["users.session"]}),
    )
    .await;
    app.grant(
        "bobs",
        "not-jane",
        json!({"Effect": "Deny", "Action": ["SessionUpsert"], "Resource": ["${target_group_members:role/vip}.session"]}),
    )
    .await;
    app.root("GroupCreate", json!({"groupname": "vips"})).await;
    app.root("RoleCreate", json!({"rolename": "vip"})).await;
    let (status, body) = app
        .root(
            "GroupAddUser",
            json!({"mode": "login", "identity": "jane", "groupname": "vips", "rolename": "vip"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bobs = app.role_token("bobs").await;
    // Nor by racing an upsert that creates it. The role's upsert of a new session is held (on
    // bob's row, by the test) after it has looked at the session and found none; root then
    // creates the session as jane's. The two must follow one another: root's waits for the
    // role's, then replaces it, and jane's session is jane's.
    let su = app.superuser().await;
    su.batch_execute("BEGIN").await.unwrap();
    su.execute(
        "SELECT 1 FROM users WHERE token = $1::text::uuid FOR UPDATE",
        &[&bob],
    )
    .await
    .unwrap();
    let (by_role, by_root) = tokio::join!(
        app.call(
            "SessionUpsert",
            &bobs,
            None,
            upsert("race", json!({"token": bob, "v": "bob"}))
        ),
        async {
            app.until_a_query_waits_for_a_lock().await;
            let release = async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                su.batch_execute("COMMIT").await.unwrap();
            };
            let (by_root, ()) = tokio::join!(
                app.root(
                    "SessionUpsert",
                    upsert("race", json!({"token": jane, "v": "jane"}))
                ),
                release
            );
            by_root
        }
    );
    assert_eq!(by_root.0, StatusCode::OK, "{}", by_root.1);
    assert_eq!(
        by_role.0,
        StatusCode::OK,
        "the role's went first: {}",
        by_role.1
    );
    let (_, raced) = app.root("SessionGet", json!({"sessionuuid": "race"})).await;
    assert_eq!(raced["sessiondata"]["v"], "jane", "{raced}");
    // A role reaching only some users' sessions may not take over a session of no one (a
    // visitor's) by linking it to one of them.
    app.grant(
        "vipstore",
        "vip-sessions",
        json!({"Effect": "Allow", "Action": ["Session*"], "Resource": ["${target_group_members:role/vip}.session"]}),
    )
    .await;
    let vipstore = app.role_token("vipstore").await;
    let (status, body) = app
        .root(
            "SessionUpsert",
            upsert("visitor", json!({"cart": "visitor-cart"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (command, body) in [
        ("SessionGet", json!({"sessionuuid": "visitor"})),
        (
            "SessionUpsert",
            upsert("visitor", json!({"token": jane, "taken": true})),
        ),
    ] {
        let (status, answer) = app.call(command, &vipstore, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
    }
    // A session that has expired (not swept yet) is no session: a role replaces it as a new one.
    let jane_short = upsert("jane-short", json!({"token": jane}));
    let mut short = jane_short.clone();
    short["finaltime"] = json!("1s");
    app.root("SessionUpsert", short).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, body) = app.call("SessionUpsert", &vipstore, None, jane_short).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, visitor) = app
        .root("SessionGet", json!({"sessionuuid": "visitor"}))
        .await;
    assert_eq!(visitor["sessiondata"], json!({"cart": "visitor-cart"}));
    let (_, still) = app.root("SessionGet", get.clone()).await;
    assert_eq!(still["sessiondata"]["n"], 1, "jane's session is untouched");

    // A user's own token reads, lists and ends its own sessions, and writes none.
    let own = app.user_xtoken("login", "jane").await;
    let (status, listed) = app
        .call(
            "SessionListUserSessions",
            &own,
            None,
            json!({"mode": "token", "identity": jane}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(
        listed["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["sessionuuid"] == "s-jane"),
        "{listed}"
    );
    let (status, _) = app
        .call(
            "SessionUpsert",
            &own,
            None,
            upsert("s-jane", json!({"token": jane})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call("SessionGet", &own, None, get.clone()).await;
    assert_eq!(status, StatusCode::OK);

    // Another tenant: the same id is another session there, and jane's is out of reach.
    let (_, acme) = app.create_tenant("acme").await;
    let (status, _) = app
        .call("SessionGet", &acme, Some("acme"), get.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call("SessionDelete", &acme, Some("acme"), get.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.root("SessionGet", get.clone()).await;
    assert_eq!(status, StatusCode::OK);

    // Audited in the user's trail; gone with forget-me.
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "jane", "limit": 100}),
        )
        .await;
    let kinds: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventtype"].as_str())
        .collect();
    assert!(kinds.contains(&"SessionGet"), "{kinds:?}");
    let upserts: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'SessionUpsert' AND user_token = $1::text::uuid",
            &[&jane],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        upserts >= 2,
        "every upsert of jane's sessions is in her trail: {upserts}"
    );
    app.root("UserDelete", json!({"mode": "login", "identity": "jane"}))
        .await;
    let (status, _) = app.root("SessionGet", get).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let rows: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE token = $1::text::uuid",
            &[&jane],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_shared_record_shows_a_partner_only_its_fields_of_its_own_tenant_until_it_dies() {
    let options = TestOptions {
        shared_record_max_seconds: 3,
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(options).await;
    let jane = app
        .create_user(
            json!({"login": "jane", "email": "jane@example.com", "name": "Jane",
                            "address": {"city": "Oslo", "street": "Main 1"}}),
        )
        .await;
    let share = |fields: &str| json!({"mode": "token", "identity": jane, "fields": fields, "partner": "courier-zq"});
    let (status, made) = app
        .root("SharedRecordCreate", share("name,address.city"))
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let record = made["recorduuid"].clone();
    // Public: no token; the record's tenant, whatever tenant the request names.
    app.create_tenant("acme").await;
    for tenant in [None, Some("acme"), Some("no-such-tenant")] {
        let (status, body) = shared_get(&app, &record, tenant).await;
        assert_eq!(status, StatusCode::OK, "{tenant:?}: {body}");
        assert_eq!(
            body["data"],
            json!({"name": "Jane", "address": {"city": "Oslo"}})
        );
    }
    // Unknown uuids (another kind of uuid, a made-up one) and bad input.
    for other in [json!(jane), json!(uuid::Uuid::new_v4().to_string())] {
        let (status, body) = shared_get(&app, &other, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["message"], "The shared record was not found");
    }
    let (status, _) = shared_get(&app, &json!("not-a-uuid"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A list that names no field is refused, not read as "everything" (an admin's too).
    for fields in ["", ",", " , "] {
        let (status, body) = app.root("SharedRecordCreate", share(fields)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}: {body}");
    }
    // Only the uuid's hash is stored.
    let stored: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM shared_records WHERE record_hash = sha256(decode(replace($1, '-', ''), 'hex'))",
            &[&record.as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    // What a role may not see, it may not share.
    app.grant(
        "desk",
        "desk",
        json!({"Effect": "Allow", "Action": ["SharedRecordCreate"], "Resource": ["users.profile.name"]}),
    )
    .await;
    let desk = app.role_token("desk").await;
    let (status, body) = app
        .call("SharedRecordCreate", &desk, None, share("name"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for fields in ["email", "name,email", "address.city"] {
        let (status, body) = app
            .call("SharedRecordCreate", &desk, None, share(fields))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{fields:?}: {body}");
    }
    let (status, _) = app
        .call(
            "SharedRecordCreate",
            &desk,
            None,
            json!({"mode": "token", "identity": jane, "appname": "shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Each read is in the user's trail, by the record, with the partner sealed.
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "jane", "limit": 100}),
        )
        .await;
    let reads = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventtype"] == "SharedRecordGet")
        .count();
    assert_eq!(reads, 3, "{events}");
    // A final time beyond the maximum is cut to it: dead after 3 s.
    let (_, long) = app
        .root(
            "SharedRecordCreate",
            json!({"mode": "login", "identity": "jane", "fields": "name", "finaltime": "30d"}),
        )
        .await;
    let (status, _) = shared_get(&app, &long["recorduuid"], None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let (status, body) = shared_get(&app, &long["recorduuid"], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Forget-me: nothing shared any more.
    app.root("UserDelete", json!({"mode": "login", "identity": "jane"}))
        .await;
    let (status, _) = shared_get(&app, &record, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
