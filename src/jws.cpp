#include "src/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <vector>

#include "src/tenant.h"

namespace si {
namespace {

std::string Member(const rapidjson::Value& o, const char* key) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsString()) return "";
  return {it->value.GetString(), it->value.GetStringLength()};
}

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnDeleter>;

// A base64url JWK member as a big number; an error names the member.
Result<Bn> BigNum(const rapidjson::Value& jwk, const char* key, bool required = true) {
  std::string text = Member(jwk, key);
  if (text.empty()) {
    if (!required) return Bn();
    return InvalidConfig(std::string("missing '") + key + "'");
  }
  auto bytes = Base64UrlDecode(text);
  if (!bytes || bytes->empty()) return InvalidConfig(std::string("'") + key + "' is not base64url");
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes->data()),
                      static_cast<int>(bytes->size()), nullptr));
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "rejected by OpenSSL";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

std::string JwsBase64Url(std::string_view bytes) { return Base64UrlEncode(bytes); }

JwsSigner::~JwsSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

Result<std::shared_ptr<const JwsSigner>> JwsSigner::FromJwk(std::string_view jwk_json,
                                                            std::string_view alg_hint) {
  rapidjson::Document jwk;
  jwk.Parse(jwk_json.data(), jwk_json.size());
  if (jwk.HasParseError() || !jwk.IsObject()) return InvalidConfig("not a JSON object");
  std::string kty = Member(jwk, "kty");
  std::string alg = Member(jwk, "alg");
  if (alg.empty()) alg = std::string(alg_hint);
  if (alg.empty()) alg = kty == "EC" ? "ES384" : kty == "RSA" ? "RS384" : "";
  auto signer = std::shared_ptr<JwsSigner>(new JwsSigner());
  signer->kid_ = Member(jwk, "kid");
  signer->alg_ = alg;

  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld_guard(bld,
                                                                            &OSSL_PARAM_BLD_free);
  std::vector<Bn> keep;
  const char* type = nullptr;
  std::string pub_point;
  if (kty == "EC") {
    if (alg != "ES384")
      return InvalidConfig("alg '" + alg + "' is not supported for an EC key (use ES384)");
    if (Member(jwk, "crv") != "P-384") return InvalidConfig("crv must be P-384 for ES384");
    auto d = BigNum(jwk, "d");
    if (!d.ok()) return InvalidConfig(d.status().message() + " (the private key)");
    auto x = Base64UrlDecode(Member(jwk, "x"));
    auto y = Base64UrlDecode(Member(jwk, "y"));
    if (!x || !y || x->empty() || y->empty() || x->size() > 48 || y->size() > 48)
      return InvalidConfig("'x' and 'y' must be base64url coordinates of a P-384 point");
    pub_point = std::string(1, '\x04') + std::string(48 - x->size(), '\0') + *x +
                std::string(48 - y->size(), '\0') + *y;
    type = "EC";
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_point.data(),
                                     pub_point.size());
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d->get());
    keep.push_back(std::move(d).value());
  } else if (kty == "RSA") {
    if (alg != "RS384")
      return InvalidConfig("alg '" + alg + "' is not supported for an RSA key (use RS384)");
    const char* names[][2] = {
        {"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
        {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
    for (auto& [jwk_name, param] : names) {
      bool required = std::string_view(jwk_name) == "n" || std::string_view(jwk_name) == "e" ||
                      std::string_view(jwk_name) == "d";
      auto bn = BigNum(jwk, jwk_name, required);
      if (!bn.ok())
        return InvalidConfig(bn.status().message() +
                             (std::string_view(jwk_name) == "d" ? " (the private key)" : ""));
      if (!*bn) continue;
      OSSL_PARAM_BLD_push_BN(bld, param, bn->get());
      keep.push_back(std::move(bn).value());
    }
    type = "RSA";
  } else {
    return InvalidConfig("kty must be EC or RSA");
  }

  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params_guard(params, &OSSL_PARAM_free);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx_guard(ctx, &EVP_PKEY_CTX_free);
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0)
    return InvalidConfig(std::string("not a valid ") + type + " private key (" + OpenSslError() +
                         ")");
  signer->pkey_ = pkey;
  // The private and public halves must belong together.
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
  int ok = check ? EVP_PKEY_pairwise_check(check) : 0;
  EVP_PKEY_CTX_free(check);
  if (ok != 1) {
    ERR_clear_error();
    return InvalidConfig(std::string("the private key does not match its public part (") +
                         (kty == "EC" ? "'d' vs 'x'/'y'" : "'d' vs 'n'/'e'") + ")");
  }
  if (kty == "RSA" && EVP_PKEY_get_bits(pkey) < 2048)
    return InvalidConfig("the RSA key is shorter than 2048 bits");
  return std::shared_ptr<const JwsSigner>(std::move(signer));
}

Result<std::string> JwsSigner::Sign(std::string_view payload_json) const {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("alg");
  w.String(alg_.c_str());
  w.Key("typ");
  w.String("JWT");
  if (!kid_.empty()) {
    w.Key("kid");
    w.String(kid_.c_str());
  }
  w.EndObject();
  std::string signing_input = JwsBase64Url(sb.GetString()) + "." + JwsBase64Url(payload_json);

  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md_guard(md, &EVP_MD_CTX_free);
  auto* pkey = static_cast<EVP_PKEY*>(pkey_);
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md, nullptr, EVP_sha384(), nullptr, pkey) <= 0 ||
      EVP_DigestSign(md, nullptr, &len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) <= 0)
    return Internal("signing failed: " + OpenSslError());
  std::string sig(len, '\0');
  if (EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) <= 0)
    return Internal("signing failed: " + OpenSslError());
  sig.resize(len);
  if (alg_ == "ES384") {
    // OpenSSL gives DER (SEQUENCE of two INTEGERs); JWS wants r||s, 48 bytes each.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (!es) return Internal("signing failed: unreadable ECDSA signature");
    std::string raw(96, '\0');
    const BIGNUM* r = ECDSA_SIG_get0_r(es);
    const BIGNUM* s = ECDSA_SIG_get0_s(es);
    bool fine = BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 48) == 48 &&
                BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 48, 48) == 48;
    ECDSA_SIG_free(es);
    if (!fine) return Internal("signing failed: ECDSA signature out of range");
    sig = std::move(raw);
  }
  return signing_input + "." + JwsBase64Url(sig);
}

std::string JwsSigner::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, static_cast<EVP_PKEY*>(pkey_));
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

}  // namespace si
