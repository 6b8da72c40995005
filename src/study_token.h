#pragma once
// Study tokens: the path segment that binds a WADO-RS root to one study, one tenant
// and the patient whose search produced it. Interoperable with the reference server:
// JWE compact, alg "dir", enc "A256GCM", key = SHA-256(PATH_KEY), payload
// {uid, query: {tenantKey, byPatientId | byPatientIdentifier}, iat, exp}.
// Unlike the reference, exp is enforced. Thread-safe after construction.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "src/clock.h"
#include "src/status.h"

namespace si {

struct StudyBinding {
  std::string study_uid;
  std::string tenant_key;
  std::optional<std::string> by_patient_id;
  // The reference server writes {system, value}; we accept that and "system|value".
  struct Identifier {
    std::string system;
    std::string value;
  };
  std::optional<Identifier> by_patient_identifier;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
  // A bearer capability ("kind": "bearer"): usable without Authorization, for read
  // access to this study only. Only we can mint one (the payload is encrypted and
  // authenticated with our key), so the kind cannot be forged or flipped. It carries
  // the MRN that was authorized, because no SMART token accompanies its requests.
  bool bearer = false;
  std::optional<std::string> mrn;
};

class StudyTokenCodec {
 public:
  StudyTokenCodec(std::string_view path_key, const Clock& clock, std::chrono::seconds lifetime);
  ~StudyTokenCodec();
  StudyTokenCodec(const StudyTokenCodec&) = delete;
  StudyTokenCodec& operator=(const StudyTokenCodec&) = delete;

  // Fills issued_at/expires_at from the clock and the lifetime (an earlier
  // binding.expires_at, when set, is kept).
  Result<std::string> Issue(StudyBinding binding) const;
  // Forbidden for anything not minted with our key, malformed, or expired; the
  // message is short and leaks nothing.
  Result<StudyBinding> Verify(std::string_view token) const;

  std::chrono::seconds lifetime() const { return lifetime_; }
  int64_t NowSeconds() const { return clock_.NowSeconds(); }

 private:
  struct Key;
  std::unique_ptr<Key> key_;
  const Clock& clock_;
  std::chrono::seconds lifetime_;
};

}  // namespace si
