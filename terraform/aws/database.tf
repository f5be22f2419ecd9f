# Aurora PostgreSQL in the database subnets: storage, snapshots, Performance Insights and logs encrypted with the
# database key, TLS required of every connection, IAM authentication available to people (Bunker itself logs in
# with a password: see secrets.tf), deletion protection and a final snapshot by default.

locals {
  db_family = "aurora-postgresql${split(".", var.db_engine_version)[0]}"
}

resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "Aurora PostgreSQL of ${var.name}: PostgreSQL from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_nodes" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the EKS nodes (Bunker's pods)"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_rds_cluster_parameter_group" "bunker" {
  name        = "${var.name}-${local.db_family}"
  family      = local.db_family
  description = "${var.name}: TLS required, TLS 1.2 or later, connections and DDL logged"

  # Refuse any connection without TLS; Bunker connects with sslmode=verify-full against the RDS CA bundle.
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }
  parameter {
    name         = "ssl_min_protocol_version"
    value        = "TLSv1.2"
    apply_method = "pending-reboot"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  # DDL only, and slow statements' text without their bind parameters: no value a request sent reaches the logs.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_parameter_max_length"
    value = "0"
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "database" {
  name              = local.database_log_group_name
  retention_in_days = var.db_log_retention_days
  kms_key_id        = aws_kms_key.database.arn
  tags              = local.tags
}

resource "aws_rds_cluster" "bunker" {
  #checkov:skip=CKV2_AWS_8:Aurora's own continuous backups (backup_retention_period, point-in-time restore) are the backup; a second copy in AWS Backup would lengthen how long a forgotten user's key survives in backups (docs/deploy-aws.md)
  cluster_identifier = var.name
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned"
  engine_version     = var.db_engine_version
  database_name      = var.db_name
  port               = 5432

  master_username               = var.db_master_username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.database.arn

  storage_encrypted = true
  kms_key_id        = aws_kms_key.database.arn

  iam_database_authentication_enabled = true

  db_subnet_group_name            = module.vpc.database_subnet_group_name
  vpc_security_group_ids          = [aws_security_group.database.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.bunker.name

  backup_retention_period      = var.db_backup_retention_days
  preferred_backup_window      = var.db_preferred_backup_window
  preferred_maintenance_window = var.db_preferred_maintenance_window
  copy_tags_to_snapshot        = true
  deletion_protection          = var.db_deletion_protection
  skip_final_snapshot          = var.db_skip_final_snapshot
  final_snapshot_identifier    = "${var.name}-final"

  enabled_cloudwatch_logs_exports = ["postgresql"]

  tags = local.tags

  depends_on = [aws_cloudwatch_log_group.database]
}

resource "aws_rds_cluster_instance" "bunker" {
  count = var.db_instance_count

  identifier         = "${var.name}-${count.index + 1}"
  cluster_identifier = aws_rds_cluster.bunker.id
  engine             = aws_rds_cluster.bunker.engine
  engine_version     = aws_rds_cluster.bunker.engine_version
  instance_class     = var.db_instance_class

  publicly_accessible        = false
  auto_minor_version_upgrade = true
  ca_cert_identifier         = "rds-ca-rsa2048-g1"

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.database.arn
  performance_insights_retention_period = var.db_performance_insights_retention_days

  monitoring_interval = var.db_monitoring_interval_seconds
  monitoring_role_arn = var.db_monitoring_interval_seconds > 0 ? aws_iam_role.rds_monitoring[0].arn : null

  copy_tags_to_snapshot = true
  tags                  = local.tags
}
