//! Every `/v2` command Bunker routes, named once, with how it is authorized. The gate reads the
//! class from here, request logging names routes from here, and a test holds this list to the
//! routed commands of the OpenAPI document, so a new command cannot fall into a class by accident
//! (one missing from the list is refused to every role and user token).

macro_rules! commands {
    (
        routed { $($name:ident: $class:ident,)* }
        planned { $($planned:ident,)* }
    ) => {
        /// A `/v2` command: one Bunker routes, or one of the contract that policies may name
        /// already and that is not routed yet ([`Command::is_routed`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Command {
            $($name,)*
            $($planned,)*
        }

        impl Command {
            /// Every routed command.
            pub const ALL: &'static [Command] = &[$(Command::$name,)*];

            /// The contract's commands that policies may name but that are not routed yet.
            pub const PLANNED: &'static [Command] = &[$(Command::$planned,)*];

            /// The command's name, as in `/v2/<name>`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$name => stringify!($name),)*
                    $(Command::$planned => stringify!($planned),)*
                }
            }

            /// How the command is authorized; a command not routed yet is nobody's but an admin's.
            pub fn class(self) -> CommandClass {
                match self {
                    $(Command::$name => CommandClass::$class,)*
                    $(Command::$planned => CommandClass::AdminOnly,)*
                }
            }

            /// Whether Bunker routes the command.
            pub fn is_routed(self) -> bool {
                match self {
                    $(Command::$name => true,)*
                    $(Command::$planned => false,)*
                }
            }
        }
    };
}

