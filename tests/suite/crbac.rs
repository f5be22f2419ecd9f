//! The authorization review's acceptance scenario: the CRBAC examples of the seeds (parents and
//! children, a teacher and parents) and an attacker, run through every command that takes a user
//! or a group. Nothing outside a policy may be revealed or changed, and no refusal may tell whether
//! its target exists.
//!
//! The sweeping tests collect every unmet expectation and fail once, listing them all, so that one
//! run shows every hole rather than the first.

use std::collections::BTreeMap;

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

const DENIED: &str = "API access denied";
const UNLOCK_REFUSED: &str = "The unlockuuid value was not found or is not valid";

/// Every command that takes a user or a group: the attacker's policy allows them all, on her own
/// nickname only.
const ATTACKER_COMMANDS: [&str; 22] = [
    "UserGet",
    "UserUpdate",
    "UserPatch",
    "UserDelete",
    "UserDeleteBulk",
    "UserListVersions",
    "UserSearch",
    "UserCreate",
    "UserCreateBulk",
    "GroupAddUser",
    "GroupDeleteUser",
    "GroupListUserGroups",
    "GroupGet",
    "GroupUpdate",
    "GroupDelete",
    "BulkListUnlock",
    "BulkListUsers",
    "BulkListAllUsers",
    "BulkListGroupUsers",
    "AuditListUserEvents",
    "AuditGetEvent",
    "XTokenCreateForUser",
];

/// Commands that list users: they may answer rows, as long as the rows show nothing of others.
const LISTINGS: [&str; 5] = [
    "BulkListUnlock",
    "BulkListUsers",
    "BulkListAllUsers",
    "BulkListGroupUsers",
    "UserSearch",
];

/// Commands that may refuse record by record (each listed in `errors`) rather than as a whole.
const BULK_WRITES: [&str; 2] = ["UserCreateBulk", "UserDeleteBulk"];

const GROUPS: [&str; 4] = ["family-1", "family-2", "class-3b", "victims"];

/// A user of the school and what root knows of them.
struct Person {
    login: &'static str,
    token: String,
    profile: Value,
    /// The group a sweep asks to remove the user from (family-1 for a user in none).
    group: &'static str,
    /// One of the user's audit events (what AuditGetEvent is aimed at).
    event: String,
}

/// Two families, a class and the attacker's group, with their members, over a running server.
struct School {
    app: TestApp,
    people: Vec<Person>,
    groups: BTreeMap<&'static str, i64>,
}

async fn role(app: &TestApp, name: &str) {
    let (status, body) = app.root("RoleCreate", json!({"rolename": name})).await;
    assert_eq!(status, StatusCode::OK, "RoleCreate {name}: {body}");
}

