# ghr's configuration (GHR_CONFIG_JSON) rendered from the module's inputs. No provider: `terraform validate` and
# `terraform test` check this module offline.
terraform {
  required_version = ">= 1.9.0"
}
