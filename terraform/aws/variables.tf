variable "name" {
  description = "Name of this Bunker installation; prefixes every resource (VPC, cluster, database, keys, secrets, bucket)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --- Network -------------------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; the subnets are carved from it (a /16 leaves room for three tiers in three zones)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR block of /20 or larger."
  }
}

variable "availability_zone_count" {
  description = "How many availability zones to spread subnets, nodes and database instances over, when availability_zones is empty."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 6
    error_message = "availability_zone_count must be between 2 and 6 (Aurora and EKS need at least two zones)."
  }
}

variable "availability_zones" {
  description = "Availability zones by name (eu-west-2a, ...); empty takes the region's first availability_zone_count zones, a, b, c, ..."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones))
    error_message = "availability_zones must list 2 to 6 different zones, or be empty."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper) instead of one per zone (survives a zone's loss)."
  type        = bool
  default     = false
}

# --- EKS -----------------------------------------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "Kubernetes version of the EKS control plane (major.minor)."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33."
  }
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the cluster's API over the internet; empty keeps the endpoint private (reach it from inside the VPC)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "Each entry must be a CIDR block, and 0.0.0.0/0 is refused: name the networks that administer the cluster."
  }
}

variable "node_instance_types" {
  description = "EC2 instance types of the managed node group, in order of preference."
  type        = list(string)
  default     = ["m7i.large"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "node_instance_types needs at least one instance type."
  }
}

variable "node_count" {
  description = "Node counts of the managed node group; Bunker runs three replicas, one per node at best."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = { min = 3, desired = 3, max = 6 }

  validation {
    condition     = var.node_count.min >= 1 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "node_count must satisfy 1 <= min <= desired <= max."
  }
}

# --- Bunker's service account (IRSA) -------------------------------------------------------------------------------

variable "kubernetes_namespace" {
  description = "Kubernetes namespace Bunker is installed in; the IRSA role trusts only its service account there."
  type        = string
  default     = "bunker"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.kubernetes_namespace))
    error_message = "kubernetes_namespace must be a DNS label (RFC 1123)."
  }
}

variable "kubernetes_service_account" {
  description = "Name of the Kubernetes service account Bunker's pods and its init/migrate Jobs run as."
  type        = string
  default     = "bunker"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.kubernetes_service_account))
    error_message = "kubernetes_service_account must be a DNS subdomain name (RFC 1123)."
  }
}

variable "bunker_installation_id" {
  description = "Bunker's installation id (`bunker keys status`, after `bunker init`); when set, the role may use the wrapping key only with that id in the encryption context. Null before the first init."
  type        = string
  default     = null

  validation {
    condition     = var.bunker_installation_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.bunker_installation_id))
    error_message = "bunker_installation_id must be a lower-case UUID."
  }
}

variable "tenant_kms_key_arns" {
  description = "ARNs of KMS keys that tenants own (possibly in other accounts) and put their Bunker keys on (TenantKeySetWrapping); the role may describe them and encrypt and decrypt with Bunker's encryption context. Each key's own policy must allow the role too (docs/deploy-aws.md)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.tenant_kms_key_arns : can(regex("^arn:aws[-a-z]*:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", arn))])
    error_message = "Each tenant_kms_key_arns entry must be a KMS key ARN, arn:aws:kms:<region>:<12-digit account>:key/<key id> (no alias, no wildcard)."
  }
}

# --- KMS -----------------------------------------------------------------------------------------------------------

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of one of the KMS keys waits before it happens (it can be cancelled meanwhile)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "kms_rotation_period_days" {
  description = "Days between automatic rotations of the KMS keys' backing material (old material stays usable for decryption)."
  type        = number
  default     = 365

  validation {
    condition     = var.kms_rotation_period_days >= 90 && var.kms_rotation_period_days <= 2560
    error_message = "kms_rotation_period_days must be between 90 and 2560 (KMS's limits)."
  }
}

# --- Aurora PostgreSQL ---------------------------------------------------------------------------------------------

variable "db_engine_version" {
  description = "Aurora PostgreSQL engine version; its major version picks the parameter group family."
  type        = string
  default     = "16.6"

  validation {
    condition     = can(regex("^1[4-9]\\.[0-9]+$", var.db_engine_version))
    error_message = "db_engine_version must be an Aurora PostgreSQL version such as 16.6 (major 14 or later)."
  }
}

variable "db_instance_class" {
  description = "Instance class of the Aurora instances (Performance Insights needs a class that supports it)."
  type        = string
  default     = "db.r7g.large"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS instance class such as db.r7g.large."
  }
}

variable "db_instance_count" {
  description = "Aurora instances: one writer and the rest readers in other zones, which fail over in about a minute."
  type        = number
  default     = 2

  validation {
    condition     = var.db_instance_count >= 1 && var.db_instance_count <= 15
    error_message = "db_instance_count must be between 1 and 15."
  }
}

variable "db_name" {
  description = "Name of the database Bunker's schema lives in."
  type        = string
  default     = "bunker"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lower-case PostgreSQL identifier."
  }
}

variable "db_master_username" {
  description = "The RDS master user (its password is managed by RDS in Secrets Manager); used only to create the schema owner."
  type        = string
  default     = "bunker_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_master_username)) && !contains(["bunker_owner", "bunker_app", "bunker_maintenance", "bunker_serve", "postgres", "rdsadmin"], var.db_master_username)
    error_message = "db_master_username must be a lower-case identifier and not one of Bunker's or RDS's own role names."
  }
}

