#include "src/folder_index.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "schema/index_ddl.h"
#include "src/log.h"
#include "src/sqlite_util.h"

namespace si {
namespace {

bool LooksTemporary(const std::filesystem::path& p) {
  std::string name = p.filename().string();
  if (name.empty() || name[0] == '.') return true;
  for (const char* suffix : {".tmp", ".part", ".partial", ".sqlite", ".sqlite-wal", ".sqlite-shm"})
    if (name.size() > std::strlen(suffix) &&
        name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
      return true;
  return false;
}

int64_t MtimeNs(const std::filesystem::file_time_type& t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

FolderIndex::FolderIndex(std::filesystem::path root, const InstanceParser& parser,
                         const Clock& clock)
    : root_(std::move(root)), parser_(parser), clock_(clock) {}

FolderIndex::~FolderIndex() {
  if (db_) sqlite3_close(db_);
}

Result<std::unique_ptr<FolderIndex>> FolderIndex::Open(const std::filesystem::path& db_path,
                                                       const std::filesystem::path& root,
                                                       const InstanceParser& parser,
                                                       const Clock& clock) {
  std::error_code ec;
  std::filesystem::create_directories(db_path.parent_path(), ec);
  if (ec) return IoError("cannot create " + db_path.parent_path().string() + ": " + ec.message());
  std::unique_ptr<FolderIndex> index(new FolderIndex(root, parser, clock));
  if (sqlite3_open_v2(db_path.c_str(), &index->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK)
    return IoError("cannot open index " + db_path.string());
  SI_RETURN_IF_ERROR(sql::Exec(index->db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
  SI_RETURN_IF_ERROR(index->Migrate());
  // Remember what is indexed so a restart re-parses only what changed.
  sql::Statement files(index->db_, "SELECT path, size, mtime_ns FROM files");
  SI_RETURN_IF_ERROR(files.PrepareStatus());
  while (files.Step()) index->known_[files.Text(0)] = FileState{files.Int(1), files.Int(2)};
  return index;
}

Status FolderIndex::Migrate() {
  sql::Statement version(db_, "PRAGMA user_version");
  int64_t current = version.Step() ? version.Int(0) : 0;
  for (size_t i = static_cast<size_t>(current); i < schema::kIndexMigrations.size(); ++i) {
    SI_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN"));
    Status s = sql::Exec(db_, schema::kIndexMigrations[i]);
    if (s.ok()) s = sql::Exec(db_, ("PRAGMA user_version=" + std::to_string(i + 1)).c_str());
    if (!s.ok()) {
      sql::Exec(db_, "ROLLBACK").ok();
      return s;
    }
    SI_RETURN_IF_ERROR(sql::Exec(db_, "COMMIT"));
  }
  return Status::Ok();
}

Result<ScanStats> FolderIndex::Rescan() {
  std::lock_guard<std::mutex> scan_lock(scan_mutex_);
  auto started = std::chrono::steady_clock::now();
  ScanStats stats;

  // 1. Walk the tree; collect what is new or changed, and what disappeared.
  std::unordered_map<std::string, FileState> present;
  std::error_code ec;
  if (std::filesystem::is_directory(root_, ec)) {
    auto options = std::filesystem::directory_options::skip_permission_denied;
    for (auto it = std::filesystem::recursive_directory_iterator(root_, options, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (LooksTemporary(it->path())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      auto size = static_cast<int64_t>(it->file_size(ec));
      if (ec) continue;
      auto mtime = MtimeNs(it->last_write_time(ec));
      if (ec) continue;
      present[it->path().string()] = FileState{size, mtime};
    }
  }
  stats.files_seen = static_cast<int64_t>(present.size());

  std::vector<std::string> changed;
  for (auto& [path, state] : present) {
    auto k = known_.find(path);
    if (k == known_.end() || k->second.size != state.size || k->second.mtime_ns != state.mtime_ns)
      changed.push_back(path);
  }
  std::vector<std::string> gone;
  for (auto& [path, state] : known_)
    if (!present.count(path)) gone.push_back(path);

  // 2. Parse outside the lock.
  struct Outcome {
    std::string path;
    FileState state;
    std::optional<ParsedInstance> parsed;
    std::string reason;
  };
  std::vector<Outcome> outcomes;
  outcomes.reserve(changed.size());
  for (auto& path : changed) {
    Outcome o{path, present[path], std::nullopt, ""};
    auto parsed = parser_.Parse(path);
    if (parsed.ok()) {
      o.parsed = std::move(parsed).value();
    } else {
      o.reason = parsed.status().message();
      log::Warn("folder", "skipping " + path + ": " + o.reason);
    }
    outcomes.push_back(std::move(o));
  }

  // 3. Apply in one transaction.
  if (!outcomes.empty() || !gone.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t now = clock_.NowSeconds();
    SI_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN"));
    sql::Statement del_file(db_, "DELETE FROM files WHERE path=?");
    sql::Statement del_instance(db_, "DELETE FROM instances WHERE path=?");
    sql::Statement put_file(
        db_,
        "INSERT OR REPLACE INTO files(path,size,mtime_ns,sop_instance_uid,skipped_reason) "
        "VALUES(?,?,?,?,?)");
    for (auto* s : {&del_file, &del_instance, &put_file})
      if (!s->ok()) {
        sql::Exec(db_, "ROLLBACK").ok();
        return s->PrepareStatus();
      }
    Status status;
    for (auto& path : gone) {
      if (status.ok()) status = del_instance.Bind(1, path).Run();
      if (status.ok()) status = del_file.Bind(1, path).Run();
      ++stats.removed;
    }
    for (auto& o : outcomes) {
      if (!status.ok()) break;
      status = del_instance.Bind(1, o.path).Run();
      if (!status.ok()) break;
      if (!o.parsed) {
        status = put_file.Bind(1, o.path)
                     .Bind(2, o.state.size)
                     .Bind(3, o.state.mtime_ns)
                     .BindNull(4)
                     .Bind(5, o.reason)
                     .Run();
        ++stats.skipped;
        continue;
      }
      status = InsertParsed(o.path, o.state.size, o.state.mtime_ns, *o.parsed, now);
      ++stats.added;
    }
    // Drop series and studies left without instances.
    if (status.ok()) {
      status = sql::Exec(
          db_,
          "DELETE FROM series WHERE series_uid NOT IN (SELECT DISTINCT series_uid FROM instances);"
          "DELETE FROM studies WHERE study_uid NOT IN (SELECT DISTINCT study_uid FROM instances);");
    }
    if (!status.ok()) {
      sql::Exec(db_, "ROLLBACK").ok();
      return status;
    }
    SI_RETURN_IF_ERROR(sql::Exec(db_, "COMMIT"));
    for (auto& path : gone) known_.erase(path);
    for (auto& o : outcomes) known_[o.path] = o.state;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

Status FolderIndex::InsertParsed(const std::string& path, int64_t size, int64_t mtime_ns,
                                 const ParsedInstance& p, int64_t now) {
  sql::Statement put_study(
      db_,
      "INSERT INTO studies(study_uid,patient_id,patient_name,study_date,study_time,timezone_offset,"
      "accession_number,study_id,description,referring_physician,first_seen,last_changed) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(study_uid) DO UPDATE SET "
      "last_changed=excluded.last_changed");
  sql::Statement put_series(
      db_,
      "INSERT OR IGNORE INTO "
      "series(series_uid,study_uid,modality,series_number,description,body_part,"
      "series_date,series_time) VALUES(?,?,?,?,?,?,?,?)");
  sql::Statement put_instance(
      db_,
      "INSERT OR REPLACE INTO instances(sop_uid,series_uid,study_uid,patient_id,sop_class_uid,"
      "transfer_syntax_uid,instance_number,number_of_frames,path,size,metadata_json,indexed_at,"
      "issuer_of_patient_id) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  for (auto* s : {&put_study, &put_series, &put_instance})
    if (!s->ok()) return s->PrepareStatus();
  sql::Statement put_file(
      db_,
      "INSERT OR REPLACE INTO files(path,size,mtime_ns,sop_instance_uid,skipped_reason) "
      "VALUES(?,?,?,?,NULL)");
  Status status = put_study.Bind(1, p.study.study_instance_uid)
                      .Bind(2, p.study.patient_id)
                      .Bind(3, p.study.patient_name)
                      .Bind(4, p.study.study_date)
                      .Bind(5, p.study.study_time)
                      .Bind(6, p.study.timezone_offset)
                      .Bind(7, p.study.accession_number)
                      .Bind(8, p.study.study_id)
                      .Bind(9, p.study.description)
                      .Bind(10, p.study.referring_physician)
                      .Bind(11, now)
                      .Bind(12, now)
                      .Run();
  if (status.ok())
    status = put_series.Bind(1, p.series.series_instance_uid)
                 .Bind(2, p.study.study_instance_uid)
                 .Bind(3, p.series.modality)
                 .Bind(4, p.series.series_number)
                 .Bind(5, p.series.description)
                 .Bind(6, p.series.body_part_examined)
                 .Bind(7, p.series.series_date)
                 .Bind(8, p.series.series_time)
                 .Run();
  if (status.ok())
    status = put_instance.Bind(1, p.instance.sop_instance_uid)
                 .Bind(2, p.series.series_instance_uid)
                 .Bind(3, p.study.study_instance_uid)
                 .Bind(4, p.study.patient_id)
                 .Bind(5, p.instance.sop_class_uid)
                 .Bind(6, p.instance.transfer_syntax_uid)
                 .Bind(7, p.instance.instance_number)
                 .Bind(8, p.instance.number_of_frames)
                 .Bind(9, path)
                 .Bind(10, size)
                 .Bind(11, p.metadata_json)
                 .Bind(12, now)
                 .Bind(13, p.study.issuer_of_patient_id)
                 .Run();
  if (status.ok())
    status = put_file.Bind(1, path)
                 .Bind(2, size)
                 .Bind(3, mtime_ns)
                 .Bind(4, p.instance.sop_instance_uid)
                 .Run();
  return status;
}

Status FolderIndex::AddInstance(const std::string& path, const ParsedInstance& parsed) {
  std::error_code ec;
  auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (ec) return IoError("cannot stat " + path);
  auto mtime = MtimeNs(std::filesystem::last_write_time(path, ec));
  std::lock_guard<std::mutex> scan_lock(scan_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SI_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN"));
    Status s = InsertParsed(path, size, mtime, parsed, clock_.NowSeconds());
    if (!s.ok()) {
      sql::Exec(db_, "ROLLBACK").ok();
      return s;
    }
    SI_RETURN_IF_ERROR(sql::Exec(db_, "COMMIT"));
  }
  known_[path] = FileState{size, mtime};
  return Status::Ok();
}

Status FolderIndex::MarkComplete(const std::string& scope_key, int64_t expected) {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(
      db_, "INSERT OR REPLACE INTO complete_scopes(scope_key,expected,completed_at) VALUES(?,?,?)");
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  return st.Bind(1, scope_key).Bind(2, expected).Bind(3, clock_.NowSeconds()).Run();
}

std::optional<int64_t> FolderIndex::CompleteExpected(const std::string& scope_key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(db_, "SELECT expected FROM complete_scopes WHERE scope_key=?");
  if (!st.ok()) return std::nullopt;
  st.Bind(1, scope_key);
  if (!st.Step()) return std::nullopt;
  return st.Int(0);
}

int64_t FolderIndex::CountInstances(const std::string& study_uid,
                                    const std::optional<std::string>& series_uid) const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(db_, series_uid
                             ? "SELECT COUNT(*) FROM instances WHERE series_uid=?2 AND study_uid=?1"
                             : "SELECT COUNT(*) FROM instances WHERE study_uid=?1");
  if (!st.ok()) return 0;
  st.Bind(1, study_uid);
  if (series_uid) st.Bind(2, *series_uid);
  return st.Step() ? st.Int(0) : 0;
}

int64_t FolderIndex::TotalBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(db_, "SELECT COALESCE(SUM(size),0) FROM instances");
  return st.ok() && st.Step() ? st.Int(0) : 0;
}

Status FolderIndex::TouchStudy(const std::string& study_uid) {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(db_, "INSERT OR REPLACE INTO study_access(study_uid,last_access) VALUES(?,?)");
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  return st.Bind(1, study_uid).Bind(2, clock_.NowSeconds()).Run();
}

Result<std::vector<std::string>> FolderIndex::StudiesLeastRecentlyUsed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(
      db_,
      "SELECT s.study_uid FROM studies s LEFT JOIN study_access a ON a.study_uid=s.study_uid "
      "ORDER BY COALESCE(a.last_access, s.first_seen), s.first_seen");
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  std::vector<std::string> out;
  while (st.Step()) out.push_back(st.Text(0));
  return out;
}

Result<std::vector<std::string>> FolderIndex::RemoveStudy(const std::string& study_uid) {
  std::lock_guard<std::mutex> scan_lock(scan_mutex_);
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> paths;
  {
    sql::Statement st(db_, "SELECT path FROM instances WHERE study_uid=?");
    SI_RETURN_IF_ERROR(st.PrepareStatus());
    st.Bind(1, study_uid);
    while (st.Step()) paths.push_back(st.Text(0));
  }
  SI_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN"));
  Status status;
  for (const char* q :
       {"DELETE FROM complete_scopes WHERE scope_key='study:'||?1 OR scope_key IN "
        "(SELECT 'series:'||series_uid FROM series WHERE study_uid=?1)",
        "DELETE FROM files WHERE path IN (SELECT path FROM instances WHERE study_uid=?1)",
        "DELETE FROM instances WHERE study_uid=?1", "DELETE FROM series WHERE study_uid=?1",
        "DELETE FROM studies WHERE study_uid=?1", "DELETE FROM study_access WHERE study_uid=?1"}) {
    sql::Statement st(db_, q);
    status = st.PrepareStatus();
    if (status.ok()) status = st.Bind(1, study_uid).Run();
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    sql::Exec(db_, "ROLLBACK").ok();
    return status;
  }
  SI_RETURN_IF_ERROR(sql::Exec(db_, "COMMIT"));
  for (auto& p : paths) known_.erase(p);
  return paths;
}

Result<std::vector<StudyRecord>> FolderIndex::FindStudies(const StudyQuery& query) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string sql =
      "SELECT "
      "study_uid,patient_id,patient_name,study_date,study_time,timezone_offset,accession_number,"
      "study_id,description,referring_physician,last_changed FROM studies WHERE 1=1";
  if (query.patient_id) sql += " AND patient_id=?1";
  if (query.study_instance_uid) sql += " AND study_uid=?2";
  sql += " ORDER BY study_date DESC, study_time DESC, study_uid";
  sql::Statement st(db_, sql);
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  if (query.patient_id) st.Bind(1, *query.patient_id);
  if (query.study_instance_uid) st.Bind(2, *query.study_instance_uid);
  std::vector<StudyRecord> studies;
  std::map<std::string, size_t> by_uid;
  while (st.Step()) {
    StudyRecord s;
    s.study_instance_uid = st.Text(0);
    s.patient_id = st.Text(1);
    s.patient_name = st.Text(2);
    s.study_date = st.Text(3);
    s.study_time = st.Text(4);
    s.timezone_offset = st.Text(5);
    s.accession_number = st.Text(6);
    s.study_id = st.Text(7);
    s.description = st.Text(8);
    s.referring_physician = st.Text(9);
    s.last_updated = st.Int(10);  // the last time an instance of it was indexed
    by_uid[s.study_instance_uid] = studies.size();
    studies.push_back(std::move(s));
  }
  if (st.Failed()) return IoError(std::string("sqlite: ") + sqlite3_errmsg(db_));

  sql::Statement series(db_,
                        "SELECT "
                        "s.series_uid,s.modality,s.series_number,s.description,s.body_part,s."
                        "series_date,s.series_time,"
                        "(SELECT COUNT(*) FROM instances i WHERE i.series_uid=s.series_uid) FROM "
                        "series s WHERE s.study_uid=? "
                        "ORDER BY s.series_number IS NULL, s.series_number, s.series_uid");
  sql::Statement instances(
      db_,
      "SELECT sop_uid,sop_class_uid,transfer_syntax_uid,instance_number,number_of_frames,path,size "
      "FROM instances WHERE series_uid=? ORDER BY instance_number IS NULL, instance_number, "
      "sop_uid");
  SI_RETURN_IF_ERROR(series.PrepareStatus());
  SI_RETURN_IF_ERROR(instances.PrepareStatus());
  for (auto& study : studies) {
    series.Bind(1, study.study_instance_uid);
    std::set<std::string> modalities;
    while (series.Step()) {
      SeriesRecord r;
      r.series_instance_uid = series.Text(0);
      r.modality = series.Text(1);
      r.series_number = series.OptInt(2);
      r.description = series.Text(3);
      r.body_part_examined = series.Text(4);
      r.series_date = series.Text(5);
      r.series_time = series.Text(6);
      r.number_of_instances = series.Int(7);
      study.number_of_instances += r.number_of_instances;
      if (!r.modality.empty() && modalities.insert(r.modality).second)
        study.modalities.push_back(r.modality);
      study.series.push_back(std::move(r));
    }
    series.Reset();
    study.number_of_series = static_cast<int64_t>(study.series.size());
    if (!query.include_instances) continue;
    for (auto& r : study.series) {
      instances.Bind(1, r.series_instance_uid);
      while (instances.Step()) {
        InstanceRecord i;
        i.sop_instance_uid = instances.Text(0);
        i.sop_class_uid = instances.Text(1);
        i.transfer_syntax_uid = instances.Text(2);
        i.instance_number = instances.OptInt(3);
        i.number_of_frames = instances.Int(4);
        i.path = instances.Text(5);
        i.size_bytes = instances.Int(6);
        r.instances.push_back(std::move(i));
      }
      instances.Reset();
    }
  }
  return studies;
}

namespace {
std::string InstanceSelection(const std::optional<std::string>& series_uid,
                              const std::optional<std::string>& sop_uid) {
  std::string where = " WHERE i.study_uid=?1";
  if (series_uid) where += " AND i.series_uid=?2";
  if (sop_uid) where += " AND i.sop_uid=?3";
  return where +
         " ORDER BY s.series_number IS NULL, s.series_number, i.series_uid, i.instance_number IS "
         "NULL,"
         " i.instance_number, i.sop_uid";
}
}  // namespace

Result<std::vector<StoredInstance>> FolderIndex::FindInstances(
    const std::string& study_uid, const std::optional<std::string>& series_uid,
    const std::optional<std::string>& sop_uid) const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(
      db_,
      "SELECT i.study_uid,i.series_uid,i.sop_uid,i.patient_id,i.transfer_syntax_uid,i.path,i.size,"
      "i.sop_class_uid,i.issuer_of_patient_id "
      "FROM instances i LEFT JOIN series s ON s.series_uid=i.series_uid" +
          InstanceSelection(series_uid, sop_uid));
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  st.Bind(1, study_uid);
  if (series_uid) st.Bind(2, *series_uid);
  if (sop_uid) st.Bind(3, *sop_uid);
  std::vector<StoredInstance> out;
  while (st.Step())
    out.push_back(StoredInstance{st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4),
                                 st.Text(5), st.Int(6), st.Text(7), st.Text(8)});
  if (st.Failed()) return IoError(std::string("sqlite: ") + sqlite3_errmsg(db_));
  return out;
}

Result<std::vector<std::string>> FolderIndex::FindMetadata(
    const std::string& study_uid, const std::optional<std::string>& series_uid,
    const std::optional<std::string>& sop_uid) const {
  std::lock_guard<std::mutex> lock(mutex_);
  sql::Statement st(
      db_,
      "SELECT i.metadata_json FROM instances i LEFT JOIN series s ON s.series_uid=i.series_uid" +
          InstanceSelection(series_uid, sop_uid));
  SI_RETURN_IF_ERROR(st.PrepareStatus());
  st.Bind(1, study_uid);
  if (series_uid) st.Bind(2, *series_uid);
  if (sop_uid) st.Bind(3, *sop_uid);
  std::vector<std::string> out;
  while (st.Step()) out.push_back(st.Text(0));
  if (st.Failed()) return IoError(std::string("sqlite: ") + sqlite3_errmsg(db_));
  return out;
}

}  // namespace si
