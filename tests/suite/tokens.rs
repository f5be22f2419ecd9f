//! The tokenization engine over the API.

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A Luhn-valid card number of `len` digits starting with `first`, from `seed`.
fn card(first: u8, len: usize, seed: u64) -> String {
    let mut digits: Vec<u8> = vec![first];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while digits.len() < len - 1 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        digits.push(((x >> 33) % 10) as u8);
    }
    let base: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    (0..10u8)
        .map(|c| format!("{base}{c}"))
        .find(|candidate| luhn_valid(candidate))
        .unwrap()
}

#[tokio::test]
async fn ten_thousand_card_tokens_keep_length_and_luhn_and_never_equal_their_input() {
    let app = TestApp::spawn().await;
    let cards: Vec<String> = (0..10_000)
        .map(|i| card(4 + (i % 2) as u8, 12 + (i % 8) as usize, i))
        .collect();
    let records: Vec<Value> = cards
        .iter()
        .map(|c| json!({"tokentype": "creditcard", "record": c}))
        .collect();
    let (status, body) = app
        .root("TokenCreateBulk", json!({"records": records}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );
    assert_eq!(body["summary"]["created"], 10_000);
    let created = body["created"].as_array().unwrap();
    for (row, input) in created.iter().zip(&cards) {
        let token = row["tokenbase"].as_str().unwrap();
        assert_eq!(
            row["record"],
            input.as_str(),
            "rows come back in order with their record"
        );
        assert_eq!(token.len(), input.len());
        assert_eq!(token.as_bytes()[0], input.as_bytes()[0]);
        assert!(luhn_valid(token), "{token}");
        assert_ne!(token, input);
    }
    let records: Vec<Value> = cards[..2_000]
        .iter()
        .map(|c| json!({"tokentype": "creditcard", "record": c, "luhninvalid": true, "keeplast4": true}))
        .collect();
    let (status, body) = app
        .root("TokenCreateBulk", json!({"records": records}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for (row, input) in body["created"].as_array().unwrap().iter().zip(&cards) {
        let token = row["tokenbase"].as_str().unwrap();
        assert!(!luhn_valid(token), "{token} is Luhn-invalid on request");
        assert_eq!(
            &token[token.len() - 4..],
            &input[input.len() - 4..],
            "last four kept"
        );
        assert_eq!(token.len(), input.len());
    }
}

#[tokio::test]
async fn tokens_resolve_by_either_handle_until_deleted() {
    let app = TestApp::spawn().await;
    for (tokentype, record) in [
        ("creditcard", "4111-1111-1111-1111"),
        ("email", "jane.doe@example.com"),
        ("uint32", "4294967295"),
        ("uint64", "18446744073709551615"),
        ("unixtime", "1700000000"),
        ("text", "passport P-123456"),
    ] {
        let (status, made) = app
            .root(
                "TokenCreate",
                json!({"tokentype": tokentype, "record": record}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tokentype}: {made}");
        let (base, uuid) = (
            made["tokenbase"].as_str().unwrap(),
            made["tokenuuid"].as_str().unwrap(),
        );
        if tokentype == "text" {
            assert_eq!(base, uuid, "text tokens are UUIDs");
        } else {
            assert_ne!(base, record);
        }
        for handle in [base, uuid] {
            let (status, got) = app.root("TokenGet", json!({"token": handle})).await;
            assert_eq!(status, StatusCode::OK, "{tokentype} by {handle}");
            let canonical = if tokentype == "creditcard" {
                "4111111111111111"
            } else {
                record
            };
            assert_eq!(got["record"], canonical);
            assert_eq!(got["tokentype"], tokentype);
        }
        let (status, _) = app.root("TokenDelete", json!({"token": base})).await;
        assert_eq!(status, StatusCode::OK);
        for handle in [base, uuid] {
            let (status, body) = app.root("TokenGet", json!({"token": handle})).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(body["message"], "Token not found");
        }
    }
}

#[tokio::test]
async fn concurrent_unique_creation_of_one_value_yields_one_token() {
    let app = TestApp::spawn_with(TestOptions {
        pool_size: 8,
        ..TestOptions::default()
    })
    .await;
    let requests = (0..8).map(|_| {
        app.root(
            "TokenCreate",
            json!({"tokentype": "creditcard", "record": "5555555555554444", "unique": true}),
        )
    });
    let mut uuids = Vec::new();
    for (status, body) in futures_all(requests).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        uuids.push(body["tokenuuid"].as_str().unwrap().to_owned());
    }
    uuids.dedup();
    assert_eq!(uuids.len(), 1, "one token for one value");
    let (_, again) = app
        .root(
            "TokenCreateBulk",
            json!({"unique": true, "records": [
                {"tokentype": "creditcard", "record": "5555 5555 5555 4444"},
                {"tokentype": "creditcard", "record": "4012888888881881"},
                {"tokentype": "creditcard", "record": "4012-8888-8888-1881"}
            ]}),
        )
        .await;
    let created = again["created"].as_array().unwrap();
    assert_eq!(
        created[0]["tokenuuid"],
        uuids[0].as_str(),
        "the same value, written differently"
    );
    assert_eq!(
        created[1]["tokenuuid"], created[2]["tokenuuid"],
        "repeated within a batch"
    );
    let (_, plain) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "creditcard", "record": "5555555555554444"}),
        )
        .await;
    assert_ne!(
        plain["tokenuuid"],
        uuids[0].as_str(),
        "without unique, a new token"
    );
}

