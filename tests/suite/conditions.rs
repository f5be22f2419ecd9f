//! Conditions over the wire: a Deny never falls away because a key is missing, and the bulk unlock
//! goes through the same Deny and conditions as every other command.

use bunker_tests::{StatusCode, TestApp};
use serde_json::json;

#[tokio::test]
async fn a_negated_deny_applies_when_request_metadata_is_missing() {
    let app = TestApp::spawn().await;
    let jane = app.create_user(json!({"login": "jane"})).await;
    app.grant(
        "support",
        "support-reads",
        json!({"Action": ["UserGet"], "Resource": ["users.profile"]}),
    )
    .await;
    app.grant(
        "support",
        "only-for-tickets",
        json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["*"],
               "Condition": {"StringNotEquals": {"${request_metadata:purpose}": "support-ticket"}}}),
    )
    .await;
    let support = app.role_token("support").await;
    let read = |metadata: serde_json::Value| {
        let mut body = json!({"mode": "token", "identity": jane});
        if !metadata.is_null() {
            body["request_metadata"] = metadata;
        }
        let (app, support) = (&app, &support);
        async move { app.call("UserGet", support, None, body).await.0 }
    };
    assert_eq!(
        read(json!(null)).await,
        StatusCode::FORBIDDEN,
        "no request_metadata"
    );
    assert_eq!(read(json!({})).await, StatusCode::FORBIDDEN, "no purpose");
    assert_eq!(read(json!({"purpose": null})).await, StatusCode::FORBIDDEN);
    assert_eq!(
        read(json!({"purpose": "marketing"})).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        read(json!({"purpose": ["support-ticket", "marketing"]})).await,
        StatusCode::FORBIDDEN,
        "a list is not one purpose"
    );
    assert_eq!(
        read(json!({"purpose": {"is": "support-ticket"}})).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        read(json!({"purpose": "support-ticket"})).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_denied_bulk_unlock_is_refused_even_beside_an_allow() {
    let app = TestApp::spawn().await;
    app.grant(
        "clerk",
        "lists-groups",
        json!({"Action": ["BulkListGroupUsers", "BulkListUnlock"], "Resource": ["users.profile"],
               "Condition": {"StringEquals": {"${request_metadata:purpose}": "audit"}}}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let unlock = |metadata: serde_json::Value| {
        let (app, clerk) = (&app, &clerk);
        async move {
            app.call(
                "BulkListUnlock",
                clerk,
                None,
                json!({"request_metadata": metadata}),
            )
            .await
            .0
        }
    };
    assert_eq!(unlock(json!({"purpose": "audit"})).await, StatusCode::OK);
    assert_eq!(
        unlock(json!({"purpose": "curiosity"})).await,
        StatusCode::FORBIDDEN,
        "the Allow's condition does not hold"
    );
    app.grant(
        "clerk",
        "no-unlocks",
        json!({"Effect": "Deny", "Action": ["BulkListUnlock"], "Resource": ["*"]}),
    )
    .await;
    assert_eq!(
        unlock(json!({"purpose": "audit"})).await,
        StatusCode::FORBIDDEN,
        "Deny wins"
    );
}
