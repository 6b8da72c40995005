#pragma once
// JWS compact signing for private_key_jwt client assertions (RFC 7523, SMART
// Backend Services): ES384 (raw r||s, 96 bytes, as JWS requires) and RS384, with a
// private key given as a JWK. A JwsSigner is immutable and thread-safe.
#include <memory>
#include <string>
#include <string_view>

#include "src/status.h"

namespace si {

class JwsSigner {
 public:
  // Parses and checks a private JWK (JSON text). `alg_hint` (e.g. the public
  // jwk's alg) is used when the JWK has no alg of its own. Errors say what is
  // wrong without quoting key material.
  static Result<std::shared_ptr<const JwsSigner>> FromJwk(std::string_view jwk_json,
                                                          std::string_view alg_hint = "");
  ~JwsSigner();

  const std::string& alg() const { return alg_; }
  const std::string& kid() const { return kid_; }

  // header.payload.signature; `payload_json` is signed as given. The header is
  // {"alg","typ":"JWT","kid"?}.
  Result<std::string> Sign(std::string_view payload_json) const;

  // The public key as PEM (SubjectPublicKeyInfo), for tests that verify signatures.
  std::string PublicKeyPem() const;

 private:
  JwsSigner() = default;
  std::string alg_;
  std::string kid_;
  void* pkey_ = nullptr;  // EVP_PKEY*
};

// RFC 7515 base64url, no padding (bytes in, text out).
std::string JwsBase64Url(std::string_view bytes);

}  // namespace si
