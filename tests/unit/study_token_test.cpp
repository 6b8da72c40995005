#include "src/study_token.h"

#include <gtest/gtest.h>

namespace si {
namespace {

StudyBinding Binding() {
  StudyBinding b;
  b.study_uid = "1.2.3.4";
  b.tenant_key = "open";
  b.by_patient_id = "87a339d0-8cae-418e-89c7-8651e6aab3c6";
  b.by_patient_identifier = StudyBinding::Identifier{"http://hospital.smarthealthit.org",
                                                     "293ee354-f8ad-4345-b10c-759fdfdcc082"};
  return b;
}

TEST(StudyToken, RoundTripKeepsTheBinding) {
  FakeClock clock(1'700'000'000);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(3600));
  auto token = codec.Issue(Binding());
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(std::count(token->begin(), token->end(), '.'), 4) << "JWE compact has five parts";
  auto b = codec.Verify(*token);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->study_uid, "1.2.3.4");
  EXPECT_EQ(b->tenant_key, "open");
  EXPECT_EQ(*b->by_patient_id, "87a339d0-8cae-418e-89c7-8651e6aab3c6");
  EXPECT_EQ(b->by_patient_identifier->system, "http://hospital.smarthealthit.org");
  EXPECT_EQ(b->by_patient_identifier->value, "293ee354-f8ad-4345-b10c-759fdfdcc082");
  EXPECT_EQ(b->issued_at, 1'700'000'000);
  EXPECT_EQ(b->expires_at, 1'700'003'600);
}

TEST(StudyToken, ExpiredTokenIsForbidden) {
  FakeClock clock(1'700'000'000);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(60));
  auto token = codec.Issue(Binding());
  ASSERT_TRUE(token.ok());
  clock.Advance(59);
  EXPECT_TRUE(codec.Verify(*token).ok());
  clock.Advance(1);
  auto b = codec.Verify(*token);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().http_status(), 403);
}

TEST(StudyToken, OtherKeyTamperingAndGarbageAreForbidden) {
  FakeClock clock(1'700'000'000);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(60));
  StudyTokenCodec other("another secret", clock, std::chrono::seconds(60));
  auto token = codec.Issue(Binding());
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(other.Verify(*token).status().http_status(), 403);

  // Flip one character in each of the five parts in turn.
  size_t start = 0;
  for (int part = 0; part < 5; ++part) {
    size_t end = token->find('.', start);
    if (end == std::string::npos) end = token->size();
    if (end > start) {
      std::string t = *token;
      size_t at = start + (end - start) / 2;
      t[at] = t[at] == 'A' ? 'B' : 'A';
      auto r = codec.Verify(t);
      EXPECT_FALSE(r.ok()) << "part " << part;
      EXPECT_EQ(r.status().http_status(), 403);
    }
    start = end + 1;
  }
  for (const char* garbage :
       {"", "abc", "a.b.c.d.e", "....", "eyJhbGciOiJub25lIn0.e30.", "%%%%", "a b"}) {
    auto r = codec.Verify(garbage);
    EXPECT_FALSE(r.ok()) << garbage;
    EXPECT_EQ(r.status().http_status(), 403) << garbage;
  }
}

TEST(StudyToken, ErrorMessagesLeakNothing) {
  FakeClock clock(1'700'000);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(60));
  auto r = codec.Verify("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAA.BBBB.CCCC");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "invalid study token");
}

}  // namespace
}  // namespace si

namespace si {
namespace {

// Minted by npm jose 5.10 (an independent JOSE implementation):
//   new CompactEncrypt(payload).setProtectedHeader({alg:'dir',enc:'A256GCM'})
//     .encrypt(sha256('secret'))
// payload {uid:'1.2.840.113619.2.55.3', query:{tenantKey:'open', byPatientId:'123'},
//          iat:1700000000, exp:4102444800}. The reverse direction is in
// tests/blackbox/tokens.test.js.
constexpr const char* kJoseToken =
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..mjR_WuxVZH2seyFa._6oTFNyiZFq0C_"
    "j9KgZNeqzl0Fp89m6NnbIXAjL-"
    "92DOUyklJgN1fr7OqMkTfcxfv0U9A0SUd4XyQdc0UDjAA8H7pWXdiNDhqCtFS-"
    "12AKqErYpXTlyLP72deMM9mX8Iyyhvr3IC88MrfsQlJbfzhI_"
    "T.fyvQGcFNeL45VO3H6qO28A";

TEST(StudyToken, DecodesTokensMintedByJose) {
  FakeClock clock(1'700'000'100);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(60));
  auto b = codec.Verify(kJoseToken);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->study_uid, "1.2.840.113619.2.55.3");
  EXPECT_EQ(b->tenant_key, "open");
  EXPECT_EQ(*b->by_patient_id, "123");
  EXPECT_FALSE(b->by_patient_identifier.has_value());
  EXPECT_EQ(b->expires_at, 4102444800);
  // The same token under another key is refused.
  StudyTokenCodec other("secret2", clock, std::chrono::seconds(60));
  EXPECT_FALSE(other.Verify(kJoseToken).ok());
}

}  // namespace
}  // namespace si