async fn group(app: &TestApp, name: &str) -> i64 {
    let (status, body) = app.root("GroupCreate", json!({"groupname": name})).await;
    assert_eq!(status, StatusCode::OK, "GroupCreate {name}: {body}");
    body["groupid"].as_i64().unwrap()
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

/// Builds the school as root: the seeds' parent and teacher policies (widened as the review asks),
/// the attacker's policy, and seven users.
async fn school() -> School {
    // An hour-long unlock, so that a sweep of hundreds of requests needs only one per caller.
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        unlock_seconds: 3600,
        ..TestOptions::default()
    })
    .await;
    for name in ["parent", "child", "teacher", "student", "attacker"] {
        role(&app, name).await;
    }
    app.grant(
        "parent",
        "parents-manage-children",
        json!({
            "Effect": "Allow", "Principal": {"Role": "parent"},
            "Action": ["UserGet", "UserUpdate", "UserPatch", "BulkListGroupUsers", "BulkListUnlock",
                       "GroupListUserGroups", "AuditListUserEvents", "UserListVersions"],
            "Resource": ["${target_group_members:role/child}.profile", "${target_group_members:role/child}.group"],
            "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}
        }),
    )
    .await;
    app.grant(
        "teacher",
        "teachers-read-parents",
        json!({
            "Effect": "Allow", "Principal": {"Role": "teacher"},
            "Action": ["UserGet", "BulkListGroupUsers", "UserSearch", "BulkListUnlock"],
            "Resource": ["${target_group_members:role/parent}.profile.name", "${target_group_members:role/parent}.profile.phone"],
            "Condition": {"ListIntersect": {"${principal_group_members:role/student}": "${target_group_members:role/child}"}}
        }),
    )
    .await;
    app.grant(
        "attacker",
        "attacker-own-nickname",
        json!({
            "Effect": "Allow", "Principal": {"Role": "attacker"},
            "Action": ATTACKER_COMMANDS,
            "Resource": ["${target_user}.profile.nickname"]
        }),
    )
    .await;
    app.grant(
        "attacker",
        "attacker-never-deletes",
        json!({
            "Effect": "Deny", "Principal": {"Role": "attacker"},
            "Action": ["UserDelete", "UserDeleteBulk"], "Resource": ["*"]
        }),
    )
    .await;
    let mut groups = BTreeMap::new();
    for name in GROUPS {
        groups.insert(name, group(&app, name).await);
    }
    let members = [
        (
            "alice",
            json!({"login": "alice", "name": "Alice", "phone": "+447911123456",
                   "email": "alice@example.com", "ssn": "AAA-11", "medical": "asthma", "age": 41}),
            Some(("family-1", "parent")),
        ),
        (
            "kim",
            json!({"login": "kim", "name": "Kim", "email": "kim@example.com", "grade": 3, "medical": "peanuts"}),
            Some(("family-1", "child")),
        ),
        (
            "bob",
            json!({"login": "bob", "name": "Bob", "phone": "+447911123457", "email": "bob@example.com"}),
            Some(("family-2", "parent")),
        ),
        (
            "sam",
            json!({"login": "sam", "name": "Sam", "email": "sam@example.com", "medical": "diabetes"}),
            Some(("family-2", "child")),
        ),
        (
            "lee",
            json!({"login": "lee", "name": "Mr Lee", "phone": "+447911123458", "email": "lee@example.com"}),
            Some(("class-3b", "teacher")),
        ),
        (
            "mallory",
            json!({"login": "mallory", "nickname": "m"}),
            Some(("victims", "attacker")),
        ),
        (
            "zed",
            json!({"login": "zed", "email": "zed@example.com", "ssn": "ZZZ-99"}),
            None,
        ),
    ];
    let mut people = Vec::new();
    for (login, profile, membership) in members {
        let token = match membership {
            Some((group, role)) => member(&app, profile.clone(), group, role).await,
            None => app.create_user(profile.clone()).await,
        };
        let (_, events) = app
            .root(
                "AuditListUserEvents",
                json!({"mode": "token", "identity": token}),
            )
            .await;
        let event = events["rows"][0]["auditeventuuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let group = membership.map_or("family-1", |(group, _)| group);
        people.push(Person {
            login,
            token,
            profile,
            group,
            event,
        });
    }
    let school = School {
        app,
        people,
        groups,
    };
    let (status, body) = school
        .app
        .root(
            "GroupAddUser",
            json!({"mode": "token", "identity": school.token("kim"), "groupname": "class-3b", "rolename": "student"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    school
}

/// An answer as sent: the exact text, so that two refusals can be compared byte for byte.
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn body(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn refused_with(&self, message: &str) -> bool {
        self.status == StatusCode::FORBIDDEN && self.body()["message"] == message
    }

    fn denied(&self) -> bool {
        self.refused_with(DENIED)
    }

    /// For a finding: the status and the start of the text.
    fn show(&self) -> String {
        let text: String = self.text.chars().take(400).collect();
        format!("{} {text}", self.status.as_u16())
    }
}

impl School {
    fn person(&self, login: &str) -> &Person {
        self.people
            .iter()
            .find(|p| p.login == login)
            .unwrap_or_else(|| panic!("no user {login}"))
    }

    fn token(&self, login: &str) -> &str {
        &self.person(login).token
    }

    async fn send(&self, command: &str, token: &str, body: &Value) -> Answer {
        let response = self
            .app
            .command(command)
            .header("X-Bunker-Token", token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        Answer {
            status: response.status(),
            text: response.text().await.expect("body read"),
        }
    }

    async fn root_read(&self, command: &str, token: &str) -> Value {
        self.app
            .root(command, json!({"mode": "token", "identity": token}))
            .await
            .1
    }

    async fn user_token(&self, login: &str) -> String {
        let (status, body) = self
            .app
            .root(
                "XTokenCreateForUser",
                json!({"mode": "login", "identity": login, "finaltime": "1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["xtoken"].as_str().unwrap().to_owned()
    }

    async fn role_token(&self, role: &str) -> String {
        let (status, body) = self
            .app
            .root(
                "XTokenCreateForRole",
                json!({"rolename": role, "finaltime": "1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["xtoken"].as_str().unwrap().to_owned()
    }

    /// An unlock for `token`; a made-up one when it is refused, so that the bulk commands refuse too.
    async fn unlock(&self, token: &str) -> String {
        let answer = self.send("BulkListUnlock", token, &json!({})).await;
        match answer.body()["unlockuuid"].as_str() {
            Some(unlock) => unlock.to_owned(),
            None => "00000000-0000-4000-8000-000000000000".to_owned(),
        }
    }

    /// What a caller must not learn of these users and groups: each string of their profiles (short
    /// ones as JSON strings, so that `"zed"` is not found in "authorized"), their phones by digits,
    /// their tokens, and the groups' names.
    fn secrets(&self, people: &[&str], groups: &[&str]) -> Vec<String> {
        let mut secrets: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        for login in people {
            let person = self.person(login);
            secrets.push(person.token.clone());
            for (field, value) in person.profile.as_object().unwrap() {
                let Some(text) = value.as_str() else { continue };
                secrets.push(match field.as_str() {
                    "phone" => text.chars().filter(char::is_ascii_digit).collect(),
                    _ if text.chars().count() < 6 => value.to_string(),
                    _ => text.to_owned(),
                });
            }
        }
        secrets
    }

    /// Who a sweep acts as.
    async fn caller(
        &self,
        name: &'static str,
        token: String,
        own_user: &str,
        own_group: &'static str,
        secrets: Vec<String>,
    ) -> Caller {
        Caller {
            name,
            unlock: self.unlock(&token).await,
            token,
            own_user: self.token(own_user).to_owned(),
            own_group,
            secrets,
        }
    }
}

/// A role or user token a sweep acts as, with what it must not learn.
struct Caller {
    name: &'static str,
    token: String,
    unlock: String,
    /// The user it tries to put into groups (its own; the attacker's, for the role token).
    own_user: String,
    /// The group it tries to pull others into.
    own_group: &'static str,
    secrets: Vec<String>,
}

/// Every unmet expectation of a test, reported together at its end.
#[derive(Default)]
struct Findings {
    failed: Vec<String>,
    checked: usize,
}

impl Findings {
    fn check(&mut self, holds: bool, failure: impl FnOnce() -> String) {
        self.checked += 1;
        if !holds {
            self.failed.push(failure());
        }
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} expectations failed:\n{}",
            self.failed.len(),
            self.checked,
            self.failed.join("\n")
        );
    }
}

/// One request of a sweep.
struct Probe {
    command: &'static str,
    body: Value,
}

fn probe(command: &'static str, body: Value) -> Probe {
    Probe { command, body }
}

/// `base` with the fields of `extra` added.
fn with(base: &Value, extra: Value) -> Value {
    let mut joined = base.clone();
    if let (Some(fields), Value::Object(extra)) = (joined.as_object_mut(), extra) {
        fields.extend(extra);
    }
    joined
}

/// A user a sweep aims at, named each way a command can name a user.
struct Target {
    label: String,
    token: String,
    email: String,
    login: String,
    group: &'static str,
    event: String,
}

impl Target {
    fn of(person: &Person) -> Target {
        Target {
            label: person.login.to_owned(),
            token: person.token.clone(),
            email: person.profile["email"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            login: person.login.to_owned(),
            group: person.group,
            event: person.event.clone(),
        }
    }

    /// A user that does not exist.
    fn nobody() -> Target {
        Target {
            label: "a missing user".to_owned(),
            token: "5e1f1d2c-9a8b-4c7d-8e6f-0a1b2c3d4e5f".to_owned(),
            email: "nobody@example.com".to_owned(),
            login: "nobody".to_owned(),
            group: "family-1",
            event: "7c9e6679-7425-40de-944b-e07fc1f90ae7".to_owned(),
        }
    }

    fn identity(&self, mode: &str) -> &str {
        match mode {
            "token" => &self.token,
            "email" => &self.email,
            _ => &self.login,
        }
    }
}

/// Every command that takes a user, aimed at `target` named by `mode`.
fn user_probes(target: &Target, mode: &str, caller: &Caller) -> Vec<Probe> {
    let who = json!({"mode": mode, "identity": target.identity(mode)});
    let mut probes = vec![
        probe("UserGet", who.clone()),
        probe(
            "UserUpdate",
            with(&who, json!({"profile": {"nickname": "pwned"}})),
        ),
        probe(
            "UserPatch",
            with(
                &who,
                json!({"patch": [{"op": "add", "path": "/nickname", "value": "pwned"}]}),
            ),
        ),
        probe("UserDelete", who.clone()),
        probe("UserDeleteBulk", json!({"users": [who]})),
        probe("UserListVersions", who.clone()),
        probe("GroupListUserGroups", who.clone()),
        probe("AuditListUserEvents", who.clone()),
        probe("XTokenCreateForUser", who.clone()),
        // Pulling the target into the caller's own group as a child would make it readable.
        probe(
            "GroupAddUser",
            with(
                &who,
                json!({"groupname": caller.own_group, "rolename": "child"}),
            ),
        ),
        probe(
            "GroupDeleteUser",
            with(&who, json!({"groupname": target.group})),
        ),
    ];
    if mode == "token" {
        probes.push(probe(
            "AuditGetEvent",
            json!({"auditeventuuid": target.event}),
        ));
    } else {
        // BulkListUsers takes no token; UserSearch takes a bare term.
        probes.push(probe(
            "BulkListUsers",
            json!({"unlockuuid": caller.unlock, "users": [who]}),
        ));
        probes.push(probe(
            "UserSearch",
            json!({"unlockuuid": caller.unlock, "identity": target.identity(mode)}),
        ));
    }
    probes
}

/// Every command that takes a group, aimed at `group` (by name and by id); `member` is a user the
/// caller tries to remove from it.
fn group_probes(group: &str, id: i64, member: &str, caller: &Caller) -> Vec<Probe> {
    let me = json!({"mode": "token", "identity": caller.own_user, "groupname": group});
    let intruder = format!("intruder-{group}");
    vec![
        probe("GroupGet", json!({"groupname": group})),
        probe("GroupGet", json!({"groupid": id})),
        probe("GroupUpdate", json!({"groupid": id, "groupdesc": "pwned"})),
        probe("GroupUpdate", json!({"groupid": id, "groupname": "pwned"})),
        probe("GroupDelete", json!({"groupname": group})),
        probe("GroupDelete", json!({"groupid": id})),
        probe(
            "BulkListGroupUsers",
            json!({"unlockuuid": caller.unlock, "groupname": group}),
        ),
        probe(
            "BulkListGroupUsers",
            json!({"unlockuuid": caller.unlock, "groupid": id}),
        ),
        probe("GroupAddUser", with(&me, json!({"rolename": "parent"}))),
        probe("GroupAddUser", with(&me, json!({"rolename": "child"}))),
        probe("GroupAddUser", me.clone()),
        probe(
            "GroupDeleteUser",
            json!({"mode": "token", "identity": member, "groupname": group}),
        ),
        probe(
            "UserCreate",
            json!({"profile": {"login": intruder}, "groupname": group, "rolename": "parent"}),
        ),
        probe(
            "UserCreateBulk",
            json!({"records": [{"profile": {"login": format!("{intruder}-bulk")}, "groupname": group, "rolename": "parent"}]}),
        ),
    ]
}

/// The commands that name neither a user nor a group, and searches for the secrets' beginnings.
fn tenant_probes(caller: &Caller) -> Vec<Probe> {
    let mut probes = vec![
        probe("BulkListUnlock", json!({})),
        probe(
            "BulkListAllUsers",
            json!({"unlockuuid": caller.unlock, "limit": 100}),
        ),
        probe("UserCreate", json!({"profile": {"login": "intruder"}})),
        probe(
            "UserCreateBulk",
            json!({"records": [{"profile": {"login": "intruder-bulk"}}]}),
        ),
    ];
    for term in ["ali", "AAA", "+447911", "example.com", "@example.com"] {
        probes.push(probe(
            "UserSearch",
            json!({"unlockuuid": caller.unlock, "identity": term}),
        ));
    }
    probes
}

/// Whether a bulk write refused every record one by one and did nothing.
fn refused_record_by_record(answer: &Answer) -> bool {
    let body = answer.body();
    let nothing_done = body["created"] == json!([]) || body["deleted_count"] == 0;
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    answer.status == StatusCode::OK
        && nothing_done
        && !errors.is_empty()
        && errors.iter().all(|e| e["reason"] == DENIED)
}

/// Sends `probe` as `caller` and checks the answer: a refusal (or, for a listing, rows; for a bulk
/// write, every record refused), with none of the caller's secrets that the request did not carry.
async fn judge(
    school: &School,
    caller: &Caller,
    target: &str,
    probe: &Probe,
    findings: &mut Findings,
) -> Answer {
    let answer = school.send(probe.command, &caller.token, &probe.body).await;
    let command = probe.command;
    let acceptable = answer.denied()
        || (LISTINGS.contains(&command)
            && (answer.status == StatusCode::OK || answer.refused_with(UNLOCK_REFUSED)))
        || (BULK_WRITES.contains(&command) && refused_record_by_record(&answer));
    findings.check(acceptable, || {
        format!(
            "{} {command} on {target} {}: expected 403 {DENIED}, got {}",
            caller.name,
            probe.body,
            answer.show()
        )
    });
    let request = probe.body.to_string();
    for secret in &caller.secrets {
        findings.check(
            !answer.text.contains(secret.as_str()) || request.contains(secret.as_str()),
            || {
                format!(
                    "{} {command} on {target} {}: reveals {secret}: {}",
                    caller.name,
                    probe.body,
                    answer.show()
                )
            },
        );
    }
    answer
}

/// Records a finding unless every answer to one probe is the same, byte for byte, whichever
/// target it named (each answer given with the name it was sent, which a per-record refusal may
/// echo): otherwise the answer tells targets, or a missing one, apart.
fn alike(
    caller: &Caller,
    what: &str,
    answers: &[(String, String, Answer)],
    findings: &mut Findings,
) {
    let echoed =
        |named: &str, answer: &Answer| (answer.status, answer.text.replace(named, "<named>"));
    let Some((first_label, first_named, first)) = answers.first() else {
        return;
    };
    let expected = echoed(first_named, first);
    let differing: Vec<String> = answers
        .iter()
        .filter(|(_, named, a)| echoed(named, a) != expected)
        .map(|(label, _, a)| format!("{label} -> {}", a.show()))
        .collect();
    findings.check(differing.is_empty(), || {
        format!(
            "{} {what}: answers differ by target: {first_label} -> {}; {}",
            caller.name,
            first.show(),
            differing.join("; ")
        )
    });
}

/// Sends every user command at each of `targets` and at a missing user, naming each by token,
/// e-mail and login; every answer is judged, and each probe must answer all targets alike.
async fn sweep_users(school: &School, caller: &Caller, targets: &[&str], findings: &mut Findings) {
    let mut aimed: Vec<Target> = targets
        .iter()
        .map(|t| Target::of(school.person(t)))
        .collect();
    aimed.push(Target::nobody());
    for mode in ["token", "email", "login"] {
        // A user without an e-mail cannot be named by one; the missing user stands for that.
        let aimed: Vec<&Target> = aimed
            .iter()
            .filter(|t| !t.identity(mode).is_empty())
            .collect();
        let probes: Vec<Vec<Probe>> = aimed.iter().map(|t| user_probes(t, mode, caller)).collect();
        for i in 0..probes[0].len() {
            let mut answers = Vec::new();
            for (target, probes) in aimed.iter().zip(&probes) {
                let answer = judge(school, caller, &target.label, &probes[i], findings).await;
                let named = target.identity(mode).to_owned();
                answers.push((target.label.clone(), named, answer));
            }
            let what = format!("{} by {mode}", probes[0][i].command);
            alike(caller, &what, &answers, findings);
        }
    }
}

/// Sends every group command at each of `groups` and at a missing group; every answer is judged,
/// and the missing group must be answered exactly as `like` (a group the caller has no part in).
async fn sweep_groups(
    school: &School,
    caller: &Caller,
    groups: &[&str],
    like: &str,
    findings: &mut Findings,
) {
    let member_of = |group: &str| match group {
        "family-1" | "class-3b" => school.token("kim"),
        "victims" => school.token("mallory"),
        _ => school.token("sam"),
    };
    let mut answers_like = Vec::new();
    for group in groups {
        let probes = group_probes(group, school.groups[group], member_of(group), caller);
        for probe in &probes {
            let answer = judge(school, caller, group, probe, findings).await;
            if *group == like {
                answers_like.push((probe.body.clone(), answer));
            }
        }
    }
    let missing = group_probes("no-such-group", 999_999, member_of(like), caller);
    for (probe, (body_like, answer_like)) in missing.iter().zip(answers_like) {
        let answer = judge(school, caller, "a missing group", probe, findings).await;
        let what = format!("{} {} vs {body_like}", probe.command, probe.body);
        let answers = [
            (like.to_owned(), like.to_owned(), answer_like),
            (
                "a missing group".to_owned(),
                "no-such-group".to_owned(),
                answer,
            ),
        ];
        alike(caller, &what, &answers, findings);
    }
    for probe in tenant_probes(caller) {
        judge(school, caller, "the tenant", &probe, findings).await;
    }
}

/// Everything root and the database hold of the school's users and groups.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// Root's UserGet and GroupListUserGroups answers, by login.
    reads: Vec<(String, Value, Value)>,
    /// The rows of the user and group tables, as text.
    rows: Vec<String>,
    /// The tokens of every user in `users`, sorted.
    users: Vec<String>,
}

async fn snapshot(school: &School) -> Snapshot {
    let mut reads = Vec::new();
    for person in &school.people {
        let user = school.root_read("UserGet", &person.token).await;
        let groups = school.root_read("GroupListUserGroups", &person.token).await;
        reads.push((person.login.to_owned(), user, groups));
    }
    // The superuser is not held to row-level security: it sees every tenant's rows.
    let db = school.app.superuser().await;
    let mut rows = Vec::new();
    for query in [
        "SELECT concat_ws('|', 'users', token, version, md5(record), updated_at, forgotten_at IS NULL) FROM users",
        "SELECT concat_ws('|', 'versions', token, version, md5(record)) FROM user_versions",
        "SELECT concat_ws('|', 'indexes', token, field, md5(hash)) FROM user_indexes",
        "SELECT concat_ws('|', 'search', token, field, md5(grams::text)) FROM user_search",
        "SELECT concat_ws('|', 'members', group_id, token, role_id) FROM group_members",
        "SELECT concat_ws('|', 'groups', id, md5(name_index), md5(sealed), grouptype) FROM groups",
    ] {
        for row in db.query(query, &[]).await.unwrap() {
            rows.push(row.get::<_, String>(0));
        }
    }
    rows.sort();
    let users = db
        .query("SELECT token::text FROM users ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    Snapshot { reads, rows, users }
}

/// Records a finding for each difference between two snapshots, and unless the users stored are
/// exactly the school's.
fn unchanged(school: &School, before: &Snapshot, after: &Snapshot, findings: &mut Findings) {
    for (old, new) in before.reads.iter().zip(&after.reads) {
        findings.check(old == new, || {
            format!("{} changed: {old:?} became {new:?}", old.0)
        });
    }
    for row in &before.rows {
        findings.check(after.rows.contains(row), || format!("row gone: {row}"));
    }
    for row in &after.rows {
        findings.check(before.rows.contains(row), || format!("row added: {row}"));
    }
    let mut created: Vec<String> = school.people.iter().map(|p| p.token.clone()).collect();
    created.sort();
    findings.check(after.users == created, || {
        format!(
            "{} users stored, {} created: {:?}",
            after.users.len(),
            created.len(),
            after.users
        )
    });
}

/// The rows of a listing, as (token, profile).
fn rows(answer: &Answer) -> Vec<(Value, Value)> {
    answer.body()["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r["token"].clone(), r["profile"].clone()))
        .collect()
}

#[tokio::test]
async fn a_parent_reads_updates_and_patches_her_own_child_whole() {
    let school = school().await;
    let mum = school.user_token("alice").await;
    let kim = school.token("kim");
    let mut findings = Findings::default();

    let answer = school
        .send("UserGet", &mum, &json!({"mode": "token", "identity": kim}))
        .await;
    findings.check(
        answer.status == StatusCode::OK && answer.body()["profile"] == school.person("kim").profile,
        || {
            format!(
                "alice UserGet kim: expected the whole profile, got {}",
                answer.show()
            )
        },
    );
    let answer = school
        .send(
            "UserUpdate",
            &mum,
            &json!({"mode": "login", "identity": "kim", "profile": {"grade": 4}}),
        )
        .await;
    findings.check(answer.status == StatusCode::OK, || {
        format!("alice UserUpdate kim: expected 200, got {}", answer.show())
    });
    let answer = school
        .send(
            "UserPatch",
            &mum,
            &json!({"mode": "email", "identity": "kim@example.com",
                    "patch": [{"op": "replace", "path": "/medical", "value": "peanuts, sesame"}]}),
        )
        .await;
    findings.check(answer.status == StatusCode::OK, || {
        format!("alice UserPatch kim: expected 200, got {}", answer.show())
    });
    let stored = school.root_read("UserGet", kim).await;
    findings.check(
        stored["profile"]["grade"] == 4 && stored["profile"]["medical"] == "peanuts, sesame",
        || format!("kim after alice's changes: {stored}"),
    );

    let unlock = school.unlock(&mum).await;
    let answer = school
        .send(
            "BulkListGroupUsers",
            &mum,
            &json!({"unlockuuid": unlock, "groupname": "family-1"}),
        )
        .await;
    findings.check(
        answer.body()["rows"].as_array().map(Vec::len) == Some(1)
            && answer.body()["rows"][0]["token"] == kim
            && answer.body()["rows"][0]["rolename"] == "child",
        || {
            format!(
                "alice BulkListGroupUsers family-1: expected kim alone, as child, got {}",
                answer.show()
            )
        },
    );
    findings.finish();
}

#[tokio::test]
async fn a_teacher_reads_only_the_name_and_phone_of_a_students_parent() {
    let school = school().await;
    let teacher = school.user_token("lee").await;
    let alice = school.token("alice");
    let masked = json!({"login": "***", "name": "Alice", "phone": "+447911123456", "email": "***",
                        "ssn": "***", "medical": "***"});
    let mut findings = Findings::default();

    let answer = school
        .send(
            "UserGet",
            &teacher,
            &json!({"mode": "token", "identity": alice}),
        )
        .await;
    findings.check(
        answer.status == StatusCode::OK && answer.body()["profile"] == masked,
        || {
            format!(
                "lee UserGet alice: expected {masked}, got {}",
                answer.show()
            )
        },
    );
    let unlock = school.unlock(&teacher).await;
    let answer = school
        .send(
            "BulkListGroupUsers",
            &teacher,
            &json!({"unlockuuid": unlock, "groupname": "family-1"}),
        )
        .await;
    findings.check(rows(&answer) == [(json!(alice), masked.clone())], || {
        format!(
            "lee BulkListGroupUsers family-1: expected alice masked alone, got {}",
            answer.show()
        )
    });
    findings.finish();
}

#[tokio::test]
async fn the_attacker_reads_her_own_nickname_only_and_never_changes_her_record() {
    let school = school().await;
    let mallory = school.user_token("mallory").await;
    let me = school.token("mallory");
    let mut findings = Findings::default();

    let answer = school
        .send(
            "UserGet",
            &mallory,
            &json!({"mode": "token", "identity": me}),
        )
        .await;
    findings.check(
        answer.status == StatusCode::OK && answer.body()["profile"]["nickname"] == "m",
        || {
            format!(
                "mallory UserGet herself: expected her nickname, got {}",
                answer.show()
            )
        },
    );
    let unlock = school.unlock(&mallory).await;
    let answer = school
        .send(
            "BulkListAllUsers",
            &mallory,
            &json!({"unlockuuid": unlock, "limit": 100}),
        )
        .await;
    findings.check(
        rows(&answer) == [(json!(me), json!({"login": "***", "nickname": "m"}))]
            && answer.body()["total"] == 1,
        || {
            format!(
                "mallory BulkListAllUsers: expected her nickname alone, got {}",
                answer.show()
            )
        },
    );
    let answer = school
        .send(
            "UserPatch",
            &mallory,
            &json!({"mode": "token", "identity": me,
                    "patch": [{"op": "replace", "path": "/nickname", "value": "mal"}]}),
        )
        .await;
    // A user token never changes its own record, whatever a policy says (the contract routes
    // that through the *Request commands and a DPO).
    findings.check(answer.denied(), || {
        format!(
            "mallory UserPatch her nickname: expected 403 {DENIED}, got {}",
            answer.show()
        )
    });
    let stored = school.root_read("UserGet", me).await;
    findings.check(
        stored["profile"] == json!({"login": "mallory", "nickname": "m"}),
        || format!("mallory after patching her nickname: {stored}"),
    );
    findings.finish();
}

/// The attacker role token and mallory's user token, each with the secrets it must never see.
async fn attackers(school: &School) -> (Caller, Caller) {
    let everyone = ["alice", "kim", "bob", "sam", "lee", "zed", "mallory"];
    let role = school.role_token("attacker").await;
    let role = school
        .caller(
            "the attacker role token",
            role,
            "mallory",
            "victims",
            school.secrets(&everyone, &GROUPS),
        )
        .await;
    let mallory = school.user_token("mallory").await;
    let mallory = school
        .caller(
            "mallory",
            mallory,
            "mallory",
            "victims",
            school.secrets(&VICTIMS, &GROUPS),
        )
        .await;
    (role, mallory)
}

/// Everyone but mallory.
const VICTIMS: [&str; 6] = ["alice", "kim", "bob", "sam", "lee", "zed"];

#[tokio::test]
async fn an_attacker_learns_nothing_about_other_users_from_any_command() {
    let school = school().await;
    let before = snapshot(&school).await;
    let (role, mallory) = attackers(&school).await;
    let mut findings = Findings::default();
    for caller in [&role, &mallory] {
        sweep_users(&school, caller, &VICTIMS, &mut findings).await;
    }
    unchanged(&school, &before, &snapshot(&school).await, &mut findings);
    findings.finish();
}

#[tokio::test]
async fn an_attacker_neither_sees_nor_changes_any_group() {
    let school = school().await;
    let before = snapshot(&school).await;
    let (role, mallory) = attackers(&school).await;
    let mut findings = Findings::default();
    for caller in [&role, &mallory] {
        sweep_groups(&school, caller, &GROUPS, "family-2", &mut findings).await;
    }
    unchanged(&school, &before, &snapshot(&school).await, &mut findings);
    findings.finish();
}

#[tokio::test]
async fn escalation_attempts_are_refused_and_change_nothing() {
    let school = school().await;
    let before = snapshot(&school).await;
    let role = school.role_token("attacker").await;
    let mallory = school.user_token("mallory").await;
    let me = school.token("mallory");
    let (alice, kim) = (school.token("alice"), school.token("kim"));
    let family = school.groups["family-1"];
    let callers = [("the attacker role token", &role), ("mallory", &mallory)];
    let mut findings = Findings::default();

    let mut attempts = vec![
        (
            "mallory",
            &mallory,
            "GroupAddUser",
            json!({"mode": "token", "identity": me, "groupname": "family-1", "rolename": "parent"}),
        ),
        (
            "mallory",
            &mallory,
            "GroupAddUser",
            json!({"mode": "login", "identity": "mallory", "groupid": family, "rolename": "child"}),
        ),
        (
            "mallory",
            &mallory,
            "UserPatch",
            json!({"mode": "token", "identity": me, "patch": [{"op": "copy", "from": "/login", "path": "/nickname"}]}),
        ),
        (
            "mallory",
            &mallory,
            "UserPatch",
            json!({"mode": "token", "identity": me, "patch": [{"op": "test", "path": "/login", "value": "mallory"}]}),
        ),
    ];
    for (name, token) in callers {
        attempts.extend([
            (name, token, "UserCreate",
             json!({"profile": {"login": "intruder"}, "groupname": "family-1", "rolename": "parent"})),
            (name, token, "GroupDeleteUser",
             json!({"mode": "token", "identity": kim, "groupname": "family-1"})),
            (name, token, "GroupUpdate", json!({"groupid": family, "groupname": "pwned"})),
            (name, token, "GroupUpdate", json!({"groupid": family, "groupdesc": "pwned"})),
            (name, token, "GroupDelete", json!({"groupname": "family-1"})),
            (name, token, "UserUpdate",
             json!({"mode": "token", "identity": alice, "profile": {"nickname": "pwned"}})),
            (name, token, "UserUpdate",
             json!({"mode": "login", "identity": "alice", "profile": {"name": "pwned"}})),
            (name, token, "XTokenCreateForUser", json!({"mode": "login", "identity": "alice"})),
            (name, token, "XTokenCreateForRole", json!({"rolename": "parent"})),
        ]);
    }
    for (name, token, command, body) in &attempts {
        let answer = school.send(command, token, body).await;
        findings.check(answer.denied(), || {
            format!(
                "{name} {command} {body}: expected 403 {DENIED}, got {}",
                answer.show()
            )
        });
    }

    for (name, token) in callers {
        let record = json!({"profile": {"login": "intruder-bulk"}, "groupname": "family-1", "rolename": "parent"});
        let answer = school
            .send("UserCreateBulk", token, &json!({"records": [record]}))
            .await;
        let body = answer.body();
        // The attacker may not create users at all: the whole request is refused (a caller
        // allowed UserCreateBulk gets such a record back in `errors`: memberships.rs).
        findings.check(answer.denied() && body["created"].is_null(), || {
            format!(
                "{name} UserCreateBulk as parent of family-1: expected 403 {DENIED}, got {}",
                answer.show()
            )
        });
    }

    // Unlocked, the listings still show nothing but the attacker's own nickname.
    let secrets = school.secrets(&["alice", "kim", "bob", "sam", "lee", "zed"], &GROUPS);
    for (name, token) in callers {
        let unlock = school.unlock(token).await;
        let mut listings = vec![json!({"unlockuuid": unlock, "limit": 100})];
        listings.extend(GROUPS.map(|g| json!({"unlockuuid": unlock, "groupname": g})));
        let searches =
            ["ali", "AAA", "+447911"].map(|t| json!({"unlockuuid": unlock, "identity": t}));
        let requests = listings
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                (
                    if i == 0 {
                        "BulkListAllUsers"
                    } else {
                        "BulkListGroupUsers"
                    },
                    body,
                )
            })
            .chain(searches.into_iter().map(|body| ("UserSearch", body)));
        for (command, body) in requests {
            let answer = school.send(command, token, &body).await;
            let shown = rows(&answer);
            findings.check(
                answer.status == StatusCode::OK && shown.iter().all(|(t, _)| t == me),
                || {
                    format!(
                        "{name} {command} {body}: expected at most her own row, got {}",
                        answer.show()
                    )
                },
            );
            for secret in &secrets {
                findings.check(!answer.text.contains(secret.as_str()), || {
                    format!(
                        "{name} {command} {body}: reveals {secret}: {}",
                        answer.show()
                    )
                });
            }
        }
    }

    unchanged(&school, &before, &snapshot(&school).await, &mut findings);
    findings.finish();
}

#[tokio::test]
async fn a_parent_reaches_no_one_outside_her_own_family() {
    let school = school().await;
    let before = snapshot(&school).await;
    let strangers = ["sam", "bob", "lee", "zed", "mallory"];
    let mum = school.user_token("alice").await;
    let secrets = school.secrets(&strangers, &["family-2", "class-3b", "victims"]);
    let mum = school
        .caller("alice", mum, "alice", "family-1", secrets)
        .await;
    let mut findings = Findings::default();
    sweep_users(&school, &mum, &strangers, &mut findings).await;
    sweep_groups(
        &school,
        &mum,
        &["family-2", "class-3b", "victims"],
        "family-2",
        &mut findings,
    )
    .await;
    unchanged(&school, &before, &snapshot(&school).await, &mut findings);
    findings.finish();
}

#[tokio::test]
async fn a_teacher_neither_reads_a_childs_medical_record_nor_changes_anyone() {
    let school = school().await;
    let before = snapshot(&school).await;
    let teacher = school.user_token("lee").await;
    let unlock = school.unlock(&teacher).await;
    let mut findings = Findings::default();

    let answer = school
        .send(
            "UserGet",
            &teacher,
            &json!({"mode": "token", "identity": school.token("kim")}),
        )
        .await;
    findings.check(answer.denied() && !answer.text.contains("peanuts"), || {
        format!(
            "lee UserGet kim: expected 403 {DENIED}, got {}",
            answer.show()
        )
    });
    for body in [
        json!({"unlockuuid": unlock, "groupname": "class-3b"}),
        json!({"unlockuuid": unlock, "groupname": "family-1"}),
    ] {
        let answer = school.send("BulkListGroupUsers", &teacher, &body).await;
        findings.check(
            !answer.text.contains("peanuts") && !answer.text.contains(school.token("kim")),
            || {
                format!(
                    "lee BulkListGroupUsers {body}: shows kim: {}",
                    answer.show()
                )
            },
        );
    }
    for person in &school.people {
        let who = json!({"mode": "token", "identity": person.token});
        for (command, body) in [
            (
                "UserUpdate",
                with(&who, json!({"profile": {"name": "pwned"}})),
            ),
            (
                "UserPatch",
                with(
                    &who,
                    json!({"patch": [{"op": "add", "path": "/name", "value": "pwned"}]}),
                ),
            ),
            ("UserDelete", who.clone()),
        ] {
            let answer = school.send(command, &teacher, &body).await;
            findings.check(answer.denied(), || {
                format!(
                    "lee {command} {}: expected 403 {DENIED}, got {}",
                    person.login,
                    answer.show()
                )
            });
        }
    }
    unchanged(&school, &before, &snapshot(&school).await, &mut findings);
    findings.finish();
}

#[tokio::test]
async fn a_teacher_finds_a_students_parent_by_search_only_through_what_she_may_see() {
    let school = school().await;
    let teacher = school.user_token("lee").await;
    let unlock = school.unlock(&teacher).await;
    let alice = json!(school.token("alice"));
    let masked = json!({"login": "***", "name": "Alice", "phone": "+447911123456", "email": "***",
                        "ssn": "***", "medical": "***"});
    let mut findings = Findings::default();
    // Her phone is visible to the teacher: it finds her. Her login is not: it ranks no one.
    for (term, found) in [("+447911123456", true), ("ali", false), ("alice", false)] {
        let answer = school
            .send(
                "UserSearch",
                &teacher,
                &json!({"unlockuuid": unlock, "identity": term}),
            )
            .await;
        let expected = if found {
            vec![(alice.clone(), masked.clone())]
        } else {
            Vec::new()
        };
        findings.check(rows(&answer) == expected, || {
            format!(
                "lee UserSearch {term}: expected {expected:?}, got {}",
                answer.show()
            )
        });
        for hidden in [
            "AAA-11",
            "asthma",
            "alice@example.com",
            "\"alice\"",
            "447911123457",
        ] {
            findings.check(!answer.text.contains(hidden), || {
                format!("lee UserSearch {term}: reveals {hidden}: {}", answer.show())
            });
        }
    }
    findings.finish();
}