commands! {
    routed {
        // Tenants, their access tokens, roles, policies, keys and role/user tokens: admins only.
        TenantCreate: AdminOnly,
        TenantGet: AdminOnly,
        TenantUpdate: AdminOnly,
        TenantDelete: AdminOnly,
        TenantListTenants: AdminOnly,
        TenantListTokens: AdminOnly,
        TenantRevokeToken: AdminOnly,
        TenantRotateToken: AdminOnly,
        RoleCreate: AdminOnly,
        RoleUpdate: AdminOnly,
        RoleLinkPolicy: AdminOnly,
        PolicyCreate: AdminOnly,
        PolicyGet: AdminOnly,
        PolicyUpdate: AdminOnly,
        PolicyListAllPolicies: AdminOnly,
        SystemGenerateWrappingKey: AdminOnly,
        // The tenant's own key (Bunker's own): its versions, its wrapping (a KMS key the tenant
        // owns, or the master key), its rotation. Root; a tenant admin if the operator allows.
        TenantKeyGet: AdminOnly,
        TenantKeySetWrapping: AdminOnly,
        TenantKeyRotate: AdminOnly,
        SystemGetSystemStats: AdminOnly,
        SystemSetLicenseKey: AdminOnly,
        // Root of the main tenant only, behind a bulk unlock: decided inside.
        SystemGetUserProfiles: AdminOnly,
        SystemSearchUserProfiles: AdminOnly,
        SystemDeleteUserProfiles: AdminOnly,
        SystemRestoreUserProfile: AdminOnly,
        XTokenCreateForRole: AdminOnly,
        XTokenCreateForUser: AdminOnly,
        // Decided for each user the command touches, inside the command.
        UserGet: PerUser,
        UserUpdate: PerUser,
        UserPatch: PerUser,
        UserDelete: PerUser,
        UserDeleteBulk: PerUser,
        UserListVersions: PerUser,
        UserSearch: PerUser,
        AuditListUserEvents: PerUser,
        AuditGetEvent: PerUser,
        GroupListUserGroups: PerUser,
        GroupAddUser: PerUser,
        GroupDeleteUser: PerUser,
        // Decided on the group they change, inside the command.
        GroupUpdate: PerUser,
        GroupDelete: PerUser,
        BulkListUnlock: PerUser,
        BulkListUsers: PerUser,
        BulkListAllUsers: PerUser,
        BulkListGroupUsers: PerUser,
        AppdataCreate: PerUser,
        AppdataGet: PerUser,
        AppdataUpdate: PerUser,
        AppdataDelete: PerUser,
        AppdataListUserAppNames: PerUser,
        AppdataListVersions: PerUser,
        UserUpdateRequest: PerUser,
        UserPatchRequest: PerUser,
        UserDeleteRequest: PerUser,
        AppdataUpdateRequest: PerUser,
        UserRequestGet: PerUser,
        UserRequestListUserRequests: PerUser,
        UserRequestApprove: PerUser,
        UserRequestCancel: PerUser,
        BulkListAllUserRequests: PerUser,
        AgreementAccept: PerUser,
        AgreementGet: PerUser,
        AgreementListUserAgreements: PerUser,
        AgreementCancel: PerUser,
        AgreementCancelRequest: PerUser,
        // Every user's agreements to one basis: decided on the consent of all of them, inside.
        AgreementRevokeAll: PerUser,
        // Decided on the user a session belongs to (or on every user, for one linked to no one).
        SessionUpsert: PerUser,
        SessionGet: PerUser,
        SessionDelete: PerUser,
        SessionListUserSessions: PerUser,
        SharedRecordCreate: PerUser,
        FileCreate: PerUser,
        FileGet: PerUser,
        FileListUserFiles: PerUser,
        FileReplaceTags: PerUser,
        FileDelete: PerUser,
        // Everything held about one user (its own user token may ask for its own).
        SystemGetUserReport: PerUser,
        SystemGetUserHTMLReport: PerUser,
        // The expiration flow (Bunker's own, for /v1/exp): scheduling a user's deletion, reading
        // and cancelling it.
        UserExpirationStart: PerUser,
        UserExpirationGet: PerUser,
        UserExpirationCancel: PerUser,
        // Every user's files with a tag: decided for each file's owner, inside.
        BulkListFilesByTag: PerUser,
        // Public: no token; the capability is the record's uuid.
        SharedRecordGet: Public,
        // Public: the tenant's display configuration, and the end-user login (refused until it
        // is configured).
        TenantGetUIConf: Public,
        UserPrelogin: Public,
        UserLogin: Public,
        CaptchaCreate: Public,
        // Public: the capability is the expiration link's uuid.
        UserExpirationRetain: Public,
        UserExpirationDelete: Public,
        // Decided once, with no user as target, before the command runs.
        UserCreate: Tenant,
        UserCreateBulk: Tenant,
        GroupCreate: Tenant,
        GroupGet: Tenant,
        GroupListAllGroups: Tenant,
        TokenCreate: Tenant,
        TokenCreateBulk: Tenant,
        TokenGet: Tenant,
        TokenDelete: Tenant,
        BulkListTokens: Tenant,
        BulkDeleteTokens: Tenant,
        BulkListAllAuditEvents: Tenant,
        AppdataListAppNames: Tenant,
        // The tenant's consent texts (a DPO's role may be allowed them; every user token may list
        // them). LegalBasisDelete also revokes agreements, decided for each of their users.
        LegalBasisCreate: Tenant,
        LegalBasisUpdate: Tenant,
        LegalBasisDelete: Tenant,
        LegalBasisListAgreements: Tenant,
        ProcessingActivityCreate: Tenant,
        ProcessingActivityUpdate: Tenant,
        ProcessingActivityDelete: Tenant,
        ProcessingActivityLinkLegalBasis: Tenant,
        ProcessingActivityUnlinkLegalBasis: Tenant,
        ProcessingActivityListActivities: Tenant,
    }
    // The contract's commands a policy may name before Bunker routes them (so that a policy written
    // today keeps its meaning when they land). Refused to everyone but admins until routed.
    planned {
    }
}

/// What Bunker audits besides the commands: its own work (expiry) and the command line's (keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    UserExpired,
    TokenExpired,
    KeysRotateWrapping,
    KeysRecover,
    KeysRotateMaster,
    KeysRetireMaster,
    AgreementExpired,
    AgreementLinked,
    AgreementSuperseded,
    FileExpired,
    RestoreWindowEnded,
    TenantKeyCreated,
    TenantKeyRetired,
}

