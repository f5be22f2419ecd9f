variable "region" {
  description = "AWS region to install Bunker in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-2."
  }
}

variable "name" {
  description = "Name of the installation; prefixes every resource."
  type        = string
  default     = "bunker"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "Networks allowed to reach the EKS API from the internet (empty: private endpoint only)."
  type        = list(string)
  default     = []
}

variable "kubernetes_namespace" {
  description = "Namespace the Helm release of Bunker goes in."
  type        = string
  default     = "bunker"
}

variable "kubernetes_service_account" {
  description = "Service account of the Helm release (the IRSA role trusts only it)."
  type        = string
  default     = "bunker"
}

variable "bunker_installation_id" {
  description = "Installation id from `bunker keys status` after the first init; pins the wrapping key's use to it. Null before."
  type        = string
  default     = null
}

variable "tenant_kms_key_arns" {
  description = "ARNs of the KMS keys tenants own and put their Bunker keys on (docs/deploy-aws.md, \"Tenants' own KMS keys\"); the module validates them."
  type        = list(string)
  default     = []
}

variable "files_bucket_enabled" {
  description = "Create the S3 bucket of the file vault."
  type        = bool
  default     = true
}

variable "db_owner_password_version" {
  description = "Bump to generate a new password for the schema owner (docs/deploy-aws.md, \"Rotation\")."
  type        = number
  default     = 1

  validation {
    condition     = var.db_owner_password_version >= 1 && floor(var.db_owner_password_version) == var.db_owner_password_version
    error_message = "db_owner_password_version must be a positive whole number."
  }
}
