# ghr's serverless shape with the seed's three tiers: a VPC (vpc.tf), the runner AMIs found by name, and the module.

resource "random_id" "random" {
  byte_length = 4
}

locals {
  # The prefix of every name; the seed's default when no environment is given.
  environment = var.environment != null ? var.environment : "multi-tenant-${random_id.random.hex}"

  # The functions' zip, as scripts/lambda-build.sh writes it (from the repository root).
  lambda_zip = "${path.module}/../../../../target/lambda/ghr-lambda/bootstrap.zip"

  # The seed's tiers. An arm64 tier (runner_architecture = "arm64", Graviton instance types) needs nothing else:
  # the arm64 image is looked up below as soon as one is configured.
  runner_tiers = {
    small = {
      runner_os           = "linux"
      runner_architecture = "x64"
      instance_types      = ["t3.medium"]
      max_runners         = 2
      labels              = ["self-hosted", "linux", "x64", "small"]
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
  runner_architectures = toset([for tier in values(local.runner_tiers) : tier.runner_architecture])

  # A runner image of your own per architecture the tiers use: Amazon Linux 2023 with the GitHub Actions runner
  # unpacked in /opt/actions-runner and nothing started at boot (ghr's user data starts the runner). The seed's
  # pre-baked AMI does not fit: its boot script waits for a config in SSM and terminates the instance without one.
  runner_ami_names = {
    x64   = "ghr-runner-al2023-x86_64-*"
    arm64 = "ghr-runner-al2023-arm64-*"
  }
}

# The newest image of each architecture some tier runs on (an architecture no tier uses needs no image).
data "aws_ami" "runner" {
  for_each    = { for arch, name in local.runner_ami_names : arch => name if contains(local.runner_architectures, arch) }
  most_recent = true
  owners      = ["self"]

  filter {
    name   = "name"
    values = [each.value]
  }
  filter {
    name   = "state"
    values = ["available"]
  }
}

module "runners" {
  source = "../../modules/multi-tenant-runner"

  prefix     = local.environment
  aws_region = var.aws_region
  github_app = var.github_app

  vpc_id     = aws_vpc.main.id
  subnet_ids = aws_subnet.private[*].id
  # Every tier boots its architecture's image (ghr's provider.ec2.ami_ids).
  ami_id = {
    x64   = try(data.aws_ami.runner["x64"].id, null)
    arm64 = try(data.aws_ami.runner["arm64"].id, null)
  }

  lambda_zip = local.lambda_zip

  runner_tiers        = local.runner_tiers
  default_tenant_tier = "small"

  create_service_linked_role_spot = true

  tags = {
    Environment = local.environment
  }
}
