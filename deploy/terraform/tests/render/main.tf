# Renders GHR_CONFIG_JSON and ghr.toml for the seed example's settings with the provider-free ghr-config module, so
# that scripts/terraform-check.sh can compare them with tests/fixtures (which the Rust side may parse).
terraform {
  required_version = ">= 1.9.0"
}

module "config" {
  source = "../../modules/multi-tenant-runner/modules/ghr-config"

  environment = "my-saas"
  aws_region  = "us-east-1"
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
      priority            = 90
    }
  }
  default_tenant_tier = "small"
  onboarding          = "automatic"
  tier_access         = "up_to_plan"
  global_max_runners  = 100
  function_timeout    = 60
  ami_ids             = { x64 = "ami-0123456789abcdef0" }
  launch_template_id  = "lt-0123456789abcdef0"
  subnet_ids          = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  security_group_ids  = ["sg-0123456789abcdef0"]
  instance_profile    = "my-saas-runner"
  capacity            = "spot"
}

output "ghr_config_json" {
  value = module.config.json
}

output "ghr_toml" {
  value = module.config.toml
}