async fn futures_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    let joined = std::pin::pin!(async {
        let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
        let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (fut, slot) in pinned.iter_mut().zip(results.iter_mut()) {
                if slot.is_none() {
                    match fut.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *slot = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        results
    });
    out.extend(joined.await.into_iter().flatten());
    out
}

#[tokio::test]
async fn another_tenant_cannot_read_a_token_by_either_handle() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    let (_, made) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "email", "record": "ceo@example.com"}),
        )
        .await;
    for handle in [&made["tokenbase"], &made["tokenuuid"]] {
        let (status, _) = app
            .call("TokenGet", &acme, Some("acme"), json!({"token": handle}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app
            .call("TokenDelete", &acme, Some("acme"), json!({"token": handle}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app
        .root("TokenGet", json!({"token": made["tokenuuid"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "still there for its own tenant");
}

#[tokio::test]
async fn sliding_and_final_expiry_behave_and_the_sweeper_purges() {
    let app = TestApp::spawn_with(TestOptions {
        sweep_interval: Duration::from_millis(300),
        ..TestOptions::default()
    })
    .await;
    let (_, sliding) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "uint32", "record": "42", "slidingtime": "2s"}),
        )
        .await;
    let (_, fixed) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "uint32", "record": "43", "finaltime": "2s"}),
        )
        .await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        let (status, _) = app
            .root("TokenGet", json!({"token": sliding["tokenuuid"]}))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "each read renews the sliding window"
        );
    }
    let (status, _) = app
        .root("TokenGet", json!({"token": fixed["tokenuuid"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "finaltime is a hard cutoff");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (status, _) = app
        .root("TokenGet", json!({"token": sliding["tokenuuid"]}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "unread for longer than the window"
    );
    let db = app.superuser().await;
    let left: i64 = db
        .query_one("SELECT count(*) FROM tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the sweeper purged both");
    let purged: i64 = db
        .query_one("SELECT count(*) FROM audit_events WHERE action = 'TokenExpired' AND actor_kind = 'system'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(purged, 2);
}

#[tokio::test]
async fn every_invalid_input_gets_a_400_that_names_the_rule() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"tokentype": "card", "record": "4111111111111111"}),
            "tokentype must be one of",
        ),
        (
            json!({"tokentype": "creditcard", "record": "4111111111111112"}),
            "Luhn",
        ),
        (
            json!({"tokentype": "creditcard", "record": "41111"}),
            "12 to 19 digits",
        ),
        (
            json!({"tokentype": "creditcard", "record": "4111 1111 1111 111a"}),
            "only digits",
        ),
        (
            json!({"tokentype": "email", "record": "not-an-email"}),
            "name@domain",
        ),
        (
            json!({"tokentype": "uint32", "record": "4294967296"}),
            "uint32",
        ),
        (json!({"tokentype": "uint64", "record": "-7"}), "uint64"),
        (
            json!({"tokentype": "unixtime", "record": "99999999999"}),
            "unixtime",
        ),
        (
            json!({"tokentype": "text", "record": ""}),
            "text must not be empty",
        ),
        (
            json!({"tokentype": "uint32", "record": "1", "finaltime": "later"}),
            "finaltime",
        ),
        (
            json!({"record": "1"}),
            "Missing API request parameters: tokentype",
        ),
    ];
    for (body, rule) in cases {
        let (status, answer) = app.root("TokenCreate", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(rule), "{message}");
        if let Some(record) = body["record"].as_str().filter(|r| r.len() > 4) {
            assert!(!message.contains(record), "{message} echoes the value");
        }
    }
    let (status, answer) = app
        .root("TokenCreateBulk", json!({"records": [{"tokentype": "uint32", "record": "1"}, {"tokentype": "uint32", "record": "x"}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("records[1]:"),
        "{answer}"
    );
    let db = app.superuser().await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "nothing was stored");
}

#[tokio::test]
async fn token_operations_are_audited_without_the_value() {
    let app = TestApp::spawn().await;
    let (_, made) = app
        .root("TokenCreate", json!({"tokentype": "email", "record": "audited.value@example.com", "request_metadata": {"ticket": "T-9"}}))
        .await;
    let uuid = made["tokenuuid"].as_str().unwrap();
    app.root("TokenGet", json!({"token": uuid})).await;
    app.root("TokenDelete", json!({"token": uuid})).await;
    let db = app.superuser().await;
    let rows = db
        .query(
            "SELECT id, action FROM audit_events WHERE target = $1 ORDER BY occurred_at",
            &[&format!("token:{uuid}")],
        )
        .await
        .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(actions, ["TokenCreate", "TokenGet", "TokenDelete"]);
    let id: uuid::Uuid = rows[0].get(0);
    let (status, event) = app
        .root("AuditGetEvent", json!({"auditeventuuid": id.to_string()}))
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["details"]["tokentype"], "email");
    assert_eq!(event["details"]["request_metadata"]["ticket"], "T-9");
    assert!(!event.to_string().contains("audited.value"));
}

