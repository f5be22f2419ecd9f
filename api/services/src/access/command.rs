//! Every `/v2` command Bunker routes, named once, with how it is authorized. The gate reads the
//! class from here, request logging names routes from here, and a test holds this list to the
//! routed commands of the OpenAPI document, so a new command cannot fall into a class by accident
//! (one missing from the list is refused to every role and user token).

macro_rules! commands {
    ($($name:ident: $class:ident,)*) => {
        /// A routed `/v2` command.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Command {
            $($name,)*
        }

        impl Command {
            /// Every routed command.
            pub const ALL: &'static [Command] = &[$(Command::$name,)*];

            /// The command's name, as in `/v2/<name>`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$name => stringify!($name),)*
                }
            }

            /// How the command is authorized.
            pub fn class(self) -> CommandClass {
                match self {
                    $(Command::$name => CommandClass::$class,)*
                }
            }
        }
    };
}

commands! {
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
}

/// How `command` is authorized (see [`Command`]): a command Bunker does not route is refused to
/// every role and user token.
pub fn class(command: &str) -> CommandClass {
    Command::from_name(command).map_or(CommandClass::AdminOnly, Command::class)
}

impl Command {
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
}
