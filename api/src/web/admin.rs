//! The DPO portal at `/admin`: signed in with an admin or role token (kept in the session's row on
//! the server), it works the open requests (a diff of what is stored and what is proposed; approve or
//! cancel with a reason), finds users and shows their whole picture, manages legal bases and
//! processing activities, lists the audit trail, and shows the statistics and key status. Each page
//! is the `/v2` commands the token may call: a role sees here what its policies let it see there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bunker_services::portal::PortalKind;
use bunker_tenancy::Principal;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::Data;
use poem::{handler, Body, EndpointExt, Request, Response};
use serde_json::{json, Value};

use super::page::{
    self, rows, time_of, Block, Cell, Chart, DiffRow, Form, Input, Link, Page, Row, Section, Table,
};
use super::user::request_kind;
use super::{
    forged, limited, login_csrf, nav, notice_of, query, render, same_origin_post, see_other,
    sign_in, sign_out, signed, simple, Fields, Portal, Signed, Visit,
};
use crate::http::app::AppState;
use crate::http::inprocess::set;
use crate::v2::bulk::LATEST_SECONDS;

/// The session cookie of the DPO portal.
pub const COOKIE: &str = "bunker_admin";
const LOGIN_COOKIE: &str = "bunker_admin_login";

pub const PATHS: &[&str] = &[
    "/admin",
    "/admin/signin",
    "/admin/signout",
    "/admin/request",
    "/admin/decide",
    "/admin/users",
    "/admin/audit",
    "/admin/consent",
    "/admin/legalbasis",
    "/admin/activity",
    "/admin/link",
    "/admin/system",
];

pub fn routes() -> Vec<(&'static str, BoxEndpoint<'static>)> {
    vec![
        ("/admin", poem::get(queue).boxed()),
        ("/admin/signin", poem::post(signin).boxed()),
        ("/admin/signout", poem::post(signout).boxed()),
        ("/admin/request", poem::get(request).boxed()),
        ("/admin/decide", poem::post(decide).boxed()),
        ("/admin/users", poem::get(users).post(users_find).boxed()),
        ("/admin/audit", poem::get(audit).boxed()),
        ("/admin/consent", poem::get(consent).boxed()),
        ("/admin/legalbasis", poem::post(legal_basis).boxed()),
        ("/admin/activity", poem::post(activity_create).boxed()),
        ("/admin/link", poem::post(link).boxed()),
        ("/admin/system", poem::get(system).boxed()),
    ]
}

const NAV: &[(&str, &str)] = &[
    ("/admin", "Requests"),
    ("/admin/users", "Users"),
    ("/admin/consent", "Legal bases"),
    ("/admin/audit", "Audit trail"),
    ("/admin/system", "System"),
];

const NOTICES: &[(&str, &str)] = &[
    (
        "approved",
        "The request is approved and its change applied.",
    ),
    ("cancelled", "The request is cancelled."),
    ("basis", "The legal basis is saved."),
    ("activity", "The processing activity is saved."),
    ("linked", "The activity's legal bases are saved."),
];

fn base_page(visit: &Visit, title: &str, current: &str, signed: &Signed) -> Page {
    Page {
        brand: visit.brand.clone(),
        portal: "DPO portal",
        base: "/admin",
        title: title.to_owned(),
        nav: nav(NAV, current),
        signed_in: true,
        csrf: signed.csrf.clone(),
        notice: None,
        problem: None,
        sections: Vec::new(),
        footer: format!(
            "Tenant {}. Everything done here is recorded in the audit trail under the token you signed in with.",
            visit.name.as_str()
        ),
    }
}

/// The signed-in DPO, or the answer to give instead (the sign-in page).
async fn session(
    state: &AppState,
    req: &Request,
    jar: &CookieJar,
) -> Result<(Visit, Signed), Response> {
    let visit = Visit::of(state, req).await?;
    match signed(state, &visit, jar, PortalKind::Admin, COOKIE).await? {
        Some(signed) => Ok((visit, signed)),
        None => Err(signin_page(&visit, jar, None)),
    }
}

