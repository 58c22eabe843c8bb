# Names, tags and the functions' environment (the contract of crates/ghr-lambda/src/env.rs).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region

  tags = merge(var.tags, { "ghr:environment" = var.prefix })

  tier_names = keys(var.runner_tiers)

  # Every work queue: one per tier for dispatch signals, one for runner teardowns (scale-down), one for tenant
  # teardowns (tenant manager). Each gets a `<name>-dlq`.
  queue_names = merge(
    { for tier in local.tier_names : "tier-${tier}" => "${var.prefix}-${tier}-builds" },
    {
      teardown      = "${var.prefix}-teardown"
      tenant-events = "${var.prefix}-tenant-events"
    },
  )

  function_names = {
    webhook        = "${var.prefix}-webhook"
    tenant-manager = "${var.prefix}-tenant-manager"
    scale-down     = "${var.prefix}-scale-down"
  }
  scale_up_names = { for tier in local.tier_names : tier => "${var.prefix}-${tier}-scale-up" }

  ssm_root = "/github-action-runners/${var.prefix}"

  # The runner image of every configured architecture (the non-null entries of var.ami_id): ghr's EC2 provider
  # boots each tier from its runner_architecture's image (provider.ec2.ami_ids); variables.tf checks that every
  # tier's architecture has one.
  runner_ami_ids = { for arch, ami in var.ami_id : arch => ami if try(trimspace(ami), "") != "" }
}

module "ghr_config" {
  source = "./modules/ghr-config"

  environment         = var.prefix
  aws_region          = var.aws_region
  app_id              = nonsensitive(var.github_app.id)
  runner_tiers        = var.runner_tiers
  default_tenant_tier = var.default_tenant_tier
  onboarding          = var.onboarding
  tier_access         = var.tier_access
  global_max_runners  = var.global_max_runners
  function_timeout    = var.lambda_timeout
  ami_ids             = local.runner_ami_ids
  launch_template_id  = aws_launch_template.runner.id
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.runner.id]
  instance_profile    = aws_iam_instance_profile.runner.name
  capacity            = var.instance_target_capacity_type
}

locals {
  # What every function reads (env.rs): its configuration, every queue, its timeout.
  env_common = {
    GHR_CONFIG_JSON              = module.ghr_config.json
    GHR_TIER_QUEUES              = jsonencode({ for tier in local.tier_names : tier => aws_sqs_queue.work["tier-${tier}"].url })
    GHR_TEARDOWN_QUEUE_URL       = aws_sqs_queue.work["teardown"].url
    GHR_TENANT_EVENTS_QUEUE_URL  = aws_sqs_queue.work["tenant-events"].url
    GHR_FUNCTION_TIMEOUT_SECONDS = tostring(var.lambda_timeout)
  }

  # The webhook gets the webhook secret only; the others the App key only.
  env_webhook = merge(local.env_common, {
    GHR_FUNCTION                 = "webhook"
    GHR_WEBHOOK_SECRET_PARAMETER = aws_ssm_parameter.webhook_secret.name
  })
  env_tenant_manager = merge(local.env_common, {
    GHR_FUNCTION          = "tenant-manager"
    GHR_APP_KEY_PARAMETER = aws_ssm_parameter.app_key.name
  })
  env_scale_down = merge(local.env_common, {
    GHR_FUNCTION          = "scale-down"
    GHR_APP_KEY_PARAMETER = aws_ssm_parameter.app_key.name
  })
  env_scale_up = {
    for tier in local.tier_names : tier => merge(local.env_common, {
      GHR_FUNCTION          = "scale-up"
      GHR_APP_KEY_PARAMETER = aws_ssm_parameter.app_key.name
      GHR_TIER              = tier
    })
  }

  # Lambda accepts 4 KB of environment per function: GHR_CONFIG_JSON grows with the tiers.
  lambda_env_max_bytes = 4096
}
