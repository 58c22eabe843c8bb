-- One row that the write check (`Store::check_writable`) updates: a readiness probe or start-up
-- check proves that a write commits by committing one here. `probes` only counts; nothing reads it
-- to decide anything.
CREATE TABLE store_health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probes INTEGER NOT NULL
) STRICT;
