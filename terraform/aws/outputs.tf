# What a Helm install of Bunker needs; docs/deploy-aws.md says which value each feeds.

output "region" {
  description = "AWS region of the installation: set AWS_REGION in Bunker's pods (the SDK's fallback is us-east-1)."
  value       = local.region
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name <this>)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.cluster_endpoint
}

output "public_subnet_cidrs" {
  description = "CIDRs of the public subnets, where the load balancer runs: the chart's config.trustedProxies (BUNKER_TRUSTED_PROXIES) when the balancer forwards X-Forwarded-For."
  value       = local.public_subnets
}

output "private_subnet_cidrs" {
  description = "CIDRs of the private subnets, where the EKS nodes (and an in-cluster ingress controller) run."
  value       = local.private_subnets
}

output "database_subnet_cidrs" {
  description = "CIDRs of the database subnets: the chart's NetworkPolicy egress to PostgreSQL."
  value       = local.database_subnets
}

output "kms_key_arn" {
  description = "ARN of the KMS key that wraps Bunker's master key: BUNKER_KMS_KEY_ID."
  value       = aws_kms_key.wrapping.arn
}

output "kms_key_alias" {
  description = "Alias of the wrapping key (BUNKER_KMS_KEY_ID accepts it too; the ARN survives a re-pointed alias better)."
  value       = aws_kms_alias.wrapping.name
}

output "irsa_role_arn" {
  description = "IAM role of Bunker's service account: its eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.bunker.arn
}

output "service_account" {
  description = "Namespace and name of the Kubernetes service account the IRSA role trusts; the chart must use exactly these."
  value = {
    namespace = var.kubernetes_namespace
    name      = var.kubernetes_service_account
  }
}

output "db_cluster_identifier" {
  description = "Aurora cluster identifier (the source of a point-in-time restore; docs/deploy-aws.md)."
  value       = aws_rds_cluster.bunker.cluster_identifier
}

output "db_endpoint" {
  description = "Aurora writer endpoint (host of BUNKER_DATABASE_URL)."
  value       = aws_rds_cluster.bunker.endpoint
}

output "db_reader_endpoint" {
  description = "Aurora reader endpoint (for reporting tools; Bunker itself uses the writer)."
  value       = aws_rds_cluster.bunker.reader_endpoint
}

output "db_port" {
  description = "PostgreSQL port."
  value       = aws_rds_cluster.bunker.port
}

output "db_name" {
  description = "Database holding Bunker's schema."
  value       = var.db_name
}

output "db_ca_bundle_path" {
  description = "Where the chart must mount the RDS CA bundle (sslrootcert of the database URLs)."
  value       = var.db_ca_bundle_path
}

output "db_master_secret_arn" {
  description = "Secrets Manager secret of the RDS master user (managed and rotated by RDS); used once, to create the schema owner."
  value       = aws_rds_cluster.bunker.master_user_secret[0].secret_arn
}

output "db_owner_secret_arn" {
  description = "Secrets Manager secret of the schema owner (JSON with database_url): BUNKER_DATABASE_URL of the init/migrate Job only."
  value       = aws_secretsmanager_secret.db_owner.arn
}

output "db_serve_secret_arn" {
  description = "Secrets Manager secret of the serving role (JSON with database_url, written after bunker serve-role create): BUNKER_DATABASE_URL of the serving pods."
  value       = aws_secretsmanager_secret.db_serve.arn
}

output "db_owner_username" {
  description = "Schema owner role name (created by hand with the master user; docs/deploy-aws.md)."
  value       = var.db_owner_username
}

output "db_serve_username" {
  description = "Serving role name, to pass to bunker serve-role create --name."
  value       = var.db_serve_username
}

output "files_bucket_name" {
  description = "S3 bucket of the file vault (null when disabled)."
  value       = var.files_bucket_enabled ? aws_s3_bucket.files[0].bucket : null
}

output "files_url" {
  description = "BUNKER_FILES_URL (null when the bucket is disabled: the file commands then answer 503)."
  value       = var.files_bucket_enabled ? "s3://${aws_s3_bucket.files[0].bucket}/${var.files_prefix}" : null
}

output "bunker_env" {
  description = "The non-secret environment of Bunker's pods, by variable name (the database URLs come from the two secrets)."
  value = merge(
    {
      AWS_REGION        = local.region
      BUNKER_KMS_KEY_ID = aws_kms_key.wrapping.arn
    },
    var.files_bucket_enabled ? { BUNKER_FILES_URL = "s3://${aws_s3_bucket.files[0].bucket}/${var.files_prefix}" } : {},
  )
}
