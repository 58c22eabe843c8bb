# Offline tests of GHR_CONFIG_JSON's rendering (`terraform test`, no provider needed).

variables {
  environment = "my-saas"
  aws_region  = "eu-west-1"
  app_id      = "123456"
  runner_tiers = {
    small = {
      runner_os           = "linux"
      runner_architecture = "x64"
      instance_types      = ["t3.medium"]
      max_runners         = 2
      labels              = ["self-hosted", "linux", "x64", "small"]
      price_per_hour      = 0.0416
    }
    medium = {
      runner_os           = "linux"
      runner_architecture = "x64"
      instance_types      = ["t3.large", "m5.large"]
      max_runners         = 5
      labels              = ["self-hosted", "linux", "x64", "medium"]
    }
    large = {
      runner_os           = "linux"
      runner_architecture = "x64"
      instance_types      = ["t3.xlarge", "m5.xlarge"]
      max_runners         = 10
      labels              = ["self-hosted", "linux", "x64", "large"]
    }
  }
  default_tenant_tier = "small"
  onboarding          = "automatic"
  tier_access         = "up_to_plan"
  function_timeout    = 60
  ami_ids             = { x64 = "ami-0123456789abcdef0" }
  launch_template_id  = "lt-0123456789abcdef0"
  subnet_ids          = ["subnet-a", "subnet-b"]
  security_group_ids  = ["sg-1"]
  instance_profile    = "my-saas-runner"
  capacity            = "spot"
}

run "seed_tiers_in_plan_order" {
  command = plan

  assert {
    condition     = output.tier_order == ["small", "medium", "large"]
    error_message = "the seed's tiers must reach ghr in plan order small, medium, large (not the map's key order)"
  }
  assert {
    condition     = jsondecode(output.json).store.url == "dynamodb://my-saas?region=eu-west-1"
    error_message = "store.url must name the module's tables"
  }
  assert {
    condition     = jsondecode(output.json).environment == "my-saas" && jsondecode(output.json).provider.kind == "ec2"
    error_message = "environment and provider kind"
  }
  assert {
    condition     = jsondecode(output.json).github.app_id == 123456
    error_message = "github.app_id must be a number"
  }
  assert {
    condition     = jsondecode(output.json).tiers[0].price_per_hour == 0.0416 && jsondecode(output.json).tiers[1].price_per_hour == null
    error_message = "price_per_hour flows in when given and is left to ghr's default when not"
  }
  assert {
    condition     = jsondecode(output.json).tiers[2].instance_types == ["t3.xlarge", "m5.xlarge"]
    error_message = "instance types flow in unchanged"
  }
  assert {
    condition     = jsondecode(output.json).reconciler.orphan_grace_seconds > var.function_timeout
    error_message = "the orphan grace must outlast the function timeout"
  }
  assert {
    condition     = jsondecode(output.json).provider.ec2.ami_ids == { x64 = "ami-0123456789abcdef0" }
    error_message = "provider.ec2.ami_ids carries the image of each configured architecture"
  }
  assert {
    condition     = !contains(keys(jsondecode(output.json).provider.ec2), "ami_id")
    error_message = "no single provider.ec2.ami_id: every tier boots its architecture's image"
  }
}

run "long_timeout_stretches_the_orphan_grace" {
  command = plan

  variables {
    function_timeout = 300
  }

  assert {
    condition     = output.config.reconciler.orphan_grace_seconds == 360
    error_message = "orphan grace = timeout + 60 when that is above ghr's default 120"
  }
}

run "custom_and_arm64_tiers_need_only_the_map" {
  command = plan

  variables {
    runner_tiers = {
      starter = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["t3.small"]
        max_runners         = 1
        labels              = ["self-hosted", "linux", "x64", "starter"]
      }
      "arm64-medium" = {
        runner_os           = "linux"
        runner_architecture = "arm64"
        instance_types      = ["t4g.large", "m6g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
      enterprise = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["m5.2xlarge"]
        max_runners         = 50
        labels              = ["self-hosted", "linux", "x64", "enterprise"]
        plan_order          = 100
      }
    }
    default_tenant_tier = "starter"
    ami_ids             = { x64 = "ami-0123456789abcdef0", arm64 = "ami-0fedcba9876543210" }
  }

  assert {
    condition     = output.tier_order == ["starter", "arm64-medium", "enterprise"]
    error_message = "plan order: max_runners (or plan_order), then the name"
  }
  assert {
    condition     = output.config.tenants.default_tier == "starter" && output.config.tiers[1].runner_architecture == "arm64"
    error_message = "custom tiers and the default tier flow into GHR_CONFIG_JSON"
  }
  assert {
    condition     = jsondecode(output.json).provider.ec2.ami_ids == { x64 = "ami-0123456789abcdef0", arm64 = "ami-0fedcba9876543210" }
    error_message = "x64 and arm64 tiers share one deployment: both images reach provider.ec2.ami_ids"
  }
  assert {
    condition     = strcontains(output.toml, "ami_ids = { arm64 = \"ami-0fedcba9876543210\", x64 = \"ami-0123456789abcdef0\" }")
    error_message = "ghr.toml carries the images as an inline table"
  }
}

run "arm64_tier_needs_the_arm64_image" {
  command = plan

  variables {
    runner_tiers = {
      small = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["t3.medium"]
        max_runners         = 2
        labels              = ["self-hosted", "linux", "x64", "small"]
      }
      "arm64-medium" = {
        runner_os           = "linux"
        runner_architecture = "arm64"
        instance_types      = ["t4g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
    }
  }

  expect_failures = [var.ami_ids]
}

run "ami_ids_keys_are_architectures" {
  command = plan

  variables {
    ami_ids = { x64 = "ami-0123456789abcdef0", amd64 = "ami-0fedcba9876543210" }
  }

  expect_failures = [var.ami_ids]
}

run "default_tier_must_be_a_tier" {
  command = plan

  variables {
    default_tenant_tier = "platinum"
  }

  expect_failures = [var.default_tenant_tier]
}

run "ghr_toml_for_the_cli" {
  command = plan

  assert {
    condition     = length(regexall("(?m)^\\[\\[tiers\\]\\]$", output.toml)) == 3
    error_message = "one [[tiers]] table per tier"
  }
  assert {
    condition     = strcontains(output.toml, "url = \"dynamodb://my-saas?region=eu-west-1\"") && strcontains(output.toml, "price_per_hour = 0.0416")
    error_message = "store url and optional tier keys in ghr.toml"
  }
  assert {
    condition     = strcontains(output.toml, "name = \"small\"\nlabels = [\"self-hosted\",\"linux\",\"x64\",\"small\"]")
    error_message = "tier keys, one per line"
  }
  assert {
    condition     = strcontains(output.toml, "[provider]\nkind = \"ec2\"\n\n[provider.ec2]\nregion = \"eu-west-1\"\nami_ids = { x64 = \"ami-0123456789abcdef0\" }\n")
    error_message = "ghr.toml names the EC2 provider and its images per architecture, as GHR_CONFIG_JSON"
  }
  assert {
    condition     = strcontains(output.toml, "launch_template = \"lt-0123456789abcdef0\"\nsubnets = [\"subnet-a\",\"subnet-b\"]")
    error_message = "ghr.toml carries the rest of provider.ec2"
  }
}
