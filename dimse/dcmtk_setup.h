#pragma once
// Process-wide DCMTK set-up, done once on the main thread before any other thread
// touches DCMTK (its global initialisation is not thread-safe).
#include "src/status.h"

namespace si::dimse {

// Quiets DCMTK's INFO logging, checks that the data dictionary is loaded
// (fails with a clear message naming DCMDICTPATH when not), registers codecs.
Status InitializeDcmtk();

}  // namespace si::dimse