fn signin_page(visit: &Visit, jar: &CookieJar, problem: Option<String>) -> Response {
    let csrf = login_csrf(jar, LOGIN_COOKIE);
    let form = Form::post("signin", "/admin/signin", "Sign in").input(
        Input::new("password", "token", "Access token", "")
            .required()
            .autocomplete("off")
            .autofocus(),
    );
    let page = Page {
        brand: visit.brand.clone(),
        portal: "DPO portal",
        base: "/admin",
        title: "Sign in".to_owned(),
        nav: Vec::new(),
        signed_in: false,
        csrf,
        notice: None,
        problem,
        sections: vec![Section::new(
            format!("Sign in to tenant {}", visit.name.as_str()),
            vec![
                Block::Text(
                    "Use the tenant's admin token or a role token. It stays on the server for this session (30 minutes) and is never stored in your browser."
                        .to_owned(),
                ),
                Block::Form(form),
            ],
        )],
        footer: String::new(),
    };
    let mut response = render(&page);
    if problem_status(&page) {
        response.set_status(StatusCode::FORBIDDEN);
    }
    response
}

fn problem_status(page: &Page) -> bool {
    page.problem.is_some()
}

/// A POST of a signed-in DPO.
async fn signed_post(
    state: &AppState,
    req: &Request,
    jar: &CookieJar,
    body: Body,
) -> Result<(Visit, Signed, Fields), Response> {
    let (visit, signed) = session(state, req, jar).await?;
    let fields = Fields::read(body).await?;
    if !same_origin_post(req, &fields, &signed.csrf) {
        return Err(forged());
    }
    Ok((visit, signed, fields))
}

/// The message the sign-in gives for every refused token.
const REFUSED: &str = "This token is not valid for this tenant.";

