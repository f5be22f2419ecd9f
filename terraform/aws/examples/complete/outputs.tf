# Every output of the module, re-exported: docs/deploy-aws.md reads them here, in this root
# (tests/deploy/check_terraform.py holds the two lists equal).

output "region" {
  description = "AWS_REGION of Bunker's pods."
  value       = module.bunker.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.bunker.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.bunker.cluster_endpoint
}

output "public_subnet_cidrs" {
  description = "CIDRs of the load balancers' subnets: the chart's config.trustedProxies."
  value       = module.bunker.public_subnet_cidrs
}

output "private_subnet_cidrs" {
  description = "CIDRs of the nodes' subnets."
  value       = module.bunker.private_subnet_cidrs
}

output "database_subnet_cidrs" {
  description = "CIDRs of the database subnets: the chart's networkPolicy.egress.postgres.cidrs."
  value       = module.bunker.database_subnet_cidrs
}

output "kms_key_arn" {
  description = "BUNKER_KMS_KEY_ID."
  value       = module.bunker.kms_key_arn
}

output "kms_key_alias" {
  description = "Alias of the wrapping key."
  value       = module.bunker.kms_key_alias
}

output "irsa_role_arn" {
  description = "eks.amazonaws.com/role-arn annotation of Bunker's service account."
  value       = module.bunker.irsa_role_arn
}

output "service_account" {
  description = "Namespace and name of Bunker's service account."
  value       = module.bunker.service_account
}

output "db_cluster_identifier" {
  description = "Aurora cluster identifier."
  value       = module.bunker.db_cluster_identifier
}

output "db_endpoint" {
  description = "Aurora writer endpoint."
  value       = module.bunker.db_endpoint
}

output "db_reader_endpoint" {
  description = "Aurora reader endpoint."
  value       = module.bunker.db_reader_endpoint
}

output "db_port" {
  description = "PostgreSQL port."
  value       = module.bunker.db_port
}

output "db_name" {
  description = "Database holding Bunker's schema."
  value       = module.bunker.db_name
}

output "db_ca_bundle_path" {
  description = "Mount path of the RDS CA bundle in Bunker's containers."
  value       = module.bunker.db_ca_bundle_path
}

output "db_master_secret_arn" {
  description = "RDS master user's secret (bootstrap only)."
  value       = module.bunker.db_master_secret_arn
}

output "db_owner_secret_arn" {
  description = "Schema owner's secret: the init/migrate Job's BUNKER_DATABASE_URL."
  value       = module.bunker.db_owner_secret_arn
}

output "db_serve_secret_arn" {
  description = "Serving role's secret: the serving pods' BUNKER_DATABASE_URL."
  value       = module.bunker.db_serve_secret_arn
}

output "db_owner_username" {
  description = "Schema owner role name."
  value       = module.bunker.db_owner_username
}

output "db_serve_username" {
  description = "Serving role name (bunker serve-role create --name)."
  value       = module.bunker.db_serve_username
}

output "files_bucket_name" {
  description = "S3 bucket of the file vault."
  value       = module.bunker.files_bucket_name
}

output "files_url" {
  description = "BUNKER_FILES_URL (null without the file vault)."
  value       = module.bunker.files_url
}

output "bunker_env" {
  description = "Non-secret environment of Bunker's pods."
  value       = module.bunker.bunker_env
}
