# The work queues: one per tier (`<prefix>-<tier>-builds`), `<prefix>-teardown` and `<prefix>-tenant-events`.
# Messages are wake-up signals (jobs wait in the store), so a message only fails when no function can read it:
# after max_receive_count receives it goes to its `-dlq`, and an alarm fires on any message there.

locals {
  # A function may run for its whole timeout on a batch; 30 s more before the batch is visible again.
  visibility_timeout_seconds = var.lambda_timeout + 30
  # Signals are worthless after a day (the scheduled full pass covers a lost one); dead letters are kept 14 days.
  queue_retention_seconds = 86400
  dlq_retention_seconds   = 1209600
}

resource "aws_sqs_queue" "dlq" {
  for_each = local.queue_names

  name                      = "${each.value}-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true

  tags = merge(local.tags, { "ghr:queue" = each.key, "ghr:type" = "dlq" })
}

resource "aws_sqs_queue" "work" {
  for_each = local.queue_names

  name                       = each.value
  visibility_timeout_seconds = local.visibility_timeout_seconds
  message_retention_seconds  = local.queue_retention_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = merge(local.tags, { "ghr:queue" = each.key })
}

# Only its own queue may send to a DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.queue_names

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work[each.key].arn]
  })
}

# Every queue refuses requests that are not over TLS.
locals {
  all_queues = merge(
    { for key, queue in aws_sqs_queue.work : key => queue },
    { for key, queue in aws_sqs_queue.dlq : "${key}-dlq" => queue },
  )
}

data "aws_iam_policy_document" "queue_tls_only" {
  for_each = local.all_queues

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:PurgeQueue"]
    resources = [each.value.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "tls_only" {
  for_each = local.all_queues

  queue_url = each.value.id
  policy    = data.aws_iam_policy_document.queue_tls_only[each.key].json
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  for_each = local.queue_names

  alarm_name          = "${each.value}-dlq-not-empty"
  alarm_description   = "A message on ${each.value} could not be read by any function (poison). Inspect it with aws sqs receive-message on ${each.value}-dlq; waiting jobs never land here."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq[each.key].name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = local.tags
}
