//! What a portal page shows, rendered by askama from `web/templates/portal/page.html` (every value
//! escaped by the engine; no page carries script or style of its own, so the CSP forbids both).

use askama::Template;
use serde_json::Value;

/// A page: sections of blocks.
#[derive(Template)]
#[template(path = "portal/page.html")]
pub struct Page {
    /// The tenant's title, else its name.
    pub brand: String,
    /// `Privacy portal` or `DPO portal`.
    pub portal: &'static str,
    /// `` (the user portal) or `/admin`.
    pub base: &'static str,
    pub title: String,
    pub nav: Vec<NavItem>,
    pub signed_in: bool,
    /// The session's CSRF token (the login form's, before a session).
    pub csrf: String,
    pub notice: Option<String>,
    pub problem: Option<String>,
    pub sections: Vec<Section>,
    pub footer: String,
}

pub struct NavItem {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Section {
    pub fn new(title: impl Into<String>, blocks: Vec<Block>) -> Self {
        Section {
            title: title.into(),
            blocks,
        }
    }
}

pub enum Block {
    Text(String),
    Facts(Vec<(String, String)>),
    Table(Table),
    Diff(Vec<DiffRow>),
    Form(Form),
    Image(Image),
    Links(Vec<Link>),
    Chart(Chart),
}

pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Row>,
    /// Shown instead of an empty table.
    pub empty: String,
}

impl Table {
    pub fn new(head: &[&str], empty: &str) -> Self {
        Table {
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            empty: empty.to_owned(),
        }
    }

    pub fn has_actions(&self) -> bool {
        self.rows.iter().any(|row| !row.actions.is_empty())
    }
}

pub struct Row {
    pub cells: Vec<Cell>,
    pub actions: Vec<Form>,
}

pub struct Cell {
    pub text: String,
    pub link: Option<String>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, link: None }
    }
}

pub struct DiffRow {
    pub field: String,
    pub now: String,
    pub proposed: String,
    pub changed: bool,
}

pub struct Form {
    /// Unique on the page: labels point at `id-name`.
    pub id: String,
    pub method: &'static str,
    pub action: String,
    pub class: &'static str,
    pub inputs: Vec<Input>,
    pub submit: String,
    pub danger: bool,
    pub confirm: Option<String>,
    /// Submitted as a whole page load (a download, or a page that sets a cookie).
    pub no_boost: bool,
}

impl Form {
    pub fn post(
        id: impl Into<String>,
        action: impl Into<String>,
        submit: impl Into<String>,
    ) -> Self {
        Form {
            id: id.into(),
            method: "post",
            action: action.into(),
            class: "",
            inputs: Vec::new(),
            submit: submit.into(),
            danger: false,
            confirm: None,
            no_boost: false,
        }
    }

    pub fn get(
        id: impl Into<String>,
        action: impl Into<String>,
        submit: impl Into<String>,
    ) -> Self {
        Form {
            method: "get",
            ..Form::post(id, action, submit)
        }
    }

    pub fn input(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }

    pub fn hidden(self, name: &str, value: impl Into<String>) -> Self {
        self.input(Input::new("hidden", name, "", value))
    }

    pub fn inline(mut self) -> Self {
        self.class = "inline";
        self
    }

    pub fn danger(mut self) -> Self {
        self.danger = true;
        self
    }

    /// Submitted as a whole page load, not through htmx (a download).
    pub fn whole_page(mut self) -> Self {
        self.no_boost = true;
        self
    }
}

pub struct Input {
    pub kind: &'static str,
    pub name: String,
    pub label: String,
    pub value: String,
    pub required: bool,
    pub autocomplete: Option<&'static str>,
    pub autofocus: bool,
    pub choices: Vec<String>,
}

