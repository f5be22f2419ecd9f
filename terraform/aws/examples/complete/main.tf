# A complete Bunker installation on AWS with the module's defaults: three zones, a three-node EKS cluster, a
# two-instance Aurora PostgreSQL cluster, the wrapping key, the IRSA role and the S3 file vault.
#
#   terraform init && terraform apply      # with the inputs in terraform.tfvars (docs/deploy-aws.md)

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "bunker"
    }
  }
}

module "bunker" {
  source = "../.."

  name                                 = var.name
  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
  kubernetes_namespace                 = var.kubernetes_namespace
  kubernetes_service_account           = var.kubernetes_service_account
  bunker_installation_id               = var.bunker_installation_id
  tenant_kms_key_arns                  = var.tenant_kms_key_arns
  db_owner_password_version            = var.db_owner_password_version
  files_bucket_enabled                 = var.files_bucket_enabled
}
