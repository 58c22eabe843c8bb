# The seed example's outputs, passed through from the module.

output "webhook_endpoint" {
  description = "Webhook URL for GitHub App configuration"
  value       = module.runners.webhook_endpoint
}

output "webhook_secret" {
  description = "Webhook secret for GitHub App configuration"
  value       = module.runners.webhook_secret
  sensitive   = true
}

output "tenant_table" {
  description = "DynamoDB table details for tenant registry"
  value       = module.runners.tenant_table
}

output "queues" {
  description = "SQS queues for each tier"
  value       = module.runners.queues
}

output "runners" {
  description = "Runner infrastructure for each tier"
  value       = module.runners.runners
}

output "runner_tiers" {
  description = "Configured runner tiers"
  value       = module.runners.runner_tiers
}

output "runner_binaries" {
  description = "Where runner binaries come from (ghr keeps no S3 cache: the runner is in the AMI)"
  value       = module.runners.runner_binaries
}

# Beyond the seed's outputs: the ghr CLI's configuration for this deployment.
output "ghr_toml" {
  description = "ghr.toml for the ghr CLI (terraform output -raw ghr_toml > ghr.toml)"
  value       = module.runners.ghr_toml
}
