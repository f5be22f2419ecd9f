//! Every `/v1` route: which `/v2` commands it stands for, and how its answer is shaped.

use poem::http::{Method, StatusCode};
use poem::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::http::inprocess::set;

use super::{duration, flag, int_of, listing, ok, plain, rows_of, user, Call, Refusal};

/// Answers `call` by its method and path.
pub async fn answer(call: &Call) -> Result<Response, Refusal> {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let method = call.method.clone();
    if method == Method::OPTIONS {
        // No cross-origin use: a browser page holding a Bunker token is not a client to serve.
        return Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("allow", "GET, POST, PUT, DELETE, OPTIONS")
            .finish());
    }
    let (get, post, put, delete) = (
        method == Method::GET,
        method == Method::POST,
        method == Method::PUT,
        method == Method::DELETE,
    );
    match segments.as_slice() {
        ["user"] if post => create_user(call).await,
        ["user", mode, identity] if get => get_user(call, mode, identity).await,
        ["user", mode, identity] if put => change_user(call, mode, identity).await,
        ["user", mode, identity] if delete => delete_user(call, mode, identity).await,
        ["users"] if post || get => list_users(call).await,
        ["userapp", mode, identity, app] if post => put_app(call, mode, identity, app).await,
        ["userapp", mode, identity, app] if put => change_app(call, mode, identity, app).await,
        ["userapp", mode, identity, app] if get => get_app(call, mode, identity, app).await,
        ["userapp", mode, identity, app] if delete => delete_app(call, mode, identity, app).await,
        ["userapp", mode, identity] if get => user_apps(call, mode, identity).await,
        ["userapps"] if get => {
            let answer = call.run("AppdataListAppNames", json!({})).await?;
            ok(json!({"apps": rows_of(&answer, "apps")}))
        }
        ["session", id] if post => put_session(call, id).await,
        ["session", id] if get => get_session(call, id).await,
        ["session", id] if delete => {
            call.run("SessionDelete", json!({"sessionuuid": id})).await?;
            ok(json!({}))
        }
        ["sessions", mode, identity] if get => user_sessions(call, mode, identity).await,
        ["agreement", brief, mode, identity] if post => accept(call, brief, mode, identity).await,
        ["agreement", brief, mode, identity] if get => {
            let answer = call
                .run("AgreementGet", user(mode, identity, json!({"brief": brief})))
                .await?;
            ok(json!({"data": answer.get("agreement").cloned().unwrap_or(json!({}))}))
        }
        ["agreement", brief, mode, identity] if delete => {
            withdraw(call, brief, mode, identity).await
        }
        ["agreement", brief] if delete => {
            call.run("AgreementRevokeAll", json!({"brief": brief}))
                .await?;
            ok(json!({}))
        }
        ["agreements", mode, identity] if get => {
            let answer = call
                .run("AgreementListUserAgreements", user(mode, identity, json!({})))
                .await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["lbasis"] if get => {
            let answer = call.run("LegalBasisListAgreements", json!({})).await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["lbasis", brief] if post => save_basis(call, brief).await,
        ["lbasis", brief] if delete => {
            call.run("LegalBasisDelete", json!({"brief": brief})).await?;
            ok(json!({}))
        }
        ["pactivity"] if get => {
            let answer = call
                .run("ProcessingActivityListActivities", json!({}))
                .await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["pactivity", activity] if post => save_activity(call, activity).await,
        ["pactivity", activity] if delete => {
            call.run("ProcessingActivityDelete", json!({"activity": activity}))
                .await?;
            ok(json!({}))
        }
        ["pactivity", activity, brief] if post || delete => {
            let command = match post {
                true => "ProcessingActivityLinkLegalBasis",
                false => "ProcessingActivityUnlinkLegalBasis",
            };
            call.run(command, json!({"activity": activity, "brief": brief}))
                .await?;
            ok(json!({}))
        }
        ["sharedrecord", mode, identity] if post => share(call, mode, identity).await,
        ["get", record] if get => {
            let answer = call
                .run("SharedRecordGet", json!({"recorduuid": record}))
                .await?;
            ok(json!({"data": answer.get("data").cloned().unwrap_or(json!({}))}))
        }
        ["exp", "start", mode, identity] if post => start_expiration(call, mode, identity).await,
        ["exp", "status", mode, identity] if get => {
            let answer = call
                .run("UserExpirationGet", user(mode, identity, json!({})))
                .await?;
            ok(json!({
                "exptime": int_of(&answer, "exptime").unwrap_or(0),
                "expstatus": answer.get("expstatus").cloned().unwrap_or(json!("")),
            }))
        }
        ["exp", "cancel", mode, identity] if delete || post => {
            call.run("UserExpirationCancel", user(mode, identity, json!({})))
                .await?;
            ok(json!({}))
        }
        ["exp", action @ ("retain" | "delete"), _] if get || method == Method::HEAD => {
            Ok(confirmation(action))
        }
        ["exp", action @ ("retain" | "delete"), link] if post => {
            let command = match *action {
                "retain" => "UserExpirationRetain",
                _ => "UserExpirationDelete",
            };
            call.run(command, json!({"exptoken": link})).await?;
            Ok(plain(StatusCode::OK, "OK"))
        }
        ["requests"] if get => all_requests(call).await,
        ["requests", mode, identity] if get => {
            let (offset, limit) = call.page()?;
            let answer = call
                .run(
                    "UserRequestListUserRequests",
                    user(mode, identity, json!({"offset": offset, "limit": limit})),
                )
                .await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["request", id] if get => get_request(call, id).await,
        ["request", id] if post || delete => {
            let command = match post {
                true => "UserRequestApprove",
                false => "UserRequestCancel",
            };
            let mut body = json!({"requestuuid": id});
            if let Some(reason) = call.text("reason") {
                set(&mut body, "reason", json!(reason));
            }
            call.run(command, body).await?;
            ok(json!({"result": "done"}))
        }
        ["audit", "admin"] if get => {
            let (offset, limit) = call.page()?;
            let unlock = unlock(call).await?;
            let answer = call
                .run(
                    "BulkListAllAuditEvents",
                    json!({"unlockuuid": unlock, "offset": offset, "limit": limit}),
                )
                .await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["audit", "list", token] if get => {
            let (offset, limit) = call.page()?;
            let answer = call
                .run(
                    "AuditListUserEvents",
                    user("token", token, json!({"offset": offset, "limit": limit})),
                )
                .await?;
            listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
        }
        ["audit", "get", event] if get => {
            let answer = call
                .run("AuditGetEvent", json!({"auditeventuuid": event}))
                .await?;
            let mut shown = json!({
                "atoken": event,
                "title": answer.get("eventtype").cloned().unwrap_or(Value::Null),
                "when": answer.get("timestamp").cloned().unwrap_or(Value::Null),
            });
            if let (Some(shown), Some(Value::Object(details))) =
                (shown.as_object_mut(), answer.get("details"))
            {
                for (key, value) in details {
                    shown.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            ok(json!({"event": shown}))
        }
        ["prelogin", mode, identity, code, captcha] if get => {
            prelogin(call, mode, identity, code, captcha).await
        }
        ["login", mode, identity, code] if get => {
            let answer = call
                .run("UserLogin", user(mode, identity, json!({"smscode": code})))
                .await?;
            ok(json!({"xtoken": answer.get("xtoken"), "token": answer.get("token")}))
        }
        // HEAD as GET (load balancers probe with it; no body is sent).
        ["status"] if get || method == Method::HEAD => Ok(match call.state.db.schema_status().await {
            Ok(_) => plain(StatusCode::OK, "OK"),
            Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "error"),
        }),
        ["metrics"] if get && call.metrics_here => match call.state.metrics.render(&call.state) {
            Ok(text) => Ok(Response::builder()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(text)),
            Err(_) => Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            )),
        },
        ["sys", "backup"] if get => Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "not offered: back up PostgreSQL with its own tools (pg_dump, or the cluster's snapshots)",
        )),
        ["captcha", _] if get => Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "captcha images come from /v2/CaptchaCreate, with the code to pass to /v1/prelogin",
        )),
        _ => Err(Refusal::new(StatusCode::NOT_FOUND, "endpoint is missing")),
    }
}

