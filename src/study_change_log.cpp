#include "src/study_change_log.h"

#include <sqlite3.h>

#include "schema/change_log_ddl.h"
#include "src/sqlite_util.h"

namespace si {

Result<std::unique_ptr<SqliteStudyChangeLog>> SqliteStudyChangeLog::Open(
    const std::filesystem::path& db_path, const Clock& clock) {
  std::error_code ec;
  std::filesystem::create_directories(db_path.parent_path(), ec);
  if (ec) return IoError("cannot create " + db_path.parent_path().string() + ": " + ec.message());
  std::unique_ptr<SqliteStudyChangeLog> log(new SqliteStudyChangeLog(clock));
  if (sqlite3_open_v2(db_path.c_str(), &log->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK)
    return IoError("cannot open the study change log " + db_path.string());
  SI_RETURN_IF_ERROR(sql::Exec(log->db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
  sql::Statement version(log->db_, "PRAGMA user_version");
  int64_t current = version.Step() ? version.Int(0) : 0;
  version.Reset();
  for (size_t i = static_cast<size_t>(current); i < schema::kChangeLogMigrations.size(); ++i) {
    SI_RETURN_IF_ERROR(sql::Exec(log->db_, "BEGIN"));
    Status s = sql::Exec(log->db_, schema::kChangeLogMigrations[i]);
    if (s.ok()) s = sql::Exec(log->db_, ("PRAGMA user_version=" + std::to_string(i + 1)).c_str());
    if (!s.ok()) {
      sql::Exec(log->db_, "ROLLBACK").ok();
      return s;
    }
    SI_RETURN_IF_ERROR(sql::Exec(log->db_, "COMMIT"));
  }
  return log;
}

SqliteStudyChangeLog::~SqliteStudyChangeLog() {
  if (db_) sqlite3_close(db_);
}

Status SqliteStudyChangeLog::Observe(const std::string& tenant_key,
                                     std::vector<StudyRecord>& studies) {
  bool any = false;
  for (auto& s : studies) any |= s.last_updated == 0;
  if (!any) return Status::Ok();
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = clock_.NowSeconds();
  sql::Statement get(db_,
                     "SELECT series_count, instance_count, last_changed FROM study_changes "
                     "WHERE tenant_key=?1 AND study_uid=?2");
  sql::Statement put(db_,
                     "INSERT INTO study_changes(tenant_key,study_uid,series_count,instance_count,"
                     "first_seen,last_changed) VALUES(?1,?2,?3,?4,?5,?5) "
                     "ON CONFLICT(tenant_key,study_uid) DO UPDATE SET series_count=?3, "
                     "instance_count=?4, last_changed=?5");
  SI_RETURN_IF_ERROR(get.PrepareStatus());
  SI_RETURN_IF_ERROR(put.PrepareStatus());
  SI_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN"));
  Status status;
  for (auto& s : studies) {
    if (s.last_updated != 0) continue;
    get.Bind(1, tenant_key).Bind(2, s.study_instance_uid);
    bool known = get.Step();
    bool same = known && get.Int(0) == s.number_of_series && get.Int(1) == s.number_of_instances;
    int64_t last_changed = known ? get.Int(2) : 0;
    get.Reset();
    if (same) {
      s.last_updated = last_changed;
      continue;
    }
    status = put.Bind(1, tenant_key)
                 .Bind(2, s.study_instance_uid)
                 .Bind(3, s.number_of_series)
                 .Bind(4, s.number_of_instances)
                 .Bind(5, now)
                 .Run();
    if (!status.ok()) break;
    s.last_updated = now;
  }
  if (!status.ok()) {
    sql::Exec(db_, "ROLLBACK").ok();
    return status;
  }
  return sql::Exec(db_, "COMMIT");
}

}  // namespace si
