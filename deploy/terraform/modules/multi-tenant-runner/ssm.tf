# The App's secrets in SSM SecureString parameters (the seed's paths): the functions read them at cold start.

resource "random_password" "webhook_secret" {
  length  = 40
  special = false
}

resource "aws_ssm_parameter" "app_id" {
  name        = "${local.ssm_root}/app/github_app_id"
  description = "GitHub App id (${var.prefix})"
  type        = "SecureString"
  value       = var.github_app.id
  tags        = local.tags
}

resource "aws_ssm_parameter" "app_key" {
  name        = "${local.ssm_root}/app/github_app_key_base64"
  description = "GitHub App private key, base64 of the PEM (${var.prefix})"
  type        = "SecureString"
  # A 2048-bit App key fits a Standard parameter (4 KB); a longer one needs the Advanced tier.
  tier  = nonsensitive(length(var.github_app.key_base64)) > 4096 ? "Advanced" : "Standard"
  value = var.github_app.key_base64
  tags  = local.tags
}

resource "aws_ssm_parameter" "webhook_secret" {
  name        = "${local.ssm_root}/app/github_app_webhook_secret"
  description = "GitHub App webhook secret (${var.prefix})"
  type        = "SecureString"
  value       = random_password.webhook_secret.result
  tags        = local.tags
}
