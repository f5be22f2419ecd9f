# The IRSA role of Bunker's Kubernetes service account: the serving pods, the init Job and the key-ceremony pods
# that run as it may wrap and unwrap the master key with the wrapping key, tenants' keys with the tenants' own KMS
# keys listed in tenant_kms_key_arns and, with the file vault, read and write Bunker's objects. Nothing else: no
# Secrets Manager (the database URLs reach pods as Kubernetes Secrets), no other key, bucket or prefix. The
# migrations Job has a service account of its own, with no role.

data "aws_iam_policy_document" "bunker_trust" {
  statement {
    sid     = "OnlyBunkersServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [module.eks.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:sub"
      values   = [local.service_account_subject]
    }
    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "bunker" {
  name                 = "${var.name}-bunker"
  description          = "Bunker's service account ${local.service_account_subject} on EKS cluster ${var.name}"
  assume_role_policy   = data.aws_iam_policy_document.bunker_trust.json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "bunker" {
  statement {
    sid       = "WrapAndUnwrapTheMasterKey"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = [aws_kms_key.wrapping.arn]

    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:bunker:installation"
      values   = ["false"]
    }
  }

  # Tenants' own KMS keys (TenantKeySetWrapping), often in the tenants' accounts: KMS then needs this policy as well
  # as the key's own. Bunker names the installation, the tenant and the key version in every Encrypt and Decrypt.
  dynamic "statement" {
    for_each = length(var.tenant_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "WrapAndUnwrapKeysOfTenantsOnTheirOwnKmsKeys"
      effect    = "Allow"
      actions   = ["kms:Encrypt", "kms:Decrypt"]
      resources = var.tenant_kms_key_arns

      condition {
        test     = "Null"
        variable = "kms:EncryptionContext:bunker:installation"
        values   = ["false"]
      }
      condition {
        test     = "Null"
        variable = "kms:EncryptionContext:bunker:tenant"
        values   = ["false"]
      }

      dynamic "condition" {
        for_each = var.bunker_installation_id == null ? [] : [var.bunker_installation_id]
        content {
          test     = "StringEquals"
          variable = "kms:EncryptionContext:bunker:installation"
          values   = [condition.value]
        }
      }
    }
  }

  # DescribeKey (Bunker checks that the key is Enabled before each use) carries no encryption context.
  dynamic "statement" {
    for_each = length(var.tenant_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DescribeTenantsOwnKmsKeys"
      effect    = "Allow"
      actions   = ["kms:DescribeKey"]
      resources = var.tenant_kms_key_arns
    }
  }

  dynamic "statement" {
    for_each = var.files_bucket_enabled ? [1] : []
    content {
      sid       = "ListBunkersObjects"
      effect    = "Allow"
      actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
      resources = [aws_s3_bucket.files[0].arn]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [var.files_prefix, "${var.files_prefix}/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.files_bucket_enabled ? [1] : []
    content {
      sid    = "ReadAndWriteBunkersObjects"
      effect = "Allow"
      actions = [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
      ]
      resources = ["${aws_s3_bucket.files[0].arn}/${var.files_prefix}/*"]
    }
  }

  dynamic "statement" {
    for_each = var.files_bucket_enabled ? [1] : []
    content {
      sid       = "UseTheFilesKeyThroughS3"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = [aws_kms_key.files[0].arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "bunker" {
  name   = "bunker"
  role   = aws_iam_role.bunker.id
  policy = data.aws_iam_policy_document.bunker.json

  lifecycle {
    # Bunker's KMS client works in AWS_REGION only: a key of another region (or partition) would never open.
    precondition {
      condition     = alltrue([for arn in var.tenant_kms_key_arns : startswith(arn, "arn:${local.partition}:kms:${local.region}:")])
      error_message = "Every tenant_kms_key_arns entry must be a key in ${local.partition}/${local.region}, the installation's region (a multi-Region key's replica there will do)."
    }
  }
}

# Enhanced Monitoring: RDS's agent publishes OS metrics of the instances with this role.
data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count = var.db_monitoring_interval_seconds > 0 ? 1 : 0

  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count = var.db_monitoring_interval_seconds > 0 ? 1 : 0

  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
