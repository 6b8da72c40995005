#pragma once
// The FHIRPath subset that tenant `images.mrn` expressions use, evaluated over a
// FHIR resource in JSON:
//   member paths (a.b.c, a leading resource type such as Patient.identifier),
//   indexers ([0]), where(criteria) with = != and or (and parentheses),
//   first(), exists() (also exists(criteria)), 'string' literals.
// Anything else is refused when the expression is parsed, so an unsupported
// config fails at start-up rather than silently at request time. Semantics follow
// the FHIRPath specification (as HL7's FHIRPath.js implements it): collections
// compare equal only item by item, and empty operands propagate.
// A parsed expression is immutable and thread-safe.
#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/status.h"

namespace si {

namespace fhirpath_detail {
struct Node;
}

class FhirPathExpression {
 public:
  // InvalidArgument with the position and what is not supported.
  static Result<FhirPathExpression> Parse(std::string_view text);

  const std::string& text() const { return text_; }

  // Evaluates against `resource`. The result is a JSON array (text) of the
  // resulting items; InvalidArgument when evaluation fails (e.g. a boolean
  // operator over a collection of several items), as FHIRPath.js would throw.
  Result<std::string> EvaluateToJson(const rapidjson::Value& resource) const;

  // The string items of the result, in order (other item types are skipped).
  Result<std::vector<std::string>> EvaluateStrings(const rapidjson::Value& resource) const;

 private:
  std::string text_;
  std::shared_ptr<const fhirpath_detail::Node> root_;
};

// The MRN of a Patient, as the reference server picks it: the first expression
// whose first result is a non-empty string, else the first identifier's value.
// Empty when there is none.
std::string MrnFromPatient(const std::vector<FhirPathExpression>& expressions,
                           const rapidjson::Value& patient);

// The default `images.mrn`.
inline constexpr const char* kDefaultMrnExpression =
    "identifier.where(type.coding.code='MR').value";

// For `smart-imaging fhirpath --batch FILE`: input is a JSON array of
// {"expression": "...", "resource": {...}}, output a JSON array of
// {"result": [...]} or {"error": "..."} (parse errors say "unsupported: ...").
std::string EvaluateFhirPathBatch(std::string_view json_text);

// `smart-imaging fhirpath EXPR --file PATIENT.json` prints the result as JSON;
// `--batch CASES.json` prints EvaluateFhirPathBatch. Returns the exit code.
int FhirPathCommand(const std::string& expression, const std::string& batch_file,
                    const std::string& resource_file);

}  // namespace si
