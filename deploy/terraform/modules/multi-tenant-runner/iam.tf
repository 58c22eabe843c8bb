# Least privilege per function. Every function: its own log group and ghr's tables. The webhook: send to the
# work queues and read the webhook secret — no App key, no EC2. The others: consume their own queue, send to the
# work queues, read the App key, and launch and terminate runners of this deployment only.

locals {
  # The functions that hold the App key and act on EC2, with the queues they consume.
  control_functions = merge(
    {
      tenant-manager = { name = local.function_names["tenant-manager"], consumes = ["tenant-events"] }
      scale-down     = { name = local.function_names["scale-down"], consumes = ["teardown"] }
    },
    { for tier in local.tier_names : "scale-up-${tier}" => { name = local.scale_up_names[tier], consumes = ["tier-${tier}"] } },
  )

  work_queue_arns = [for queue in aws_sqs_queue.work : queue.arn]

  ec2_arn = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  # The resources a launch creates: ghr tags each of them (ghr:environment, ghr:tenant_id, ghr:tenant_tier, ...).
  launched_resource_arns = [
    "${local.ec2_arn}:instance/*",
    "${local.ec2_arn}:volume/*",
    "${local.ec2_arn}:network-interface/*",
    "${local.ec2_arn}:spot-instances-request/*",
  ]
  # The existing resources a launch uses: every configured architecture's image (a tier may boot any of them),
  # the subnets, security group and launch template.
  launch_input_arns = concat(
    [for ami in values(local.runner_ami_ids) : "arn:${local.partition}:ec2:${local.region}::image/${ami}"],
    [for subnet in var.subnet_ids : "${local.ec2_arn}:subnet/${subnet}"],
    ["${local.ec2_arn}:security-group/${aws_security_group.runner.id}"],
    ["${local.ec2_arn}:launch-template/${aws_launch_template.runner.id}"],
  )
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ---- webhook ------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "webhook" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["webhook"].arn}:*"]
  }
  statement {
    sid = "Store"
    actions = [
      "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable",
    ]
    resources = local.table_arns
  }
  statement {
    sid       = "SendWork"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = local.work_queue_arns
  }
  # Active tracing: the function sends its trace segments (X-Ray has no resource-level permissions).
  dynamic "statement" {
    for_each = var.lambda_tracing_mode == "Active" ? [1] : []
    content {
      sid       = "Tracing"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
  statement {
    sid       = "WebhookSecret"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.webhook_secret.arn]
  }
}

resource "aws_iam_role" "webhook" {
  name               = local.function_names["webhook"]
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "webhook" {
  name   = "ghr-webhook"
  role   = aws_iam_role.webhook.id
  policy = data.aws_iam_policy_document.webhook.json
}

# ---- tenant-manager, scale-down, scale-up per tier ----------------------------------------------------------

data "aws_iam_policy_document" "control" {
  for_each = local.control_functions

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
  statement {
    sid = "Store"
    actions = [
      "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable",
    ]
    resources = local.table_arns
  }
  statement {
    sid       = "ConsumeOwnQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [for key in each.value.consumes : aws_sqs_queue.work[key].arn]
  }
  statement {
    sid       = "SendWork"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = local.work_queue_arns
  }
  # Active tracing: the function sends its trace segments (X-Ray has no resource-level permissions).
  dynamic "statement" {
    for_each = var.lambda_tracing_mode == "Active" ? [1] : []
    content {
      sid       = "Tracing"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
  statement {
    sid       = "AppKey"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.app_key.arn]
  }
  # A launch must tag what it creates with this deployment and a tenant: an untagged runner cannot exist.
  statement {
    sid       = "LaunchTaggedRunners"
    actions   = ["ec2:RunInstances"]
    resources = local.launched_resource_arns
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/ghr:environment"
      values   = [var.prefix]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/ghr:tenant_id"
      values   = ["false"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/ghr:tenant_tier"
      values   = ["false"]
    }
  }
  statement {
    sid       = "LaunchFromModuleSettings"
    actions   = ["ec2:RunInstances"]
    resources = local.launch_input_arns
  }
  statement {
    sid       = "TagAtLaunchOnly"
    actions   = ["ec2:CreateTags"]
    resources = local.launched_resource_arns
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/ghr:environment"
      values   = [var.prefix]
    }
  }
  statement {
    sid       = "ListInstances"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"] # DescribeInstances has no resource-level permissions
  }
  statement {
    sid       = "TerminateOwnRunners"
    actions   = ["ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/ghr:environment"
      values   = [var.prefix]
    }
  }
  statement {
    sid       = "PassRunnerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.runner.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "control" {
  for_each = local.control_functions

  name               = each.value.name
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "control" {
  for_each = local.control_functions

  name   = "ghr-${each.key}"
  role   = aws_iam_role.control[each.key].id
  policy = data.aws_iam_policy_document.control[each.key].json
}
