# Outputs: the seed's names (webhook_endpoint, webhook_secret, tenant_table, queues, runners, runner_tiers,
# runner_binaries), plus ghr's store URL and other queues.

output "webhook_endpoint" {
  description = "Webhook URL for GitHub App configuration."
  value       = "${aws_apigatewayv2_api.webhook.api_endpoint}/webhook"
}

output "webhook_secret" {
  description = "Webhook secret for GitHub App configuration."
  value       = random_password.webhook_secret.result
  sensitive   = true
}

output "tenant_table" {
  description = "DynamoDB table details for tenant registry (the seed's <prefix>-tenants, attribute for attribute), and ghr's other tables."
  value = {
    name = aws_dynamodb_table.tenants.name
    arn  = aws_dynamodb_table.tenants.arn
    # ghr's CLI on this store: ghr tenants list --db '<store_url>'
    store_url = "dynamodb://${var.prefix}?region=${var.aws_region}"
    tables    = { for key, table in local.tables : key => { name = table.name, arn = table.arn } }
  }
}

output "store_url" {
  description = "ghr's store URL for the CLI: ghr tenants list --db '<this>' (a ghr built with --features dynamodb)."
  value       = "dynamodb://${var.prefix}?region=${var.aws_region}"
}

output "queues" {
  description = "SQS queues for each tier (with their dead-letter queues)."
  value = {
    for tier in local.tier_names : tier => {
      name    = aws_sqs_queue.work["tier-${tier}"].name
      url     = aws_sqs_queue.work["tier-${tier}"].url
      arn     = aws_sqs_queue.work["tier-${tier}"].arn
      dlq_url = aws_sqs_queue.dlq["tier-${tier}"].url
      dlq_arn = aws_sqs_queue.dlq["tier-${tier}"].arn
    }
  }
}

output "control_queues" {
  description = "The runner-teardown and tenant-events queues (with their dead-letter queues)."
  value = {
    for key in ["teardown", "tenant-events"] : key => {
      name    = aws_sqs_queue.work[key].name
      url     = aws_sqs_queue.work[key].url
      dlq_url = aws_sqs_queue.dlq[key].url
    }
  }
}

output "runners" {
  description = "Runner infrastructure for each tier: its scale-up function and log group, and what its runners start with."
  value = {
    for tier in local.tier_names : tier => {
      scale_up_function  = aws_lambda_function.scale_up[tier].function_name
      scale_up_log_group = aws_cloudwatch_log_group.function["scale-up-${tier}"].name
      instance_types     = var.runner_tiers[tier].instance_types
      # The image this tier's runners boot: its architecture's (provider.ec2.ami_ids).
      ami_id             = local.runner_ami_ids[var.runner_tiers[tier].runner_architecture]
      architecture       = var.runner_tiers[tier].runner_architecture
      launch_template_id = aws_launch_template.runner.id
      security_group_id  = aws_security_group.runner.id
      instance_profile   = aws_iam_instance_profile.runner.name
      runner_role_arn    = aws_iam_role.runner.arn
    }
  }
}

output "runner_tiers" {
  description = "Configured runner tiers, and the plan order ghr uses."
  value = {
    tiers               = var.runner_tiers
    plan_order          = module.ghr_config.tier_order
    default_tenant_tier = var.default_tenant_tier
  }
}

output "runner_binaries" {
  description = "Where the runner binaries come from: ghr keeps no S3 cache (the seed's syncer); the Actions runner is baked into the AMI."
  value = {
    source     = "ami"
    s3_bucket  = null
    ami_ids    = local.runner_ami_ids # per architecture: what ghr gets as provider.ec2.ami_ids
    runner_dir = "/opt/actions-runner"
  }
}

output "functions" {
  description = "Function names (log groups are /aws/lambda/<name>)."
  value       = local.all_function_names
}

output "ghr_toml" {
  description = "This deployment's store and tiers as a ghr.toml for the ghr CLI: terraform output -raw ghr_toml > ghr.toml"
  value       = module.ghr_config.toml
}
