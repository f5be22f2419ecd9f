//! SystemGetUserReport and SystemGetUserHTMLReport: everything Bunker holds about one person, read
//! in one transaction of their tenant (so every part is of the same moment) and audited in it
//! before it is answered. The GDPR right of access (article 15) and to portability (article 20).
//!
//! What the report holds of each part is what the caller may see of it: everything for an admin
//! and for the person's own token; for a role, what its policies grant for the report's command
//! (the profile masked field by field; versions, requests, shared records and the trail only with
//! the whole profile; app data, consent, sessions, files and groups by their sections). A part left
//! out is named in `omitted`, so that a partial report never passes for a complete one.
//!
//! Never in a report: session ids and shared-record uuids (they are bearer secrets, and a report is
//! handed to a person, printed or mailed), file contents, and the request metadata of audit events.

use bunker_db::audit as audit_store;
use bunker_db::users as user_store;
use bunker_tenancy::Caller;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::access::Command;
use crate::consent::agreements::AgreementView;
use crate::core::gate::Gate;
use crate::core::identity::Mode;
use crate::core::{
    audit_label, open_json, open_profile, record_event, unix_now, version_label, version_row,
    UserEvent, Vault, VaultError,
};
use crate::users::open_current;

/// The most audit events a report lists (the newest; `audit.total` says how many there are).
pub const MAX_REPORT_EVENTS: i64 = 1_000;