async fn create_user(call: &Call) -> Result<Response, Refusal> {
    let answer = call
        .run(
            "UserCreate",
            json!({"profile": Value::Object(call.body.clone())}),
        )
        .await?;
    ok(json!({"token": answer.get("token")}))
}

async fn get_user(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let answer = call.run("UserGet", user(mode, identity, json!({}))).await?;
    ok(json!({"token": answer.get("token"), "data": answer.get("profile")}))
}

/// The user's token where the path gives it (the OSS server answers it; Bunker does not read the
/// record again to learn it).
fn token_of(mode: &str, identity: &str) -> Value {
    match mode {
        "token" => json!(identity),
        _ => Value::Null,
    }
}

/// A command, or where the caller may only ask for it, the request for it: the OSS answer either
/// way (`result` and `rtoken` for a request).
async fn or_request(
    call: &Call,
    command: &str,
    request: &str,
    body: Value,
    done: Value,
) -> Result<Response, Refusal> {
    match call.run(command, body.clone()).await {
        Ok(_) => ok(done),
        Err(refused) if refused.status == StatusCode::FORBIDDEN => {
            let opened = call.run(request, body).await.map_err(|_| refused)?;
            ok(json!({"result": "request-created", "rtoken": opened.get("requestuuid")}))
        }
        Err(refused) => Err(refused),
    }
}

