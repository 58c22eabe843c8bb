-- Leases on singleton work (the reconciler), held by one process at a time among those sharing the database.
-- A holder renews before `expires_at`; when it dies, another process takes the lease once it expired.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
