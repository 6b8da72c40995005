#pragma once
// meta.lastUpdated for sources that keep no change times (a DIMSE PACS, a
// DICOMweb server): when our searches first saw a study, or last saw its number of
// series or instances change. Persistent (SQLite), so a restart does not make
// every study look new to an app syncing with _lastUpdated.
// Thread-safe: one internal mutex guards the connection.
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/clock.h"
#include "src/model.h"
#include "src/status.h"

struct sqlite3;

namespace si {

class StudyChangeLog {
 public:
  virtual ~StudyChangeLog() = default;
  // Records what one search of `tenant_key` saw and sets last_updated on every
  // study that has none from its source.
  virtual Status Observe(const std::string& tenant_key, std::vector<StudyRecord>& studies) = 0;
};

class SqliteStudyChangeLog final : public StudyChangeLog {
 public:
  // The file's directory is created if needed.
  static Result<std::unique_ptr<SqliteStudyChangeLog>> Open(const std::filesystem::path& db_path,
                                                            const Clock& clock);
  ~SqliteStudyChangeLog() override;
  Status Observe(const std::string& tenant_key, std::vector<StudyRecord>& studies) override;

 private:
  explicit SqliteStudyChangeLog(const Clock& clock) : clock_(clock) {}
  const Clock& clock_;
  std::mutex mutex_;
  sqlite3* db_ = nullptr;  // guarded by mutex_
};

}  // namespace si
