# What the parent module puts into the functions' environment.

output "json" {
  description = "GHR_CONFIG_JSON: ghr.toml's keys as one JSON object."
  value       = jsonencode(local.config)
}

output "config" {
  description = "The same configuration as an object (for tests and outputs)."
  value       = local.config
}

output "tier_order" {
  description = "Tier names in ghr's plan order."
  value       = local.tier_order
}

output "toml" {
  description = "The store, tiers and EC2 provider as a ghr.toml for the ghr CLI."
  value       = local.toml
}