#[tokio::test]
async fn short_email_addresses_get_a_token_space_of_their_own() {
    let app = TestApp::spawn().await;
    // One-letter local parts shared a space of 36 tokens; now at least 16 random characters.
    let records: Vec<Value> = (0..200)
        .map(|_| json!({"tokentype": "email", "record": "a@example.com"}))
        .collect();
    let (status, body) = app
        .root("TokenCreateBulk", json!({"records": records}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut tokens: Vec<&str> = body["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["tokenbase"].as_str().unwrap())
        .collect();
    assert!(tokens
        .iter()
        .all(|t| t.ends_with("@example.com") && t.len() >= 16 + "@example.com".len()));
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 200);
}

#[tokio::test]
async fn a_used_up_token_space_is_its_own_409() {
    let app = TestApp::spawn().await;
    // A 12-digit card keeping its first digit and last four has 10^6 tokens (six random digits,
    // the seventh settles the Luhn sum). Take every one of them in the default tenant.
    let su = app.superuser().await;
    su.batch_execute(
        "CREATE FUNCTION pg_temp.luhn_double(d int) RETURNS int LANGUAGE sql
             AS $$ SELECT CASE WHEN d * 2 > 9 THEN d * 2 - 9 ELSE d * 2 END $$;
         INSERT INTO token_handles (tenant_id, token_base, token_uuid)
         SELECT 1, '4' || r || ((10 - s % 10) % 10)::text || '1117', gen_random_uuid()
           FROM (SELECT lpad(n::text, 6, '0') AS r FROM generate_series(0, 999999) n) g,
                LATERAL (SELECT pg_temp.luhn_double(4)
                              + substr(r, 1, 1)::int + pg_temp.luhn_double(substr(r, 2, 1)::int)
                              + substr(r, 3, 1)::int + pg_temp.luhn_double(substr(r, 4, 1)::int)
                              + substr(r, 5, 1)::int + pg_temp.luhn_double(substr(r, 6, 1)::int)
                              + pg_temp.luhn_double(1) + 1 + pg_temp.luhn_double(1) + 7 AS s) sum",
    )
    .await
    .unwrap();
    let (status, body) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "creditcard", "record": "411111111117", "keeplast4": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["message"],
        "No unused token of this shape could be drawn: its space is used up; use a wider type"
    );
    let (status, _) = app
        .root(
            "TokenCreate",
            json!({"tokentype": "creditcard", "record": "411111111117"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "without keeplast4 the space is wider"
    );
}
