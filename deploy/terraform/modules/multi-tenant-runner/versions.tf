# Providers of the multi-tenant runner module. Terraform >= 1.9: default_tenant_tier is validated against
# runner_tiers in its own variable block (a validation that names another variable).
terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.21"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.0"
    }
  }
}
