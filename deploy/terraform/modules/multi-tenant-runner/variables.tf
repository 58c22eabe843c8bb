# Inputs of the multi-tenant runner module: the seed's names and shapes, plus what ghr's functions need.

variable "prefix" {
  description = "Prefix of every name (the environment): tables <prefix>-*, queues, functions, and the ghr:environment tag on runners."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,32}$", var.prefix))
    error_message = "prefix: 1-32 characters of A-Z, a-z, 0-9, '-', '_' (ghr's environment name)."
  }
}

variable "tags" {
  description = "Extra tags for every resource the module creates (runner instances get ghr's own tags from the functions)."
  type        = map(string)
  default     = {}
}

variable "aws_region" {
  description = "AWS region of the deployment."
  type        = string
}

variable "github_app" {
  description = "GitHub App: its id and its private key as base64 of the PEM (`base64 -w 0 key.pem`)."
  type = object({
    id         = string
    key_base64 = string
  })
  sensitive = true

  validation {
    condition     = can(regex("^[0-9]+$", var.github_app.id))
    error_message = "github_app.id must be the App's numeric id."
  }
}

variable "runner_tiers" {
  description = <<-EOT
    The tier catalog: tier name => runner OS and architecture, instance types, max_runners (concurrent runners
    of a tenant on this plan), labels (a job fits a tier when all its runs-on labels are among them), optional
    price_per_hour (usage reports), plan_order (ghr's plan order; default max_runners) and priority (tie-breaker
    between equally specific tiers). The map flows into every function's GHR_CONFIG_JSON: a new tier needs no code change.
  EOT
  type = map(object({
    runner_os           = string
    runner_architecture = string
    instance_types      = list(string)
    max_runners         = number
    labels              = list(string)
    price_per_hour      = optional(number)
    plan_order          = optional(number)
    priority            = optional(number)
  }))
  default = {
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

  validation {
    condition     = length(var.runner_tiers) > 0 && alltrue([for name, _ in var.runner_tiers : can(regex("^[A-Za-z0-9_-]{1,20}$", name))])
    error_message = "runner_tiers: at least one tier; names of 1-20 characters of A-Z, a-z, 0-9, '-', '_' (they go into queue and function names)."
  }
  validation {
    condition     = alltrue([for t in values(var.runner_tiers) : length(t.labels) > 0 && length(t.instance_types) > 0 && t.max_runners >= 1 && t.max_runners <= 10000])
    error_message = "runner_tiers: every tier needs at least one label and one instance type, and max_runners from 1 to 10000."
  }
  validation {
    condition     = alltrue([for t in values(var.runner_tiers) : contains(["x64", "arm64"], t.runner_architecture)])
    error_message = "runner_tiers: runner_architecture is x64 or arm64."
  }
}

variable "default_tenant_tier" {
  description = "Plan of tenants created when they install the App: any key of runner_tiers."
  type        = string
  default     = "small"

  validation {
    condition     = contains(keys(var.runner_tiers), var.default_tenant_tier)
    error_message = "default_tenant_tier must be one of the keys of runner_tiers."
  }
}

variable "onboarding" {
  description = "`automatic`: a new installation is an active tenant at once (the seed). `approval`: it waits for `ghr tenants approve`."
  type        = string
  default     = "automatic"

  validation {
    condition     = contains(["automatic", "approval"], var.onboarding)
    error_message = "onboarding is automatic or approval."
  }
}

variable "tier_access" {
  description = "`up_to_plan`: a tenant's jobs may use the tiers up to its plan. `any`: every tier (the seed's behaviour)."
  type        = string
  default     = "up_to_plan"

  validation {
    condition     = contains(["up_to_plan", "any"], var.tier_access)
    error_message = "tier_access is up_to_plan or any."
  }
}

variable "global_max_runners" {
  description = "Cap on live runners across all tenants; null for none."
  type        = number
  default     = null

  validation {
    condition     = var.global_max_runners == null || try(var.global_max_runners >= 1, false)
    error_message = "global_max_runners is at least 1 (or null for no cap)."
  }
}

variable "lambda_zip" {
  description = "Path of the built functions' zip (`scripts/lambda-build.sh` writes target/lambda/ghr-lambda/bootstrap.zip)."
  type        = string
}

variable "lambda_architecture" {
  description = "Architecture the zip was built for: x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture is x86_64 or arm64."
  }
}

variable "lambda_timeout" {
  description = "Timeout of every function in seconds; the queues' visibility timeout is this + 30."
  type        = number
  default     = 60

  validation {
    condition     = var.lambda_timeout >= 10 && var.lambda_timeout <= 900
    error_message = "lambda_timeout is 10 to 900 seconds."
  }
}

variable "lambda_memory_size" {
  description = "Memory of every function in MB."
  type        = number
  default     = 256
}

variable "logging_retention_in_days" {
  description = "Retention of the functions' and the API's log groups (the seed kept 180 days)."
  type        = number
  default     = 365
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing of the functions: PassThrough (Lambda's default: traced only when the caller samples) or Active (every invocation, billed per trace)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode is PassThrough or Active."
  }
}

variable "vpc_id" {
  description = "VPC of the runners."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the runners start in (private subnets with a NAT: runners reach GitHub, nothing reaches them)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "ami_id" {
  description = <<-EOT
    Runner image per architecture (with the Actions runner in /opt/actions-runner and nothing started at boot).
    Every tier's runner_architecture needs its image here: ghr's EC2 provider boots each tier from its
    architecture's AMI (provider.ec2.ami_ids), so x64 and arm64 tiers share one deployment.
  EOT
  type = object({
    x64   = optional(string)
    arm64 = optional(string)
  })

  # try(coalesce(...), "") is the image, or "" when the key is null or empty (coalesce fails on those).
  validation {
    condition = alltrue([
      for tier in values(var.runner_tiers) : trimspace(try(coalesce(var.ami_id[tier.runner_architecture]), "")) != ""
    ])
    error_message = "ami_id has no image for ${join("; ", [for name, tier in var.runner_tiers : "tier \"${name}\" runs on ${tier.runner_architecture}: set ami_id.${tier.runner_architecture}" if trimspace(try(coalesce(var.ami_id[tier.runner_architecture]), "")) == ""])}."
  }
}

variable "instance_target_capacity_type" {
  description = "`spot` (falls back to on-demand when spot has no capacity) or `on_demand`."
  type        = string
  default     = "spot"

  validation {
    condition     = contains(["spot", "on_demand"], var.instance_target_capacity_type)
    error_message = "instance_target_capacity_type is spot or on_demand."
  }
}

variable "create_service_linked_role_spot" {
  description = "Create the spot.amazonaws.com service-linked role (needed once per account before the first spot launch)."
  type        = bool
  default     = false
}

variable "runner_root_volume" {
  description = "Root volume of the runners (encrypted gp3); device_name must be the AMI's root device."
  type = object({
    device_name = string
    size_gb     = number
  })
  default = {
    device_name = "/dev/xvda"
    size_gb     = 30
  }
}

variable "max_receive_count" {
  description = "Receives of a message before it goes to its queue's DLQ (only unreadable messages fail; a waiting job is never a failure)."
  type        = number
  default     = 5
}

variable "schedule_expression" {
  description = "Schedule of the scale-down function's reconciler pass and full dispatch pass."
  type        = string
  default     = "rate(1 minute)"
}

variable "alarm_actions" {
  description = "SNS topic ARNs notified when a dead-letter queue holds a message."
  type        = list(string)
  default     = []
}