impl Input {
    pub fn new(
        kind: &'static str,
        name: impl Into<String>,
        label: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Input {
            kind,
            name: name.into(),
            label: label.into(),
            value: value.into(),
            required: false,
            autocomplete: None,
            autofocus: false,
            choices: Vec::new(),
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn autocomplete(mut self, hint: &'static str) -> Self {
        self.autocomplete = Some(hint);
        self
    }

    pub fn autofocus(mut self) -> Self {
        self.autofocus = true;
        self
    }

    pub fn select(name: &str, label: &str, value: &str, choices: &[&str]) -> Self {
        Input {
            choices: choices.iter().map(|c| (*c).to_owned()).collect(),
            ..Input::new("select", name, label, value)
        }
    }
}

pub struct Image {
    /// A `data:image/png` URL (the CSP allows `data:` images only).
    pub src: String,
    pub alt: String,
    pub width: u32,
    pub height: u32,
}

pub struct Link {
    pub href: String,
    pub label: String,
    pub download: bool,
}

/// A horizontal bar chart drawn as SVG on the server.
pub struct Chart {
    pub caption: String,
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub label: String,
    pub value: String,
    pub y: u32,
    pub width: u32,
}

impl Chart {
    /// Bars for `values`, scaled to the largest.
    pub fn bars(caption: &str, values: &[(String, i64)]) -> Self {
        const LEFT: u32 = 150;
        const SPAN: u32 = 380;
        let most = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let bars = values
            .iter()
            .enumerate()
            .map(|(i, (label, value))| Bar {
                label: label.clone(),
                value: value.to_string(),
                y: 30 * u32::try_from(i).unwrap_or(0) + 5,
                width: u32::try_from((*value).max(0).saturating_mul(i64::from(SPAN)) / most)
                    .unwrap_or(0)
                    .max(1),
            })
            .collect::<Vec<_>>();
        Chart {
            caption: caption.to_owned(),
            width: LEFT + SPAN + 80,
            height: 30 * u32::try_from(bars.len()).unwrap_or(0) + 10,
            left: LEFT,
            bars,
        }
    }
}

/// A JSON value as text for a cell: strings as they are, everything else as compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A field of a JSON object as text.
pub fn field(value: &Value, name: &str) -> String {
    value.get(name).map(text).unwrap_or_default()
}

/// A profile flattened into (path, value) pairs (see [`flatten`]), at most `MAX_FACTS`.
pub fn facts(value: &Value) -> Vec<(String, String)> {
    const MAX_FACTS: usize = 200;
    let mut all = flatten(value);
    all.truncate(MAX_FACTS);
    all.into_iter().map(|(path, v)| (path, text(&v))).collect()
}

/// Every (path, value) pair of a document (bounded by the document's own size limit): objects
/// nested up to four levels, anything deeper or not an object whole. A path is `a.b` where every
/// key is plain, else its JSON Pointer (`/a.b`, `/`, `/a~1b`): no two places share a path.
pub fn flatten(value: &Value) -> Vec<(String, Value)> {
    fn walk(keys: &mut Vec<String>, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) if keys.len() < 4 && (keys.is_empty() || !map.is_empty()) => {
                for (key, inner) in map {
                    keys.push(key.clone());
                    walk(keys, inner, out);
                    keys.pop();
                }
            }
            other => out.push((path_of(keys), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), value, &mut out);
    out
}

/// `a.b` for plain keys; else the JSON Pointer, which no dotted path can equal (it starts with `/`,
/// and a dotted path holds none).
fn path_of(keys: &[String]) -> String {
    let plain = |key: &String| !key.is_empty() && !key.contains(['.', '/', '~']);
    if keys.iter().all(plain) {
        return keys.join(".");
    }
    keys.iter()
        .map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// A Unix time as UTC text.
pub fn when(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The array `key` of an answer (none: empty).
pub fn rows<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The Unix time `key` of a row, as UTC text (absent or zero: empty).
pub fn time_of(row: &Value, key: &str) -> String {
    row.get(key)
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .map(when)
        .unwrap_or_default()
}
