#pragma once
// Deterministic sample studies, generated with DCMTK from code (no files shipped).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "src/status.h"

namespace si::dimse {

enum class SampleProfile {
  kDemo,   // four patients, ten small studies (256x256): demos and tests
  kBench,  // the demo set plus patient BENCH-0001 with five studies, among them a CT of
           // 3 series x 200 instances of 512x512 16-bit and a ~1 GB CT (at scale 1)
};

struct SampleOptions {
  uint32_t seed = 1;
  // Scales instance counts (1 = the default demo set); tests use small values.
  double scale = 1.0;
  SampleProfile profile = SampleProfile::kDemo;
};

struct SampleStudySummary {
  std::string patient_id;
  std::string patient_name;
  std::string study_uid;
  std::string modality;
  int series_count = 0;
  int instance_count = 0;
};

// Writes the sample set under out_dir as <PatientID>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm
// (Part 10 files). Same seed and scale give byte-identical files.
Result<std::vector<SampleStudySummary>> GenerateSamples(const std::filesystem::path& out_dir,
                                                        const SampleOptions& options);

}  // namespace si::dimse