variable "db_owner_username" {
  description = "Login role that owns Bunker's schema: `bunker init`, `bunker migrate` and the maintenance commands run as it, never the server."
  type        = string
  default     = "bunker_owner"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_owner_username)) && !contains(["bunker_app", "bunker_maintenance", "bunker_serve"], var.db_owner_username)
    error_message = "db_owner_username must be a lower-case identifier other than bunker_app, bunker_maintenance and bunker_serve."
  }
}

variable "db_owner_password_version" {
  description = "Bump to generate and store a new password for the schema owner (then set it in PostgreSQL; see docs/deploy-aws.md)."
  type        = number
  default     = 1

  validation {
    condition     = var.db_owner_password_version >= 1 && floor(var.db_owner_password_version) == var.db_owner_password_version
    error_message = "db_owner_password_version must be a positive whole number."
  }
}

variable "db_serve_username" {
  description = "Login role the serving pods use (made by `bunker serve-role create --name <this>`, a member of bunker_app only)."
  type        = string
  default     = "bunker_serve"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_serve_username)) && !contains(["bunker_app", "bunker_maintenance"], var.db_serve_username)
    error_message = "db_serve_username must be a lower-case identifier other than bunker_app and bunker_maintenance."
  }
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time restore) kept. A forgotten user's wrapped key stays in backups this long (docs/deploy-aws.md)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35 (Aurora's limits)."
  }
}

variable "db_preferred_backup_window" {
  description = "Daily UTC window for automated backups (hh24:mi-hh24:mi)."
  type        = string
  default     = "02:00-03:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$", var.db_preferred_backup_window))
    error_message = "db_preferred_backup_window must look like 02:00-03:00."
  }
}

variable "db_preferred_maintenance_window" {
  description = "Weekly UTC window for maintenance (ddd:hh24:mi-ddd:hh24:mi); must not overlap the backup window."
  type        = string
  default     = "sun:04:00-sun:05:00"

  validation {
    condition     = can(regex("^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$", var.db_preferred_maintenance_window))
    error_message = "db_preferred_maintenance_window must look like sun:04:00-sun:05:00."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the Aurora cluster (set false, apply, then destroy, to remove it on purpose)."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the cluster without a final snapshot. Keep false in production."
  type        = bool
  default     = false
}

variable "db_performance_insights_retention_days" {
  description = "Days of Performance Insights data kept (7 is the free tier; otherwise a multiple of 31, up to 731)."
  type        = number
  default     = 7

  validation {
    condition     = var.db_performance_insights_retention_days == 7 || var.db_performance_insights_retention_days == 731 || (var.db_performance_insights_retention_days % 31 == 0 && var.db_performance_insights_retention_days <= 713)
    error_message = "db_performance_insights_retention_days must be 7, 731, or a multiple of 31 up to 713."
  }
}

variable "db_monitoring_interval_seconds" {
  description = "Seconds between Enhanced Monitoring samples of the instances' OS (0 turns it off)."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval_seconds)
    error_message = "db_monitoring_interval_seconds must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_log_retention_days" {
  description = "Days the PostgreSQL logs exported to CloudWatch are kept."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.db_log_retention_days)
    error_message = "db_log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ..., 3653)."
  }
}

# --- S3 file vault -------------------------------------------------------------------------------------------------

variable "files_bucket_enabled" {
  description = "Create the S3 bucket for Bunker's file vault (BUNKER_FILES_URL); without it the file commands answer 503."
  type        = bool
  default     = true
}

variable "files_prefix" {
  description = "Key prefix of Bunker's objects in the bucket (the `prefix` of s3://bucket/prefix)."
  type        = string
  default     = "bunker"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9/_-]{0,62}[a-z0-9]$", var.files_prefix)) && !strcontains(var.files_prefix, "//")
    error_message = "files_prefix must be 2-64 characters of lower-case letters, digits, '/', '_' and '-', with no leading, trailing or doubled '/'."
  }
}

variable "files_abort_incomplete_multipart_days" {
  description = "Days after which an incomplete multipart upload (a crash mid-upload) is aborted and its parts removed."
  type        = number
  default     = 1

  validation {
    condition     = var.files_abort_incomplete_multipart_days >= 1 && var.files_abort_incomplete_multipart_days <= 7
    error_message = "files_abort_incomplete_multipart_days must be between 1 and 7."
  }
}

variable "files_noncurrent_version_days" {
  description = "Days a deleted or overwritten object's old version is kept (versioning) before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.files_noncurrent_version_days >= 1 && var.files_noncurrent_version_days <= 3650
    error_message = "files_noncurrent_version_days must be between 1 and 3650."
  }
}

variable "files_force_destroy" {
  description = "Let `terraform destroy` delete the bucket with objects in it. Keep false in production."
  type        = bool
  default     = false
}

variable "db_ca_bundle_path" {
  description = "Where the chart mounts the RDS CA bundle in Bunker's containers; written into the database URLs as sslrootcert."
  type        = string
  default     = "/etc/bunker/rds-ca/global-bundle.pem"

  validation {
    condition     = startswith(var.db_ca_bundle_path, "/") && !strcontains(var.db_ca_bundle_path, " ")
    error_message = "db_ca_bundle_path must be an absolute path without spaces."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted Secrets Manager secret can still be restored."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 (delete at once) or between 7 and 30."
  }
}
