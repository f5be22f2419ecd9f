//! Access control applied to a request. Root and tenant admin tokens pass; role and user tokens are
//! held to the policies linked to their roles, evaluated by the pure [`crate::access::engine`] with
//! what this module loads inside the request's own transaction (memberships, group rosters,
//! policies), so a decision and the work it allows see the same data.
//!
//! Commands fall in three classes ([`crate::access::Command::class`]): those only admins may run
//! (tenants, roles, policies, keys, access tokens); those that act on users one by one, decided per
//! user inside the command ([`Gate::resolve`], [`Gate::visible`]); and the rest, decided once before
//! the command runs, with no user as target ([`Gate::require`]). [`Vault::admit`] applies the
//! classes before a command runs, whatever way the request came in.

use std::collections::{BTreeSet, HashMap};

use bunker_db::groups as group_store;
use bunker_db::policies as policy_store;
use bunker_db::users::StoredUser;
use bunker_db::TenantTx;
use bunker_tenancy::{Caller, Principal};
use serde_json::Value;
use uuid::Uuid;

use super::identity::Lookup;
use super::resolve;
use super::{Vault, VaultError};
use crate::access::engine::{
    self, decide, Access, LinkedPolicy, Membership, MembershipChange, Rosters, Subject, Target,
    Visible,
};
use crate::access::policy::{matches, parse, Effect};
use crate::access::{Command, CommandClass, DENIED};

impl Vault {
    /// Admits a caller to a command before it runs, whatever way the request came in: admins
    /// always; a role or user token by the command's class ([`CommandClass`]) — refused an
    /// admin-only command, or one Bunker does not route (`None`); held to its policies, with the
    /// request's metadata (asked for only then), for a command that names no user; and let
    /// through for a command that decides user by user inside.
    pub async fn admit(
        &self,
        caller: &Caller,
        command: Option<Command>,
        metadata: impl FnOnce() -> Option<Value>,
    ) -> Result<(), VaultError> {
        if caller.is_admin() {
            return Ok(());
        }
        let Some(command) = command else {
            return Err(VaultError::Forbidden(DENIED));
        };
        match command.class() {
            CommandClass::AdminOnly => Err(VaultError::Forbidden(DENIED)),
            CommandClass::PerUser | CommandClass::Public => Ok(()),
            CommandClass::Tenant => {
                let principal = caller.principal.clone();
                let metadata = metadata();
                self.db
                    .in_tenant(caller.tenant.id, move |tx| {
                        Box::pin(async move {
                            Gate::load(tx, &principal)
                                .await?
                                .require(tx, command, metadata.as_ref())
                                .await
                        })
                    })
                    .await
            }
        }
    }
}

/// A membership change to decide: a role (or none) given in a group, or the membership taken away.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    Give(Option<&'a str>),
    TakeAway,
}

/// What a user token may do to its own record without any policy. Changing or deleting it goes
/// through the `*Request` commands (the contract), which need a DPO's approval.
const OWN_RECORD_READS: &[Command] = &[
    Command::UserGet,
    Command::UserListVersions,
    Command::AuditListUserEvents,
    Command::AuditGetEvent,
    Command::GroupListUserGroups,
    Command::AppdataGet,
    Command::AppdataListUserAppNames,
    Command::AppdataListVersions,
    Command::UserUpdateRequest,
    Command::UserPatchRequest,
    Command::UserDeleteRequest,
    Command::AppdataUpdateRequest,
    Command::UserRequestGet,
    Command::UserRequestListUserRequests,
    // A user gives and reads its own consents, and withdraws them: directly where the basis allows
    // it (usercontrol), otherwise as a request (the consent service decides).
    Command::AgreementAccept,
    Command::AgreementGet,
    Command::AgreementListUserAgreements,
    Command::AgreementCancel,
    Command::AgreementCancelRequest,
    // A user reads its own sessions and files, and may end its own sessions (sign out).
    Command::SessionGet,
    Command::SessionDelete,
    Command::SessionListUserSessions,
    Command::FileGet,
    Command::FileListUserFiles,
    // The right of access: everything held about oneself.
    Command::SystemGetUserReport,
    Command::SystemGetUserHTMLReport,
    // A user reads its own expiration flow, and may cancel it (which keeps its data).
    Command::UserExpirationGet,
    Command::UserExpirationCancel,
];

/// What any user token of the tenant may run without a policy, though it names no user: the
/// tenant's legal bases and processing activities (a data subject is entitled to know what is
/// processed and why; GDPR articles 13 and 14).
const OPEN_TO_USERS: &[Command] = &[
    Command::LegalBasisListAgreements,
    Command::ProcessingActivityListActivities,
];

