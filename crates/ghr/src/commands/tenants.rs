//! `ghr tenants ...`.

use super::admin_for;
use super::output::{Row, all_pages, or_dash, print_one, print_page, rows, time};
use crate::cli::{Target, TenantsCommand};
use crate::table::printable;
use ghr_api::{NewTenantRequest, OrgType, SetTierRequest, Tenant, TenantAction, TenantsQuery};

impl Row for Tenant {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut headers = vec!["INSTALLATION", "ORG", "TYPE", "STATUS", "TIER", "MAX RUNNERS", "UPDATED"];
        if wide {
            headers.extend(["CREATED", "INSTALLED BY", "ACCOUNT ID"]);
        }
        headers
    }

    fn cells(&self, wide: bool) -> Vec<String> {
        let mut cells = vec![
            self.installation_id.to_string(),
            self.org_name.clone(),
            self.org_type.to_string(),
            self.status.to_string(),
            self.tier.clone(),
            self.max_runners.to_string(),
            time(Some(self.updated_at)),
        ];
        if wide {
            cells.extend([
                time(Some(self.created_at)),
                or_dash(self.metadata.sender_login.as_ref()),
                or_dash(self.metadata.github_account_id),
            ]);
        }
        cells
    }
}

fn print_tenant(target: &Target, tenant: &Tenant) -> anyhow::Result<()> {
    print_one(target, tenant, || rows(target.format(), target.no_headers, std::slice::from_ref(tenant)))
}

pub async fn run(command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List { status, paging, target } => {
            let admin = admin_for(&target).await?;
            let query = TenantsQuery { status, limit: Some(paging.limit), cursor: paging.cursor };
            let page = if paging.all {
                all_pages(|cursor| admin.tenants_list(TenantsQuery { cursor, ..query.clone() })).await?
            } else {
                admin.tenants_list(query).await?
            };
            print_page(&target, "tenants", &page)
        }
        TenantsCommand::Show { tenant, target } => {
            let detail = admin_for(&target).await?.tenant_show(&tenant).await?;
            print_one(&target, &detail, || {
                let t = &detail.tenant;
                let by_tier: Vec<String> =
                    detail.live_by_tier.iter().map(|(k, v)| format!("{}={v}", printable(k))).collect();
                let waiting: Vec<String> = detail.waiting_jobs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "installation_id: {}\norg_name:        {}\norg_type:        {}\nstatus:          {}\ntier:            {}\nmax_runners:     {}\nlive_runners:    {} {}\nwaiting_jobs:    {}\ncreated_at:      {}\nupdated_at:      {}\ninstalled_by:    {}\n",
                    t.installation_id,
                    printable(&t.org_name),
                    t.org_type,
                    t.status,
                    printable(&t.tier),
                    t.max_runners,
                    detail.live_runners,
                    if by_tier.is_empty() { String::new() } else { format!("({})", by_tier.join(", ")) },
                    if waiting.is_empty() { "none".into() } else { waiting.join(", ") },
                    time(Some(t.created_at)),
                    time(Some(t.updated_at)),
                    printable(&or_dash(t.metadata.sender_login.as_ref())),
                )
            })
        }
        TenantsCommand::Add { installation_id, org, user, tier, target } => {
            let request = NewTenantRequest {
                installation_id,
                org_name: org,
                org_type: if user { OrgType::User } else { OrgType::Organization },
                tier,
            };
            let tenant = admin_for(&target).await?.tenant_add(request).await?;
            print_tenant(&target, &tenant)
        }
        TenantsCommand::SetTier { tenant, tier, max_runners, target } => {
            let request = SetTierRequest { tier, max_runners };
            let tenant = admin_for(&target).await?.tenant_set_tier(&tenant, request).await?;
            print_tenant(&target, &tenant)
        }
        TenantsCommand::Suspend { tenant, target } => action(&tenant, TenantAction::Suspend, &target).await,
        TenantsCommand::Resume { tenant, target } => action(&tenant, TenantAction::Resume, &target).await,
        TenantsCommand::Approve { tenant, target } => action(&tenant, TenantAction::Approve, &target).await,
    }
}

async fn action(reference: &str, action: TenantAction, target: &Target) -> anyhow::Result<()> {
    let tenant = admin_for(target).await?.tenant_action(reference, action).await?;
    print_tenant(target, &tenant)
}
