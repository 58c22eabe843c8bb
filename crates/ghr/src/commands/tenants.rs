//! `ghr tenants ...`.

use super::{admin_for, print, time};
use crate::cli::TenantsCommand;
use crate::table;
use ghr_core::ids::InstallationId;
use ghr_core::tenant::{OrgType, Tenant};
use ghr_server::admin::{NewTenantRequest, SetTierRequest, TenantAction, parse_status};

fn rows(tenants: &[Tenant]) -> String {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.installation_id.to_string(),
                t.org_name.to_string(),
                t.org_type.as_str().into(),
                t.status.to_string(),
                t.tier.to_string(),
                t.max_runners.to_string(),
                time(Some(t.updated_at)),
            ]
        })
        .collect();
    table::render(&["INSTALLATION", "ORG", "TYPE", "STATUS", "TIER", "MAX RUNNERS", "UPDATED"], &rows)
}

pub async fn run(command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List { status, target } => {
            let status = status.as_deref().map(parse_status).transpose().map_err(anyhow::Error::msg)?;
            let tenants = admin_for(&target).await?.tenants_list(status).await?;
            print(target.json, &tenants, || rows(&tenants))
        }
        TenantsCommand::Show { tenant, target } => {
            let detail = admin_for(&target).await?.tenant_show(&tenant).await?;
            print(target.json, &detail, || {
                let t = &detail.tenant;
                let by_tier: Vec<String> = detail.live_by_tier.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let waiting: Vec<String> = detail.waiting_jobs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "installation_id: {}\norg_name:        {}\norg_type:        {}\nstatus:          {}\ntier:            {}\nmax_runners:     {}\nlive_runners:    {} {}\nwaiting_jobs:    {}\ncreated_at:      {}\nupdated_at:      {}\ninstalled_by:    {}\n",
                    t.installation_id,
                    t.org_name,
                    t.org_type.as_str(),
                    t.status,
                    t.tier,
                    t.max_runners,
                    detail.live_runners,
                    if by_tier.is_empty() { String::new() } else { format!("({})", by_tier.join(", ")) },
                    if waiting.is_empty() { "none".into() } else { waiting.join(", ") },
                    time(Some(t.created_at)),
                    time(Some(t.updated_at)),
                    t.metadata.sender_login.clone().unwrap_or_else(|| "-".into()),
                )
            })
        }
        TenantsCommand::Add { installation_id, org, user, tier, target } => {
            let request = NewTenantRequest {
                installation_id: InstallationId(installation_id),
                org_name: org,
                org_type: if user { OrgType::User } else { OrgType::Organization },
                tier: tier.map(|t| t.as_str().into()),
            };
            let tenant = admin_for(&target).await?.tenant_add(request).await?;
            print(target.json, &tenant, || rows(std::slice::from_ref(&tenant)))
        }
        TenantsCommand::SetTier { tenant, tier, max_runners, target } => {
            let request = SetTierRequest { tier: tier.as_str().into(), max_runners };
            let tenant = admin_for(&target).await?.tenant_set_tier(&tenant, request).await?;
            print(target.json, &tenant, || rows(std::slice::from_ref(&tenant)))
        }
        TenantsCommand::Suspend { tenant, target } => action(&tenant, TenantAction::Suspend, &target).await,
        TenantsCommand::Resume { tenant, target } => action(&tenant, TenantAction::Resume, &target).await,
        TenantsCommand::Approve { tenant, target } => action(&tenant, TenantAction::Approve, &target).await,
    }
}

async fn action(reference: &str, action: TenantAction, target: &crate::cli::Target) -> anyhow::Result<()> {
    let tenant = admin_for(target).await?.tenant_action(reference, action).await?;
    print(target.json, &tenant, || rows(std::slice::from_ref(&tenant)))
}
