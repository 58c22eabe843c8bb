//! Org-name claims: the item `org#<lower-case login>` in `<p>-state` that keeps logins unique among live
//! (not deleted) tenants, written in the same `TransactWriteItems` as the tenant item it follows.
//!
//! A claim holds `installation_id` (the tenant it names), `live` (whether that tenant holds the login now) and
//! `org_name` (the login as claimed, for operators). A tenant create or reactivation *takes* the claim of its
//! login; a rename takes the new one and *drops* the old one; a deletion *releases* it (`live = false`, the
//! holder kept, so that the deleted tenant is still found by its login case-insensitively). Every claim write
//! is a compare-and-set on the claim as it was read, so two writers racing for one login cannot both win:
//! the loser's transaction is cancelled and it runs again from fresh reads.
//!
//! Claims can be stale when an operator edits the tenant table by hand (the seed's `update-item` of `status`
//! or `org_name`): a claim naming a tenant that is no longer live under that login is taken over. Tenants made
//! by hand (the seed's `put-item`) hold no claim; before a login is taken, the `org-name-index` is asked for
//! such a tenant (the GSI is eventually consistent, so each hit is re-read from the table; only a hand-made
//! tenant put in the last moment can be missed).

use super::codec::org_key;
use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, Reader, bool, n, s};
use crate::tables::state::{ORG_CLAIM, PK};
use crate::tables::tenant::{INSTALLATION_ID, ORG_NAME, ORG_NAME_INDEX};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{OrgNameTaken, Tenant, TenantStatus};
use std::collections::BTreeSet;

/// Whether the claim's tenant holds the login now (BOOL); `false` after the tenant was deleted.
pub(crate) const CLAIM_LIVE: &str = "live";

/// A claim as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Claim {
    pub holder: InstallationId,
    pub live: bool,
}

/// The `<p>-state` key of a login's claim.
pub(crate) fn claim_pk(login: &OrgName) -> String {
    format!("{ORG_CLAIM}{}", org_key(login))
}

