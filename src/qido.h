#pragma once
// QIDO-RS (PS3.18 10.6) answered from the DICOM JSON of one study's instances, as
// pure functions. The facade binds every query to the study of its token, so the
// input is always that study alone: whatever a query asks, nothing else can match.
//
// Matching (PS3.4 C.2.2.2): an empty value matches everything; UI values match any
// of a comma- or backslash-separated list; DA/TM/DT take "a-b", "a-", "-b" ranges;
// '*' and '?' are wildcards; anything else is an exact match (PN case-insensitive
// under fuzzymatching=true). A multi-valued attribute matches when one value does;
// an absent attribute matches only an empty key.
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/status.h"

namespace si::qido {

using ParamList = std::vector<std::pair<std::string, std::string>>;

enum class Level { kStudy, kSeries, kInstance };

struct MatchKey {
  uint32_t tag = 0;
  std::string value;
};

struct Query {
  Level level = Level::kStudy;
  // Path scope below the study: /studies/{S}/series/{SE}/instances.
  std::optional<std::string> series_uid;
  std::vector<MatchKey> keys;
  bool include_all = false;
  std::set<uint32_t> include;  // includefield tags beyond the level's defaults
  size_t limit = std::numeric_limits<size_t>::max();
  size_t offset = 0;
  bool fuzzy = false;
};

// Keyword ("PatientID") or eight hex digits ("00100020") to a tag; nullopt otherwise.
std::optional<uint32_t> TagOf(std::string_view keyword_or_tag);

// Query parameters into a Query. InvalidArgument for an unknown keyword, a bad
// limit/offset or fuzzymatching value; "includefield" may repeat and hold lists.
Result<Query> ParseQuery(Level level, const ParamList& params);

// The QIDO answer (a DICOM JSON array, possibly empty) for the instances of one
// study, given as DICOM JSON objects (as WADO metadata serves them). retrieve_root
// is the client-facing WADO root ending in '/', for RetrieveURL (0008,1190).
// Attributes carrying a BulkDataURI are never part of an answer. Study answers
// carry computed ModalitiesInStudy and counts; series answers the instance count.
// Series are ordered by SeriesNumber, instances by InstanceNumber (then UID).
// BadGateway when an object is not valid DICOM JSON.
Result<std::string> BuildResponse(const Query& query, const std::vector<std::string>& instances,
                                  const std::string& retrieve_root);

// Whether the query's StudyInstanceUID keys already rule the study out, so its
// metadata need not be fetched (for a PACS: a whole retrieval) to answer "[]".
bool ExcludesStudy(const Query& query, const std::string& study_uid);

// A JSON array's elements as separate JSON texts (for sources that deliver the
// study's metadata as one array). BadGateway when it is not an array of objects.
Result<std::vector<std::string>> SplitArray(std::string_view json);

}  // namespace si::qido