/// Everything held about one person. Times are Unix seconds.
#[derive(Clone, Debug, Serialize)]
pub struct UserReport {
    /// When the report was made.
    pub generated: i64,
    pub tenant: String,
    pub token: String,
    pub profile: Map<String, Value>,
    pub version: i32,
    pub expiration: Expiration,
    pub versions: Option<Vec<ReportVersion>>,
    pub appdata: Option<Vec<ReportApp>>,
    pub agreements: Option<Vec<AgreementView>>,
    pub requests: Option<Vec<ReportRequest>>,
    pub sessions: Option<Vec<ReportSession>>,
    pub sharedrecords: Option<Vec<ReportSharedRecord>>,
    pub files: Option<Vec<ReportFile>>,
    pub groups: Option<Vec<ReportGroup>>,
    pub audit: Option<ReportAudit>,
    /// The parts the caller may not see, left out.
    pub omitted: Vec<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Expiration {
    pub finaltime: Option<i64>,
    pub slidingtime: Option<i64>,
    pub expirationtime: Option<i64>,
    /// A running expiration flow (UserExpirationStart): `wait` (the user is forgotten at
    /// `exptime` unless they keep their data) or `retain`; never its link.
    pub expstatus: Option<String>,
    pub exptime: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportVersion {
    pub version: i32,
    pub time: i64,
    pub profile: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportApp {
    pub appname: String,
    pub data: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportRequest {
    pub requestuuid: String,
    pub kind: String,
    pub appname: Option<String>,
    pub brief: Option<String>,
    pub status: String,
    pub created: i64,
    pub decided: Option<i64>,
    pub change: Option<Value>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportSession {
    pub data: Map<String, Value>,
    pub expires: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportSharedRecord {
    /// None: everything.
    pub fields: Option<Vec<String>>,
    pub appname: Option<String>,
    pub partner: Option<String>,
    pub created: i64,
    pub expires: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportFile {
    pub fileuuid: String,
    pub filename: String,
    pub mimetype: String,
    pub size: i64,
    pub tags: Vec<String>,
    pub created: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportGroup {
    pub group: String,
    pub description: String,
    pub role: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportAudit {
    /// How many events there are in all (the newest [`MAX_REPORT_EVENTS`] are listed).
    pub total: i64,
    pub events: Vec<ReportEvent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportEvent {
    /// RFC 3339.
    pub time: String,
    pub action: String,
    /// Who: `root`, `tenant_admin`, `role`, `user` (the person's own token), `system` (Bunker's
    /// expiry), `operator` (key management) or `shared_record` (a partner holding a link).
    pub actor: String,
    /// The fields the event touched (names, never values).
    pub fields: Vec<String>,
    /// The partner a shared record was read by, if that is what the event records.
    pub partner: Option<String>,
}

impl Vault {
    /// The report on the user `identity` names (see the module's documentation); `command` is
    /// SystemGetUserReport or SystemGetUserHTMLReport (decided and audited as such).
    pub async fn user_report(
        &self,
        caller: &Caller,
        command: Command,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<UserReport, VaultError> {
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        let tenant_name = caller.tenant.name.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let (user, visible) =
                        gate.resolve(tx, lookup, command, metadata.as_ref()).await?;
                    let token = user.token;
                    let current = open_current(&keys, tx.tenant(), &user)?;
                    let mut omitted: Vec<&'static str> = Vec::new();
                    let mut part = |shown: bool, name: &'static str| {
                        if !shown {
                            omitted.push(name);
                        }
                        shown
                    };
                    let whole = visible.whole_profile();
                    if !whole {
                        part(false, "profile (in part)");
                    }
                    let versions = match part(whole, "versions") {
                        false => None,
                        true => {
                            let mut versions = Vec::new();
                            for stored in user_store::list_versions(tx, token).await? {
                                let row = version_row(token, stored.version);
                                let label = version_label(tx.tenant(), &row);
                                versions.push(ReportVersion {
                                    version: stored.version,
                                    time: stored.optime,
                                    profile: open_profile(&keys, &label, &stored.record)?,
                                });
                            }
                            Some(versions)
                        }
                    };
                    let appdata = match part(visible.appdata(), "appdata") {
                        false => None,
                        true => Some(
                            crate::appdata::report_of(tx, &keys, token)
                                .await?
                                .into_iter()
                                .map(|(appname, data)| ReportApp { appname, data })
                                .collect(),
                        ),
                    };
                    let agreements = match part(visible.consent(), "agreements") {
                        false => None,
                        true => {
                            Some(crate::consent::agreements::report_of(tx, &keys, token).await?)
                        }
                    };
                    // Each request by what it touches: the profile, an app's data, a consent.
                    let kinds = [whole, visible.appdata(), visible.consent()];
                    if kinds.iter().any(|k| *k) && !kinds.iter().all(|k| *k) {
                        part(false, "requests (in part)");
                    }
                    let requests = match part(kinds.iter().any(|k| *k), "requests") {
                        false => None,
                        true => Some(
                            crate::requests::report_of(tx, &keys, token, &visible)
                                .await?
                                .into_iter()
                                .map(|r| ReportRequest {
                                    requestuuid: r.uuid.to_string(),
                                    kind: r.kind,
                                    appname: r.app,
                                    brief: r.brief,
                                    status: r.status,
                                    created: r.created,
                                    decided: r.decided,
                                    change: r.change,
                                    reason: r.reason,
                                })
                                .collect(),
                        ),
                    };
                    let sessions = match part(visible.sessions(), "sessions") {
                        false => None,
                        true => Some(
                            crate::sessions::user_sessions(tx, &keys, token)
                                .await?
                                .into_iter()
                                .map(|s| ReportSession {
                                    data: s.data,
                                    expires: s.expires_at,
                                })
                                .collect(),
                        ),
                    };
                    let sharedrecords = match part(whole, "sharedrecords") {
                        false => None,
                        true => Some(
                            crate::shared::report_of(tx, &keys, token)
                                .await?
                                .into_iter()
                                .map(|r| ReportSharedRecord {
                                    fields: r.fields,
                                    appname: r.appname,
                                    partner: r.partner,
                                    created: r.created,
                                    expires: r.expires,
                                })
                                .collect(),
                        ),
                    };
                    let files = match part(visible.files(), "files") {
                        false => None,
                        true => Some(
                            crate::files::user_files(tx, &keys, token, None)
                                .await?
                                .into_iter()
                                .map(|f| ReportFile {
                                    fileuuid: f.fileuuid.to_string(),
                                    filename: f.filename,
                                    mimetype: f.mimetype,
                                    size: f.size,
                                    tags: f.tags,
                                    created: f.creationtime,
                                })
                                .collect(),
                        ),
                    };
                    let groups = match part(visible.groups(), "groups") {
                        false => None,
                        true => Some(
                            crate::groups::user_groups(tx, &keys, token)
                                .await?
                                .into_iter()
                                .map(|(g, role)| ReportGroup {
                                    group: g.name,
                                    description: g.description,
                                    role,
                                })
                                .collect(),
                        ),
                    };
                    let audit = match part(whole, "audit") {
                        false => None,
                        true => {
                            let (stored, total) =
                                audit_store::trail_of_user(tx, token, MAX_REPORT_EVENTS).await?;
                            let mut events = Vec::with_capacity(stored.len());
                            for (event, actor) in stored {
                                let details: Value = match &event.details {
                                    Some(sealed) => {
                                        let row = event.id.to_string();
                                        open_json(
                                            &keys.audit,
                                            &audit_label(tx.tenant(), &row),
                                            sealed,
                                        )?
                                    }
                                    None => Value::Null,
                                };
                                events.push(ReportEvent {
                                    time: event.timestamp,
                                    action: event.action,
                                    actor,
                                    fields: strings(details.get("fields")),
                                    partner: details
                                        .get("partner")
                                        .and_then(Value::as_str)
                                        .map(str::to_owned),
                                });
                            }
                            Some(ReportAudit { total, events })
                        }
                    };
                    let flow = bunker_db::expirations::of_user(tx, token).await?;
                    let report = UserReport {
                        generated: unix_now(),
                        tenant: tenant_name,
                        token: token.to_string(),
                        profile: visible.mask(&current),
                        version: user.version,
                        expiration: Expiration {
                            finaltime: user.final_at,
                            slidingtime: user.sliding_seconds,
                            expirationtime: user.expires_at,
                            expstatus: flow.as_ref().map(|f| f.status.clone()),
                            exptime: flow.map(|f| f.ends_at),
                        },
                        versions,
                        appdata,
                        agreements,
                        requests,
                        sessions,
                        sharedrecords,
                        files,
                        groups,
                        audit,
                        omitted,
                    };
                    let event = UserEvent::about(command, token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(report)
                })
            })
            .await
    }
}

/// The strings of a JSON array (the fields an event names).
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
