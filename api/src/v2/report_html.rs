//! SystemGetUserHTMLReport's page: the report as a self-contained HTML document for the person it
//! is about. Rendered by askama from `web/templates/report.html` (values escaped by the engine),
//! inline CSS, no script, no request to anywhere (its own Content-Security-Policy says so).

use askama::Template;
use bunker_services::system::report::UserReport;
use serde_json::{Map, Value};

/// One line of a card: a name and its value, or (no value) the heading of what is nested under it.
pub struct Line {
    pub depth: usize,
    pub name: String,
    pub value: Option<String>,
}

impl Line {
    /// The indentation of the line's depth.
    pub fn class(&self) -> &'static str {
        match self.depth {
            0 => "",
            1 => "d1",
            2 => "d2",
            3 => "d3",
            _ => "deep",
        }
    }
}

/// A titled group of lines: a profile, a version, an app's data, an agreement, a file, ...
pub struct Card {
    pub title: String,
    pub lines: Vec<Line>,
}

/// A part of the report.
pub struct Part {
    pub title: &'static str,
    /// What the part is, for the reader.
    pub about: &'static str,
    pub cards: Vec<Card>,
}

/// One row of the audit table.
pub struct Event {
    pub time: String,
    pub who: String,
    pub action: String,
    pub fields: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    tenant: &'a str,
    token: String,
    generated: String,
    parts: Vec<Part>,
    events: Option<Vec<Event>>,
    events_total: i64,
    omitted: Vec<&'static str>,
}

/// The page for `report`.
pub fn render(report: &UserReport) -> Result<String, askama::Error> {
    let mut parts = Vec::new();
    let mut kept = match report.expiration.expirationtime {
        Some(at) => format!(", kept until {}", when(at)),
        None => String::new(),
    };
    if let (Some("wait"), Some(at)) = (
        report.expiration.expstatus.as_deref(),
        report.expiration.exptime,
    ) {
        kept.push_str(&format!(
            ", to be deleted on {} unless you keep it",
            when(at)
        ));
    }
    parts.push(Part {
        title: "Your profile",
        about: "What is stored about you now.",
        cards: vec![Card {
            title: format!("Profile (version {}{kept})", report.version),
            lines: lines(&report.profile, 0),
        }],
    });
    if let Some(versions) = &report.versions {
        parts.push(Part {
            title: "Earlier versions",
            about: "Each kept version of your profile, newest last.",
            cards: versions
                .iter()
                .map(|v| Card {
                    title: format!("Version {} of {}", v.version, when(v.time)),
                    lines: lines(&v.profile, 0),
                })
                .collect(),
        });
    }
    if let Some(apps) = &report.appdata {
        parts.push(Part {
            title: "Data of applications",
            about: "What each application keeps about you.",
            cards: apps
                .iter()
                .map(|a| Card {
                    title: a.appname.clone(),
                    lines: lines(&a.data, 0),
                })
                .collect(),
        });
    }
    if let Some(agreements) = &report.agreements {
        parts.push(Part {
            title: "Consents",
            about: "What you agreed to or refused, and every change of it.",
            cards: agreements
                .iter()
                .map(|a| {
                    let mut l = vec![line(0, "Status", a.status.clone())];
                    push_opt(&mut l, "How", a.agreementmethod.as_deref());
                    push_opt(&mut l, "Reference", a.referencecode.as_deref());
                    push_opt(&mut l, "Last changed by", a.lastmodifiedby.as_deref());
                    if let Some(at) = a.starttime {
                        l.push(line(0, "From", when(at)));
                    }
                    if let Some(at) = a.finaltime {
                        l.push(line(0, "Until", when(at)));
                    }
                    l.push(line(0, "Recorded", when(a.creationtime)));
                    if !a.history.is_empty() {
                        l.push(heading(0, "Changes"));
                        for change in &a.history {
                            l.push(line(1, &moment(&change.time), change.event.clone()));
                        }
                    }
                    Card {
                        title: a.brief.clone(),
                        lines: l,
                    }
                })
                .collect(),
        });
    }
    if let Some(requests) = &report.requests {
        parts.push(Part {
            title: "Your requests",
            about: "Changes and deletions asked for, open and closed.",
            cards: requests
                .iter()
                .map(|r| {
                    let mut l = vec![
                        line(0, "Status", r.status.clone()),
                        line(0, "Asked", when(r.created)),
                    ];
                    if let Some(at) = r.decided {
                        l.push(line(0, "Decided", when(at)));
                    }
                    push_opt(&mut l, "Application", r.appname.as_deref());
                    push_opt(&mut l, "Consent", r.brief.as_deref());
                    push_opt(&mut l, "Reason", r.reason.as_deref());
                    if let Some(change) = &r.change {
                        l.push(heading(0, "Change asked for"));
                        l.extend(value_lines(change, 1));
                    }
                    Card {
                        title: r.kind.replace('-', " "),
                        lines: l,
                    }
                })
                .collect(),
        });
    }
    if let Some(sessions) = &report.sessions {
        parts.push(Part {
            title: "Sessions",
            about: "What applications keep for your sessions with them.",
            cards: sessions
                .iter()
                .map(|s| Card {
                    title: format!("Session until {}", when(s.expires)),
                    lines: lines(&s.data, 0),
                })
                .collect(),
        });
    }
    if let Some(records) = &report.sharedrecords {
        parts.push(Part {
            title: "Shared with others",
            about: "Links that let a partner read part of your data, while they last.",
            cards: records
                .iter()
                .map(|r| {
                    let shared = match (&r.fields, &r.appname) {
                        (Some(fields), _) => fields.join(", "),
                        (None, Some(app)) => format!("the data of {app}"),
                        (None, None) => "your whole profile".to_owned(),
                    };
                    let mut l = vec![line(0, "Shares", shared)];
                    push_opt(&mut l, "Application", r.appname.as_deref());
                    l.push(line(0, "Made", when(r.created)));
                    l.push(line(0, "Ends", when(r.expires)));
                    Card {
                        title: r.partner.clone().unwrap_or_else(|| "A partner".to_owned()),
                        lines: l,
                    }
                })
                .collect(),
        });
    }
    if let Some(files) = &report.files {
        parts.push(Part {
            title: "Files",
            about: "Documents kept for you (their content is not in this report).",
            cards: files
                .iter()
                .map(|f| {
                    let mut l = vec![
                        line(0, "Type", f.mimetype.clone()),
                        line(0, "Size", format!("{} bytes", f.size)),
                        line(0, "Stored", when(f.created)),
                    ];
                    if !f.tags.is_empty() {
                        l.push(line(0, "Tags", f.tags.join(", ")));
                    }
                    Card {
                        title: f.filename.clone(),
                        lines: l,
                    }
                })
                .collect(),
        });
    }
    if let Some(groups) = &report.groups {
        parts.push(Part {
            title: "Groups",
            about: "The groups you belong to, and your role in each.",
            cards: groups
                .iter()
                .map(|g| {
                    let mut l = Vec::new();
                    if !g.description.is_empty() {
                        l.push(line(0, "About", g.description.clone()));
                    }
                    push_opt(&mut l, "Role", g.role.as_deref());
                    Card {
                        title: g.group.clone(),
                        lines: l,
                    }
                })
                .collect(),
        });
    }
    let events = report.audit.as_ref().map(|audit| {
        audit
            .events
            .iter()
            .map(|e| Event {
                time: e
                    .time
                    .replace('T', " ")
                    .chars()
                    .take(19)
                    .collect::<String>()
                    + " UTC",
                who: who(&e.actor, e.partner.as_deref()),
                action: e.action.clone(),
                fields: e.fields.join(", "),
            })
            .collect()
    });
    Page {
        tenant: &report.tenant,
        token: report.token.clone(),
        generated: when(report.generated),
        parts,
        events,
        events_total: report.audit.as_ref().map_or(0, |a| a.total),
        omitted: report.omitted.clone(),
    }
    .render()
}

