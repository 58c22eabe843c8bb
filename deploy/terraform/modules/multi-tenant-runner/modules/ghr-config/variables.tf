# Inputs of the GHR_CONFIG_JSON rendering; the parent module passes its own variables and the ids of what it created.

variable "environment" {
  description = "Deployment name: ghr's `environment`, the `ghr:environment` tag and the table prefix."
  type        = string
}

variable "aws_region" {
  description = "Region of the store and of the runners."
  type        = string
}

variable "app_id" {
  description = "GitHub App id."
  type        = string
}

variable "runner_tiers" {
  description = "The tier map, as the parent module takes it."
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
}

variable "default_tenant_tier" {
  description = "Plan of new tenants."
  type        = string

  validation {
    condition     = contains(keys(var.runner_tiers), var.default_tenant_tier)
    error_message = "default_tenant_tier must be one of the keys of runner_tiers."
  }
}

variable "onboarding" {
  description = "`automatic` or `approval`."
  type        = string
}

variable "tier_access" {
  description = "`up_to_plan` or `any`."
  type        = string
}

variable "global_max_runners" {
  description = "Cap on live runners across all tenants, or null for none."
  type        = number
  default     = null
}

variable "function_timeout" {
  description = "The Lambda timeout in seconds (the orphan grace must outlast it)."
  type        = number
}

variable "ami_ids" {
  description = "The runners' images by tier architecture (x64, arm64): provider.ec2.ami_ids, ghr picks each tier's."
  type        = map(string)

  validation {
    condition     = alltrue([for arch, ami in var.ami_ids : contains(["x64", "arm64"], arch) && trimspace(ami) != ""])
    error_message = "ami_ids maps x64 and/or arm64 to an AMI id."
  }
  validation {
    condition     = alltrue([for tier in values(var.runner_tiers) : contains(keys(var.ami_ids), tier.runner_architecture)])
    error_message = "ami_ids has no image for ${join("; ", [for name, tier in var.runner_tiers : "tier \"${name}\" (${tier.runner_architecture}): set ami_ids.${tier.runner_architecture}" if !contains(keys(var.ami_ids), tier.runner_architecture)])}."
  }
}

variable "launch_template_id" {
  description = "The runners' launch template (IMDSv2, encrypted root volume); ghr sets the image on each launch."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the runners start in."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the runners."
  type        = list(string)
}

variable "instance_profile" {
  description = "Instance profile name of the runners."
  type        = string
}

variable "capacity" {
  description = "`spot` or `on_demand`."
  type        = string
}
