#pragma once
// Core records of what an image source knows about studies, series and instances.
// Values are UTF-8 text as found in DICOM (dates as DA "YYYYMMDD", times as TM),
// normalized later by the FHIR mapping, which decides what is safe to emit.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace si {

struct InstanceRecord {
  std::string sop_instance_uid;
  std::string sop_class_uid;
  std::string transfer_syntax_uid;
  std::optional<int64_t> instance_number;
  int64_t number_of_frames = 1;
  // Source-specific locator (for the folder source: absolute file path).
  std::string path;
  int64_t size_bytes = 0;
};

struct SeriesRecord {
  std::string series_instance_uid;
  std::string modality;
  std::optional<int64_t> series_number;
  std::string description;
  std::string body_part_examined;
  std::string series_date;
  std::string series_time;
  int64_t number_of_instances = 0;
  std::vector<InstanceRecord> instances;  // may be empty when not asked for
};

struct StudyRecord {
  std::string study_instance_uid;
  std::string patient_id;
  std::string issuer_of_patient_id;  // (0010,0021), may be empty
  std::string patient_name;          // PN, never logged
  std::string study_date;
  std::string study_time;
  std::string timezone_offset;  // (0008,0201) "+HHMM" when present
  std::string accession_number;
  std::string study_id;
  std::string description;
  std::string referring_physician;
  std::vector<std::string> modalities;
  int64_t number_of_series = 0;
  int64_t number_of_instances = 0;
  std::vector<SeriesRecord> series;
  // When the study last changed, Unix seconds, if the source knows (the folder index:
  // when it was indexed or last changed); 0 otherwise, and the service's change log
  // fills it (first seen, or last seen with other series/instance counts).
  int64_t last_updated = 0;
};

// Everything the folder index stores about one DICOM file.
struct ParsedInstance {
  StudyRecord study;    // without series
  SeriesRecord series;  // without instances
  InstanceRecord instance;
  // PS3.18 DICOM JSON object of the instance, pixel data and other bulk data
  // replaced by BulkDataURIs relative to the WADO root, written as
  // "bulkdata:{tag}" placeholders that the facade resolves per request.
  std::string metadata_json;
};

// What a search asks the source for. Empty fields do not constrain.
struct StudyQuery {
  std::optional<std::string> patient_id;  // MRN, for studies-by-mrn
  std::optional<std::string> study_instance_uid;
  bool include_instances = true;
  bool include_series = true;  // false: study-level attributes only (cheaper for a PACS)
};

}  // namespace si
