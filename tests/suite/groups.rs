//! Groups, roles and memberships.

use bunker_tests::{StatusCode, TestApp};
use serde_json::json;

#[tokio::test]
async fn groups_are_created_read_renamed_and_deleted_by_id_or_name() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .root(
            "GroupCreate",
            json!({"groupname": "Smith family", "groupdesc": "Parents and kids"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["groupid"].as_i64().unwrap();
    let (status, body) = app
        .root("GroupCreate", json!({"groupname": "Smith family"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], "Duplicate group name");

    let (_, by_id) = app
        .root("GroupGet", json!({"groupid": id.to_string()}))
        .await;
    let (_, by_name) = app
        .root("GroupGet", json!({"groupname": "Smith family"}))
        .await;
    assert_eq!(by_id, by_name);
    assert_eq!(by_id["groupdesc"], "Parents and kids");
    assert_eq!(by_id["grouptype"], "users");

    let (status, _) = app
        .root(
            "GroupUpdate",
            json!({"groupid": id, "groupname": "Smith-Jones family", "grouptype": "family"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.root("GroupGet", json!({"groupname": "Smith family"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.root("GroupListAllGroups", json!({})).await;
    assert_eq!(list["rows"][0]["groupname"], "Smith-Jones family");
    assert_eq!(list["rows"][0]["grouptype"], "family");
    assert_eq!(list["rows"][0]["groupdesc"], "Parents and kids", "kept");

    let (status, _) = app
        .root(
            "GroupCreate",
            json!({"groupname": "x", "grouptype": "t".repeat(31)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .root("GroupDelete", json!({"groupname": "Smith-Jones family"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.root("GroupGet", json!({"groupid": id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "The group record was not found");

    // Names are sealed: the table holds neither the name nor the description in clear.
    app.root(
        "GroupCreate",
        json!({"groupname": "Doe household", "groupdesc": "secret-desc"}),
    )
    .await;
    let dump: String = app
        .superuser()
        .await
        .query_one("SELECT string_agg(encode(sealed, 'escape') || encode(name_index, 'escape'), '') FROM groups", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains("Doe household") && !dump.contains("secret-desc"));
}

#[tokio::test]
async fn roles_are_defined_by_root_and_shared_by_tenants() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    let (status, body) = app
        .root(
            "RoleCreate",
            json!({"rolename": "parent", "roledesc": "a parent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["roleid"].as_i64().unwrap() > 0);
    let (status, body) = app.root("RoleCreate", json!({"rolename": "parent"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], "The role record already exists");
    let (status, _) = app
        .call(
            "RoleCreate",
            &acme,
            Some("acme"),
            json!({"rolename": "owner"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tenant token may not define roles"
    );
    let (status, _) = app
        .root("RoleCreate", json!({"rolename": "bad role!"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .root(
            "RoleUpdate",
            json!({"rolename": "parent", "roledesc": "mother or father"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.root("RoleUpdate", json!({"rolename": "nobody"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // acme uses the shared role in its own group.
    app.call(
        "UserCreate",
        &acme,
        Some("acme"),
        json!({"profile": {"login": "mum"}}),
    )
    .await;
    app.call(
        "GroupCreate",
        &acme,
        Some("acme"),
        json!({"groupname": "family"}),
    )
    .await;
    let (status, body) = app
        .call("GroupAddUser", &acme, Some("acme"), json!({"mode": "login", "identity": "mum", "groupname": "family", "rolename": "parent"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn users_join_and_leave_groups_with_roles() {
    let app = TestApp::spawn().await;
    app.root("RoleCreate", json!({"rolename": "parent"})).await;
    app.root("RoleCreate", json!({"rolename": "child"})).await;
    let (_, family) = app
        .root("GroupCreate", json!({"groupname": "family-1"}))
        .await;
    app.root(
        "GroupCreate",
        json!({"groupname": "class-7b", "grouptype": "class"}),
    )
    .await;

    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "kid"}, "groupname": "family-1", "rolename": "child"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kid = body["token"].as_str().unwrap().to_owned();
    let (status, _) = app
        .root(
            "GroupAddUser",
            json!({"mode": "token", "identity": kid, "groupname": "class-7b"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, groups) = app
        .root(
            "GroupListUserGroups",
            json!({"mode": "login", "identity": "kid"}),
        )
        .await;
    let rows = groups["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["groupid"], family["groupid"]);
    assert_eq!(rows[0]["rolename"], "child");
    assert!(rows[1].get("rolename").is_none(), "no role in the class");

    let (status, _) = app
        .root(
            "GroupAddUser",
            json!({"mode": "login", "identity": "kid", "groupid": family["groupid"], "roleid": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "changing the role");
    let (_, groups) = app
        .root(
            "GroupListUserGroups",
            json!({"mode": "login", "identity": "kid"}),
        )
        .await;
    assert_eq!(groups["rows"][0]["rolename"], "parent");

    for (body, status) in [
        (
            json!({"mode": "login", "identity": "kid", "groupname": "nope"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"mode": "login", "identity": "kid", "groupname": "family-1", "rolename": "nope"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"mode": "login", "identity": "ghost", "groupname": "family-1"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"mode": "login", "identity": "kid"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(
            app.root("GroupAddUser", body.clone()).await.0,
            status,
            "{body}"
        );
    }
    let (status, _) = app
        .root(
            "GroupDeleteUser",
            json!({"mode": "login", "identity": "kid", "groupname": "class-7b"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .root(
            "GroupDeleteUser",
            json!({"mode": "login", "identity": "kid", "groupname": "class-7b"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not in the group any more");

    let (status, _) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "orphan"}, "groupname": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.root("UserGet", json!({"mode": "login", "identity": "orphan"}))
            .await
            .0,
        StatusCode::NOT_FOUND,
        "all or nothing"
    );

    app.root("UserDelete", json!({"mode": "login", "identity": "kid"}))
        .await;
    let left: i64 = app
        .superuser()
        .await
        .query_one("SELECT count(*) FROM group_members", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "forget-me removes memberships");
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_groups() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    let (_, made) = app
        .root("GroupCreate", json!({"groupname": "default-only"}))
        .await;
    let (_, list) = app
        .call("GroupListAllGroups", &acme, Some("acme"), json!({}))
        .await;
    assert_eq!(list["rows"], json!([]));
    for body in [
        json!({"groupid": made["groupid"]}),
        json!({"groupname": "default-only"}),
    ] {
        let (status, _) = app
            .call("GroupGet", &acme, Some("acme"), body.clone())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = app.call("GroupDelete", &acme, Some("acme"), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn policies_are_validated_stored_and_linked_to_roles_by_root_only() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    app.root("RoleCreate", json!({"rolename": "parent"})).await;
    let parent_policy = json!({
        "Effect": "Allow", "Principal": {"Role": "parent"},
        "Action": ["UserGet", "UserUpdate", "BulkListGroupUsers"],
        "Resource": ["${target_group_members:role/child}.profile", "${target_group_members:role/child}.consent"],
        "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}
    });
    let (status, body) = app
        .root("PolicyCreate", json!({"policyname": "parents-read-children", "policydesc": "family", "policy": parent_policy}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["policyid"].as_i64().unwrap();
    let (status, body) = app
        .root(
            "PolicyCreate",
            json!({"policyname": "parents-read-children", "policy": parent_policy}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .root(
            "PolicyCreate",
            json!({"policyname": "bad", "policy": {"Action": ["UserSteal"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Invalid policy: Action[0] names no command (command names, with * for any run of characters)"
    );
    // A Deny that names no resource would deny nothing: refused, as are shapes serde would read by
    // position (a Principal as an array) or by variant (an Effect as an object).
    for (policy, message) in [
        (
            json!({"Effect": "Deny", "Action": ["UserGet"]}),
            "Invalid policy: Resource must name at least one resource (* for every one)",
        ),
        (
            json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": []}),
            "Invalid policy: Resource must name at least one resource (* for every one)",
        ),
        (
            json!({"Action": ["UserGet"], "Resource": ["*"], "Principal": ["parent"]}),
            "Invalid policy: Principal must be an object with a Role",
        ),
        (
            json!({"Action": ["UserGet"], "Resource": ["*"], "Effect": {"Deny": null}}),
            "Invalid policy: Effect must be Allow or Deny",
        ),
    ] {
        let (status, body) = app
            .root(
                "PolicyCreate",
                json!({"policyname": "bad", "policy": policy}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["message"], message);
    }
    let (status, _) = app
        .call(
            "PolicyCreate",
            &acme,
            Some("acme"),
            json!({"policyname": "x", "policy": parent_policy}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tenant token may not write policies"
    );

    let (_, got) = app
        .root("PolicyGet", json!({"policyname": "parents-read-children"}))
        .await;
    assert_eq!(got["policy"], parent_policy, "the document round-trips");
    assert_eq!(got["policyid"], id);
    let (status, _) = app
        .root(
            "PolicyUpdate",
            json!({"policyid": id, "policy": {"Action": ["UserGet"], "Resource": ["nonsense"]}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an invalid update changes nothing"
    );
    let (_, still) = app.root("PolicyGet", json!({"policyid": id})).await;
    assert_eq!(still["policy"], parent_policy);
    let (status, _) = app
        .root(
            "PolicyUpdate",
            json!({"policyname": "parents-read-children", "policydesc": "families"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.root("PolicyListAllPolicies", json!({})).await;
    assert_eq!(
        list["rows"],
        json!([{"policyid": id, "policyname": "parents-read-children", "policydesc": "families"}])
    );

    let (status, _) = app
        .root(
            "RoleLinkPolicy",
            json!({"rolename": "parent", "policyname": "parents-read-children"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .root(
            "RoleLinkPolicy",
            json!({"rolename": "ghost", "policyid": id}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let linked: i64 = app
        .superuser()
        .await
        .query_one("SELECT count(*) FROM role_policies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(linked, 1);
}
