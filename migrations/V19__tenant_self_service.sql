-- A tenant's self-service settings (TenantUpdate `selfservice`, upstream's `selfservice` options):
-- what a user's own token may do to its own record directly instead of through a request that an
-- admin or a DPO approves. All off by default.
ALTER TABLE tenants ADD COLUMN selfservice_user_change boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN selfservice_forget_me boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN selfservice_app_data_change boolean NOT NULL DEFAULT false;
