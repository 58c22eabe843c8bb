-- Org names are unique (case-insensitively) among tenants that are not deleted.
--
-- GitHub logins are unique and an organisation has at most one installation of an App, so two live
-- tenants with one login mean one of them is stale: its installation is gone (a lost `deleted`
-- delivery) or it was added by hand by mistake. Such a pair made name lookups pick one silently
-- (`ghr tenants suspend acme` could act on the wrong tenant).
--
-- Databases written before this rule may hold such pairs; the index cannot be created over them.
-- Per login, the tenant GitHub itself reported (a real account id) is kept over one added by hand
-- (no account id, or 0), then the newest installation; the others are marked deleted, which the
-- reconciler's tenant teardown acts on. A reinstall of a retired installation reactivates it.
UPDATE tenants
SET status = 'deleted',
    updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE status <> 'deleted'
  AND EXISTS (
      SELECT 1 FROM tenants AS keep
      WHERE keep.org_name_lower = tenants.org_name_lower
        AND keep.status <> 'deleted'
        AND keep.installation_id <> tenants.installation_id
        AND (
            (COALESCE(keep.github_account_id, 0) > 0) > (COALESCE(tenants.github_account_id, 0) > 0)
            OR (
                (COALESCE(keep.github_account_id, 0) > 0) = (COALESCE(tenants.github_account_id, 0) > 0)
                AND keep.installation_id > tenants.installation_id
            )
        )
  );

CREATE UNIQUE INDEX tenants_live_org_unique ON tenants (org_name_lower) WHERE status <> 'deleted';
