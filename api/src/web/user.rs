//! The privacy portal at `/`: a data subject signs in with a code sent to their e-mail address, and
//! sees and manages what the tenant holds about them. Every action is the `/v2` command a user token
//! may call: a change the tenant does not let users make alone becomes a request for the DPO.

use std::sync::Arc;

use bunker_services::access::Command;
use bunker_services::portal::PortalKind;
use poem::endpoint::BoxEndpoint;
use poem::http::{header, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::Data;
use poem::{handler, Body, EndpointExt, Request, Response};
use serde_json::{json, Map, Value};

use super::page::{
    self, rows, time_of, Block, Cell, Form, Image, Input, Link, Page, Row, Section, Table,
};
use super::{
    forged, limited, login_csrf, nav, notice_of, query, render, same_origin_post, see_other,
    sign_in, sign_out, signed, simple, unavailable, Fields, Portal, Signed, Visit,
};
use crate::http::app::AppState;

/// The session cookie of the privacy portal.
pub const COOKIE: &str = "bunker_user";
/// The sign-in form's CSRF cookie.
const LOGIN_COOKIE: &str = "bunker_user_login";

pub const PATHS: &[&str] = &[
    "/",
    "/login",
    "/login/code",
    "/signout",
    "/profile",
    "/consents",
    "/consents/withdraw",
    "/requests",
    "/activity",
    "/data",
    "/file",
    "/forget",
    "/report.json",
    "/report.html",
];

pub fn routes() -> Vec<(&'static str, BoxEndpoint<'static>)> {
    vec![
        ("/", poem::get(home).boxed()),
        ("/login", poem::post(login).boxed()),
        ("/login/code", poem::post(code).boxed()),
        ("/signout", poem::post(signout).boxed()),
        ("/profile", poem::post(profile).boxed()),
        ("/consents", poem::get(consents).boxed()),
        ("/consents/withdraw", poem::post(withdraw).boxed()),
        ("/requests", poem::get(requests).boxed()),
        ("/activity", poem::get(activity).boxed()),
        ("/data", poem::get(data).boxed()),
        ("/file", poem::get(file).boxed()),
        ("/forget", poem::post(forget).boxed()),
        ("/report.json", poem::get(report_json).boxed()),
        ("/report.html", poem::get(report_html).boxed()),
    ]
}

const NAV: &[(&str, &str)] = &[
    ("/", "Profile"),
    ("/consents", "Consents"),
    ("/requests", "Requests"),
    ("/activity", "Activity"),
    ("/data", "Your data"),
];

const NOTICES: &[(&str, &str)] = &[
    ("saved", "Your profile is saved."),
    (
        "requested",
        "Your change is sent to the data protection officer, who approves it before it applies. You can follow it under Requests.",
    ),
    ("unchanged", "Nothing was changed."),
    ("withdrawn", "Your consent is withdrawn."),
    (
        "withdrawal-requested",
        "Your withdrawal is sent to the data protection officer. You can follow it under Requests.",
    ),
    (
        "forget-requested",
        "Your request to be forgotten is sent to the data protection officer. You can follow it under Requests.",
    ),
];

fn base_page(visit: &Visit, title: &str, current: &str, signed: &Signed) -> Page {
    Page {
        brand: visit.brand.clone(),
        portal: "Privacy portal",
        base: "",
        title: title.to_owned(),
        nav: nav(NAV, current),
        signed_in: true,
        csrf: signed.csrf.clone(),
        notice: None,
        problem: None,
        sections: Vec::new(),
        footer: format!(
            "What {} holds about you, and what you can do about it. Every visit is recorded in your activity.",
            visit.brand
        ),
    }
}

/// The signed-in user, or the sign-in page.
async fn session(
    state: &AppState,
    req: &Request,
    jar: &CookieJar,
) -> Result<(Visit, Option<Signed>), Response> {
    let visit = Visit::of(state, req).await?;
    let signed = signed(state, &visit, jar, PortalKind::User, COOKIE).await?;
    Ok((visit, signed))
}

/// The identity the user's commands name: their own token.
fn me(signed: &Signed) -> Value {
    json!({"mode": "token", "identity": signed.user.map(|u| u.to_string()).unwrap_or_default()})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The sign-in page: an e-mail address and a captcha.
async fn login_page(
    state: &Arc<AppState>,
    portal: &Portal,
    visit: &Visit,
    jar: &CookieJar,
    problem: Option<String>,
    email: &str,
) -> Response {
    let csrf = login_csrf(jar, LOGIN_COOKIE);
    let mut page = Page {
        brand: visit.brand.clone(),
        portal: "Privacy portal",
        base: "",
        title: "Sign in".to_owned(),
        nav: Vec::new(),
        signed_in: false,
        csrf,
        notice: None,
        problem,
        sections: Vec::new(),
        footer: format!(
            "Sign in to see what {} holds about you. No password: a six-digit code is sent to you.",
            visit.brand
        ),
    };
    // The page mints a captcha: it spends the address's public limit as CaptchaCreate does.
    if let Err(refusal) = state
        .limits
        .check_address(visit.address, Some(Command::CaptchaCreate))
    {
        page.problem = Some(refusal.message());
        return limited(render(&page), &refusal);
    }
    match portal
        .call(state, visit, None, "CaptchaCreate", json!({}))
        .await
    {
        Ok(captcha) => {
            let identity = match (visit.login_email, visit.login_phone) {
                (true, true) => Input::new(
                    "text",
                    "identity",
                    "Your e-mail address or phone number",
                    email,
                )
                .autocomplete("username"),
                (false, true) => {
                    Input::new("tel", "identity", "Your phone number", email).autocomplete("tel")
                }
                _ => Input::new("email", "identity", "Your e-mail address", email)
                    .autocomplete("email"),
            };
            let form = Form::post("login", "/login", "Send me a code")
                .hidden("captcha", page::field(&captcha, "code"))
                .input(identity.required().autofocus())
                .input(
                    Input::new("text", "answer", "The letters in the picture", "")
                        .required()
                        .autocomplete("off"),
                );
            page.sections.push(Section::new(
                "Sign in with your e-mail address",
                vec![
                    Block::Text(
                        "Type the letters the picture shows, so that we know a person is asking. If you cannot read them, reload the page for a new picture, or ask the data protection officer to help you."
                            .to_owned(),
                    ),
                    Block::Image(Image {
                        src: page::field(&captcha, "image"),
                        alt: "A picture of letters to type (a captcha); reload the page for another".to_owned(),
                        width: 220,
                        height: 120,
                    }),
                    Block::Form(form),
                ],
            ));
        }
        Err(refused) if refused.status == StatusCode::FORBIDDEN => {
            page.sections.push(Section::new(
                "Sign-in is not available",
                vec![Block::Text(
                    "This service has not turned on sign-in by e-mail. Contact its data protection officer to reach your data."
                        .to_owned(),
                )],
            ));
        }
        Err(refused) => {
            page.problem = Some(refused.message);
        }
    }
    render(&page)
}

/// The page asking for the code that was sent.
fn code_page(visit: &Visit, jar: &CookieJar, email: &str, problem: Option<String>) -> Response {
    let csrf = login_csrf(jar, LOGIN_COOKIE);
    let form = Form::post("code", "/login/code", "Sign in")
        .hidden("identity", email)
        .input(
            Input::new("text", "code", "The six-digit code", "")
                .required()
                .autocomplete("one-time-code")
                .autofocus(),
        );
    let page = Page {
        brand: visit.brand.clone(),
        portal: "Privacy portal",
        base: "",
        title: "Check your e-mail".to_owned(),
        nav: Vec::new(),
        signed_in: false,
        csrf,
        notice: problem.is_none().then(|| {
            "If this belongs to an account here, a six-digit code is on its way. It works once, for five minutes.".to_owned()
        }),
        problem,
        sections: vec![Section::new(
            "Type the code",
            vec![
                Block::Form(form),
                Block::Links(vec![Link {
                    href: "/".to_owned(),
                    label: "Start again (a new code)".to_owned(),
                    download: false,
                }]),
            ],
        )],
        footer: String::new(),
    };
    render(&page)
}

/// How an identity typed at sign-in is looked up: an e-mail address has an `@`, a phone number not.
fn mode_of(identity: &str) -> &'static str {
    if identity.contains('@') {
        "email"
    } else {
        "phone"
    }
}

fn login_cookie_matches(req: &Request, jar: &CookieJar, fields: &Fields) -> bool {
    let expected = jar
        .get(LOGIN_COOKIE)
        .map(|c| c.value_str().to_owned())
        .unwrap_or_default();
    same_origin_post(req, fields, &expected)
}

#[handler]
async fn home(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(signed) = signed else {
        return login_page(state, portal, &visit, jar, None, "").await;
    };
    let mut page = base_page(&visit, "Your profile", "/", &signed);
    page.notice = notice_of(req, NOTICES);
    match portal
        .call(state, &visit, Some(&signed.token), "UserGet", me(&signed))
        .await
    {
        Ok(user) => {
            let held = user.get("profile").cloned().unwrap_or(Value::Null);
            page.sections.push(Section::new(
                "What is held about you",
                vec![Block::Facts(page::facts(&held))],
            ));
            let mut form = Form::post("profile", "/profile", "Save changes");
            if let Some(fields) = held.as_object() {
                for (name, value) in fields.iter().take(50) {
                    if let Value::String(_) | Value::Number(_) = value {
                        let kind = if name == "email" { "email" } else { "text" };
                        form = form.input(Input::new(
                            kind,
                            format!("f.{name}"),
                            name.clone(),
                            page::text(value),
                        ));
                    }
                }
            }
            page.sections.push(Section::new(
                "Correct your details",
                vec![
                    Block::Text(
                        "Change what is wrong. Where the service asks for it, a change is approved by its data protection officer first."
                            .to_owned(),
                    ),
                    Block::Form(form),
                ],
            ));
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    render(&page)
}

#[handler]
async fn login(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let visit = match Visit::of(state, req).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let fields = match Fields::read(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    if !login_cookie_matches(req, jar, &fields) {
        return forged();
    }
    let email = fields.get("identity").trim().to_owned();
    let answer = portal
        .call(
            state,
            &visit,
            None,
            "UserPrelogin",
            json!({
                "mode": mode_of(&email),
                "identity": email,
                "code": fields.get("captcha"),
                "captchacode": fields.get("answer"),
            }),
        )
        .await;
    match answer {
        Ok(_) => code_page(&visit, jar, &email, None),
        Err(refused) if refused.message == "captcha-error" => {
            login_page(
                state,
                portal,
                &visit,
                jar,
                Some("The letters did not match the picture. Try this new one.".to_owned()),
                &email,
            )
            .await
        }
        Err(refused) => login_page(state, portal, &visit, jar, Some(refused.message), &email).await,
    }
}

#[handler]
async fn code(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let visit = match Visit::of(state, req).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let fields = match Fields::read(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    if !login_cookie_matches(req, jar, &fields) {
        return forged();
    }
    let email = fields.get("identity").trim().to_owned();
    let answer = portal
        .call(
            state,
            &visit,
            None,
            "UserLogin",
            json!({"mode": mode_of(&email), "identity": email, "smscode": fields.get("code")}),
        )
        .await;
    let granted = match answer {
        Ok(granted) => granted,
        Err(refused) => return code_page(&visit, jar, &email, Some(refused.message)),
    };
    let (Some(tenant), Some(xtoken), Some(user)) = (
        visit.tenant,
        granted.get("xtoken").and_then(Value::as_str),
        granted
            .get("token")
            .and_then(Value::as_str)
            .and_then(|t| uuid::Uuid::parse_str(t).ok()),
    ) else {
        return unavailable();
    };
    if let Err(response) = sign_in(
        state,
        jar,
        tenant,
        PortalKind::User,
        COOKIE,
        Some(user),
        xtoken,
    )
    .await
    {
        return response;
    }
    super::clear(jar, LOGIN_COOKIE);
    see_other("/")
}

/// A POST of a signed-in user: the session and the form, or the answer to give instead.
async fn signed_post(
    state: &AppState,
    req: &Request,
    jar: &CookieJar,
    body: Body,
) -> Result<(Visit, Signed, Fields), Response> {
    let (visit, signed) = session(state, req, jar).await?;
    let fields = Fields::read(body).await?;
    let Some(signed) = signed else {
        return Err(see_other("/"));
    };
    if !same_origin_post(req, &fields, &signed.csrf) {
        return Err(forged());
    }
    Ok((visit, signed, fields))
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
            see_other("/")
        }
        Err(response) => response,
    }
}

#[handler]
async fn profile(
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
    let current = match portal
        .call(state, &visit, Some(&signed.token), "UserGet", me(&signed))
        .await
    {
        Ok(user) => user.get("profile").cloned().unwrap_or(Value::Null),
        Err(refused) => return problem_page(&visit, &signed, "/", refused.message),
    };
    // Only what changed is sent, and only the fields the form shows (text and numbers), each
    // value as the kind it was: a number stays a number.
    let mut change = Map::new();
    for (name, value) in fields.prefixed("f.") {
        let after = match current.get(name) {
            Some(Value::String(_)) => Value::String(value.to_owned()),
            Some(Value::Number(_)) => match value.trim().parse::<serde_json::Number>() {
                Ok(number) => Value::Number(number),
                Err(_) => {
                    return problem_page(&visit, &signed, "/", format!("{name} must be a number."))
                }
            },
            _ => continue,
        };
        let before = current.get(name).unwrap_or(&Value::Null);
        if &after != before {
            change.insert(name.to_owned(), after);
        }
    }
    if change.is_empty() {
        return see_other("/?done=unchanged");
    }
    let direct = match visit.tenant {
        Some(tenant) => state
            .vault
            .self_service(tenant)
            .await
            .map(|s| s.user_change)
            .unwrap_or(false),
        None => false,
    };
    let (command, done) = if direct {
        ("UserUpdate", "saved")
    } else {
        ("UserUpdateRequest", "requested")
    };
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            command,
            with(me(&signed), json!({"profile": change})),
        )
        .await
    {
        Ok(_) => see_other(&format!("/?done={done}")),
        Err(refused) => problem_page(&visit, &signed, "/", refused.message),
    }
}

/// A page saying what went wrong, with the navigation.
fn problem_page(visit: &Visit, signed: &Signed, current: &str, message: String) -> Response {
    let mut page = base_page(visit, "That did not work", current, signed);
    page.problem = Some(message);
    let mut response = render(&page);
    response.set_status(StatusCode::BAD_REQUEST);
    response
}

#[handler]
async fn consents(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Your consents", "/consents", &signed);
    page.notice = notice_of(req, NOTICES);
    let mut table = Table::new(
        &["Purpose", "Status", "Given", "Until"],
        "You have given no consents here.",
    );
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "AgreementListUserAgreements",
            me(&signed),
        )
        .await
    {
        Ok(list) => {
            for (i, row) in rows(&list, "rows").iter().enumerate() {
                let brief = page::field(row, "brief");
                let status = page::field(row, "status");
                let mut actions = Vec::new();
                if status == "yes" {
                    actions.push(
                        Form::post(format!("withdraw{i}"), "/consents/withdraw", "Withdraw")
                            .hidden("brief", brief.clone())
                            .danger(),
                    );
                }
                table.rows.push(Row {
                    cells: vec![
                        Cell::from(brief),
                        Cell::from(status),
                        Cell::from(time_of(row, "starttime")),
                        Cell::from(time_of(row, "finaltime")),
                    ],
                    actions,
                });
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    page.sections.push(Section::new(
        "What you agreed to",
        vec![
            Block::Text(
                "Withdrawing applies at once where the service lets you decide alone; otherwise its data protection officer confirms it."
                    .to_owned(),
            ),
            Block::Table(table),
        ],
    ));
    render(&page)
}

#[handler]
async fn withdraw(
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
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "AgreementCancel",
            with(me(&signed), json!({"brief": fields.get("brief")})),
        )
        .await
    {
        Ok(answer) if page::field(&answer, "result") == "done" => {
            see_other("/consents?done=withdrawn")
        }
        Ok(_) => see_other("/consents?done=withdrawal-requested"),
        Err(refused) => problem_page(&visit, &signed, "/consents", refused.message),
    }
}

#[handler]
async fn requests(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Your requests", "/requests", &signed);
    let mut table = Table::new(
        &["Asked", "What", "Status", "Decided"],
        "You have made no requests.",
    );
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "UserRequestListUserRequests",
            with(me(&signed), json!({"limit": 100})),
        )
        .await
    {
        Ok(list) => {
            for row in rows(&list, "rows") {
                table.rows.push(Row {
                    cells: vec![
                        Cell::from(time_of(row, "creationtime")),
                        Cell::from(request_kind(&page::field(row, "requesttype"))),
                        Cell::from(page::field(row, "status")),
                        Cell::from(time_of(row, "decisiontime")),
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    page.sections.push(Section::new(
        "Changes waiting for the data protection officer, and decided",
        vec![Block::Table(table)],
    ));
    render(&page)
}

/// A request's type in words.
pub fn request_kind(kind: &str) -> String {
    match kind {
        "change-profile" | "patch-profile" => "Change of profile",
        "forget-me" => "Forget me",
        "change-app-data" => "Change of app data",
        "withdraw-consent" => "Withdrawal of consent",
        other => other,
    }
    .to_owned()
}

#[handler]
async fn activity(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Who touched your data", "/activity", &signed);
    let mut table = Table::new(&["When (UTC)", "What"], "Nothing recorded yet.");
    match portal
        .call(
            state,
            &visit,
            Some(&signed.token),
            "AuditListUserEvents",
            with(me(&signed), json!({"limit": 100})),
        )
        .await
    {
        Ok(list) => {
            for row in rows(&list, "rows") {
                table.rows.push(Row {
                    cells: vec![
                        Cell::from(page::field(row, "timestamp")),
                        Cell::from(page::field(row, "eventtype")),
                    ],
                    actions: Vec::new(),
                });
            }
        }
        Err(refused) => page.problem = Some(refused.message),
    }
    page.sections.push(Section::new(
        "Every read and change of your record, newest first",
        vec![Block::Table(table)],
    ));
    render(&page)
}

#[handler]
async fn data(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let mut page = base_page(&visit, "Your data", "/data", &signed);
    page.notice = notice_of(req, NOTICES);
    let token = Some(signed.token.as_str());
    let mut apps = Table::new(&["Application"], "No application keeps data about you.");
    if let Ok(list) = portal
        .call(state, &visit, token, "AppdataListUserAppNames", me(&signed))
        .await
    {
        for app in rows(&list, "apps") {
            apps.rows.push(Row {
                cells: vec![Cell::from(page::text(app))],
                actions: Vec::new(),
            });
        }
    }
    let mut sessions = Table::new(&["Session", "Expires"], "No sessions.");
    if let Ok(list) = portal
        .call(state, &visit, token, "SessionListUserSessions", me(&signed))
        .await
    {
        for row in rows(&list, "rows") {
            sessions.rows.push(Row {
                cells: vec![
                    Cell::from(page::field(row, "sessionuuid")),
                    Cell::from(time_of(row, "expirationtime")),
                ],
                actions: Vec::new(),
            });
        }
    }
    let mut files = Table::new(&["File", "Type", "Size (bytes)"], "No files.");
    if let Ok(list) = portal
        .call(state, &visit, token, "FileListUserFiles", me(&signed))
        .await
    {
        for (n, row) in rows(&list, "files").iter().enumerate() {
            let download = Form::get(format!("file{n}"), "/file", "Download")
                .hidden("id", page::field(row, "fileuuid"))
                .whole_page();
            files.rows.push(Row {
                cells: vec![
                    Cell::from(page::field(row, "filename")),
                    Cell::from(page::field(row, "mimetype")),
                    Cell::from(page::field(row, "size")),
                ],
                actions: vec![download],
            });
        }
    }
    let mut shared = Table::new(
        &["Shared with", "What", "Since", "Until"],
        "Nothing of yours is shared.",
    );
    // The report's list: who holds a link to part of the record, never the link itself.
    if let Ok(report) = portal
        .call(state, &visit, token, "SystemGetUserReport", me(&signed))
        .await
    {
        let records = report.get("report").unwrap_or(&Value::Null);
        for row in rows(records, "sharedrecords") {
            let what = match (row.get("appname"), row.get("fields")) {
                (Some(Value::String(app)), _) => format!("the data of {app}"),
                (_, Some(Value::Array(fields))) => {
                    fields.iter().map(page::text).collect::<Vec<_>>().join(", ")
                }
                _ => "your whole profile".to_owned(),
            };
            shared.rows.push(Row {
                cells: vec![
                    Cell::from(page::field(row, "partner")),
                    Cell::from(what),
                    Cell::from(time_of(row, "created")),
                    Cell::from(time_of(row, "expires")),
                ],
                actions: Vec::new(),
            });
        }
    }
    page.sections.push(Section::new(
        "Download everything held about you",
        vec![Block::Links(vec![
            Link {
                href: "/report.html".to_owned(),
                label: "Your data as a page to read or print (HTML)".to_owned(),
                download: true,
            },
            Link {
                href: "/report.json".to_owned(),
                label: "Your data for another service (JSON)".to_owned(),
                download: true,
            },
        ])],
    ));
    page.sections
        .push(Section::new("App data", vec![Block::Table(apps)]));
    page.sections
        .push(Section::new("Sessions", vec![Block::Table(sessions)]));
    page.sections
        .push(Section::new("Files", vec![Block::Table(files)]));
    page.sections
        .push(Section::new("Shared records", vec![Block::Table(shared)]));
    let mut forget_form = Form::post("forget", "/forget", "Forget me").danger();
    forget_form.confirm = Some("This asks for everything about you to be deleted.".to_owned());
    page.sections.push(Section::new(
        "Ask to be forgotten",
        vec![
            Block::Text(
                "Everything held about you is deleted and cannot be recovered. Where the service asks for it, its data protection officer confirms it first."
                    .to_owned(),
            ),
            Block::Form(forget_form),
        ],
    ));
    render(&page)
}

/// One of the user's files, as FileGet answers its bytes (`attachment`, its type, `nosniff` and a
/// `sandbox` policy beside the portal's).
#[handler]
async fn file(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let body = with(
        me(&signed),
        json!({"fileuuid": query(req, "id"), "raw": true}),
    );
    match portal
        .answer(state, &visit, Some(&signed.token), "FileGet", body)
        .await
    {
        Ok(answer) => answer,
        Err(refused) => problem_page(&visit, &signed, "/data", refused.message),
    }
}

#[handler]
async fn forget(
    req: &Request,
    jar: &CookieJar,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    let (visit, signed, _) = match signed_post(state, req, jar, body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let direct = match visit.tenant {
        Some(tenant) => state
            .vault
            .self_service(tenant)
            .await
            .map(|s| s.forget_me)
            .unwrap_or(false),
        None => false,
    };
    let command = if direct {
        "UserDelete"
    } else {
        "UserDeleteRequest"
    };
    match portal
        .call(state, &visit, Some(&signed.token), command, me(&signed))
        .await
    {
        Ok(_) if direct => {
            sign_out(state, jar, &signed, COOKIE).await;
            simple(
                StatusCode::OK,
                "You are forgotten: everything held about you is deleted.",
            )
        }
        Ok(_) => see_other("/data?done=forget-requested"),
        Err(refused) => problem_page(&visit, &signed, "/data", refused.message),
    }
}

/// A download of the user's report.
async fn report(
    state: &Arc<AppState>,
    portal: &Portal,
    req: &Request,
    jar: &CookieJar,
    html: bool,
) -> Response {
    let (visit, signed) = match session(state, req, jar).await {
        Ok((visit, Some(signed))) => (visit, signed),
        Ok(_) => return see_other("/"),
        Err(response) => return response,
    };
    let command = if html {
        "SystemGetUserHTMLReport"
    } else {
        "SystemGetUserReport"
    };
    let answer = match portal
        .call(state, &visit, Some(&signed.token), command, me(&signed))
        .await
    {
        Ok(answer) => answer,
        Err(refused) => return problem_page(&visit, &signed, "/data", refused.message),
    };
    let (body, content_type, name) = if html {
        (
            page::field(&answer, "html"),
            "text/html; charset=utf-8",
            "my-data.html",
        )
    } else {
        (
            serde_json::to_string_pretty(answer.get("report").unwrap_or(&Value::Null))
                .unwrap_or_default(),
            "application/json",
            "my-data.json",
        )
    };
    if body.is_empty() {
        return unavailable();
    }
    Response::builder()
        .content_type(content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
}

#[handler]
async fn report_json(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    report(state, portal, req, jar, false).await
}

#[handler]
async fn report_html(
    req: &Request,
    jar: &CookieJar,
    Data(state): Data<&Arc<AppState>>,
    Data(portal): Data<&Arc<Portal>>,
) -> Response {
    report(state, portal, req, jar, true).await
}
