# The runner side: what every runner instance starts with. The instances themselves are created by the
# functions (ghr's EC2 provider), one per job, tagged per runner with ghr:environment, ghr:tenant_id,
# ghr:tenant_tier, ghr:tier and ghr:runner_name — IAM refuses a launch without them (iam.tf).

resource "aws_security_group" "runner" {
  name        = "${var.prefix}-runner"
  description = "ghr runners of ${var.prefix}: no inbound traffic"
  vpc_id      = var.vpc_id

  tags = merge(local.tags, { Name = "${var.prefix}-runner" })
}

# Tenants' jobs reach arbitrary hosts and ports (git over SSH, registries, services under test): all outbound
# traffic is allowed, nothing inbound.
resource "aws_vpc_security_group_egress_rule" "runner_all" {
  security_group_id = aws_security_group.runner.id
  description       = "Outbound traffic of CI jobs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# The runner role has no permission at all. A runner needs none: its JIT config arrives in its user data (no
# SSM read, unlike the seed's token path), it terminates itself by powering off (launched with
# InstanceInitiatedShutdownBehavior=terminate), and it has no ec2:DescribeTags (which in the seed listed every
# tenant's tags). Tenant job code on the host can reach IMDS, so whatever this role could do, a tenant could do:
# attach nothing to it that reaches beyond the instance.
data "aws_iam_policy_document" "runner_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name                 = "${var.prefix}-runner"
  description          = "ghr runners of ${var.prefix}: no permissions (the JIT config comes in user data)"
  assume_role_policy   = data.aws_iam_policy_document.runner_assume.json
  max_session_duration = 3600

  tags = local.tags
}

resource "aws_iam_instance_profile" "runner" {
  name = "${var.prefix}-runner"
  role = aws_iam_role.runner.name

  tags = local.tags
}

# Launch settings of every runner: IMDSv2 only, one hop (containers cannot reach IMDS), tags not exposed
# through IMDS, encrypted root volume, terminate on power-off. The functions pass the AMI, instance type,
# subnet, security group, profile, tags and user data on each launch. The image here is only the template's
# default (the x64 image, else the arm64 one): ghr overrides it on every launch with the image of the tier's
# runner_architecture (provider.ec2.ami_ids), so x64 and arm64 tiers share this template.
resource "aws_launch_template" "runner" {
  name                                 = "${var.prefix}-action-runner"
  description                          = "ghr runners of ${var.prefix}"
  image_id                             = try(local.runner_ami_ids["x64"], local.runner_ami_ids["arm64"])
  instance_initiated_shutdown_behavior = "terminate"
  update_default_version               = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = var.runner_root_volume.device_name
    ebs {
      volume_size           = var.runner_root_volume.size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = false
  }

  tags = local.tags
}

# Spot launches need this role once per account.
resource "aws_iam_service_linked_role" "spot" {
  count            = var.create_service_linked_role_spot ? 1 : 0
  aws_service_name = "spot.amazonaws.com"
}

# `terraform destroy` leaves no runner behind. The runners are not in Terraform's state (the functions create
# them), so this resource terminates every instance tagged ghr:environment=<prefix> when it is destroyed: after
# the functions (they depend on it, so they go first: nothing launches meanwhile) and before the security group,
# launch template and instance profile the instances use (it depends on them). It needs the AWS CLI and the same
# credentials as the provider on the machine running terraform.
resource "terraform_data" "runner_cleanup" {
  input = {
    prefix = var.prefix
    region = var.aws_region
    # An invocation still running when its function was deleted may launch until its timeout.
    settle_seconds = var.lambda_timeout
    script         = "${path.module}/scripts/terminate-runners.sh"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "bash '${self.input.script}'"
    environment = {
      GHR_PREFIX         = self.input.prefix
      GHR_REGION         = self.input.region
      GHR_SETTLE_SECONDS = tostring(self.input.settle_seconds)
    }
  }

  depends_on = [
    aws_security_group.runner,
    aws_vpc_security_group_egress_rule.runner_all,
    aws_launch_template.runner,
    aws_iam_instance_profile.runner,
    aws_iam_role.runner,
  ]
}
