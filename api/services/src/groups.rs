//! Groups, memberships and roles. A group's name and description are sealed (they can identify
//! people); it is found by name through a blind index. Roles are installation-wide labels that only
//! the root token defines.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::groups::{self as store, RoleRef, StoredGroup};
use bunker_db::{DbError, TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys};
use bunker_tenancy::Caller;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::core::gate::{Change, Gate};
use crate::core::identity::Mode;

use crate::core::record_event;
use crate::core::{audit_label, open_json, seal_json, UserEvent, Vault, VaultError};

/// A group named by id or by name, as the SDKs send it.
#[derive(Clone, Debug, Default)]
pub struct GroupRef {
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// A role named by id or by name.
#[derive(Clone, Debug)]
pub enum RoleSelector {
    Id(i64),
    Name(String),
}

impl RoleSelector {
    /// The role a request names by `roleid` (which wins) or `rolename`, if any.
    pub fn named(id: Option<i64>, name: Option<String>) -> Option<Self> {
        match (id, name) {
            (Some(id), _) => Some(RoleSelector::Id(id)),
            (None, Some(name)) => Some(RoleSelector::Name(name)),
            (None, None) => None,
        }
    }
}

/// Changes to a group; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub grouptype: Option<String>,
}

/// A group as answered.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub grouptype: String,
}

/// What is sealed for a group.
#[derive(Serialize, Deserialize)]
struct GroupLabel {
    name: String,
    description: String,
}

/// The longest group type (contract: a short label).
const MAX_GROUPTYPE: usize = 30;
/// The longest description of a group or role.
pub(crate) const MAX_DESCRIPTION: usize = 1024;

pub(crate) fn group_seal_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "group",
        row,
    }
}

fn name_index(keys: &TenantKeys, name: &str) -> [u8; 32] {
    keys.index.blind_index("group-name", name.trim().as_bytes())
}

fn seal_group(
    keys: &TenantKeys,
    tenant: TenantId,
    id: i64,
    name: &str,
    description: &str,
) -> Result<Vec<u8>, VaultError> {
    let label = GroupLabel {
        name: name.trim().to_owned(),
        description: description.to_owned(),
    };
    let row = id.to_string();
    seal_json(&keys.records, &group_seal_label(tenant, &row), &label)
}

fn open_group(
    keys: &TenantKeys,
    tenant: TenantId,
    group: &StoredGroup,
) -> Result<GroupView, VaultError> {
    let row = group.id.to_string();
    let label: GroupLabel = open_json(
        &keys.records,
        &group_seal_label(tenant, &row),
        &group.sealed,
    )?;
    Ok(GroupView {
        id: group.id,
        name: label.name,
        description: label.description,
        grouptype: group.grouptype.clone(),
    })
}

fn check_group_fields(name: &str, description: &str, grouptype: &str) -> Result<(), VaultError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(VaultError::BadRequest(
            "groupname must be 1 to 200 characters".into(),
        ));
    }
    check_description("groupdesc", Some(description))?;
    if grouptype.is_empty() || grouptype.chars().count() > MAX_GROUPTYPE {
        return Err(VaultError::BadRequest(
            "grouptype must be 1 to 30 characters".into(),
        ));
    }
    Ok(())
}

/// A taken group name, carried with its blind index so that the clash can be recorded.
fn duplicate_group(err: DbError, index: [u8; 32]) -> VaultError {
    match err.violated_constraint() {
        Some("groups_name_key") => VaultError::GroupClash(index),
        _ => VaultError::Database(err),
    }
}