async fn change_user(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let body = user(
        mode,
        identity,
        json!({"profile": Value::Object(call.body.clone())}),
    );
    let done = json!({"token": token_of(mode, identity)});
    or_request(call, "UserUpdate", "UserUpdateRequest", body, done).await
}

async fn delete_user(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let body = user(mode, identity, json!({}));
    let done = json!({"result": "done"});
    or_request(call, "UserDelete", "UserDeleteRequest", body, done).await
}

/// A fresh unlock for a bulk command (BulkListUnlock), as the token asking.
async fn unlock(call: &Call) -> Result<String, Refusal> {
    let answer = call.run("BulkListUnlock", json!({})).await?;
    Ok(answer
        .get("unlockuuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

async fn list_users(call: &Call) -> Result<Response, Refusal> {
    let (offset, limit) = call.page()?;
    let unlock = unlock(call).await?;
    let answer = call
        .run(
            "BulkListAllUsers",
            json!({"unlockuuid": unlock, "offset": offset, "limit": limit}),
        )
        .await?;
    let rows = rows_of(&answer, "rows")
        .into_iter()
        .map(|row| json!({"token": row.get("token"), "data": row.get("profile")}))
        .collect();
    listing(int_of(&answer, "total"), rows)
}

/// POST `/v1/userapp/…`: the app's record becomes the body (created, or replaced whole).
async fn put_app(call: &Call, mode: &str, identity: &str, app: &str) -> Result<Response, Refusal> {
    let data = Value::Object(call.body.clone());
    let body = user(mode, identity, json!({"appname": app, "appdata": data}));
    match call.run("AppdataCreate", body).await {
        Ok(_) => ok(json!({"token": token_of(mode, identity)})),
        Err(refused) if refused.status == StatusCode::CONFLICT => {
            // Replaced: what the new record does not hold is removed (a merge with nulls).
            let current = call
                .run("AppdataGet", user(mode, identity, json!({"appname": app})))
                .await?;
            let mut change: Map<String, Value> = current
                .get("appdata")
                .and_then(Value::as_object)
                .map(|old| old.keys().map(|k| (k.clone(), Value::Null)).collect())
                .unwrap_or_default();
            change.extend(call.body.clone());
            let body = user(
                mode,
                identity,
                json!({"appname": app, "appdata": Value::Object(change)}),
            );
            call.run("AppdataUpdate", body).await?;
            ok(json!({"token": token_of(mode, identity)}))
        }
        Err(refused) => Err(refused),
    }
}

async fn change_app(
    call: &Call,
    mode: &str,
    identity: &str,
    app: &str,
) -> Result<Response, Refusal> {
    let data = Value::Object(call.body.clone());
    let body = user(mode, identity, json!({"appname": app, "appdata": data}));
    let done = json!({"token": token_of(mode, identity)});
    or_request(call, "AppdataUpdate", "AppdataUpdateRequest", body, done).await
}

async fn get_app(call: &Call, mode: &str, identity: &str, app: &str) -> Result<Response, Refusal> {
    let answer = call
        .run("AppdataGet", user(mode, identity, json!({"appname": app})))
        .await?;
    ok(json!({"token": token_of(mode, identity), "data": answer.get("appdata")}))
}

async fn delete_app(
    call: &Call,
    mode: &str,
    identity: &str,
    app: &str,
) -> Result<Response, Refusal> {
    call.run(
        "AppdataDelete",
        user(mode, identity, json!({"appname": app})),
    )
    .await?;
    ok(json!({"token": token_of(mode, identity)}))
}

async fn user_apps(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let answer = call
        .run("AppdataListUserAppNames", user(mode, identity, json!({})))
        .await?;
    ok(json!({"token": token_of(mode, identity), "apps": rows_of(&answer, "apps")}))
}

/// POST `/v1/session/{id}`: the body is the session's data; `expiration` its lifetime, renewed
/// by every write (express-session's `touch`).
async fn put_session(call: &Call, id: &str) -> Result<Response, Refusal> {
    let mut data = call.body.clone();
    let mut body = json!({"sessionuuid": id});
    if let Some(expiration) = data.remove("expiration") {
        set(&mut body, "slidingtime", duration(&expiration)?);
    }
    set(&mut body, "sessiondata", Value::Object(data));
    call.run("SessionUpsert", body).await?;
    ok(json!({"session": id}))
}

async fn get_session(call: &Call, id: &str) -> Result<Response, Refusal> {
    let answer = call.run("SessionGet", json!({"sessionuuid": id})).await?;
    ok(json!({"session": id, "data": answer.get("sessiondata")}))
}

async fn user_sessions(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let (offset, limit) = call.page()?;
    let answer = call
        .run("SessionListUserSessions", user(mode, identity, json!({})))
        .await?;
    let all = rows_of(&answer, "rows");
    let total = all.len() as i64;
    let rows = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|row| {
            json!({"session": row.get("sessionuuid"), "when": row.get("expirationtime"),
                   "data": row.get("sessiondata")})
        })
        .collect();
    listing(Some(total), rows)
}

/// POST `/v1/agreement/{brief}/…`: given (`status` yes, the default) or refused (any other).
async fn accept(call: &Call, brief: &str, mode: &str, identity: &str) -> Result<Response, Refusal> {
    // Upstream reads a text status only. Absent or null: given. Any other value (`false`, 0, an
    // object) is refused rather than read as given, which a client meaning to withdraw would not
    // expect.
    match call.body.get("status") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(Refusal::bad("the status must be text, such as yes or no")),
    }
    let given = !matches!(call.body.get("status"), Some(Value::String(_)))
        || call.text("status").is_some_and(|status| {
            let text = status.trim().to_ascii_lowercase();
            matches!(
                text.as_str(),
                "accept"
                    | "agree"
                    | "yes"
                    | "1"
                    | "true"
                    | "on"
                    | "ok"
                    | "given"
                    | "approve"
                    | "active"
                    | "y"
                    | "good"
            )
        });
    if !given {
        return withdraw(call, brief, mode, identity).await;
    }
    let mut extra = json!({"brief": brief});
    for field in [
        "agreementmethod",
        "referencecode",
        "lastmodifiedby",
        "starttime",
    ] {
        if let Some(value) = call.text(field) {
            set(&mut extra, field, json!(value));
        }
    }
    if let Some(expiration) = call.body.get("expiration") {
        set(&mut extra, "finaltime", duration(expiration)?);
    }
    call.run("AgreementAccept", user(mode, identity, extra))
        .await?;
    ok(json!({}))
}

async fn withdraw(
    call: &Call,
    brief: &str,
    mode: &str,
    identity: &str,
) -> Result<Response, Refusal> {
    let answer = call
        .run(
            "AgreementCancel",
            user(mode, identity, json!({"brief": brief})),
        )
        .await?;
    match answer.get("requestuuid") {
        Some(request) => ok(json!({"result": "request-created", "rtoken": request})),
        None => ok(json!({})),
    }
}

/// The legal basis fields a `/v1` body may give.
fn basis_fields(call: &Call) -> Map<String, Value> {
    let mut fields = Map::new();
    for field in [
        "status",
        "module",
        "fulldesc",
        "shortdesc",
        "basistype",
        "requiredmsg",
    ] {
        if let Some(value) = call.text(field) {
            fields.insert(field.to_owned(), json!(value));
        }
    }
    for field in ["usercontrol", "requiredflag"] {
        if let Some(value) = call.body.get(field) {
            fields.insert(field.to_owned(), json!(flag(value)));
        }
    }
    fields
}

/// POST `/v1/lbasis/{brief}`: created, or (it exists) updated; the body's `brief` renames it.
async fn save_basis(call: &Call, brief: &str) -> Result<Response, Refusal> {
    let mut created = basis_fields(call);
    created.insert("brief".to_owned(), json!(brief));
    match call.run("LegalBasisCreate", Value::Object(created)).await {
        Ok(_) => ok(json!({})),
        Err(refused) if refused.status == StatusCode::CONFLICT => {
            let mut updated = basis_fields(call);
            updated.insert("brief".to_owned(), json!(brief));
            updated.insert(
                "newbrief".to_owned(),
                json!(call.text("brief").unwrap_or_else(|| brief.to_owned())),
            );
            call.run("LegalBasisUpdate", Value::Object(updated)).await?;
            ok(json!({}))
        }
        Err(refused) => Err(refused),
    }
}

/// POST `/v1/pactivity/{activity}`: created, or updated; the body's `activity` renames it.
async fn save_activity(call: &Call, activity: &str) -> Result<Response, Refusal> {
    let mut fields = Map::new();
    for field in ["title", "script", "fulldesc", "applicableto"] {
        if let Some(value) = call.text(field) {
            fields.insert(field.to_owned(), json!(value));
        }
    }
    let mut created = fields.clone();
    created.insert("activity".to_owned(), json!(activity));
    match call
        .run("ProcessingActivityCreate", Value::Object(created))
        .await
    {
        Ok(_) => ok(json!({})),
        Err(refused) if refused.status == StatusCode::CONFLICT => {
            let mut updated = fields;
            updated.insert("activity".to_owned(), json!(activity));
            updated.insert(
                "newactivity".to_owned(),
                json!(call.text("activity").unwrap_or_else(|| activity.to_owned())),
            );
            call.run("ProcessingActivityUpdate", Value::Object(updated))
                .await?;
            ok(json!({}))
        }
        Err(refused) => Err(refused),
    }
}

async fn share(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    if call.body.contains_key("session") {
        return Err(Refusal::bad(
            "sharing a session is not offered: share fields of the profile or an app's data",
        ));
    }
    let mut extra = json!({});
    for field in ["fields", "partner"] {
        if let Some(value) = call.text(field) {
            set(&mut extra, field, json!(value));
        }
    }
    if let Some(app) = call.text("app") {
        set(&mut extra, "appname", json!(app));
    }
    if let Some(expiration) = call.body.get("expiration") {
        set(&mut extra, "finaltime", duration(expiration)?);
    }
    let answer = call
        .run("SharedRecordCreate", user(mode, identity, extra))
        .await?;
    ok(json!({"record": answer.get("recorduuid")}))
}

/// POST `/v1/exp/start/{mode}/{identity}`: body `expiration` (an OSS duration; upstream's
/// longest retention, a month, when absent) and `status` (`wait` unless `retain`).
async fn start_expiration(call: &Call, mode: &str, identity: &str) -> Result<Response, Refusal> {
    let expiration = match call.body.get("expiration") {
        Some(Value::String(s)) if s.trim().is_empty() => json!("1m"),
        Some(value) => value.clone(),
        None => json!("1m"),
    };
    let mut extra = json!({"finaltime": duration(&expiration)?});
    match call.body.get("status") {
        None | Some(Value::Null) => {}
        Some(Value::String(status)) => set(&mut extra, "status", json!(status)),
        // Not a status at all: never read as the default, which schedules the deletion.
        Some(_) => return Err(Refusal::bad("The status value must be wait or retain")),
    }
    let answer = call
        .run("UserExpirationStart", user(mode, identity, extra))
        .await
        .map_err(|refused| match refused.message.contains("finaltime") {
            // /v2's message names its own field and units (`m` a minute there).
            true => Refusal::bad(
                "bad expiration: a duration such as 30s, 12h, 10d or 3m (months), at most 100 years",
            ),
            false => refused,
        })?;
    ok(json!({"exptoken": answer.get("exptoken")}))
}

/// The page a retain or delete link opens in a browser: it asks, and only its button (a POST to
/// the same address) acts, so that a mail scanner or a link preview that fetches the link decides
/// nothing. Nothing is looked up: the page says nothing about the link.
fn confirmation(action: &str) -> Response {
    let (title, text, button) = match action {
        "retain" => (
            "Keep your data",
            "Your account is due to expire and its data to be deleted. Keep it?",
            "Keep my data",
        ),
        _ => (
            "Delete your data",
            "Your account is due to expire. Delete its data now? This cannot be undone.",
            "Delete my data now",
        ),
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1><p>{text}</p>\
         <form method=\"post\"><button type=\"submit\">{button}</button></form></main></body></html>"
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        // The address holds the capability: never cached, never sent on as a referrer, never framed.
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header("x-content-type-options", "nosniff")
        .body(page)
}

async fn all_requests(call: &Call) -> Result<Response, Refusal> {
    let (offset, limit) = call.page()?;
    let unlock = unlock(call).await?;
    let mut body = json!({"unlockuuid": unlock, "offset": offset, "limit": limit});
    if let Some(status) = call.query.get("status") {
        set(&mut body, "status", json!(status));
    }
    let answer = call.run("BulkListAllUserRequests", body).await?;
    listing(int_of(&answer, "total"), rows_of(&answer, "rows"))
}

async fn get_request(call: &Call, id: &str) -> Result<Response, Refusal> {
    let answer = call
        .run("UserRequestGet", json!({"requestuuid": id}))
        .await?;
    let request = answer.get("request").cloned().unwrap_or(json!({}));
    let mut shown = json!({});
    if let (Some(shown), Value::Object(request)) = (shown.as_object_mut(), request) {
        for (key, value) in request {
            // The envelope's `status` stays `ok`: the request's own is `requeststatus`.
            let key = match key.as_str() {
                "status" => "requeststatus".to_owned(),
                _ => key,
            };
            if !value.is_null() {
                shown.insert(key, value);
            }
        }
    }
    ok(shown)
}

/// GET `/v1/prelogin/{mode}/{identity}/{code}/{captcha}`: `code` is the captcha's id (as for
/// upstream's `/v1/captcha/{code}`; here `/v2/CaptchaCreate`'s `code`) and `captcha` the letters
/// it shows.
async fn prelogin(
    call: &Call,
    mode: &str,
    identity: &str,
    code: &str,
    captcha: &str,
) -> Result<Response, Refusal> {
    let (status, answer) = call
        .exchange(
            "UserPrelogin",
            user(
                mode,
                identity,
                json!({"code": code, "captchacode": captcha}),
            ),
        )
        .await;
    // Upstream's captcha failure: an answer of its own, which clients test for.
    let said = |key: &str| answer.get(key).and_then(Value::as_str) == Some("captcha-error");
    if said("result") || said("message") {
        let body =
            json!({"status": "error", "result": "captcha-error", "message": "captcha-error"});
        let mut response = poem::web::Json(body).into_response();
        response.set_status(status);
        return Ok(response);
    }
    if status.is_success() && answer.get("status").and_then(Value::as_str) == Some("ok") {
        return ok(json!({"result": "done"}));
    }
    Err(Refusal::new(
        status,
        answer
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("internal error"),
    ))
}
