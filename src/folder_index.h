#pragma once
// The SQLite index of one folder of DICOM files (what storescp writes, or the
// sample generator). Rescan() walks the tree and brings the index up to date:
// new and changed files are parsed, removed ones dropped; unreadable or non-DICOM
// files are skipped with one log line, remembered until they change.
//
// Thread-safety: all methods may be called concurrently; one internal mutex
// guards the connection, and parsing runs outside it.
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/clock.h"
#include "src/instance_parser.h"
#include "src/model.h"
#include "src/status.h"

struct sqlite3;

namespace si {

struct ScanStats {
  int64_t files_seen = 0;
  int64_t added = 0;
  int64_t removed = 0;
  int64_t skipped = 0;
  double seconds = 0;
};

// What a WADO request may stream: identified instances with their files.
struct StoredInstance {
  std::string study_uid;
  std::string series_uid;
  std::string sop_instance_uid;
  std::string patient_id;
  std::string transfer_syntax_uid;
  std::string path;
  int64_t size_bytes = 0;
  std::string sop_class_uid;
  std::string issuer_of_patient_id;  // empty when the file has none (or is not indexed yet)
};

class FolderIndex {
 public:
  // db_path's directory is created if needed. The parser must outlive the index.
  static Result<std::unique_ptr<FolderIndex>> Open(const std::filesystem::path& db_path,
                                                   const std::filesystem::path& root,
                                                   const InstanceParser& parser,
                                                   const Clock& clock);
  ~FolderIndex();

  Result<ScanStats> Rescan();

  // Studies matching the query, each with its series (and instances when asked),
  // ordered by study date descending.
  Result<std::vector<StudyRecord>> FindStudies(const StudyQuery& query) const;

  // Instances of a study, optionally narrowed to a series and an instance,
  // ordered by series number then instance number.
  Result<std::vector<StoredInstance>> FindInstances(
      const std::string& study_uid, const std::optional<std::string>& series_uid,
      const std::optional<std::string>& sop_uid) const;

  // DICOM JSON objects, same selection and order as FindInstances.
  Result<std::vector<std::string>> FindMetadata(const std::string& study_uid,
                                                const std::optional<std::string>& series_uid,
                                                const std::optional<std::string>& sop_uid) const;

  // Indexes one file that is already in place (a received instance).
  Status AddInstance(const std::string& path, const ParsedInstance& parsed);

  // Completeness of retrieved scopes ("study:UID", "series:UID"), recorded only
  // once every expected instance is stored; verified against the stored count.
  Status MarkComplete(const std::string& scope_key, int64_t expected);
  std::optional<int64_t> CompleteExpected(const std::string& scope_key) const;
  int64_t CountInstances(const std::string& study_uid,
                         const std::optional<std::string>& series_uid) const;

  // Cache budget support: bytes stored, studies least recently used first, and
  // removal of a whole study (rows and completeness); returns its file paths.
  int64_t TotalBytes() const;
  Status TouchStudy(const std::string& study_uid);
  Result<std::vector<std::string>> StudiesLeastRecentlyUsed() const;
  Result<std::vector<std::string>> RemoveStudy(const std::string& study_uid);

  const std::filesystem::path& root() const { return root_; }

 private:
  FolderIndex(std::filesystem::path root, const InstanceParser& parser, const Clock& clock);
  Status Migrate();
  // Inside a transaction, with mutex_ held.
  Status InsertParsed(const std::string& path, int64_t size, int64_t mtime_ns,
                      const ParsedInstance& parsed, int64_t now);

  struct FileState {
    int64_t size;
    int64_t mtime_ns;
  };

  const std::filesystem::path root_;
  const InstanceParser& parser_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  sqlite3* db_ = nullptr;                             // guarded by mutex_
  std::unordered_map<std::string, FileState> known_;  // guarded by scan_mutex_
  std::mutex scan_mutex_;                             // one scan at a time
};

}  // namespace si