/// The groups `user` is in with its role in each, in the transaction (GroupListUserGroups,
/// SystemGetUserReport).
pub(crate) async fn user_groups(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<Vec<(GroupView, Option<String>)>, VaultError> {
    store::user_memberships(tx, user)
        .await?
        .iter()
        .map(|m| {
            Ok((
                open_group(keys, tx.tenant(), &m.group)?,
                m.role.as_ref().map(|r| r.name.clone()),
            ))
        })
        .collect()
}

/// The group a reference names.
pub(crate) async fn find_group(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    group: &GroupRef,
) -> Result<StoredGroup, VaultError> {
    if group.id.is_none() && group.name.is_none() {
        return Err(VaultError::BadRequest(
            "Missing API request parameters: groupid or groupname".into(),
        ));
    }
    let index = group.name.as_deref().map(|n| name_index(keys, n));
    store::find_group(tx, group.id, index.as_ref())
        .await?
        .ok_or(VaultError::GroupNotFound)
}

/// The role a selector names.
pub(crate) async fn find_role(
    tx: &TenantTx<'_>,
    role: &RoleSelector,
) -> Result<store::Role, VaultError> {
    let reference = match role {
        RoleSelector::Id(id) => RoleRef::Id(*id),
        RoleSelector::Name(name) => RoleRef::Name(name),
    };
    store::find_role(tx, &reference)
        .await?
        .ok_or(VaultError::RoleNotFound)
}

impl Vault {
    /// Creates a group in the caller's tenant; returns its id.
    pub async fn create_group(
        &self,
        caller: &Caller,
        name: String,
        description: String,
        grouptype: Option<String>,
    ) -> Result<i64, VaultError> {
        let grouptype = grouptype.unwrap_or_else(|| "users".to_owned());
        check_group_fields(&name, &description, &grouptype)?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        let created = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let id = store::next_group_id(tx).await?;
                    let sealed = seal_group(&keys, tx.tenant(), id, &name, &description)?;
                    store::insert_group(tx, id, &name_index(&keys, &name), &sealed, &grouptype)
                        .await
                        .map_err(|e| duplicate_group(e, name_index(&keys, &name)))?;
                    audit::record(
                        tx,
                        &AuditEvent::about(
                            actor,
                            Command::GroupCreate.audit_action(),
                            format!("group:{id}"),
                        ),
                    )
                    .await?;
                    Ok(id)
                })
            })
            .await;
        self.record_group_clash(caller, Command::GroupCreate, created)
            .await
    }

    /// Records, in the trail, that a create or rename by `caller` clashed with the name of an
    /// existing group (the 409 told the caller that the name is taken); passes `outcome` on.
    async fn record_group_clash<T>(
        &self,
        caller: &Caller,
        command: Command,
        outcome: Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let Err(VaultError::GroupClash(index)) = outcome else {
            return outcome;
        };
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    if let Some(holder) = store::find_group(tx, None, Some(&index)).await? {
                        let id = audit::new_event_id();
                        let details = json!({ "refused": VaultError::DuplicateGroup.to_string() });
                        let row = id.to_string();
                        let label = audit_label(tx.tenant(), &row);
                        let event = AuditEvent {
                            details: Some(seal_json(&keys.audit, &label, &details)?),
                            ..AuditEvent::about(
                                actor,
                                command.audit_action(),
                                format!("group:{}", holder.id),
                            )
                        };
                        audit::record_with_id(tx, id, &event).await?;
                    }
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        Err(VaultError::DuplicateGroup)
    }

    /// One group of the caller's tenant.
    pub async fn get_group(
        &self,
        caller: &Caller,
        group: GroupRef,
    ) -> Result<GroupView, VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let admin = caller.is_admin();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let stored = find_group(tx, &keys, &group)
                        .await
                        .map_err(|e| hide_from(admin, Command::GroupGet, e))?;
                    open_group(&keys, tx.tenant(), &stored)
                })
            })
            .await
    }

    /// Every group of the caller's tenant.
    pub async fn list_groups(&self, caller: &Caller) -> Result<Vec<GroupView>, VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    store::list_groups(tx)
                        .await?
                        .iter()
                        .map(|g| open_group(&keys, tx.tenant(), g))
                        .collect()
                })
            })
            .await
    }

    /// Renames a group or changes its description or type; `None` keeps a field. A role or user
    /// token may do so only for a group it manages (see [`Gate::require_group`]).
    pub async fn update_group(
        &self,
        caller: &Caller,
        group: GroupRef,
        changes: GroupChanges,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::GroupUpdate;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        let principal = caller.principal.clone();
        let updated = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let stored = find_group(tx, &keys, &group)
                        .await
                        .map_err(|e| gate.hide_missing(COMMAND, e))?;
                    gate.require_group(tx, COMMAND, stored.id, metadata.as_ref())
                        .await?;
                    let current = open_group(&keys, tx.tenant(), &stored)?;
                    let name = changes.name.unwrap_or(current.name);
                    let description = changes.description.unwrap_or(current.description);
                    let grouptype = changes.grouptype.unwrap_or(current.grouptype);
                    check_group_fields(&name, &description, &grouptype)?;
                    let sealed = seal_group(&keys, tx.tenant(), stored.id, &name, &description)?;
                    store::update_group(
                        tx,
                        stored.id,
                        &name_index(&keys, &name),
                        &sealed,
                        &grouptype,
                    )
                    .await
                    .map_err(|e| duplicate_group(e, name_index(&keys, &name)))?;
                    let target = format!("group:{}", stored.id);
                    audit::record(
                        tx,
                        &AuditEvent::about(actor, COMMAND.audit_action(), target),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await;
        self.record_group_clash(caller, COMMAND, updated).await
    }

    /// Deletes a group and its memberships. A role or user token may do so only for a group it
    /// manages (see [`Gate::require_group`]) and only if it may take away each of its members'
    /// memberships on its own; each member's trail records the deletion.
    pub async fn delete_group(
        &self,
        caller: &Caller,
        group: GroupRef,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::GroupDelete;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let by = caller.actor();
        let actor = Performer::Token(by);
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let stored = find_group(tx, &keys, &group)
                        .await
                        .map_err(|e| gate.hide_missing(COMMAND, e))?;
                    gate.require_group(tx, COMMAND, stored.id, metadata.as_ref())
                        .await?;
                    // Every membership goes with the group: each must be one the caller could
                    // take away on its own, and each member's trail records it.
                    let members = bunker_db::bulk::all_group_members(tx, stored.id).await?;
                    if !gate.is_admin() {
                        for (member, _) in &members {
                            gate.check(tx, COMMAND, *member, metadata.as_ref()).await?;
                            let change = Change::TakeAway;
                            gate.require_membership_change(
                                tx,
                                COMMAND,
                                *member,
                                stored.id,
                                change,
                                metadata.as_ref(),
                            )
                            .await?;
                        }
                    }
                    store::delete_group(tx, stored.id).await?;
                    let target = format!("group:{}", stored.id);
                    let event = AuditEvent::about(actor, COMMAND.audit_action(), target);
                    audit::record(tx, &event).await?;
                    for (member, _) in members {
                        let event = UserEvent::about(COMMAND, member, metadata.as_ref());
                        record_event(tx, &keys, by, event).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Adds a user to a group with an optional role (or changes their role in it). A role or user
    /// token needs the command allowed on the user as they are and on the membership given (see
    /// [`Gate::require_membership_change`]).
    pub async fn add_user_to_group(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        group: GroupRef,
        role: Option<RoleSelector>,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::GroupAddUser;
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let (user, _) = gate.resolve(tx, lookup, COMMAND, metadata.as_ref()).await?;
                    let joining = Joining {
                        token: user.token,
                        group: &group,
                        role: role.as_ref(),
                    };
                    add_membership(tx, &keys, &gate, COMMAND, joining, metadata.as_ref()).await?;
                    let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await
                })
            })
            .await
    }

    /// Removes a user from a group. A role or user token needs the command allowed on the user and
    /// on the membership taken away.
    pub async fn remove_user_from_group(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        group: GroupRef,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::GroupDeleteUser;
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let (user, _) = gate.resolve(tx, lookup, COMMAND, metadata.as_ref()).await?;
                    let stored = find_group(tx, &keys, &group)
                        .await
                        .map_err(|e| gate.hide_missing(COMMAND, e))?;
                    let change = Change::TakeAway;
                    gate.require_membership_change(
                        tx,
                        COMMAND,
                        user.token,
                        stored.id,
                        change,
                        metadata.as_ref(),
                    )
                    .await?;
                    if !store::remove_member(tx, stored.id, user.token).await? {
                        return Err(VaultError::BadRequest(
                            "The user is not in this group".into(),
                        ));
                    }
                    let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await
                })
            })
            .await
    }

    /// The groups a user is in, with their role in each. A role or user token needs the `group`
    /// section of the user (group names identify people); every answer is audited.
    pub async fn list_user_groups(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Vec<(GroupView, Option<String>)>, VaultError> {
        const COMMAND: Command = Command::GroupListUserGroups;
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, COMMAND, metadata.as_ref())
                        .await?;
                    if !visible.groups() {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let groups = user_groups(tx, &keys, user.token).await?;
                    let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(groups)
                })
            })
            .await
    }

    /// Creates a role (root token only); returns its id.
    pub async fn create_role(
        &self,
        caller: &Caller,
        name: String,
        description: String,
    ) -> Result<i64, VaultError> {
        require_root(caller, "Only the main tenant admin can create roles")?;
        check_role_name(&name)?;
        check_description("roledesc", Some(&description))?;
        let actor = Performer::Token(caller.actor());
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    let id = store::insert_role(tx, &name, &description)
                        .await
                        .map_err(role_error)?;
                    audit::record(
                        tx,
                        &AuditEvent::about(
                            actor,
                            Command::RoleCreate.audit_action(),
                            format!("role:{id}"),
                        ),
                    )
                    .await?;
                    Ok(id)
                })
            })
            .await
    }

    /// Renames a role or changes its description (root token only).
    pub async fn update_role(
        &self,
        caller: &Caller,
        role: RoleSelector,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<(), VaultError> {
        require_root(caller, "Only the main tenant admin can update roles")?;
        if let Some(name) = &name {
            check_role_name(name)?;
        }
        check_description("roledesc", description.as_deref())?;
        let actor = Performer::Token(caller.actor());
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    let found = find_role(tx, &role).await?;
                    store::update_role(tx, found.id, name.as_deref(), description.as_deref())
                        .await
                        .map_err(role_error)?;
                    audit::record(
                        tx,
                        &AuditEvent::about(
                            actor,
                            Command::RoleUpdate.audit_action(),
                            format!("role:{}", found.id),
                        ),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}

/// For a role or user token (not `admin`), a group that does not exist is the same refusal as one
/// it may not touch, so that it cannot probe for group names.
fn hide_from(admin: bool, command: Command, err: VaultError) -> VaultError {
    match err {
        VaultError::GroupNotFound if !admin => {
            tracing::info!(command = command.name(), "refused by policy");
            VaultError::Forbidden(DENIED)
        }
        err => err,
    }
}

/// A user joining a group, with a role or none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Joining<'a> {
    pub token: Uuid,
    pub group: &'a GroupRef,
    pub role: Option<&'a RoleSelector>,
}

/// The group and role ids of a membership `gate` allows (admins always); nothing is written. A
/// group or role that does not exist is, for a role or user token, the same refusal as one it may
/// not give.
pub(crate) async fn allowed_membership(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    gate: &Gate,
    command: Command,
    joining: Joining<'_>,
    metadata: Option<&Value>,
) -> Result<(i64, Option<i64>), VaultError> {
    let hide = |e| gate.hide_missing(command, e);
    let stored = find_group(tx, keys, joining.group).await.map_err(hide)?;
    let role = match joining.role {
        Some(role) => Some(find_role(tx, role).await.map_err(hide)?),
        None => None,
    };
    let given = Change::Give(role.as_ref().map(|r| r.name.as_str()));
    gate.require_membership_change(tx, command, joining.token, stored.id, given, metadata)
        .await?;
    Ok((stored.id, role.map(|r| r.id)))
}

/// Adds a user to a group with an optional role, inside a transaction, if `gate` allows it (see
/// [`allowed_membership`]).
pub(crate) async fn add_membership(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    gate: &Gate,
    command: Command,
    joining: Joining<'_>,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    let (group, role) = allowed_membership(tx, keys, gate, command, joining, metadata).await?;
    store::add_member(tx, group, joining.token, role).await?;
    Ok(())
}

/// Refuses a description over [`MAX_DESCRIPTION`] characters, naming `field`.
pub(crate) fn check_description(field: &str, description: Option<&str>) -> Result<(), VaultError> {
    match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(VaultError::BadRequest(
            format!("{field} must be at most {MAX_DESCRIPTION} characters"),
        )),
        _ => Ok(()),
    }
}

/// Role names: 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit
/// (the database checks the same).
fn check_role_name(name: &str) -> Result<(), VaultError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadRequest(
            "rolename must be 1 to 64 letters, digits, dots, dashes or underscores".into(),
        ))
    }
}

fn require_root(caller: &Caller, why: &'static str) -> Result<(), VaultError> {
    if caller.is_root() {
        Ok(())
    } else {
        Err(VaultError::Forbidden(why))
    }
}

fn role_error(err: DbError) -> VaultError {
    match err.violated_constraint() {
        Some("roles_name_key") => VaultError::RoleExists,
        _ => VaultError::Database(err),
    }
}