/// What a user token may never do to its own record, whatever the policies say (the contract: a
/// user asks for a change with the `*Request` commands instead).
const OWN_RECORD_CHANGES: &[Command] = &[
    Command::UserUpdate,
    Command::UserPatch,
    Command::UserDelete,
    Command::UserDeleteBulk,
    Command::AppdataCreate,
    Command::AppdataUpdate,
    Command::AppdataDelete,
    Command::UserRequestApprove,
    Command::UserRequestCancel,
    Command::UserExpirationStart,
];

/// The commands a bulk unlock opens.
const UNLOCKED: &[Command] = &[
    Command::BulkListUsers,
    Command::BulkListAllUsers,
    Command::BulkListGroupUsers,
    Command::BulkListAllUserRequests,
    Command::BulkListAllAuditEvents,
    Command::BulkListTokens,
    Command::BulkDeleteTokens,
    Command::BulkListFilesByTag,
    Command::UserSearch,
];

/// What the caller of one request may do, loaded in that request's transaction.
pub enum Gate {
    /// Root or a tenant admin: everything in the tenant.
    Admin,
    /// A role or user token: what its policies allow (and, for a user, reading its own record).
    Policies(PolicyPrincipal),
}

/// A role or user token with the policies of its roles.
pub struct PolicyPrincipal {
    subject: Subject,
    policies: Vec<LinkedPolicy>,
    /// For a user token: what it may do to its own record directly, by the tenant's self-service
    /// settings (otherwise only through requests).
    self_service: Vec<Command>,
}

impl Gate {
    /// The gate for `principal`. A user token whose user is gone or expired is refused.
    pub async fn load(tx: &TenantTx<'_>, principal: &Principal) -> Result<Gate, VaultError> {
        let mut self_service = Vec::new();
        let subject = match principal {
            Principal::Root | Principal::TenantAdmin => return Ok(Gate::Admin),
            Principal::Role { name, .. } => Subject {
                token: None,
                memberships: vec![Membership {
                    group_id: None,
                    role: Some(name.clone()),
                }],
            },
            Principal::User { token } => {
                resolve(tx, Lookup::Token(*token))
                    .await
                    .map_err(|_| VaultError::Forbidden(DENIED))?;
                let memberships = memberships_of(tx, *token).await?;
                let settings = bunker_db::control::self_service(tx).await?;
                self_service = [
                    (
                        settings.user_change,
                        &[Command::UserUpdate, Command::UserPatch][..],
                    ),
                    (settings.forget_me, &[Command::UserDelete][..]),
                    (
                        settings.app_data_change,
                        &[
                            Command::AppdataCreate,
                            Command::AppdataUpdate,
                            Command::AppdataDelete,
                        ][..],
                    ),
                ]
                .into_iter()
                .filter(|(on, _)| *on)
                .flat_map(|(_, commands)| commands.iter().copied())
                .collect();
                Subject {
                    token: Some(*token),
                    memberships,
                }
            }
        };
        let roles: BTreeSet<String> = subject
            .memberships
            .iter()
            .filter_map(|m| m.role.clone())
            .collect();
        let roles: Vec<String> = roles.into_iter().collect();
        let mut policies = Vec::new();
        for (role, document) in policy_store::linked_to_roles(tx, &roles).await? {
            match parse(document) {
                Ok(document) => policies.push(LinkedPolicy { role, document }),
                // Validated on write, so only a change of Bunker's policy language gets here. It
                // might be a Deny: refuse everything rather than risk allowing what it denies.
                Err(err) => {
                    tracing::error!(%err, "a stored policy does not parse; its roles are refused");
                    return Err(VaultError::Forbidden(DENIED));
                }
            }
        }
        Ok(Gate::Policies(PolicyPrincipal {
            subject,
            policies,
            self_service,
        }))
    }

    /// Refuses a command that names no user unless a policy allows it (admins always pass).
    pub async fn require(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        metadata: Option<&Value>,
    ) -> Result<(), VaultError> {
        let Gate::Policies(p) = self else {
            return Ok(());
        };
        if p.subject.token.is_some() && OPEN_TO_USERS.contains(&command) {
            return Ok(());
        }
        self.nobody(tx, command, metadata).await.map(|_| ())
    }

    /// What a command that names no user one by one may reach of every user (`users…` and `*`
    /// resources: a pending consent, a revocation of all), or [`DENIED`]. Admins reach everything.
    pub async fn nobody(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        metadata: Option<&Value>,
    ) -> Result<Visible, VaultError> {
        let Gate::Policies(p) = self else {
            return Ok(Visible::all());
        };
        let rosters = p.rosters_if_needed(tx, Vec::new()).await?;
        match decide(
            command.name(),
            &p.subject,
            Target::Nobody,
            &p.policies,
            &rosters,
            metadata,
        ) {
            Access::Granted(visible) => Ok(visible),
            Access::Denied => Err(denied(command)),
        }
    }

