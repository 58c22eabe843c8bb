# The seed example's inputs: github_app, aws_region, environment.

variable "github_app" {
  description = "GitHub App configuration"
  type = object({
    key_base64 = string
    id         = string
  })
  sensitive = true
}

variable "aws_region" {
  description = "AWS region"
  type        = string
  default     = "us-east-1"
}

variable "environment" {
  description = "Environment name"
  type        = string
  default     = null
}
