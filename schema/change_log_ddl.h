#pragma once
// SQLite DDL of the study change log (src/study_change_log.h), as numbered
// migrations: migration N brings the database from user_version N-1 to N. Its own
// database file, so the folder index migrations stay untouched.
#include <array>

namespace si::schema {

inline constexpr std::array<const char*, 1> kChangeLogMigrations = {
    // 1: when each tenant's searches first saw a study, and last saw its counts change
    R"SQL(
CREATE TABLE study_changes (
  tenant_key TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  series_count INTEGER NOT NULL,
  instance_count INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_changed INTEGER NOT NULL,
  PRIMARY KEY (tenant_key, study_uid)
);
)SQL",
};

}  // namespace si::schema
