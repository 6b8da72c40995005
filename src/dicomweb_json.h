#pragma once
// QIDO-RS answers (DICOM JSON, PS3.18 F.2) into the core records. Pure functions.
// A value that is missing, of the wrong JSON type, not an integer where one is
// expected or not a valid UID is left empty (the FHIR mapping then leaves it out):
// one odd value never fails a search. Entries without a valid UID are skipped.
// Only an answer that is not a JSON array is an error (BadGateway).
#include <string>
#include <string_view>
#include <vector>

#include "src/folder_index.h"
#include "src/model.h"
#include "src/status.h"

namespace si::dicomweb {

// includefield parameters ("includefield=...&includefield=...") for each level:
// what the FHIR mapping and the WADO checks need beyond the QIDO defaults.
std::string StudyIncludeFields();
std::string SeriesIncludeFields();
std::string InstanceIncludeFields();

Result<std::vector<StudyRecord>> ParseStudies(std::string_view json);
Result<std::vector<SeriesRecord>> ParseSeries(std::string_view json);
// Instance-level answers, as WADO plans (PatientID, UIDs; no file path).
Result<std::vector<StoredInstance>> ParseInstances(std::string_view json);

// Attaches a study's series (sorted by series number, then UID) and fills what the
// study-level answer lacked: series count, instance count, modalities.
void AttachSeries(StudyRecord& study, std::vector<SeriesRecord> series);

}  // namespace si::dicomweb
