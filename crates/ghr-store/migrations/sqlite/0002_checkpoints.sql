-- Small named progress markers of ghr's own loops (e.g. how far the failed-delivery scan has read),
-- kept so that a restart resumes where the last run stopped.
CREATE TABLE checkpoints (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