#[handler]
async fn signin(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> Response {
    let visit = match Visit::of(state, req).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let fields = match Fields::read(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let expected = jar
        .get(LOGIN_COOKIE)
        .map(|c| c.value_str().to_owned())
        .unwrap_or_default();
    if !same_origin_post(req, &fields, &expected) {
        return forged();
    }
    if let Err(refusal) = state.limits.check_login(visit.address) {
        return limited(signin_page(&visit, jar, Some(refusal.message())), &refusal);
    }
    let token = fields.get("token").trim();
    // The API's own authentication, for the visit's tenant: a tenant's token is refused on another.
    let caller = state
        .tenancy
        .authenticate(Some(token), Some(visit.name.as_str()), None)
        .await;
    let caller = match caller {
        Ok(caller) => caller,
        Err(bunker_tenancy::TenancyError::Database(_)) => return super::unavailable(),
        Err(_) => return signin_page(&visit, jar, Some(REFUSED.to_owned())),
    };
    // A user's token belongs in the privacy portal.
    if matches!(caller.principal, Principal::User { .. }) {
        return signin_page(&visit, jar, Some(REFUSED.to_owned()));
    }
    if let Err(response) = sign_in(
        state,
        jar,
        caller.tenant.id,
        PortalKind::Admin,
        COOKIE,
        None,
        token,
    )
    .await
    {
        return response;
    }
    super::clear(jar, LOGIN_COOKIE);
    see_other("/admin")
}

#[handler]
async fn signout(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> Response {
    match signed_post(state, req, jar, body).await {
        Ok((_, signed, _)) => {
            sign_out(state, jar, &signed, COOKIE).await;
            see_other("/admin")
        }
        Err(response) => response,
    }
}

/// An unlock for the bulk listings (60 s), as the token.
async fn unlock(
    state: &Arc<AppState>,
    portal: &Portal,
    visit: &Visit,
    signed: &Signed,
) -> Result<String, super::Refused> {
    portal
        .call(
            state,
            visit,
            Some(&signed.token),
            "BulkListUnlock",
            json!({}),
        )
        .await
        .map(|answer| page::field(&answer, "unlockuuid"))
}

#[handler]
async fn queue(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Open requests", "/admin", &signed);
    page.notice = notice_of(req, NOTICES);
    let mut table = Table::new(
        &["Asked", "What", "User", "Request"],
        "No request waits for a decision.",
    );
    let listed = match unlock(state, portal, &visit, &signed).await {
        Ok(unlock) => {
            portal
                .call(
                    state,
                    &visit,
                    Some(&signed.token),
                    "BulkListAllUserRequests",
                    json!({"unlockuuid": unlock, "status": "open", "limit": 100}),
                )
                .await
        }
        Err(refused) => Err(refused),
    };
    match listed {
        Ok(list) => {
            for row in rows(&list, "rows") {
                let id = page::field(row, "requestuuid");
                table.rows.push(Row {
                    cells: vec![
                        Cell::from(time_of(row, "creationtime")),
                        Cell::from(request_kind(&page::field(row, "requesttype"))),
                        Cell {
                            text: page::field(row, "token"),
                            link: Some(format!(
                                "/admin/users?mode=token&identity={}",
                                page::field(row, "token")
                            )),
                        },
                        Cell {
                            text: "Review".to_owned(),
                            link: Some(format!("/admin/request?id={id}")),
                        },
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    page.sections.push(Section::new(
        "Waiting for a decision",
        vec![Block::Table(table)],
    ));
    render(&page)
}

/// The most unchanged fields a diff shows (every changed one is shown).
const MAX_UNCHANGED_ROWS: usize = 100;

/// The rows of a diff of what is stored and what approval would store: every field that differs
/// (added, changed, removed or of another type) first, then unchanged ones up to
/// [`MAX_UNCHANGED_ROWS`]; and how many unchanged fields were left out.
fn diff(now: &Value, proposed: &Value) -> (Vec<DiffRow>, usize) {
    let before = page::flatten(now);
    let after = page::flatten(proposed);
    let mut fields: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    let known: HashSet<&str> = fields.iter().copied().collect();
    fields.extend(
        after
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !known.contains(k)),
    );
    let was_map: HashMap<&str, &Value> = before.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let will_map: HashMap<&str, &Value> = after.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut changed = Vec::new();
    let mut same = Vec::new();
    for field in fields {
        let (was, will) = (was_map.get(field).copied(), will_map.get(field).copied());
        if was == will {
            same.push(DiffRow {
                field: field.to_owned(),
                now: was.map(page::text).unwrap_or_default(),
                proposed: "(unchanged)".to_owned(),
                changed: false,
            });
            continue;
        }
        // The same text of two different values (a number and a string of it): show them as JSON.
        let shown = |value: Option<&Value>| match value {
            None => String::new(),
            Some(v) if was.map(page::text) == will.map(page::text) => v.to_string(),
            Some(v) => page::text(v),
        };
        changed.push(DiffRow {
            field: field.to_owned(),
            now: match was {
                None => "(not set)".to_owned(),
                some => shown(some),
            },
            proposed: match will {
                None => "(removed)".to_owned(),
                some => shown(some),
            },
            changed: true,
        });
    }
    let left_out = same.len().saturating_sub(MAX_UNCHANGED_ROWS);
    same.truncate(MAX_UNCHANGED_ROWS);
    changed.extend(same);
    (changed, left_out)
}

/// What the review page shows of a request's proposal.
fn proposal_blocks(asked: &Value) -> Vec<Block> {
    let original = asked.get("original").unwrap_or(&Value::Null);
    let change = asked.get("change").unwrap_or(&Value::Null);
    match (page::field(asked, "requesttype").as_str(), asked.get("proposed")) {
        ("forget-me", _) => vec![Block::Text(
            "Everything held about the user is to be deleted.".to_owned(),
        )],
        ("withdraw-consent", _) => vec![
            Block::Facts(page::facts(original)),
            Block::Text("Proposed: the consent is withdrawn.".to_owned()),
        ],
        (_, Some(proposed)) => {
            let (rows, left_out) = diff(original, proposed);
            let count = rows.iter().filter(|r| r.changed).count();
            let mut blocks = vec![Block::Text(format!(
                "{count} field(s) would change (marked), listed first."
            ))];
            blocks.push(Block::Diff(rows));
            if left_out > 0 {
                blocks.push(Block::Text(format!(
                    "{left_out} more unchanged field(s) are not shown."
                )));
            }
            blocks
        }
        (_, None) if change.is_null() => Vec::new(),
        (_, None) => vec![
            Block::Text(
                "This change cannot be applied to the record as it is now: approving it would be refused. What it asks:"
                    .to_owned(),
            ),
            Block::Facts(page::facts(change)),
        ],
    }
}

#[handler]
async fn request(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = query(req, "id");
    let mut page = base_page(&visit, "Review a request", "/admin", &signed);
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "UserRequestGet",
            json!({"requestuuid": id}),
        )
        .await
    {
        Ok(answer) => {
            let request = answer.get("request").cloned().unwrap_or(Value::Null);
            let status = page::field(&request, "status");
            page.sections.push(Section::new(
                request_kind(&page::field(&request, "requesttype")),
                vec![Block::Facts(
                    [
                        ("User", page::field(&request, "token")),
                        ("Status", status.clone()),
                        ("Asked", time_of(&request, "creationtime")),
                        ("Decided", time_of(&request, "decisiontime")),
                        ("Legal basis", page::field(&request, "brief")),
                        ("Application", page::field(&request, "app")),
                        ("Reason", page::field(&request, "reason")),
                    ]
                    .into_iter()
                    .filter(|(_, value)| !value.is_empty())
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
                )],
            ));
            let blocks = proposal_blocks(&request);
            if !blocks.is_empty() {
                page.sections.push(Section::new(
                    "What is stored, and what approval would store",
                    blocks,
                ));
            }
            if status == "open" {
                // Approved only as shown: the record must still be as this page showed it.
                let approve = Form::post("approve", "/admin/decide", "Approve")
                    .hidden("id", id.clone())
                    .hidden("decision", "approve")
                    .hidden("reviewed", page::field(&request, "reviewdigest"))
                    .inline();
                let cancel = Form::post("cancel", "/admin/decide", "Cancel the request")
                    .hidden("id", id.clone())
                    .hidden("decision", "cancel")
                    .input(Input::new(
                        "text",
                        "reason",
                        "Reason (kept with the request)",
                        "",
                    ))
                    .inline()
                    .danger();
                page.sections.push(Section::new(
                    "Decide",
                    vec![Block::Form(approve), Block::Form(cancel)],
                ));
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    render(&page)
}

#[handler]
async fn decide(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed, fields) = match signed_post(state, req, jar, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (command, done) = match fields.get("decision") {
        "approve" => ("UserRequestApprove", "approved"),
        "cancel" => ("UserRequestCancel", "cancelled"),
        _ => return super::simple(StatusCode::BAD_REQUEST, "No decision was chosen."),
    };
    let mut body = json!({"requestuuid": fields.get("id")});
    if command == "UserRequestApprove" {
        set(&mut body, "reviewdigest", json!(fields.get("reviewed")));
    }
    let reason = fields.get("reason").trim();
    if !reason.is_empty() {
        if let Some(fields) = body.as_object_mut() {
            fields.insert("reason".to_owned(), Value::String(reason.to_owned()));
        }
    }
    match portal
        .call(state, &visit, Some(&signed.token), command, body)
        .await
    {
        Ok(_) => see_other(&format!("/admin?done={done}")),
        Err(refused) => problem(&visit, &signed, "/admin", refused.message),
    }
}

fn problem(visit: &Visit, signed: &Signed, current: &str, message: String) -> Response {
    let mut page = base_page(visit, "That did not work", current, signed);
    page.problem = Some(message);
    let mut response = render(&page);
    response.set_status(StatusCode::BAD_REQUEST);
    response
}

#[handler]
async fn users(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    // Only by token in the address: an e-mail address or phone number in a URL would reach
    // browser history and proxies' logs, so those are looked up by the form (a POST).
    let (mode, identity) = match query(req, "mode").as_str() {
        "token" => ("token".to_owned(), query(req, "identity")),
        _ => (String::new(), String::new()),
    };
    users_page(state, portal, &visit, &signed, mode, identity).await
}

#[handler]
async fn users_find(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed, fields) = match signed_post(state, req, jar, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (mode, identity) = (
        fields.get("mode").to_owned(),
        fields.get("identity").trim().to_owned(),
    );
    users_page(state, portal, &visit, &signed, mode, identity).await
}

async fn users_page(
    state: &Arc<AppState>,
    portal: &Portal,
    visit: &Visit,
    signed: &Signed,
    mode: String,
    identity: String,
) -> Response {
    let mut page = base_page(visit, "Users", "/admin/users", signed);
    let find = Form::post("find", "/admin/users", "Find")
        .input(Input::select(
            "mode",
            "By",
            if mode.is_empty() { "email" } else { &mode },
            &["email", "phone", "login", "custom", "token", "search"],
        ))
        .input(Input::new("text", "identity", "Value", identity.clone()).required())
        .inline();
    page.sections.push(Section::new(
        "Find a user",
        vec![
            Block::Text(
                "By an exact e-mail address, phone number, login, custom key or token, or \"search\": a partial or misspelled value (fuzzy, behind a bulk unlock; the best 20)."
                    .to_owned(),
            ),
            Block::Form(find),
        ],
    ));
    if identity.is_empty() {
        return render(&page);
    }
    if mode == "search" {
        let found = match unlock(state, portal, visit, signed).await {
            Ok(unlock) => {
                portal
                    .call(
                        state,
                        visit,
                        Some(&signed.token),
                        "UserSearch",
                        json!({"identity": identity, "unlockuuid": unlock}),
                    )
                    .await
            }
            Err(refused) => Err(refused),
        };
        let mut table = Table::new(&["User", "Profile"], "No user matches.");
        match found {
            Ok(list) => {
                for row in rows(&list, "rows") {
                    let token = page::field(row, "token");
                    let profile = page::facts(row.get("profile").unwrap_or(&Value::Null))
                        .into_iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    table.rows.push(Row {
                        cells: vec![
                            Cell {
                                link: Some(format!("/admin/users?mode=token&identity={token}")),
                                text: token,
                            },
                            Cell::from(profile),
                        ],
                        actions: Vec::new(),
                    });
                }
            }
            Err(refused) => page.problem = Some(refused.message),
        }
        page.sections.push(Section::new(
            "Best matches first",
            vec![Block::Table(table)],
        ));
        return render(&page);
    }
    let who = json!({"mode": mode, "identity": identity});
    let token = Some(signed.token.as_str());
    let user = match portal
        .call(state, visit, token, "UserGet", who.clone())
        .await
    {
        Ok(user) => user,
        Err(refused) => {
            page.problem = Some(refused.message);
            return render(&page);
        }
    };
    page.sections.push(Section::new(
        format!("Profile of {}", page::field(&user, "token")),
        vec![Block::Facts(page::facts(
            user.get("profile").unwrap_or(&Value::Null),
        ))],
    ));
    let mut agreements = Table::new(&["Legal basis", "Status", "Since"], "No consents.");
    match portal
        .call(
            state,
            visit,
            token,
            "AgreementListUserAgreements",
            who.clone(),
        )
        .await
    {
        Ok(list) => {
            for row in rows(&list, "rows") {
                agreements.rows.push(Row {
                    cells: vec![
                        Cell::from(page::field(row, "brief")),
                        Cell::from(page::field(row, "status")),
                        Cell::from(time_of(row, "starttime")),
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => agreements.empty = refused.message,
    }
    page.sections
        .push(Section::new("Consents", vec![Block::Table(agreements)]));
    let mut requests = Table::new(&["Asked", "What", "Status", "Request"], "No requests.");
    match portal
        .call(
            state,
            visit,
            token,
            "UserRequestListUserRequests",
            json!({"mode": mode, "identity": identity, "limit": 100}),
        )
        .await
    {
        Ok(list) => {
            for row in rows(&list, "rows") {
                requests.rows.push(Row {
                    cells: vec![
                        Cell::from(time_of(row, "creationtime")),
                        Cell::from(request_kind(&page::field(row, "requesttype"))),
                        Cell::from(page::field(row, "status")),
                        Cell {
                            text: "View".to_owned(),
                            link: Some(format!(
                                "/admin/request?id={}",
                                page::field(row, "requestuuid")
                            )),
                        },
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => requests.empty = refused.message,
    }
    page.sections
        .push(Section::new("Requests", vec![Block::Table(requests)]));
    let mut events = Table::new(&["When (UTC)", "What"], "Nothing recorded.");
    match portal
        .call(
            state,
            visit,
            token,
            "AuditListUserEvents",
            json!({"mode": mode, "identity": identity, "limit": 50}),
        )
        .await
    {
        Ok(list) => {
            for row in rows(&list, "rows") {
                events.rows.push(Row {
                    cells: vec![
                        Cell::from(page::field(row, "timestamp")),
                        Cell::from(page::field(row, "eventtype")),
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => events.empty = refused.message,
    }
    page.sections.push(Section::new(
        "Audit of this user",
        vec![Block::Table(events)],
    ));
    render(&page)
}

#[handler]
async fn audit(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Audit trail", "/admin/audit", &signed);
    let kind = query(req, "eventtype");
    let (since, until) = (query(req, "since"), query(req, "until"));
    // A page further than any trail reaches is an empty one, not an overflow.
    let offset: i64 = query(req, "offset")
        .parse()
        .unwrap_or(0)
        .clamp(0, i64::from(u32::MAX));
    let filter = Form::get("filter", "/admin/audit", "Filter")
        .input(Input::new(
            "text",
            "eventtype",
            "Event type (e.g. UserGet)",
            kind.clone(),
        ))
        .input(Input::new("date", "since", "From (UTC)", since.clone()))
        .input(Input::new(
            "date",
            "until",
            "To (UTC, included)",
            until.clone(),
        ))
        .inline();
    page.sections
        .push(Section::new("Filter", vec![Block::Form(filter)]));
    let mut wanted = json!({"offset": offset, "limit": 100});
    if !kind.trim().is_empty() {
        set(&mut wanted, "eventtype", json!(kind.trim()));
    }
    for (field, day, next) in [("since", &since, 0), ("until", &until, 1)] {
        match day_start(day, next) {
            // The end of the last day there is.
            Some(Ok(seconds)) => set(&mut wanted, field, json!(seconds.min(LATEST_SECONDS))),
            Some(Err(())) => page.problem = Some(format!("The {field} date is not a date.")),
            None => {}
        }
    }
    if page.problem.is_some() {
        return render(&page);
    }
    let mut table = Table::new(&["When (UTC)", "What", "Event"], "No events.");
    let listed = match unlock(state, portal, &visit, &signed).await {
        Ok(unlock) => {
            portal
                .call(
                    state,
                    &visit,
                    Some(&signed.token),
                    "BulkListAllAuditEvents",
                    with_unlock(wanted, unlock),
                )
                .await
        }
        Err(refused) => Err(refused),
    };
    let mut total = 0;
    match listed {
        Ok(list) => {
            total = list.get("total").and_then(Value::as_i64).unwrap_or(0);
            for row in rows(&list, "rows") {
                table.rows.push(Row {
                    cells: vec![
                        Cell::from(page::field(row, "timestamp")),
                        Cell::from(page::field(row, "eventtype")),
                        Cell::from(page::field(row, "auditeventuuid")),
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    let mut blocks = vec![Block::Table(table)];
    if offset + 100 < total {
        let older: String = serde_urlencoded::to_string([
            ("offset", (offset + 100).to_string()),
            ("eventtype", kind),
            ("since", since),
            ("until", until),
        ])
        .unwrap_or_default();
        blocks.push(Block::Links(vec![Link {
            href: format!("/admin/audit?{older}"),
            label: "Older events".to_owned(),
            download: false,
        }]));
    }
    page.sections.push(Section::new(
        format!("Events, newest first ({total} in all)"),
        blocks,
    ));
    render(&page)
}

#[handler]
async fn consent(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut page = base_page(
        &visit,
        "Legal bases and processing activities",
        "/admin/consent",
        &signed,
    );
    page.notice = notice_of(req, NOTICES);
    let token = Some(signed.token.as_str());
    let mut bases = Table::new(
        &[
            "Brief",
            "Type",
            "Status",
            "Users may withdraw alone",
            "Description",
        ],
        "No legal bases yet.",
    );
    let mut briefs = Vec::new();
    let editing_basis = query(req, "basis");
    let mut edited_basis = None;
    match portal
        .call(state, &visit, token, "LegalBasisListAgreements", json!({}))
        .await
    {
        Ok(list) => {
            for (n, row) in rows(&list, "rows").iter().enumerate() {
                let brief = page::field(row, "brief");
                if brief == editing_basis {
                    edited_basis = Some((*row).clone());
                }
                briefs.push(brief.clone());
                bases.rows.push(Row {
                    cells: vec![
                        Cell::from(brief.clone()),
                        Cell::from(page::field(row, "basistype")),
                        Cell::from(page::field(row, "status")),
                        Cell::from(
                            match row.get("usercontrol") {
                                Some(Value::Bool(true)) => "yes",
                                _ => "no",
                            }
                            .to_owned(),
                        ),
                        Cell::from(page::field(row, "shortdesc")),
                    ],
                    actions: vec![
                        Form::get(format!("edit-basis{n}"), "/admin/consent", "Edit")
                            .hidden("basis", brief),
                    ],
                });
            }
        }
        Err(refused) => bases.empty = refused.message,
    }
    let basis = edited_basis.unwrap_or(Value::Null);
    let existing = page::field(&basis, "brief");
    let yes_no = |name: &str| match basis.get(name) {
        Some(Value::Bool(false)) => "no",
        _ => "yes",
    };
    let (title, submit) = match existing.is_empty() {
        true => ("New legal basis".to_owned(), "Create legal basis"),
        false => (
            format!("Edit the legal basis {existing}"),
            "Save legal basis",
        ),
    };
    let basis_form = Form::post("basis", "/admin/legalbasis", submit)
        .hidden("existing", existing.clone())
        .input(Input::new("text", "brief", "Brief (its key)", existing).required())
        .input(Input::select(
            "basistype",
            "Type",
            &or(page::field(&basis, "basistype"), "consent"),
            &[
                "consent",
                "contract",
                "legal-requirement",
                "vital-interest",
                "public-interest",
                "legitimate-interest",
            ],
        ))
        .input(Input::new(
            "text",
            "shortdesc",
            "Short description",
            page::field(&basis, "shortdesc"),
        ))
        .input(Input::new(
            "textarea",
            "fulldesc",
            "Full description",
            page::field(&basis, "fulldesc"),
        ))
        .input(Input::select(
            "usercontrol",
            "Users may withdraw alone",
            yes_no("usercontrol"),
            &["yes", "no"],
        ))
        .input(Input::select(
            "status",
            "Status",
            &or(page::field(&basis, "status"), "active"),
            &["active", "inactive"],
        ));
    page.sections.push(Section::new(
        "Legal bases",
        vec![
            Block::Table(bases),
            Block::Text(title),
            Block::Form(basis_form),
        ],
    ));
    let mut activities = Table::new(
        &["Activity", "Title", "Legal bases"],
        "No processing activities yet.",
    );
    let mut names = Vec::new();
    let editing_activity = query(req, "activity");
    let mut edited_activity = None;
    match portal
        .call(
            state,
            &visit,
            token,
            "ProcessingActivityListActivities",
            json!({}),
        )
        .await
    {
        Ok(list) => {
            for (n, row) in rows(&list, "rows").iter().enumerate() {
                let name = page::field(row, "activity");
                if name == editing_activity {
                    edited_activity = Some((*row).clone());
                }
                names.push(name.clone());
                let linked = row
                    .get("briefs")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().map(page::text).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                activities.rows.push(Row {
                    cells: vec![
                        Cell::from(name.clone()),
                        Cell::from(page::field(row, "title")),
                        Cell::from(linked),
                    ],
                    actions: vec![
                        Form::get(format!("edit-activity{n}"), "/admin/consent", "Edit")
                            .hidden("activity", name),
                    ],
                });
            }
        }
        Err(refused) => activities.empty = refused.message,
    }
    let activity = edited_activity.unwrap_or(Value::Null);
    let existing = page::field(&activity, "activity");
    let (title, submit) = match existing.is_empty() {
        true => ("New processing activity".to_owned(), "Create activity"),
        false => (format!("Edit the activity {existing}"), "Save activity"),
    };
    let activity_form = Form::post("activity", "/admin/activity", submit)
        .hidden("existing", existing.clone())
        .input(Input::new("text", "activity", "Activity (its key)", existing).required())
        .input(Input::new(
            "text",
            "title",
            "Title",
            page::field(&activity, "title"),
        ))
        .input(Input::new(
            "textarea",
            "fulldesc",
            "Full description",
            page::field(&activity, "fulldesc"),
        ))
        .input(Input::new(
            "text",
            "applicableto",
            "Applies to",
            page::field(&activity, "applicableto"),
        ));
    let mut blocks = vec![
        Block::Table(activities),
        Block::Text(title),
        Block::Form(activity_form),
    ];
    if let (Some(first_name), Some(first_brief)) = (names.first(), briefs.first()) {
        let (first_name, first_brief) = (first_name.clone(), first_brief.clone());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let briefs: Vec<&str> = briefs.iter().map(String::as_str).collect();
        blocks.push(Block::Form(
            Form::post("link", "/admin/link", "Save")
                .input(Input::select("activity", "Activity", &first_name, &names))
                .input(Input::select(
                    "change",
                    "Change",
                    "link",
                    &["link", "unlink"],
                ))
                .input(Input::select("brief", "Legal basis", &first_brief, &briefs))
                .inline(),
        ));
    }
    page.sections
        .push(Section::new("Processing activities", blocks));
    render(&page)
}

/// A form of the legal-bases page: `build` names the command and its body.
async fn consent_write(
    state: &Arc<AppState>,
    portal: &Portal,
    req: &Request,
    jar: &CookieJar,
    body: Body,
    build: impl FnOnce(&Fields) -> Option<(&'static str, Value)>,
    done: &str,
) -> Response {
    let (visit, signed, fields) = match signed_post(state, req, jar, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some((command, body)) = build(&fields) else {
        return simple(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    match portal
        .call(state, &visit, Some(&signed.token), command, body)
        .await
    {
        Ok(_) => see_other(&format!("/admin/consent?done={done}")),
        Err(refused) => problem(&visit, &signed, "/admin/consent", refused.message),
    }
}

#[handler]
async fn legal_basis(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    consent_write(
        state,
        portal,
        req,
        jar,
        body,
        |f| {
            let mut basis = json!({
                "brief": f.get("brief"),
                "basistype": f.get("basistype"),
                "shortdesc": f.get("shortdesc"),
                "fulldesc": f.get("fulldesc"),
                "usercontrol": f.get("usercontrol") == "yes",
                "status": f.get("status"),
            });
            match f.get("existing") {
                "" => Some(("LegalBasisCreate", basis)),
                existing => {
                    set(&mut basis, "newbrief", json!(f.get("brief")));
                    set(&mut basis, "brief", json!(existing));
                    Some(("LegalBasisUpdate", basis))
                }
            }
        },
        "basis",
    )
    .await
}

#[handler]
async fn activity_create(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    consent_write(
        state,
        portal,
        req,
        jar,
        body,
        |f| {
            let mut activity = json!({
                "activity": f.get("activity"),
                "title": f.get("title"),
                "fulldesc": f.get("fulldesc"),
                "applicableto": f.get("applicableto"),
            });
            match f.get("existing") {
                "" => Some(("ProcessingActivityCreate", activity)),
                existing => {
                    set(&mut activity, "newactivity", json!(f.get("activity")));
                    set(&mut activity, "activity", json!(existing));
                    Some(("ProcessingActivityUpdate", activity))
                }
            }
        },
        "activity",
    )
    .await
}

#[handler]
async fn link(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    consent_write(
        state,
        portal,
        req,
        jar,
        body,
        |f| {
            let command = match f.get("change") {
                "link" => "ProcessingActivityLinkLegalBasis",
                "unlink" => "ProcessingActivityUnlinkLegalBasis",
                _ => return None,
            };
            Some((
                command,
                json!({"activity": f.get("activity"), "brief": f.get("brief")}),
            ))
        },
        "linked",
    )
    .await
}

#[handler]
async fn system(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "System", "/admin/system", &signed);
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "SystemGetSystemStats",
            json!({}),
        )
        .await
    {
        Ok(answer) => {
            let stats = answer.get("stats").cloned().unwrap_or(Value::Null);
            let values: Vec<(String, i64)> = stats
                .as_object()
                .map(|map| {
                    map.iter()
                        .filter(|(k, _)| k.starts_with("num") || k.starts_with("total"))
                        .filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n)))
                        .collect()
                })
                .unwrap_or_default();
            page.sections.push(Section::new(
                "What is stored",
                vec![Block::Chart(Chart::bars(
                    "Records by kind (counters kept on every write)",
                    &values,
                ))],
            ));
            // Key status, for those the statistics are for (admins): versions and the wrapping,
            // never a key.
            let ring = state.keys.keyring.get();
            let versions = ring
                .versions()
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            page.sections.push(Section::new(
                "Keys",
                vec![Block::Facts(vec![
                    (
                        "Master key versions held (newest first)".to_owned(),
                        versions,
                    ),
                    (
                        "New values are sealed with version".to_owned(),
                        ring.current().version().to_string(),
                    ),
                    (
                        "The master key is wrapped by".to_owned(),
                        state.keys.wrapping.to_owned(),
                    ),
                ])],
            ));
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    render(&page)
}

/// `value`, or `default` when it is empty.
fn or(value: String, default: &str) -> String {
    match value.is_empty() {
        true => default.to_owned(),
        false => value,
    }
}

/// The Unix time at which the day `day` (`YYYY-MM-DD`, UTC) plus `next` days starts; none when no
/// day is given.
fn day_start(day: &str, next: i64) -> Option<Result<i64, ()>> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match day.trim() {
        "" => None,
        day => Some(
            time::Date::parse(day, &format)
                .map(|date| date.midnight().assume_utc().unix_timestamp() + next * 86_400)
                .map_err(|_| ()),
        ),
    }
}

fn with_unlock(mut body: Value, unlock: String) -> Value {
    set(&mut body, "unlockuuid", json!(unlock));
    body
}
