# Bunker on AWS: a VPC, an EKS cluster, Aurora PostgreSQL, the KMS key that wraps Bunker's master key, the IRSA
# role of Bunker's service account, Secrets Manager entries for the database roles and an optional S3 file vault.
# The VPC and EKS come from the terraform-aws-modules; the rest is plain resources, whose security settings the
# checks in tests/deploy/ read directly.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# The zones are named, not discovered: a zone AWS adds later must not move subnets or instances on the next apply.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = local.zone_names
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(local.zone_names)
      error_message = "Some of the availability zones ${join(", ", local.zone_names)} are not available in this region: set availability_zones."
    }
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  root_arn   = "arn:${local.partition}:iam::${local.account_id}:root"
  zone_names = length(var.availability_zones) > 0 ? var.availability_zones : [
    for letter in slice(["a", "b", "c", "d", "e", "f"], 0, var.availability_zone_count) : "${data.aws_region.current.region}${letter}"
  ]
  azs = sort(data.aws_availability_zones.selected.names)

  # Private subnets (nodes and pods, which take VPC addresses) get a /19 of a /16 each, one eighth of the VPC per
  # zone; the last eighth is cut into /24s for the database (first half) and the load balancers (second half).
  private_subnets  = [for i in range(length(local.zone_names)) : cidrsubnet(var.vpc_cidr, 3, i)]
  small_subnets    = cidrsubnet(var.vpc_cidr, 3, 7)
  database_subnets = [for i in range(length(local.zone_names)) : cidrsubnet(local.small_subnets, 5, i)]
  public_subnets   = [for i in range(length(local.zone_names)) : cidrsubnet(local.small_subnets, 5, i + 16)]

  service_account_subject = "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"

  tags = merge(var.tags, {
    "bunker.installation" = var.name
    "managed-by"          = "terraform"
  })
}

module "vpc" {
  #checkov:skip=CKV_TF_1:A registry module pinned by a ~> version constraint (releases are immutable tags); a commit hash would swap the registry source for git
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 6.0"

  name = var.name
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets  = local.private_subnets
  database_subnets = local.database_subnets
  public_subnets   = local.public_subnets

  # The database subnets have no route to the internet, not even through NAT.
  create_database_subnet_group       = true
  create_database_subnet_route_table = true

  enable_nat_gateway     = true
  single_nat_gateway     = var.single_nat_gateway
  one_nat_gateway_per_az = !var.single_nat_gateway

  enable_dns_hostnames = true
  enable_dns_support   = true

  # The default security group of a VPC allows all traffic between its members: the module empties it.
  manage_default_security_group  = true
  default_security_group_ingress = []
  default_security_group_egress  = []

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_cloudwatch_log_group_retention_in_days = 365
  flow_log_max_aggregation_interval               = 60

  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }

  tags = local.tags
}

module "eks" {
  #checkov:skip=CKV_TF_1:A registry module pinned by a ~> version constraint (releases are immutable tags); a commit hash would swap the registry source for git
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 21.0"

  name               = var.name
  kubernetes_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  endpoint_private_access      = true
  endpoint_public_access       = length(var.cluster_endpoint_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs

  # IRSA: the cluster's OIDC provider, which Bunker's role trusts (iam.tf).
  enable_irsa = true

  enable_cluster_creator_admin_permissions = true
  enabled_log_types                        = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  addons = {
    coredns    = {}
    kube-proxy = {}
    # The VPC CNI enforces NetworkPolicies (the chart's) only with its network policy agent on.
    vpc-cni = {
      before_compute       = true
      configuration_values = jsonencode({ enableNetworkPolicy = "true" })
    }
  }

  eks_managed_node_groups = {
    default = {
      instance_types = var.node_instance_types
      min_size       = var.node_count.min
      desired_size   = var.node_count.desired
      max_size       = var.node_count.max
    }
  }

  tags = local.tags
}