/// The claim of `login` (a strongly consistent read).
pub(super) async fn read(store: &DynamoStore, op: &'static str, login: &OrgName) -> Result<Option<Claim>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.state)
        .key(PK, s(claim_pk(login)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    let Some(item) = answer.item else { return Ok(None) };
    let read = Reader::new(op, &item);
    Ok(Some(Claim {
        holder: InstallationId(read.u64(INSTALLATION_ID)?),
        live: read.opt_bool(CLAIM_LIVE)?.unwrap_or(true),
    }))
}

/// The condition that the claim is still as it was read (absent, or held by the same tenant in the same state).
fn unchanged(was: Option<Claim>) -> (String, Item) {
    match was {
        None => (format!("attribute_not_exists({PK})"), Item::new()),
        Some(claim) => (
            format!("{INSTALLATION_ID} = :was_holder AND {CLAIM_LIVE} = :was_live"),
            [(":was_holder".to_owned(), n(claim.holder.0)), (":was_live".to_owned(), bool(claim.live))].into(),
        ),
    }
}

/// Write `claim` for `login` if the claim is still as it was read.
fn put(store: &DynamoStore, login: &OrgName, was: Option<Claim>, claim: Claim) -> TransactWriteItem {
    let item: Item = [
        (PK.to_owned(), s(claim_pk(login))),
        (INSTALLATION_ID.to_owned(), n(claim.holder.0)),
        (CLAIM_LIVE.to_owned(), bool(claim.live)),
        (ORG_NAME.to_owned(), s(login.as_str())),
    ]
    .into();
    let (condition, values) = unchanged(was);
    let put = Put::builder()
        .table_name(&store.tables.state)
        .set_item(Some(item))
        .condition_expression(condition)
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .expect("the table name and the item are set");
    TransactWriteItem::builder().put(put).build()
}

/// Delete the claim of `login` if it is still as it was read.
fn delete(store: &DynamoStore, login: &OrgName, was: Claim) -> TransactWriteItem {
    let (condition, values) = unchanged(Some(was));
    let delete = Delete::builder()
        .table_name(&store.tables.state)
        .key(PK, s(claim_pk(login)))
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .build()
        .expect("the table name and the key are set");
    TransactWriteItem::builder().delete(delete).build()
}

/// The claim write that makes `me` the live holder of `login`, or the live tenant that holds it already.
pub(super) async fn take(
    store: &DynamoStore,
    op: &'static str,
    me: InstallationId,
    login: &OrgName,
) -> Result<Result<TransactWriteItem, OrgNameTaken>, StoreError> {
    let was = read(store, op, login).await?;
    let taken = |holder: InstallationId| OrgNameTaken { org_name: login.clone(), holder: Some(holder) };
    if let Some(claim) = was
        && claim.live
        && claim.holder != me
    {
        if live_holder(store, op, claim.holder, login).await?.is_some() {
            return Ok(Err(taken(claim.holder)));
        }
        tracing::warn!(
            org = %login, stale_holder = %claim.holder, installation_id = %me,
            "the org-name claim names a tenant that no longer holds the login (edited by hand?); taking it over"
        );
    }
    // Ours already: written again all the same, so that the transaction fails if the claim changes meanwhile.
    let ours = was.is_some_and(|claim| claim.live && claim.holder == me);
    if !ours && let Some(holder) = unclaimed_live_holder(store, op, login, me).await? {
        return Ok(Err(taken(holder.installation_id)));
    }
    Ok(Ok(put(store, login, was, Claim { holder: me, live: true })))
}

/// What happens to a login `me` stops holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Letting {
    /// The tenant is deleted: the claim is kept as released, naming it, so it is still found by its login.
    Release,
    /// The tenant is renamed: the old login's claim goes.
    Drop,
}

/// The claim write that lets `login` go, when `me` holds it (a tenant without a claim, made by hand, needs none).
pub(super) async fn let_go(
    store: &DynamoStore,
    op: &'static str,
    me: InstallationId,
    login: &OrgName,
    how: Letting,
) -> Result<Option<TransactWriteItem>, StoreError> {
    let was = read(store, op, login).await?;
    Ok(match (was, how) {
        (Some(claim), Letting::Release) if claim.holder == me && claim.live => {
            Some(put(store, login, was, Claim { holder: me, live: false }))
        }
        (Some(claim), Letting::Drop) if claim.holder == me => Some(delete(store, login, claim)),
        _ => None,
    })
}

/// Tenant `id` when it is live under `login` (a strongly consistent read).
pub(super) async fn live_holder(
    store: &DynamoStore,
    op: &'static str,
    id: InstallationId,
    login: &OrgName,
) -> Result<Option<Tenant>, StoreError> {
    let tenant = super::read_tenant(store, id, op).await?;
    Ok(tenant.filter(|t| t.status != TenantStatus::Deleted && org_key(&t.org_name) == org_key(login)))
}

/// A live tenant other than `me` that has `login` without holding its claim (made by hand).
async fn unclaimed_live_holder(
    store: &DynamoStore,
    op: &'static str,
    login: &OrgName,
    me: InstallationId,
) -> Result<Option<Tenant>, StoreError> {
    let found = by_login(store, op, login).await?;
    Ok(found.into_iter().find(|t| t.installation_id != me && t.status != TenantStatus::Deleted))
}

/// Every tenant whose login is `login` in any case, as far as `org-name-index` can find them: the index is
/// keyed on the login as written, so this asks for the login as given and in lower case (the case GitHub
/// shows and the case operators type). Hits are re-read from the table (strongly consistent), so a lagging
/// index never returns a tenant that has been renamed or deleted since; in installation order.
pub(super) async fn by_login(
    store: &DynamoStore,
    op: &'static str,
    login: &OrgName,
) -> Result<Vec<Tenant>, StoreError> {
    // An index key cannot be the empty string: no tenant has an empty login there.
    let variants: BTreeSet<String> =
        [login.as_str().to_owned(), org_key(login)].into_iter().filter(|v| !v.is_empty()).collect();
    let mut ids = BTreeSet::new();
    for variant in variants {
        let items: Vec<Item> = store
            .client
            .query()
            .table_name(&store.tables.tenants)
            .index_name(ORG_NAME_INDEX)
            .key_condition_expression("#org = :org")
            .expression_attribute_names("#org", ORG_NAME)
            .expression_attribute_values(":org", s(variant))
            .projection_expression("#id")
            .expression_attribute_names("#id", INSTALLATION_ID)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(backend(op))?;
        for item in &items {
            ids.insert(InstallationId(Reader::new(op, item).u64(INSTALLATION_ID)?));
        }
    }
    let mut found = Vec::new();
    for id in ids {
        if let Some(tenant) = super::read_tenant(store, id, op).await?
            && org_key(&tenant.org_name) == org_key(login)
        {
            found.push(tenant);
        }
    }
    Ok(found)
}
