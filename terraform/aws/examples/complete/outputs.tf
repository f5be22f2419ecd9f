output "region" {
  description = "AWS_REGION of Bunker's pods."
  value       = module.bunker.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.bunker.cluster_name
}

output "kms_key_arn" {
  description = "BUNKER_KMS_KEY_ID."
  value       = module.bunker.kms_key_arn
}

output "irsa_role_arn" {
  description = "eks.amazonaws.com/role-arn annotation of Bunker's service account."
  value       = module.bunker.irsa_role_arn
}

output "service_account" {
  description = "Namespace and name of Bunker's service account."
  value       = module.bunker.service_account
}

output "db_endpoint" {
  description = "Aurora writer endpoint."
  value       = module.bunker.db_endpoint
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

output "bunker_env" {
  description = "Non-secret environment of Bunker's pods."
  value       = module.bunker.bunker_env
}
