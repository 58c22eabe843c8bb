# The tier list in plan order, and ghr.toml's keys as one object for jsonencode.

locals {
  # ghr's tiers are a list in plan order (a plan includes the tiers before it under tier_access = "up_to_plan";
  # the first declared wins a tie): Terraform maps iterate by key, so the order is explicit — plan_order when
  # given, else max_runners — then the name.
  tier_sort_keys = [
    for name, tier in var.runner_tiers : format("%08d/%s", coalesce(tier.plan_order, tier.max_runners), name)
  ]
  tier_order = [for key in sort(local.tier_sort_keys) : split("/", key)[1]]

  tiers = [
    for name in local.tier_order : {
      name                = name
      labels              = var.runner_tiers[name].labels
      instance_types      = var.runner_tiers[name].instance_types
      max_runners         = var.runner_tiers[name].max_runners
      runner_os           = var.runner_tiers[name].runner_os
      runner_architecture = var.runner_tiers[name].runner_architecture
      # null keys are ghr's defaults (GHR_CONFIG_JSON drops them before parsing).
      price_per_hour = var.runner_tiers[name].price_per_hour
      priority       = var.runner_tiers[name].priority
    }
  ]

  # A runner record older than this with no instance is released as crashed: it must outlast a scale-up
  # function still launching it (ghr refuses a grace not longer than the function timeout).
  orphan_grace_seconds = max(120, var.function_timeout + 60)

  config = {
    environment = var.environment
    store = {
      url = "dynamodb://${var.environment}?region=${var.aws_region}"
    }
    github = {
      app_id = tonumber(var.app_id)
    }
    tenants = {
      default_tier       = var.default_tenant_tier
      onboarding         = var.onboarding
      tier_access        = var.tier_access
      global_max_runners = var.global_max_runners
    }
    reconciler = {
      orphan_grace_seconds = local.orphan_grace_seconds
    }
    # Every tier boots its runner_architecture's image from ami_ids (ghr's image_for): no single ami_id.
    provider = {
      kind = "ec2"
      ec2 = {
        region               = var.aws_region
        ami_ids              = var.ami_ids
        launch_template      = var.launch_template_id
        subnets              = var.subnet_ids
        security_groups      = var.security_group_ids
        iam_instance_profile = var.instance_profile
        capacity             = var.capacity
      }
    }
    tiers = local.tiers
  }
}

# The same store, tiers and EC2 provider as a ghr.toml for the operator's `ghr` CLI (`ghr tenants ... --config
# ghr.toml`): without it the CLI knows only the built-in small/medium/large tiers. JSON strings, numbers and arrays of
# strings are valid TOML values.
locals {
  toml_lines = concat(
    [
      "# ghr.toml for the ghr CLI on the ${var.environment} deployment (rendered by Terraform; the functions read",
      "# the same settings from GHR_CONFIG_JSON).",
      "environment = ${jsonencode(var.environment)}",
      "",
      "[store]",
      "url = ${jsonencode(local.config.store.url)}",
      "",
      "[tenants]",
      "default_tier = ${jsonencode(var.default_tenant_tier)}",
      "onboarding = ${jsonencode(var.onboarding)}",
      "tier_access = ${jsonencode(var.tier_access)}",
    ],
    var.global_max_runners == null ? [] : ["global_max_runners = ${var.global_max_runners}"],
    [
      "",
      "[provider]",
      "kind = \"ec2\"",
      "",
      "[provider.ec2]",
      "region = ${jsonencode(var.aws_region)}",
      # An inline table; its keys are x64 and arm64 (validated), bare TOML keys.
      "ami_ids = { ${join(", ", [for arch, ami in var.ami_ids : "${arch} = ${jsonencode(ami)}"])} }",
    ],
    var.launch_template_id == null ? [] : ["launch_template = ${jsonencode(var.launch_template_id)}"],
    [
      "subnets = ${jsonencode(var.subnet_ids)}",
      "security_groups = ${jsonencode(var.security_group_ids)}",
    ],
    var.instance_profile == null ? [] : ["iam_instance_profile = ${jsonencode(var.instance_profile)}"],
    ["capacity = ${jsonencode(var.capacity)}"],
    flatten([
      for tier in local.tiers : concat(
        [
          "",
          "[[tiers]]",
          "name = ${jsonencode(tier.name)}",
          "labels = ${jsonencode(tier.labels)}",
          "instance_types = ${jsonencode(tier.instance_types)}",
          "max_runners = ${tier.max_runners}",
          "runner_os = ${jsonencode(tier.runner_os)}",
          "runner_architecture = ${jsonencode(tier.runner_architecture)}",
        ],
        tier.price_per_hour == null ? [] : ["price_per_hour = ${tier.price_per_hour}"],
        tier.priority == null ? [] : ["priority = ${tier.priority}"],
      )
    ]),
  )
  toml = "${join("\n", local.toml_lines)}\n"
}
