# The functions: one binary (ghr-lambda, the zip's `bootstrap`) whose GHR_FUNCTION picks the role.

locals {
  # Every function by key: log groups and roles use the same keys.
  all_function_names = merge(
    local.function_names,
    { for tier in local.tier_names : "scale-up-${tier}" => local.scale_up_names[tier] },
  )
  lambda_runtime = "provided.al2023"
  lambda_handler = "bootstrap"
  # SQS batches: up to 10 messages, no batching window (a signal should wake its function at once).
  sqs_batch_size = 10
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.all_function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.logging_retention_in_days
  tags              = local.tags
}

resource "aws_lambda_function" "webhook" {
  function_name    = local.function_names["webhook"]
  description      = "ghr webhook of ${var.prefix}: signature, dedupe, intake; hands work to the queues"
  role             = aws_iam_role.webhook.arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = local.lambda_runtime
  handler          = local.lambda_handler
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_size
  timeout          = var.lambda_timeout

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  environment {
    variables = local.env_webhook
  }

  lifecycle {
    precondition {
      condition     = length(jsonencode(local.env_webhook)) <= local.lambda_env_max_bytes
      error_message = "The functions' environment (GHR_CONFIG_JSON holds the tier map) is over Lambda's 4 KB: fewer or shorter tiers."
    }
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.webhook, terraform_data.runner_cleanup]
}

resource "aws_lambda_function" "tenant_manager" {
  function_name    = local.function_names["tenant-manager"]
  description      = "ghr tenant manager of ${var.prefix}: terminates an uninstalled or suspended tenant's runners"
  role             = aws_iam_role.control["tenant-manager"].arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = local.lambda_runtime
  handler          = local.lambda_handler
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_size
  timeout          = var.lambda_timeout

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  environment {
    variables = local.env_tenant_manager
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.control, terraform_data.runner_cleanup]
}

resource "aws_lambda_function" "scale_up" {
  for_each = local.scale_up_names

  function_name    = each.value
  description      = "ghr scale-up of ${var.prefix}, tier ${each.key}: dispatch passes and launches"
  role             = aws_iam_role.control["scale-up-${each.key}"].arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = local.lambda_runtime
  handler          = local.lambda_handler
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_size
  timeout          = var.lambda_timeout

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  environment {
    variables = local.env_scale_up[each.key]
  }

  tags       = merge(local.tags, { "ghr:tier" = each.key })
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.control, terraform_data.runner_cleanup]
}

resource "aws_lambda_function" "scale_down" {
  function_name    = local.function_names["scale-down"]
  description      = "ghr scale-down of ${var.prefix}: runner teardowns, the reconciler pass and a full dispatch pass"
  role             = aws_iam_role.control["scale-down"].arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = local.lambda_runtime
  handler          = local.lambda_handler
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_size
  timeout          = var.lambda_timeout

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  environment {
    variables = local.env_scale_down
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.control, terraform_data.runner_cleanup]
}

# ---- queue consumers: partial batch responses, so one unreadable message never fails its batch -------------

resource "aws_lambda_event_source_mapping" "tenant_manager" {
  event_source_arn                   = aws_sqs_queue.work["tenant-events"].arn
  function_name                      = aws_lambda_function.tenant_manager.arn
  batch_size                         = local.sqs_batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "scale_up" {
  for_each = local.scale_up_names

  event_source_arn                   = aws_sqs_queue.work["tier-${each.key}"].arn
  function_name                      = aws_lambda_function.scale_up[each.key].arn
  batch_size                         = local.sqs_batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "scale_down" {
  event_source_arn                   = aws_sqs_queue.work["teardown"].arn
  function_name                      = aws_lambda_function.scale_down.arn
  batch_size                         = local.sqs_batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]
}

# ---- the scale-down schedule: reconciler pass under the store's lease, plus a full dispatch pass ------------

resource "aws_cloudwatch_event_rule" "scale_down" {
  name                = "${var.prefix}-scale-down"
  description         = "ghr reconciler and full dispatch pass of ${var.prefix}"
  schedule_expression = var.schedule_expression
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "scale_down" {
  rule = aws_cloudwatch_event_rule.scale_down.name
  arn  = aws_lambda_function.scale_down.arn

  # A missed tick is covered by the next one: do not pile retries up behind it.
  retry_policy {
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

resource "aws_lambda_permission" "scale_down_schedule" {
  statement_id  = "AllowSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.scale_down.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.scale_down.arn
}
