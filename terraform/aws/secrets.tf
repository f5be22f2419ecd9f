# The database credentials, in Secrets Manager, encrypted with the database key:
#   master (RDS-managed, rotated by RDS): the RDS master user; used once, to create the schema owner.
#   owner (this file): the schema owner; `bunker init`, `bunker migrate`, `bunker serve-role create` and the
#     maintenance commands (`keys reencrypt`, `token rotate-root`, ...) run with it. Never given to serving pods.
#   serve (this file, value written by the operator): the login role that `bunker serve-role create` makes, a
#     member of bunker_app only; the serving pods run with it.
# Each of the two holds `database_url` ready for BUNKER_DATABASE_URL (TLS verified against the RDS CA bundle).

locals {
  db_url_query = "sslmode=verify-full&sslrootcert=${var.db_ca_bundle_path}"
}

# Generated at apply and written write-only: the password is in the secret, never in Terraform's state or plan.
ephemeral "random_password" "db_owner" {
  length  = 40
  special = false # letters and digits: no escaping in a URL or in SQL
}

resource "aws_secretsmanager_secret" "db_owner" {
  #checkov:skip=CKV2_AWS_57:Rotating the owner's password takes ALTER ROLE in PostgreSQL; done by the runbook in docs/deploy-aws.md (db_owner_password_version), not by a rotation Lambda
  name                    = "${var.name}/database/owner"
  description             = "${var.name}: the schema owner's credentials (bunker init, migrate, serve-role create, maintenance). Not for serving pods."
  kms_key_id              = aws_kms_key.database.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "db_owner" {
  secret_id = aws_secretsmanager_secret.db_owner.id
  secret_string_wo = jsonencode({
    engine       = "postgres"
    host         = aws_rds_cluster.bunker.endpoint
    port         = aws_rds_cluster.bunker.port
    dbname       = var.db_name
    username     = var.db_owner_username
    password     = ephemeral.random_password.db_owner.result
    database_url = "postgresql://${var.db_owner_username}:${ephemeral.random_password.db_owner.result}@${aws_rds_cluster.bunker.endpoint}:${aws_rds_cluster.bunker.port}/${var.db_name}?${local.db_url_query}"
  })
  secret_string_wo_version = var.db_owner_password_version
}

# Only the container: the password exists once `bunker serve-role create` prints it, and the operator writes
# it here (docs/deploy-aws.md), in the same JSON shape as the owner's.
resource "aws_secretsmanager_secret" "db_serve" {
  #checkov:skip=CKV2_AWS_57:The serving role's password is made by bunker serve-role create; rotation is a new role and a rolling restart (docs/deploy-aws.md), not a rotation Lambda
  name                    = "${var.name}/database/serve"
  description             = "${var.name}: the serving login role (${var.db_serve_username}, a member of bunker_app only), written after bunker serve-role create"
  kms_key_id              = aws_kms_key.database.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}
