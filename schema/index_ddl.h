#pragma once
// SQLite DDL of the instance index, as numbered migrations: migration N brings a
// database from user_version N-1 to N. Never edit a shipped migration; add one.
#include <array>

namespace si::schema {

inline constexpr std::array<const char*, 5> kIndexMigrations = {
    // 1: folder index
    R"SQL(
CREATE TABLE files (
  path TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  sop_instance_uid TEXT,           -- NULL when skipped
  skipped_reason TEXT
);
CREATE TABLE studies (
  study_uid TEXT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  patient_name TEXT NOT NULL,
  study_date TEXT NOT NULL,
  study_time TEXT NOT NULL,
  timezone_offset TEXT NOT NULL,
  accession_number TEXT NOT NULL,
  study_id TEXT NOT NULL,
  description TEXT NOT NULL,
  referring_physician TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_changed INTEGER NOT NULL
);
CREATE INDEX studies_by_patient ON studies(patient_id);
CREATE TABLE series (
  series_uid TEXT PRIMARY KEY,
  study_uid TEXT NOT NULL,
  modality TEXT NOT NULL,
  series_number INTEGER,
  description TEXT NOT NULL,
  body_part TEXT NOT NULL,
  series_date TEXT NOT NULL,
  series_time TEXT NOT NULL
);
CREATE INDEX series_by_study ON series(study_uid);
CREATE TABLE instances (
  sop_uid TEXT PRIMARY KEY,
  series_uid TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  sop_class_uid TEXT NOT NULL,
  transfer_syntax_uid TEXT NOT NULL,
  instance_number INTEGER,
  number_of_frames INTEGER NOT NULL,
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  metadata_json TEXT NOT NULL,
  indexed_at INTEGER NOT NULL
);
CREATE INDEX instances_by_series ON instances(study_uid, series_uid);
CREATE INDEX instances_by_path ON instances(path);
)SQL",
    // 2: series-level lookups (instance lists and counts per series) without scans
    R"SQL(
CREATE INDEX instances_by_series_only ON instances(series_uid, instance_number);
)SQL",
    // 3: retrieved scopes known to be complete (DIMSE cache)
    R"SQL(
CREATE TABLE complete_scopes (
  scope_key TEXT PRIMARY KEY,      -- "study:UID" or "series:UID"
  expected INTEGER NOT NULL,       -- instance count the PACS reported
  completed_at INTEGER NOT NULL
);
)SQL",
    // 4: least-recently-used bookkeeping for the cache budget
    R"SQL(
CREATE TABLE study_access (
  study_uid TEXT PRIMARY KEY,
  last_access INTEGER NOT NULL
);
)SQL",
    // 5: metadata gains BulkDataURIs: every file is parsed again on the next scan
    // (a size/mtime no file has makes each one look changed)
    R"SQL(
UPDATE files SET mtime_ns = -1;
)SQL",
};

}  // namespace si::schema