/// Who acted, in words.
fn who(actor: &str, partner: Option<&str>) -> String {
    match (actor, partner) {
        ("root", _) | ("tenant_admin", _) => "An administrator".to_owned(),
        ("role", _) => "An application".to_owned(),
        ("user", _) => "You (or an application signed in as you)".to_owned(),
        ("system", _) => "Bunker (retention rules)".to_owned(),
        ("operator", _) => "An operator (key management)".to_owned(),
        ("shared_record", Some(partner)) => format!("{partner} (through a shared link)"),
        ("shared_record", None) => "A partner (through a shared link)".to_owned(),
        ("expiration_link", _) => "You, through the link about your data's expiry".to_owned(),
        (other, _) => other.to_owned(),
    }
}

/// An RFC 3339 time of the trail (`2026-12-02T01:56:53.390911Z`), to the second, in UTC.
fn moment(rfc3339: &str) -> String {
    let second: String = rfc3339.replace('T', " ").chars().take(19).collect();
    format!("{second} UTC")
}

/// A Unix time, in UTC.
fn when(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn line(depth: usize, name: &str, value: String) -> Line {
    Line {
        depth,
        name: name.to_owned(),
        value: Some(value),
    }
}

fn heading(depth: usize, name: &str) -> Line {
    Line {
        depth,
        name: name.to_owned(),
        value: None,
    }
}

fn push_opt(lines: &mut Vec<Line>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        lines.push(line(0, name, value.to_owned()));
    }
}

/// The lines of an object, nested objects and arrays indented under their names.
fn lines(map: &Map<String, Value>, depth: usize) -> Vec<Line> {
    let mut out = Vec::new();
    for (name, value) in map {
        push_value(&mut out, name, value, depth);
    }
    out
}

fn value_lines(value: &Value, depth: usize) -> Vec<Line> {
    match value {
        Value::Object(map) => lines(map, depth),
        other => {
            let mut out = Vec::new();
            push_value(&mut out, "", other, depth);
            out
        }
    }
}

fn push_value(out: &mut Vec<Line>, name: &str, value: &Value, depth: usize) {
    match value {
        Value::Object(map) => {
            out.push(heading(depth, name));
            out.extend(lines(map, depth + 1));
        }
        Value::Array(items) => {
            out.push(heading(depth, name));
            for (i, item) in items.iter().enumerate() {
                push_value(out, &format!("{}", i + 1), item, depth + 1);
            }
        }
        Value::String(text) => out.push(line(depth, name, text.clone())),
        Value::Null => out.push(line(depth, name, "(empty)".to_owned())),
        other => out.push(line(depth, name, other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_are_indented_under_their_names() {
        let Value::Object(map) =
            json!({"name": "Jane", "address": {"city": "Leeds"}, "tags": ["a"]})
        else {
            unreachable!()
        };
        let got: Vec<(usize, String, Option<String>)> = lines(&map, 0)
            .into_iter()
            .map(|l| (l.depth, l.name, l.value))
            .collect();
        assert!(got.contains(&(0, "address".into(), None)));
        assert!(got.contains(&(1, "city".into(), Some("Leeds".into()))));
        assert!(got.contains(&(1, "1".into(), Some("a".into()))));
        assert!(got.contains(&(0, "name".into(), Some("Jane".into()))));
    }
}
