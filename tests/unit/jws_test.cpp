#include "src/jws.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "src/tenant.h"

namespace si {
namespace {

// The seed configs' published ES384 key (sandbox only).
constexpr const char* kEcJwk = R"({"kty":"EC","crv":"P-384",
  "d":"0PycFXdRavo2skKh0bWl--px1MnAEdoF2LeQJOonQ1dM-5EgRFva1KiDtw5aoDFc",
  "x":"bbUYFIVmARbcbKT4SxVp4EC_nVWXEBdTQZtbEcsjPnZnrB1AAHE1we3pfqMVoxUJ",
  "y":"5Mv6RH4jrXO5jSDILYhaFOzKDf0o-T0Dw4IKY9fdKzJvlvSI-Gte7YsjL36C6Ka5",
  "kid":"2c1e9a217410edd823e2886fd73aac43","alg":"ES384"})";

std::string Bn(const BIGNUM* b) {
  std::string out(BN_num_bytes(b), '\0');
  BN_bn2bin(b, reinterpret_cast<unsigned char*>(out.data()));
  return Base64UrlEncode(out);
}

// A fresh RSA-2048 private JWK made with OpenSSL.
std::string FreshRsaJwk() {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  auto get = [&](const char* name) {
    BIGNUM* b = nullptr;
    EVP_PKEY_get_bn_param(pkey, name, &b);
    std::string s = Bn(b);
    BN_free(b);
    return s;
  };
  std::string jwk =
      std::string(R"({"kty":"RSA","alg":"RS384","kid":"r1","n":")") + get(OSSL_PKEY_PARAM_RSA_N) +
      R"(","e":")" + get(OSSL_PKEY_PARAM_RSA_E) + R"(","d":")" + get(OSSL_PKEY_PARAM_RSA_D) +
      R"(","p":")" + get(OSSL_PKEY_PARAM_RSA_FACTOR1) + R"(","q":")" +
      get(OSSL_PKEY_PARAM_RSA_FACTOR2) + R"(","dp":")" + get(OSSL_PKEY_PARAM_RSA_EXPONENT1) +
      R"(","dq":")" + get(OSSL_PKEY_PARAM_RSA_EXPONENT2) + R"(","qi":")" +
      get(OSSL_PKEY_PARAM_RSA_COEFFICIENT1) + R"("})";
  EVP_PKEY_free(pkey);
  return jwk;
}

// Verifies header.payload.signature with OpenSSL; ES384 signatures are raw r||s.
bool Verify(const std::string& jws, const std::string& pem, bool ec) {
  auto last = jws.rfind('.');
  std::string input = jws.substr(0, last);
  auto sig = Base64UrlDecode(jws.substr(last + 1));
  if (!sig) return false;
  if (ec) {
    if (sig->size() != 96) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(
        es, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()), 48, nullptr),
        BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()) + 48, 48, nullptr));
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(es, &der);
    *sig = std::string(reinterpret_cast<char*>(der), n);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok =
      EVP_DigestVerifyInit(md, nullptr, EVP_sha384(), nullptr, pkey) == 1 &&
      EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  return ok;
}

TEST(Jws, Es384SignatureIsRawRsAndVerifiesWithOpenSsl) {
  auto signer = JwsSigner::FromJwk(kEcJwk);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ((*signer)->alg(), "ES384");
  for (int i = 0; i < 20; ++i) {  // r or s with leading zero bytes must still be 48 bytes each
    auto jws = (*signer)->Sign(R"({"iss":"c","n":)" + std::to_string(i) + "}");
    ASSERT_TRUE(jws.ok());
    EXPECT_TRUE(Verify(*jws, (*signer)->PublicKeyPem(), true)) << *jws;
  }
  auto jws = (*signer)->Sign(R"({"iss":"c"})");
  auto header = Base64UrlDecode(jws->substr(0, jws->find('.')));
  EXPECT_EQ(*header, R"({"alg":"ES384","typ":"JWT","kid":"2c1e9a217410edd823e2886fd73aac43"})");
  // A tampered payload fails.
  std::string bad = *jws;
  bad[bad.find('.') + 2] ^= 1;
  EXPECT_FALSE(Verify(bad, (*signer)->PublicKeyPem(), true));
}

TEST(Jws, Rs384VerifiesWithOpenSsl) {
  auto signer = JwsSigner::FromJwk(FreshRsaJwk());
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ((*signer)->alg(), "RS384");
  auto jws = (*signer)->Sign(R"({"iss":"c"})");
  ASSERT_TRUE(jws.ok());
  EXPECT_TRUE(Verify(*jws, (*signer)->PublicKeyPem(), false));
}

TEST(Jws, BadKeysAreRefusedWithoutQuotingThem) {
  std::string mismatched = kEcJwk;
  mismatched.replace(mismatched.find("0Pyc"), 4, "1Pyc");
  struct Case {
    std::string jwk;
    const char* expect;
  } cases[] = {
      {"not json", "not a JSON object"},
      {R"({"kty":"oct","k":"AAAA"})", "kty must be EC or RSA"},
      {R"({"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"})", "crv must be P-384"},
      {R"({"kty":"EC","crv":"P-384","alg":"ES256"})", "alg 'ES256' is not supported"},
      {R"({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"})", "missing 'd'"},
      {R"({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","d":"$$$"})", "'d' is not base64url"},
      {mismatched, "does not match its public part"},
      {R"({"kty":"RSA","n":"AAAA","e":"AQAB"})", "missing 'd'"},
  };
  for (auto& c : cases) {
    auto s = JwsSigner::FromJwk(c.jwk);
    ASSERT_FALSE(s.ok()) << c.jwk;
    EXPECT_NE(s.status().message().find(c.expect), std::string::npos) << s.status().message();
    EXPECT_EQ(s.status().message().find("Pyc"), std::string::npos)
        << "quotes the key: " << s.status().message();
  }
}

TEST(Jws, TenantWithBadJwkFailsNamingTheField) {
  auto t = ParseTenant("badkey",
                       R"({"authorization":{"type":"smart-on-fhir","fhirBaseUrl":"https://ehr/fhir",
      "client":{"client_id":"c","jwkPrivate":{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","d":"AAAA"}}},
      "images":{"type":"folder","path":"x"}})",
                       "badkey.json", "/base");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("badkey.json: at /authorization/client/jwkPrivate:"),
            std::string::npos)
      << t.status().message();
  auto no_key = ParseTenant(
      "nokey", R"({"authorization":{"type":"smart-on-fhir","fhirBaseUrl":"https://ehr/fhir",
      "client":{"client_id":"c"}},"images":{"type":"folder","path":"x"}})",
      "nokey.json", "/base");
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find(
                "/authorization/client/jwkPrivate: smart-on-fhir needs a private JWK"),
            std::string::npos)
      << no_key.status().message();
}

}  // namespace
}  // namespace si
