# ghr's DynamoDB store: the five tables of crates/ghr-store-dynamodb/src/tables.rs, key for key and index for
# index (`ghr store init` would create the same; opening the store checks their keys). `<prefix>-tenants` is the
# seed's registry, attribute for attribute.

locals {
  # open-index carries a job's fields but not its timeline (tables.rs, job::OPEN_INDEX_PROJECTION, same order).
  open_index_projection = [
    "installation_id",
    "repository",
    "labels",
    "tier",
    "status",
    "conclusion",
    "runner_name",
    "wait_reason",
    "received_at",
    "queued_at",
    "started_at",
    "completed_at",
    "updated_at",
    "version",
  ]
  # TTL attribute (epoch seconds) of the tables that expire items (tables.rs, TTL_ATTRIBUTE).
  ttl_attribute = "expires_at"
}

resource "aws_dynamodb_table" "tenants" {
  name         = "${var.prefix}-tenants"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "installation_id"

  attribute {
    name = "installation_id"
    type = "N"
  }
  attribute {
    name = "status"
    type = "S"
  }
  attribute {
    name = "org_name"
    type = "S"
  }

  global_secondary_index {
    name            = "status-index"
    hash_key        = "status"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "org-name-index"
    hash_key        = "org_name"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }

  tags = merge(local.tags, { "ghr:component" = "tenant-registry" })
}

resource "aws_dynamodb_table" "jobs" {
  name         = "${var.prefix}-jobs"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "job_id"

  attribute {
    name = "job_id"
    type = "N"
  }
  attribute {
    name = "open_tenant"
    type = "N"
  }
  attribute {
    name = "open_order"
    type = "S"
  }

  # Sparse: only open jobs (queued or running, matched to a tier) carry open_tenant.
  global_secondary_index {
    name               = "open-index"
    hash_key           = "open_tenant"
    range_key          = "open_order"
    projection_type    = "INCLUDE"
    non_key_attributes = local.open_index_projection
  }

  ttl {
    attribute_name = local.ttl_attribute
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }

  tags = merge(local.tags, { "ghr:component" = "jobs" })
}

resource "aws_dynamodb_table" "runners" {
  name         = "${var.prefix}-runners"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "runner_name"

  attribute {
    name = "runner_name"
    type = "S"
  }
  attribute {
    name = "live_tenant"
    type = "N"
  }
  attribute {
    name = "live_order"
    type = "S"
  }

  # Sparse: only live runners carry live_tenant.
  global_secondary_index {
    name            = "live-index"
    hash_key        = "live_tenant"
    range_key       = "live_order"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }

  tags = merge(local.tags, { "ghr:component" = "runners" })
}

resource "aws_dynamodb_table" "deliveries" {
  name         = "${var.prefix}-deliveries"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "delivery_id"

  attribute {
    name = "delivery_id"
    type = "S"
  }

  ttl {
    attribute_name = local.ttl_attribute
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }

  tags = merge(local.tags, { "ghr:component" = "deliveries" })
}

resource "aws_dynamodb_table" "state" {
  name         = "${var.prefix}-state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }

  tags = merge(local.tags, { "ghr:component" = "state" })
}

locals {
  tables = {
    tenants    = aws_dynamodb_table.tenants
    jobs       = aws_dynamodb_table.jobs
    runners    = aws_dynamodb_table.runners
    deliveries = aws_dynamodb_table.deliveries
    state      = aws_dynamodb_table.state
  }
  table_arns = flatten([for t in values(local.tables) : [t.arn, "${t.arn}/index/*"]])
}