impl Operation {
    /// What the operation's audit events record as their action.
    pub fn audit_action(self) -> &'static str {
        match self {
            Operation::UserExpired => "UserExpired",
            Operation::TokenExpired => "TokenExpired",
            Operation::KeysRotateWrapping => "KeysRotateWrapping",
            Operation::KeysRecover => "KeysRecover",
            Operation::KeysRotateMaster => "KeysRotateMaster",
            Operation::KeysRetireMaster => "KeysRetireMaster",
            Operation::AgreementExpired => "AgreementExpired",
            Operation::AgreementLinked => "AgreementLinked",
            Operation::AgreementSuperseded => "AgreementSuperseded",
            Operation::FileExpired => "FileExpired",
            Operation::RestoreWindowEnded => "RestoreWindowEnded",
            Operation::TenantKeyCreated => "TenantKeyCreated",
            Operation::TenantKeyRetired => "TenantKeyRetired",
        }
    }
}

/// The answer to a role or user token that may not do something, whether or not its target exists
/// (so that a token cannot probe for users).
pub const DENIED: &str = "API access denied";

/// How a command is authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandClass {
    /// Root and tenant admins only.
    AdminOnly,
    /// Decided for each user the command touches, inside the command.
    PerUser,
    /// Decided once, with no user as target, before the command runs.
    Tenant,
    /// Needs no token (the command carries its own capability); no policy may name it.
    Public,
}

/// How `command` is authorized (see [`Command`]): a command Bunker does not route is refused to
/// every role and user token.
pub fn class(command: &str) -> CommandClass {
    Command::from_name(command).map_or(CommandClass::AdminOnly, Command::class)
}

impl Command {
    /// What the command's audit events record as their action.
    pub fn audit_action(self) -> &'static str {
        self.name()
    }

    /// The command's operation id in the OpenAPI document (a test holds the document to it).
    pub fn operation_id(self) -> &'static str {
        self.name()
    }

    /// Whether a policy may name the command: every command but the admins' own (tenants, their
    /// tokens, roles, policies, keys); the role and user token commands may be named already.
    pub fn nameable(self) -> bool {
        !self.is_routed()
            || !matches!(self.class(), CommandClass::AdminOnly | CommandClass::Public)
            || matches!(
                self,
                Command::XTokenCreateForRole | Command::XTokenCreateForUser
            )
    }

    /// The names a policy's `Action` may match.
    pub fn nameable_names() -> impl Iterator<Item = &'static str> {
        Command::ALL
            .iter()
            .chain(Command::PLANNED)
            .filter(|command| command.nameable())
            .map(|command| command.name())
    }

    /// The routed command named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL
            .iter()
            .copied()
            .find(|command| command.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_classed() {
        for admin in [
            "TenantCreate",
            "RoleCreate",
            "PolicyUpdate",
            "RoleLinkPolicy",
            "SystemGenerateWrappingKey",
            "XTokenCreateForUser",
        ] {
            assert_eq!(class(admin), CommandClass::AdminOnly, "{admin}");
        }
        for per_user in [
            "UserGet",
            "BulkListGroupUsers",
            "UserSearch",
            "AuditGetEvent",
        ] {
            assert_eq!(class(per_user), CommandClass::PerUser, "{per_user}");
        }
        for tenant in ["UserCreate", "TokenCreate", "GroupCreate", "BulkListTokens"] {
            assert_eq!(class(tenant), CommandClass::Tenant, "{tenant}");
        }
        // A command not in the list (a typo, one not routed yet) is nobody's but an admin's.
        for unknown in ["UserGetX", "ConsentAccept", ""] {
            assert_eq!(class(unknown), CommandClass::AdminOnly, "{unknown}");
        }
    }

    #[test]
    fn policies_may_name_the_commands_on_users_and_their_data_but_not_the_admins_own() {
        let names: Vec<&str> = Command::nameable_names().collect();
        for nameable in [
            "UserGet",
            "UserCreateBulk",
            "BulkListAllAuditEvents",
            "XTokenCreateForUser",
            "UserRequestApprove",
            "SharedRecordCreate",
        ] {
            assert!(names.contains(&nameable), "{nameable}");
        }
        for admins in [
            "TenantCreate",
            "RoleLinkPolicy",
            "PolicyUpdate",
            "SystemGenerateWrappingKey",
        ] {
            assert!(!names.contains(&admins), "{admins}");
        }
        assert!(!names.contains(&"SharedRecordGet"));
        assert_eq!(names.len(), 80 + Command::PLANNED.len());
    }
}
