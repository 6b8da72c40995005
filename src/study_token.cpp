#include "src/study_token.h"

#include <cjose/cjose.h>
#include <openssl/sha.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>
#include <cstring>

namespace si {

struct StudyTokenCodec::Key {
  cjose_jwk_t* jwk = nullptr;
  ~Key() {
    if (jwk) cjose_jwk_release(jwk);
  }
};

StudyTokenCodec::StudyTokenCodec(std::string_view path_key, const Clock& clock,
                                 std::chrono::seconds lifetime)
    : key_(std::make_unique<Key>()), clock_(clock), lifetime_(lifetime) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(path_key.data()), path_key.size(), digest);
  cjose_err err;
  key_->jwk = cjose_jwk_create_oct_spec(digest, sizeof digest, &err);
  if (!key_->jwk) std::abort();  // only fails on allocation failure
}

StudyTokenCodec::~StudyTokenCodec() = default;

Result<std::string> StudyTokenCodec::Issue(StudyBinding binding) const {
  if (binding.issued_at == 0) binding.issued_at = clock_.NowSeconds();
  // An earlier expiry (a bearer capability bound to its SMART token's exp) is kept;
  // never a later one than the configured lifetime.
  const int64_t longest = binding.issued_at + lifetime_.count();
  if (binding.expires_at == 0 || binding.expires_at > longest) binding.expires_at = longest;

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("uid");
  w.String(binding.study_uid.c_str());
  w.Key("query");
  w.StartObject();
  w.Key("tenantKey");
  w.String(binding.tenant_key.c_str());
  if (binding.by_patient_id) {
    w.Key("byPatientId");
    w.String(binding.by_patient_id->c_str());
  }
  if (binding.by_patient_identifier) {
    w.Key("byPatientIdentifier");
    w.StartObject();
    if (!binding.by_patient_identifier->system.empty()) {
      w.Key("system");
      w.String(binding.by_patient_identifier->system.c_str());
    }
    w.Key("value");
    w.String(binding.by_patient_identifier->value.c_str());
    w.EndObject();
  }
  w.EndObject();
  w.Key("iat");
  w.Int64(binding.issued_at);
  w.Key("exp");
  w.Int64(binding.expires_at);
  if (binding.bearer) {
    w.Key("kind");
    w.String("bearer");
    if (binding.mrn) {
      w.Key("mrn");
      w.String(binding.mrn->c_str());
    }
  }
  w.EndObject();

  cjose_err err;
  cjose_header_t* header = cjose_header_new(&err);
  if (!header) return Internal("cannot create JWE header");
  if (!cjose_header_set(header, CJOSE_HDR_ALG, CJOSE_HDR_ALG_DIR, &err) ||
      !cjose_header_set(header, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, &err)) {
    cjose_header_release(header);
    return Internal("cannot set JWE header");
  }
  cjose_jwe_t* jwe = cjose_jwe_encrypt(
      key_->jwk, header, reinterpret_cast<const uint8_t*>(sb.GetString()), sb.GetSize(), &err);
  cjose_header_release(header);
  if (!jwe) return Internal(std::string("cannot encrypt study token: ") + err.message);
  char* compact = cjose_jwe_export(jwe, &err);
  cjose_jwe_release(jwe);
  if (!compact) return Internal("cannot serialize study token");
  std::string token(compact);
  cjose_get_dealloc()(compact);
  return token;
}

Result<StudyBinding> StudyTokenCodec::Verify(std::string_view token) const {
  const Status kInvalid = Forbidden("invalid study token");
  // Five base64url segments; anything else is refused before cjose sees it.
  if (token.empty() || token.size() > 8192) return kInvalid;
  for (char c : token)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return kInvalid;

  cjose_err err;
  cjose_jwe_t* jwe = cjose_jwe_import(token.data(), token.size(), &err);
  if (!jwe) return kInvalid;
  // Refuse any other algorithm before decrypting: no algorithm confusion.
  cjose_header_t* protected_header = cjose_jwe_get_protected(jwe);
  const char* alg =
      protected_header ? cjose_header_get(protected_header, CJOSE_HDR_ALG, &err) : nullptr;
  const char* enc =
      protected_header ? cjose_header_get(protected_header, CJOSE_HDR_ENC, &err) : nullptr;
  if (!alg || !enc || std::strcmp(alg, CJOSE_HDR_ALG_DIR) != 0 ||
      std::strcmp(enc, CJOSE_HDR_ENC_A256GCM) != 0) {
    cjose_jwe_release(jwe);
    return kInvalid;
  }
  size_t len = 0;
  uint8_t* plain = cjose_jwe_decrypt(jwe, key_->jwk, &len, &err);
  cjose_jwe_release(jwe);
  if (!plain) return kInvalid;
  std::string payload(reinterpret_cast<char*>(plain), len);
  cjose_get_dealloc()(plain);

  rapidjson::Document doc;
  doc.Parse(payload.c_str(), payload.size());
  if (doc.HasParseError() || !doc.IsObject()) return kInvalid;
  auto str = [](const rapidjson::Value& o, const char* k) -> std::optional<std::string> {
    auto it = o.FindMember(k);
    if (it == o.MemberEnd() || !it->value.IsString()) return std::nullopt;
    return std::string(it->value.GetString(), it->value.GetStringLength());
  };
  auto num = [](const rapidjson::Value& o, const char* k) -> std::optional<int64_t> {
    auto it = o.FindMember(k);
    if (it == o.MemberEnd() || !it->value.IsNumber()) return std::nullopt;
    return it->value.IsInt64() ? it->value.GetInt64() : static_cast<int64_t>(it->value.GetDouble());
  };
  StudyBinding b;
  auto uid = str(doc, "uid");
  auto query = doc.FindMember("query");
  if (!uid || query == doc.MemberEnd() || !query->value.IsObject()) return kInvalid;
  auto tenant = str(query->value, "tenantKey");
  if (!tenant) return kInvalid;
  b.study_uid = *uid;
  b.tenant_key = *tenant;
  b.by_patient_id = str(query->value, "byPatientId");
  auto identifier = query->value.FindMember("byPatientIdentifier");
  if (identifier != query->value.MemberEnd()) {
    StudyBinding::Identifier id;
    if (identifier->value.IsObject()) {
      id.system = str(identifier->value, "system").value_or("");
      id.value = str(identifier->value, "value").value_or("");
    } else if (identifier->value.IsString()) {
      std::string v = identifier->value.GetString();
      auto bar = v.find('|');
      if (bar == std::string::npos)
        id.value = v;
      else
        id = {v.substr(0, bar), v.substr(bar + 1)};
    }
    if (id.value.empty()) return kInvalid;
    b.by_patient_identifier = id;
  }
  auto exp = num(doc, "exp");
  // The reference server mints tokens without exp; we never accept one.
  if (!exp) return kInvalid;
  b.expires_at = *exp;
  b.issued_at = num(doc, "iat").value_or(0);
  auto kind = str(doc, "kind");
  if (kind && *kind != "bearer") return kInvalid;  // a kind we do not know grants nothing
  b.bearer = kind.has_value();
  if (b.bearer) b.mrn = str(doc, "mrn");
  if (clock_.NowSeconds() >= b.expires_at) return Forbidden("study token expired");
  return b;
}

}  // namespace si
