# Offline tests of the module's input validation: scripts/terraform-check.sh copies the module's variables.tf (it
# needs no provider) beside this file's directory and runs `terraform test` on it.

variables {
  prefix     = "my-saas"
  aws_region = "us-east-1"
  github_app = {
    id         = "123456"
    key_base64 = "LS0tLS1CRUdJTi=="
  }
  lambda_zip = "bootstrap.zip"
  vpc_id     = "vpc-0123456789abcdef0"
  subnet_ids = ["subnet-0123456789abcdef0"]
  ami_id     = { x64 = "ami-0123456789abcdef0" }
}

run "seed_defaults_are_valid" {
  command = plan
}

run "custom_tiers_and_their_default" {
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
    }
    default_tenant_tier = "starter"
  }
}

run "default_tier_outside_the_map" {
  command = plan
  variables {
    default_tenant_tier = "platinum"
  }
  expect_failures = [var.default_tenant_tier]
}

run "seed_default_tier_with_custom_tiers" {
  command = plan
  variables {
    runner_tiers = {
      pro = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["m5.xlarge"]
        max_runners         = 20
        labels              = ["self-hosted", "pro"]
      }
    }
  }
  # "small" (the default) is no longer a tier: the operator must name one.
  expect_failures = [var.default_tenant_tier]
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
        instance_types      = ["t4g.large", "m6g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
    }
  }
  # Only ami_id.x64 (the file's default): the arm64 tier has no image.
  expect_failures = [var.ami_id]
}

run "x64_and_arm64_tiers_with_both_images" {
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
        instance_types      = ["t4g.large", "m6g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
    }
    ami_id = { x64 = "ami-0123456789abcdef0", arm64 = "ami-0fedcba9876543210" }
  }
}

run "x64_tier_needs_the_x64_image" {
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
        instance_types      = ["t4g.large", "m6g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
    }
    ami_id = { arm64 = "ami-0fedcba9876543210" }
  }
  expect_failures = [var.ami_id]
}

run "blank_image_is_no_image" {
  command = plan
  variables {
    ami_id = { x64 = " " }
  }
  expect_failures = [var.ami_id]
}

run "all_arm64_with_its_image_only" {
  command = plan
  variables {
    runner_tiers = {
      "arm64-medium" = {
        runner_os           = "linux"
        runner_architecture = "arm64"
        instance_types      = ["t4g.large", "m6g.large"]
        max_runners         = 5
        labels              = ["self-hosted", "linux", "arm64", "medium"]
      }
    }
    default_tenant_tier = "arm64-medium"
    ami_id              = { arm64 = "ami-0fedcba9876543210" }
  }
}

run "prefix_is_ghrs_environment_name" {
  command = plan
  variables {
    prefix = "my saas"
  }
  expect_failures = [var.prefix]
}

run "tier_names_fit_queue_and_function_names" {
  command = plan
  variables {
    runner_tiers = {
      "a-tier-name-far-too-long-for-names" = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["t3.small"]
        max_runners         = 1
        labels              = ["self-hosted"]
      }
    }
    default_tenant_tier = "a-tier-name-far-too-long-for-names"
  }
  expect_failures = [var.runner_tiers]
}

run "tier_needs_labels_and_a_limit" {
  command = plan
  variables {
    runner_tiers = {
      small = {
        runner_os           = "linux"
        runner_architecture = "x64"
        instance_types      = ["t3.small"]
        max_runners         = 0
        labels              = []
      }
    }
  }
  expect_failures = [var.runner_tiers]
}

run "app_id_is_numeric" {
  command = plan
  variables {
    github_app = {
      id         = "my-app"
      key_base64 = "LS0tLS1CRUdJTi=="
    }
  }
  expect_failures = [var.github_app]
}

run "timeout_within_lambdas_range" {
  command = plan
  variables {
    lambda_timeout = 901
  }
  expect_failures = [var.lambda_timeout]
}