    /// Refuses a bulk unlock unless the caller is an admin or a command the unlock opens might be
    /// allowed to it; a Deny of BulkListUnlock refuses (see [`engine::may_unlock`]).
    pub async fn require_unlock(
        &self,
        tx: &TenantTx<'_>,
        metadata: Option<&Value>,
    ) -> Result<(), VaultError> {
        let Gate::Policies(p) = self else {
            return Ok(());
        };
        let rosters = p.rosters_if_needed(tx, Vec::new()).await?;
        let opened: Vec<&str> = UNLOCKED.iter().map(|command| command.name()).collect();
        if engine::may_unlock(&p.subject, &opened, &p.policies, &rosters, metadata) {
            Ok(())
        } else {
            Err(denied(Command::BulkListUnlock))
        }
    }

    /// Refuses a membership change a role or user token may not make (admins always pass):
    /// `target` given a role (or none) in `group`, or losing its membership of `group`. Giving a
    /// membership where the target already has another role also takes that one away, so both
    /// must be allowed. See [`engine::may_change_membership`].
    pub async fn require_membership_change(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        target: Uuid,
        group: i64,
        change: Change<'_>,
        metadata: Option<&Value>,
    ) -> Result<(), VaultError> {
        let Gate::Policies(p) = self else {
            return Ok(());
        };
        let current = memberships_of(tx, target).await?;
        let held = current.iter().find(|m| m.group_id == Some(group));
        // Each change to decide: the target as it will be (or is, for a removal), and the role.
        let mut decisions: Vec<(Vec<Membership>, Option<String>)> = Vec::new();
        match change {
            Change::Give(role) => {
                if let Some(old) = held.filter(|old| old.role.as_deref() != role) {
                    decisions.push((current.clone(), old.role.clone()));
                }
                let mut after: Vec<Membership> = current
                    .iter()
                    .filter(|m| m.group_id != Some(group))
                    .cloned()
                    .collect();
                after.push(Membership {
                    group_id: Some(group),
                    role: role.map(str::to_owned),
                });
                decisions.push((after, role.map(str::to_owned)));
            }
            Change::TakeAway => match held {
                Some(old) => decisions.push((current.clone(), old.role.clone())),
                // Not a member: nothing it may take away (and no hint either way).
                None => return Err(denied(command)),
            },
        }
        let rosters = p.rosters_if_needed(tx, vec![group]).await?;
        for (memberships, role) in decisions {
            let subject = Subject {
                token: Some(target),
                memberships,
            };
            let change = MembershipChange {
                group,
                role: role.as_deref(),
            };
            if !engine::may_change_membership(
                command.name(),
                &p.subject,
                &subject,
                change,
                &p.policies,
                &rosters,
                metadata,
            ) {
                return Err(denied(command));
            }
        }
        Ok(())
    }

    /// Refuses renaming or deleting `group` unless the caller may (admins always; see
    /// [`engine::may_manage_group`]).
    pub async fn require_group(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        group: i64,
        metadata: Option<&Value>,
    ) -> Result<(), VaultError> {
        let Gate::Policies(p) = self else {
            return Ok(());
        };
        let rosters = p.rosters_if_needed(tx, vec![group]).await?;
        if engine::may_manage_group(
            command.name(),
            &p.subject,
            group,
            &p.policies,
            &rosters,
            metadata,
        ) {
            Ok(())
        } else {
            Err(denied(command))
        }
    }

    /// Whether some Allow names `action` (admins: always), before resources and conditions.
    pub fn may_allow(&self, command: Command) -> bool {
        match self {
            Gate::Admin => true,
            Gate::Policies(p) => p.may_allow(command),
        }
    }

    /// Whether the caller is an admin (no policy applies to it).
    pub fn is_admin(&self) -> bool {
        matches!(self, Gate::Admin)
    }

    /// What a role or user token is told when something it names does not exist: the same as a
    /// refusal, so that it cannot probe for users, groups, roles or events. Admins get `err`.
    pub fn hide_missing(&self, command: Command, err: VaultError) -> VaultError {
        match (self, err) {
            (Gate::Admin, err) => err,
            (
                Gate::Policies(_),
                VaultError::NotFound
                | VaultError::GroupNotFound
                | VaultError::RoleNotFound
                | VaultError::EventNotFound
                | VaultError::RequestNotFound
                | VaultError::SessionNotFound
                | VaultError::FileNotFound,
            ) => denied(command),
            (Gate::Policies(_), err) => err,
        }
    }

