//! The portals' static files, compiled into the binary (`web/assets`), and the tenant's brand
//! stylesheet.

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::header;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response};

use crate::http::app::AppState;

pub const PATHS: &[&str] = &[
    "/assets/portal.css",
    "/assets/htmx-2.0.11.min.js",
    "/assets/htmx-LICENSE.txt",
    "/brand.css",
];

const CSS: &[u8] = include_bytes!("../../../web/assets/portal.css");
const HTMX: &[u8] = include_bytes!("../../../web/assets/htmx-2.0.11.min.js");
const HTMX_LICENSE: &[u8] = include_bytes!("../../../web/assets/htmx-LICENSE.txt");

fn file(bytes: &'static [u8], content_type: &'static str) -> BoxEndpoint<'static> {
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .body(bytes)
    })
    .boxed()
}

pub fn routes() -> Vec<(&'static str, BoxEndpoint<'static>)> {
    vec![
        ("/assets/portal.css", file(CSS, "text/css; charset=utf-8")),
        (
            "/assets/htmx-2.0.11.min.js",
            file(HTMX, "text/javascript; charset=utf-8"),
        ),
        (
            "/assets/htmx-LICENSE.txt",
            file(HTMX_LICENSE, "text/plain; charset=utf-8"),
        ),
        ("/brand.css", brand.boxed()),
    ]
}

/// The tenant's colours (TenantGetUIConf's `primarycolor`), as a stylesheet: a page's CSP allows
/// no inline style.
#[handler]
async fn brand(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let css = match crate::v2::login::tenant_name(state, req) {
        Ok(name) => match state
            .tenants
            .public_ui_conf(&name, crate::v2::login::deliverable(state))
            .await
        {
            Ok(ui) => super::brand_css(&ui),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    };
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(css)
}
