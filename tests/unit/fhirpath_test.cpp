#include "src/fhirpath.h"

#include <gtest/gtest.h>

#include "src/tenant.h"

namespace si {
namespace {

constexpr const char* kPatient = R"({"resourceType":"Patient","id":"p1","active":true,"identifier":[
  {"system":"urn:ssn","value":"999","type":{"text":"EPIC"}},
  {"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:mrn","value":"M42"},
  {"type":{"coding":[{"code":"MR"},{"code":"XX"}]},"value":"TWO-CODINGS"}]})";

std::string Eval(const std::string& expr, const char* json = kPatient) {
  rapidjson::Document d;
  d.Parse(json);
  auto e = FhirPathExpression::Parse(expr);
  if (!e.ok()) return "PARSE: " + e.status().message();
  auto r = e->EvaluateToJson(d);
  return r.ok() ? *r : "ERROR: " + r.status().message();
}

TEST(FhirPath, TheSubsetRealConfigsUse) {
  EXPECT_EQ(Eval("identifier.where(type.coding.code='MR').value"),
            R"(["M42"])");  // two codings: not '=' 'MR'
  EXPECT_EQ(Eval("identifier.where(type.text = 'EPIC').value"), R"(["999"])");
  EXPECT_EQ(Eval("identifier[0].value"), R"(["999"])");
  EXPECT_EQ(Eval("identifier[7].value"), "[]");
  EXPECT_EQ(Eval("Patient.identifier[1].system"), R"(["urn:mrn"])");
  EXPECT_EQ(Eval("Observation.identifier"), "[]");
  EXPECT_EQ(Eval("identifier.value.first()"), R"(["999"])");
  EXPECT_EQ(Eval("identifier.exists()"), "[true]");
  EXPECT_EQ(Eval("telecom.exists()"), "[false]");
  EXPECT_EQ(Eval("identifier.exists(system = 'urn:mrn')"), "[true]");
  EXPECT_EQ(Eval("identifier.where(system != 'urn:ssn').value"),
            R"(["M42"])");  // no system: empty, not true
  EXPECT_EQ(Eval("identifier.where(system = 'urn:mrn' or type.text = 'EPIC').value"),
            R"(["999","M42"])");
  EXPECT_EQ(Eval("identifier.where(system = 'urn:mrn' and value = 'M42').value"), R"(["M42"])");
  EXPECT_EQ(
      Eval("identifier.where((system = 'urn:x' or system = 'urn:mrn') and value != 'x').value"),
      R"(["M42"])");
  EXPECT_EQ(Eval("identifier.where(type.coding.code = 'MR' and type.coding.system.exists()).value"),
            R"(["M42"])");
  EXPECT_EQ(Eval("'it''s'").substr(0, 6), "PARSE:");
  EXPECT_EQ(Eval("'a\\'b'"), R"(["a'b"])");
  EXPECT_EQ(Eval("active = true").substr(0, 6),
            "PARSE:");  // boolean literals are outside the subset
}

TEST(FhirPath, EvaluationErrorsAsFhirPathJs) {
  // A Boolean operator over several items is an error, as in FHIRPath.js.
  EXPECT_EQ(Eval("identifier.value and id = 'p1'").substr(0, 6), "ERROR:");
}

TEST(FhirPath, UnsupportedExpressionsAreRefusedClearly) {
  for (const char* e :
       {"identifier.count()", "identifier | name", "identifier.select(value)", "%resource.id",
        "identifier[0].value + 'x'", "identifier.where(value > '1')", "identifier[-1]", "",
        "identifier.", "identifier.where(", "$this.id", "id = 'a' implies id = 'b'",
        "identifier[0.5]"}) {
    auto p = FhirPathExpression::Parse(e);
    ASSERT_FALSE(p.ok()) << e;
    EXPECT_NE(p.status().message().find("unsupported FHIRPath"), std::string::npos)
        << p.status().message();
    EXPECT_NE(p.status().message().find("supported: member paths"), std::string::npos)
        << p.status().message();
  }
  auto t =
      ParseTenant("t", R"json({"authorization":{"type":"mock"},"images":{"type":"folder","path":"x",
      "mrn":["identifier[0].value","identifier.count()"]}})json",
                  "t.json", "/b");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("t.json: at /images/mrn/1: unsupported FHIRPath "
                                      "'identifier.count()': function 'count()'"),
            std::string::npos)
      << t.status().message();
}

TEST(FhirPath, MrnFallsBackToTheFirstIdentifier) {
  auto p = ParsePatientResource(kPatient, {"identifier.where(system='nope').value"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mrn, "999");
  EXPECT_EQ(MrnIdentifierOf(*p)->system, "urn:ssn");
  auto d = ParsePatientResource(kPatient, {});
  EXPECT_EQ(d->mrn, "M42");
  EXPECT_EQ(MrnIdentifierOf(*d)->system, "urn:mrn");
  auto first_wins = ParsePatientResource(kPatient, {"identifier.where(system='nope').value",
                                                    "identifier[2].value", "identifier[0].value"});
  EXPECT_EQ(first_wins->mrn, "TWO-CODINGS");
  EXPECT_FALSE(ParsePatientResource(R"({"resourceType":"Observation","id":"x"})", {}).ok());
  EXPECT_FALSE(ParsePatientResource("[1,2]", {}).ok());
}

}  // namespace
}  // namespace si