    /// The live user a lookup names and what `action` may see of them. A role or user token gets
    /// [`DENIED`] for a user it may not touch, for one that does not exist, and for one named by
    /// an indexed field it may not see (the lookup would confirm the hidden value).
    pub async fn resolve(
        &self,
        tx: &TenantTx<'_>,
        lookup: Lookup,
        command: Command,
        metadata: Option<&Value>,
    ) -> Result<(StoredUser, Visible), VaultError> {
        let user = match (self, resolve(tx, lookup).await) {
            (_, Ok(user)) => user,
            (Gate::Admin, Err(err)) => return Err(err),
            (Gate::Policies(_), Err(VaultError::NotFound)) => return Err(denied(command)),
            (Gate::Policies(_), Err(err)) => return Err(err),
        };
        let visible = self.check(tx, command, user.token, metadata).await?;
        // Found by a field the caller may not see: answering would confirm that hidden value.
        if let Lookup::Index(field, _) = lookup {
            if !visible.field(field) {
                return Err(denied(command));
            }
        }
        Ok((user, visible))
    }

    /// What `action` may see of one user, or [`DENIED`].
    pub async fn check(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        target: Uuid,
        metadata: Option<&Value>,
    ) -> Result<Visible, VaultError> {
        self.visible(tx, command, &[target], metadata)
            .await?
            .remove(&target)
            .ok_or_else(|| denied(command))
    }

    /// What `action` may see of each of `targets`; those it may not touch are absent.
    pub async fn visible(
        &self,
        tx: &TenantTx<'_>,
        command: Command,
        targets: &[Uuid],
        metadata: Option<&Value>,
    ) -> Result<HashMap<Uuid, Visible>, VaultError> {
        let p = match self {
            Gate::Admin => return Ok(targets.iter().map(|t| (*t, Visible::all())).collect()),
            Gate::Policies(p) => p,
        };
        let mut granted = HashMap::new();
        let own = p.subject.token;
        let own_may = OWN_RECORD_READS.contains(&command) || p.self_service.contains(&command);
        if let Some(me) = own.filter(|me| targets.contains(me) && own_may) {
            granted.insert(me, Visible::all());
        }
        if !p.may_allow(command) {
            return Ok(granted);
        }
        let settled = |t: &Uuid| {
            Some(*t) == own
                && (OWN_RECORD_READS.contains(&command) || OWN_RECORD_CHANGES.contains(&command))
        };
        let others: Vec<Uuid> = targets.iter().copied().filter(|t| !settled(t)).collect();
        let mut memberships: HashMap<Uuid, Vec<Membership>> = HashMap::new();
        for (user, group, role) in group_store::memberships_of(tx, &others).await? {
            memberships.entry(user).or_default().push(Membership {
                group_id: Some(group),
                role,
            });
        }
        let target_groups = memberships.values().flatten().filter_map(|m| m.group_id);
        let rosters = p.rosters_if_needed(tx, target_groups.collect()).await?;
        for target in others {
            let subject = Subject {
                token: Some(target),
                memberships: memberships.remove(&target).unwrap_or_default(),
            };
            if let Access::Granted(visible) = decide(
                command.name(),
                &p.subject,
                Target::User(&subject),
                &p.policies,
                &rosters,
                metadata,
            ) {
                granted.insert(target, visible);
            }
        }
        Ok(granted)
    }
}

impl PolicyPrincipal {
    /// Whether any Allow statement names `action` (before resources and conditions are looked at).
    fn may_allow(&self, command: Command) -> bool {
        self.self_service.contains(&command)
            || self.policies.iter().any(|p| {
                p.document.effect == Effect::Allow
                    && p.document.action.iter().any(|a| matches(a, command.name()))
            })
    }

    /// The members holding a role in the principal's groups and in `target_groups`, if any policy
    /// has a condition (only conditions read rosters).
    async fn rosters_if_needed(
        &self,
        tx: &TenantTx<'_>,
        target_groups: Vec<i64>,
    ) -> Result<Rosters, VaultError> {
        if !self.policies.iter().any(|p| p.document.condition.is_some()) {
            return Ok(Rosters::new());
        }
        let groups: BTreeSet<i64> = self
            .subject
            .memberships
            .iter()
            .filter_map(|m| m.group_id)
            .chain(target_groups)
            .collect();
        let groups: Vec<i64> = groups.into_iter().collect();
        let mut rosters = Rosters::new();
        for (group, user, role) in group_store::rosters(tx, &groups).await? {
            rosters.entry((group, role)).or_default().insert(user);
        }
        Ok(rosters)
    }
}

/// The groups `user` is a member of, with its role in each.
async fn memberships_of(tx: &TenantTx<'_>, user: Uuid) -> Result<Vec<Membership>, VaultError> {
    Ok(group_store::memberships_of(tx, &[user])
        .await?
        .into_iter()
        .map(|(_, group, role)| Membership {
            group_id: Some(group),
            role,
        })
        .collect())
}

/// A refusal by policy. Logged (command only, never who or what) so that operators can see them.
fn denied(command: Command) -> VaultError {
    tracing::info!(command = command.name(), "refused by policy");
    VaultError::Forbidden(DENIED)
}
