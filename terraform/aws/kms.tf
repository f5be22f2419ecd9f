# Three customer-managed keys, each with rotation on and a policy naming its users:
#   wrapping: wraps Bunker's master key (BUNKER_KMS_KEY_ID); only Bunker's IRSA role may Encrypt/Decrypt with it.
#   database: Aurora's storage, Performance Insights, the database secrets and the PostgreSQL log group.
#   files:    the S3 file vault's SSE-KMS (only when the bucket is enabled).
# The account root administers each key (and so can never be locked out of it), but none of the policies lets the
# root, or any principal but the ones named, encrypt or decrypt Bunker's master key.

locals {
  # What administering a key takes, without using it: no Encrypt, Decrypt, ReEncrypt, GenerateDataKey or CreateGrant.
  kms_admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:Create*",
    "kms:Delete*",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:Put*",
    "kms:Revoke*",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
  ]
  database_log_group_name = "/aws/rds/cluster/${var.name}/postgresql"
}

resource "aws_kms_key" "wrapping" {
  description             = "${var.name}: wraps Bunker's master key (BUNKER_KMS_KEY_ID)"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = var.kms_rotation_period_days
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.wrapping_key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "wrapping" {
  name          = "alias/${var.name}-wrapping"
  target_key_id = aws_kms_key.wrapping.key_id
}

data "aws_iam_policy_document" "wrapping_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself; every statement names its principal
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key itself; every statement names its principal
  statement {
    sid       = "AccountRootAdministersOnly"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"] # in a key policy, "*" is the key itself

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  statement {
    sid       = "BunkerWrapsAndUnwrapsItsMasterKey"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.bunker.arn]
    }

    # Bunker always names its installation and the master-key version in the encryption context.
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:bunker:installation"
      values   = ["false"]
    }
    condition {
      test     = "Null"
      variable = "kms:EncryptionContext:bunker:master-key-version"
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

resource "aws_kms_key" "database" {
  description             = "${var.name}: Aurora storage, Performance Insights, database secrets and logs"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = var.kms_rotation_period_days
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.database_key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "database" {
  name          = "alias/${var.name}-database"
  target_key_id = aws_kms_key.database.key_id
}

data "aws_iam_policy_document" "database_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself; every statement names its principal
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key itself; every statement names its principal
  statement {
    sid       = "AccountRootAdministers"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  # Principals of this account whose IAM policies allow it may use the key, but only through RDS and Secrets
  # Manager (the database, its snapshots, Performance Insights and the secrets), never directly.
  statement {
    sid    = "UseThroughRdsAndSecretsManager"
    effect = "Allow"
    actions = [
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ListGrants",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["rds.${local.region}.amazonaws.com", "secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid    = "CloudWatchLogsEncryptsThePostgresqlLogs"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:Describe*",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.database_log_group_name}"]
    }
  }
}

resource "aws_kms_key" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  description             = "${var.name}: SSE-KMS of the S3 file vault"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = var.kms_rotation_period_days
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.files_key[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  name          = "alias/${var.name}-files"
  target_key_id = aws_kms_key.files[0].key_id
}

data "aws_iam_policy_document" "files_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself; every statement names its principal
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key itself; every statement names its principal
  count = var.files_bucket_enabled ? 1 : 0

  statement {
    sid       = "AccountRootAdministers"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  # The contents are sealed by Bunker already (per-file keys); SSE-KMS adds a second layer that only Bunker's role,
  # and only through S3, can open.
  statement {
    sid       = "BunkerUsesTheKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.bunker.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}
