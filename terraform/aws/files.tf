# The optional S3 bucket of Bunker's file vault (BUNKER_FILES_URL=s3://<bucket>/<prefix>). Bunker seals every
# object itself (per-file keys, docs/sessions-files.md); the bucket adds SSE-KMS with its own key, no public access,
# TLS only, and object access for Bunker's role alone.

resource "aws_s3_bucket" "files" {
  #checkov:skip=CKV_AWS_18:Bunker's audit trail records every file read and write by actor; S3 server access logs would add a second, unsealed record of object names (tenant and user tokens)
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: Bunker is the bucket's only writer and keeps its own rows of every object
  #checkov:skip=CKV_AWS_144:Objects are sealed with keys held in the database; a replica in another region is useful only with the database's, which this module does not make (docs/deploy-aws.md)
  count = var.files_bucket_enabled ? 1 : 0

  bucket        = "${var.name}-files-${local.account_id}"
  force_destroy = var.files_force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket                  = aws_s3_bucket.files[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket = aws_s3_bucket.files[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket = aws_s3_bucket.files[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.files[0].arn
    }
    # One data key per bucket and period instead of a KMS call per object.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket = aws_s3_bucket.files[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket = aws_s3_bucket.files[0].id

  # A crash or a stalled store can leave a multipart upload unfinished; its parts are billed but never listed.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.files_abort_incomplete_multipart_days
    }
  }

  # Versioning keeps deleted objects' old versions; they are sealed, and unreadable once their user is forgotten,
  # but need not be kept for ever.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.files_noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.files]
}

data "aws_iam_policy_document" "files_bucket" {
  count = var.files_bucket_enabled ? 1 : 0

  statement {
    sid       = "DenyWithoutTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.files[0].arn, "${aws_s3_bucket.files[0].arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # Objects are Bunker's alone: an administrator of the account manages the bucket but reads no object.
  statement {
    sid    = "DenyObjectAccessToAllButBunker"
    effect = "Deny"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:RestoreObject",
    ]
    resources = ["${aws_s3_bucket.files[0].arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.bunker.arn]
    }
  }

  statement {
    sid    = "AllowBunker"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.files[0].arn}/${var.files_prefix}/*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.bunker.arn]
    }
  }

  statement {
    sid       = "AllowBunkerToList"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.files[0].arn]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.bunker.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "files" {
  count = var.files_bucket_enabled ? 1 : 0

  bucket = aws_s3_bucket.files[0].id
  policy = data.aws_iam_policy_document.files_bucket[0].json

  # A public-access block first, so the policy is never briefly evaluated without it.
  depends_on = [aws_s3_bucket_public_access_block.files]
}
