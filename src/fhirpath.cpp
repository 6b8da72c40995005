#include "src/fhirpath.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace si {
namespace fhirpath_detail {

enum class Kind { kThis, kMember, kIndex, kWhere, kFirst, kExists, kString, kEq, kNe, kAnd, kOr };

struct Node {
  Kind kind;
  std::string name;                   // member name, string literal
  int64_t index = 0;                  // indexer
  std::shared_ptr<const Node> input;  // the collection this applies to (kThis: none)
  std::shared_ptr<const Node> arg;    // where/exists criteria, right operand
};

// A collection item: a JSON node of the resource, or a value made by the expression.
struct Item {
  const rapidjson::Value* node = nullptr;
  enum { kNode, kBool, kString } type = kNode;
  bool b = false;
  std::string s;
};
using Collection = std::vector<Item>;

}  // namespace fhirpath_detail

namespace {
using fhirpath_detail::Collection;
using fhirpath_detail::Item;
using fhirpath_detail::Kind;
using fhirpath_detail::Node;
using NodePtr = std::shared_ptr<const Node>;

constexpr const char* kSupported =
    "supported: member paths, [n] indexers, where() with = != and or, first(), exists(), 'string' "
    "literals";

NodePtr Make(Kind kind, NodePtr input = nullptr, NodePtr arg = nullptr, std::string name = "",
             int64_t index = 0) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  n->input = std::move(input);
  n->arg = std::move(arg);
  n->name = std::move(name);
  n->index = index;
  return n;
}

struct Token {
  enum Type { kIdent, kString, kNumber, kSymbol, kEnd } type = kEnd;
  std::string text;
  size_t pos = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<NodePtr> Run() {
    SI_RETURN_IF_ERROR(Tokenize());
    auto e = ParseOr();
    if (!e.ok()) return e;
    if (Peek().type != Token::kEnd) return Error("unexpected '" + Peek().text + "'", Peek().pos);
    return e;
  }

 private:
  Status Error(const std::string& what, size_t pos) const {
    return InvalidArgument("unsupported FHIRPath '" + std::string(text_) + "': " + what +
                           " at position " + std::to_string(pos + 1) + " (" + kSupported + ")");
  }

  Status Tokenize() {
    size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      Token t;
      t.pos = i;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < text_.size() &&
               (std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '_'))
          ++j;
        t.type = Token::kIdent;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t j = i;
        while (j < text_.size() && std::isdigit(static_cast<unsigned char>(text_[j]))) ++j;
        if (j < text_.size() && text_[j] == '.' && j + 1 < text_.size() &&
            std::isdigit(static_cast<unsigned char>(text_[j + 1])))
          return Error("decimal numbers are not supported", i);
        t.type = Token::kNumber;
        t.text = std::string(text_.substr(i, j - i));
        if (t.text.size() > 9) return Error("number too large", i);
        i = j;
      } else if (c == '\'') {
        std::string s;
        size_t j = i + 1;
        bool closed = false;
        while (j < text_.size()) {
          char d = text_[j];
          if (d == '\'') {
            closed = true;
            ++j;
            break;
          }
          if (d == '\\') {
            if (j + 1 >= text_.size()) break;
            char e = text_[j + 1];
            switch (e) {
              case '\'':
              case '"':
              case '`':
              case '\\':
              case '/':
                s += e;
                break;
              case 'n':
                s += '\n';
                break;
              case 't':
                s += '\t';
                break;
              case 'r':
                s += '\r';
                break;
              case 'f':
                s += '\f';
                break;
              default:
                return Error(std::string("escape '\\") + e + "' is not supported", j);
            }
            j += 2;
            continue;
          }
          s += d;
          ++j;
        }
        if (!closed) return Error("unterminated string", i);
        t.type = Token::kString;
        t.text = std::move(s);
        i = j;
      } else if (c == '!' && i + 1 < text_.size() && text_[i + 1] == '=') {
        t.type = Token::kSymbol;
        t.text = "!=";
        i += 2;
      } else if (c == '.' || c == '[' || c == ']' || c == '(' || c == ')' || c == '=') {
        t.type = Token::kSymbol;
        t.text = std::string(1, c);
        ++i;
      } else {
        return Error(std::string("'") + c + "' is not supported", i);
      }
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.pos = text_.size();
    end.text = "end of expression";
    tokens_.push_back(end);
    return Status::Ok();
  }

  const Token& Peek() const { return tokens_[pos_]; }
  bool IsSymbol(const char* s) const { return Peek().type == Token::kSymbol && Peek().text == s; }
  bool IsKeyword(const char* s) const { return Peek().type == Token::kIdent && Peek().text == s; }
  Status Expect(const char* s) {
    if (!IsSymbol(s))
      return Error(std::string("expected '") + s + "' but found '" + Peek().text + "'", Peek().pos);
    ++pos_;
    return Status::Ok();
  }

  Result<NodePtr> ParseOr() {
    auto left = ParseAnd();
    if (!left.ok()) return left;
    NodePtr l = *left;
    while (IsKeyword("or")) {
      ++pos_;
      auto right = ParseAnd();
      if (!right.ok()) return right;
      l = Make(Kind::kOr, l, *right);
    }
    if (IsKeyword("xor") || IsKeyword("implies"))
      return Error("'" + Peek().text + "' is not supported", Peek().pos);
    return l;
  }

  Result<NodePtr> ParseAnd() {
    auto left = ParseEquality();
    if (!left.ok()) return left;
    NodePtr l = *left;
    while (IsKeyword("and")) {
      ++pos_;
      auto right = ParseEquality();
      if (!right.ok()) return right;
      l = Make(Kind::kAnd, l, *right);
    }
    return l;
  }

  Result<NodePtr> ParseEquality() {
    auto left = ParseTerm();
    if (!left.ok()) return left;
    if (IsSymbol("=") || IsSymbol("!=")) {
      Kind k = IsSymbol("=") ? Kind::kEq : Kind::kNe;
      ++pos_;
      auto right = ParseTerm();
      if (!right.ok()) return right;
      if (IsSymbol("=") || IsSymbol("!="))
        return Error("chained comparisons are not supported", Peek().pos);
      return Make(k, *left, *right);
    }
    return left;
  }

  // A function applied to `input`; the name has been read.
  Result<NodePtr> ParseFunction(const Token& name, NodePtr input) {
    SI_RETURN_IF_ERROR(Expect("("));
    if (name.text == "where" || name.text == "exists") {
      if (name.text == "exists" && IsSymbol(")")) {
        ++pos_;
        return Make(Kind::kExists, input);
      }
      auto criteria = ParseOr();
      if (!criteria.ok()) return criteria;
      SI_RETURN_IF_ERROR(Expect(")"));
      return Make(name.text == "where" ? Kind::kWhere : Kind::kExists, input, *criteria);
    }
    if (name.text == "first") {
      if (!IsSymbol(")")) return Error("first() takes no arguments", Peek().pos);
      ++pos_;
      return Make(Kind::kFirst, input);
    }
    return Error("function '" + name.text + "()' is not supported", name.pos);
  }

  Result<NodePtr> ParseTerm() {
    NodePtr node;
    const Token& t = Peek();
    if (t.type == Token::kString) {
      ++pos_;
      node = Make(Kind::kString, nullptr, nullptr, t.text);
      if (IsSymbol(".") || IsSymbol("["))
        return Error("paths on a literal are not supported", Peek().pos);
      return node;
    }
    if (IsSymbol("(")) {
      ++pos_;
      auto inner = ParseOr();
      if (!inner.ok()) return inner;
      SI_RETURN_IF_ERROR(Expect(")"));
      node = *inner;
    } else if (t.type == Token::kIdent) {
      if (t.text == "and" || t.text == "or")
        return Error("'" + t.text + "' needs a left operand", t.pos);
      if (t.text == "true" || t.text == "false")
        return Error("boolean literals are not supported", t.pos);
      Token name = t;
      ++pos_;
      if (IsSymbol("(")) {
        auto f = ParseFunction(name, Make(Kind::kThis));
        if (!f.ok()) return f;
        node = *f;
      } else {
        node = Make(Kind::kMember, Make(Kind::kThis), nullptr, name.text);
      }
    } else if (t.type == Token::kNumber) {
      return Error("number literals are not supported", t.pos);
    } else {
      return Error("unexpected '" + t.text + "'", t.pos);
    }
    for (;;) {
      if (IsSymbol(".")) {
        ++pos_;
        const Token& n = Peek();
        if (n.type != Token::kIdent) return Error("expected a name after '.'", n.pos);
        Token name = n;
        ++pos_;
        if (IsSymbol("(")) {
          auto f = ParseFunction(name, node);
          if (!f.ok()) return f;
          node = *f;
        } else {
          node = Make(Kind::kMember, node, nullptr, name.text);
        }
      } else if (IsSymbol("[")) {
        ++pos_;
        if (Peek().type != Token::kNumber)
          return Error("indexers must be non-negative integer literals", Peek().pos);
        int64_t index = std::stoll(Peek().text);
        ++pos_;
        SI_RETURN_IF_ERROR(Expect("]"));
        node = Make(Kind::kIndex, node, nullptr, "", index);
      } else {
        return node;
      }
    }
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

// ---- evaluation ------------------------------------------------------------------

struct EvalError {
  std::string message;
};

bool JsonEqual(const rapidjson::Value& a, const rapidjson::Value& b) {
  if (a.IsNumber() && b.IsNumber()) return a.GetDouble() == b.GetDouble();
  return a == b;
}

bool ItemsEqual(const Item& a, const Item& b) {
  auto as_string = [](const Item& i) -> std::optional<std::string> {
    if (i.type == Item::kString) return i.s;
    if (i.type == Item::kNode && i.node->IsString())
      return std::string(i.node->GetString(), i.node->GetStringLength());
    return std::nullopt;
  };
  auto as_bool = [](const Item& i) -> std::optional<bool> {
    if (i.type == Item::kBool) return i.b;
    if (i.type == Item::kNode && i.node->IsBool()) return i.node->GetBool();
    return std::nullopt;
  };
  if (auto sa = as_string(a)) {
    auto sb = as_string(b);
    return sb && *sa == *sb;
  }
  if (auto ba = as_bool(a)) {
    auto bb = as_bool(b);
    return bb && *ba == *bb;
  }
  if (a.type == Item::kNode && b.type == Item::kNode) return JsonEqual(*a.node, *b.node);
  return false;
}

// Singleton evaluation as a Boolean: empty stays empty, a single non-Boolean is true.
std::optional<bool> AsBoolean(const Collection& c) {
  if (c.empty()) return std::nullopt;
  if (c.size() > 1)
    throw EvalError{"a collection of " + std::to_string(c.size()) +
                    " items where a single Boolean is expected"};
  const Item& i = c.front();
  if (i.type == Item::kBool) return i.b;
  if (i.type == Item::kNode && i.node->IsBool()) return i.node->GetBool();
  if (i.type == Item::kNode && i.node->IsNull()) return std::nullopt;
  return true;
}

Item Bool(bool b) {
  Item i;
  i.type = Item::kBool;
  i.b = b;
  return i;
}

void AddNode(Collection& out, const rapidjson::Value& v) {
  if (v.IsNull()) return;
  Item i;
  i.node = &v;
  out.push_back(i);
}

Collection Eval(const Node& n, const Collection& context) {
  switch (n.kind) {
    case Kind::kThis:
      return context;
    case Kind::kString: {
      Item i;
      i.type = Item::kString;
      i.s = n.name;
      return {i};
    }
    case Kind::kMember: {
      Collection in = Eval(*n.input, context);
      Collection out;
      bool leading = n.input->kind == Kind::kThis;
      for (auto& item : in) {
        if (item.type != Item::kNode || !item.node->IsObject()) continue;
        // A leading type name selects the resource itself when it is of that type.
        if (leading && !n.name.empty() && std::isupper(static_cast<unsigned char>(n.name[0]))) {
          auto rt = item.node->FindMember("resourceType");
          if (rt != item.node->MemberEnd() && rt->value.IsString() &&
              n.name == rt->value.GetString()) {
            out.push_back(item);
            continue;
          }
        }
        auto m = item.node->FindMember(n.name.c_str());
        if (m == item.node->MemberEnd()) continue;
        if (m->value.IsArray()) {
          for (auto& e : m->value.GetArray()) AddNode(out, e);
        } else {
          AddNode(out, m->value);
        }
      }
      return out;
    }
    case Kind::kIndex: {
      Collection in = Eval(*n.input, context);
      if (n.index < 0 || static_cast<size_t>(n.index) >= in.size()) return {};
      return {in[static_cast<size_t>(n.index)]};
    }
    case Kind::kFirst: {
      Collection in = Eval(*n.input, context);
      if (in.empty()) return {};
      return {in.front()};
    }
    case Kind::kWhere:
    case Kind::kExists: {
      Collection in = Eval(*n.input, context);
      Collection out;
      if (!n.arg) return {Bool(!in.empty())};
      for (auto& item : in) {
        Collection c = Eval(*n.arg, Collection{item});
        // As FHIRPath.js: the item passes when the criteria's first result is truthy.
        bool pass = !c.empty() && !(c.front().type == Item::kBool && !c.front().b) &&
                    !(c.front().type == Item::kNode && c.front().node->IsBool() &&
                      !c.front().node->GetBool()) &&
                    !(c.front().type == Item::kString && c.front().s.empty());
        if (pass) out.push_back(item);
      }
      if (n.kind == Kind::kExists) return {Bool(!out.empty())};
      return out;
    }
    case Kind::kEq:
    case Kind::kNe: {
      Collection a = Eval(*n.input, context);
      Collection b = Eval(*n.arg, context);
      if (a.empty() || b.empty()) return {};
      bool eq = a.size() == b.size();
      for (size_t i = 0; eq && i < a.size(); ++i) eq = ItemsEqual(a[i], b[i]);
      return {Bool(n.kind == Kind::kEq ? eq : !eq)};
    }
    case Kind::kAnd:
    case Kind::kOr: {
      auto a = AsBoolean(Eval(*n.input, context));
      auto b = AsBoolean(Eval(*n.arg, context));
      if (n.kind == Kind::kAnd) {
        if ((a && !*a) || (b && !*b)) return {Bool(false)};
        if (a && b) return {Bool(true)};
        return {};
      }
      if ((a && *a) || (b && *b)) return {Bool(true)};
      if (a && b) return {Bool(false)};
      return {};
    }
  }
  return {};
}

void WriteItem(rapidjson::Writer<rapidjson::StringBuffer>& w, const Item& i) {
  if (i.type == Item::kBool)
    w.Bool(i.b);
  else if (i.type == Item::kString)
    w.String(i.s.c_str(), static_cast<rapidjson::SizeType>(i.s.size()));
  else
    i.node->Accept(w);
}

}  // namespace

Result<FhirPathExpression> FhirPathExpression::Parse(std::string_view text) {
  if (text.size() > 1000)
    return InvalidArgument("unsupported FHIRPath: longer than 1000 characters");
  Parser p(text);
  auto root = p.Run();
  if (!root.ok()) return root.status();
  FhirPathExpression e;
  e.text_ = std::string(text);
  e.root_ = *root;
  return e;
}

Result<std::string> FhirPathExpression::EvaluateToJson(const rapidjson::Value& resource) const {
  try {
    Item root;
    root.node = &resource;
    Collection result = Eval(*root_, Collection{root});
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    for (auto& i : result) WriteItem(w, i);
    w.EndArray();
    return std::string(sb.GetString(), sb.GetSize());
  } catch (const EvalError& e) {
    return InvalidArgument("FHIRPath '" + text_ + "' failed: " + e.message);
  }
}

Result<std::vector<std::string>> FhirPathExpression::EvaluateStrings(
    const rapidjson::Value& resource) const {
  try {
    Item root;
    root.node = &resource;
    std::vector<std::string> out;
    for (auto& i : Eval(*root_, Collection{root})) {
      if (i.type == Item::kString)
        out.push_back(i.s);
      else if (i.type == Item::kNode && i.node->IsString())
        out.emplace_back(i.node->GetString(), i.node->GetStringLength());
    }
    return out;
  } catch (const EvalError& e) {
    return InvalidArgument("FHIRPath '" + text_ + "' failed: " + e.message);
  }
}

std::string MrnFromPatient(const std::vector<FhirPathExpression>& expressions,
                           const rapidjson::Value& patient) {
  for (auto& e : expressions) {
    auto values = e.EvaluateStrings(patient);
    if (values.ok() && !values->empty() && !values->front().empty()) return values->front();
  }
  if (patient.IsObject()) {
    auto ids = patient.FindMember("identifier");
    if (ids != patient.MemberEnd() && ids->value.IsArray() && !ids->value.Empty() &&
        ids->value[0].IsObject()) {
      auto v = ids->value[0].FindMember("value");
      if (v != ids->value[0].MemberEnd() && v->value.IsString()) return v->value.GetString();
    }
  }
  return "";
}

std::string EvaluateFhirPathBatch(std::string_view json_text) {
  rapidjson::Document doc;
  doc.Parse(json_text.data(), json_text.size());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartArray();
  if (!doc.HasParseError() && doc.IsArray()) {
    for (auto& c : doc.GetArray()) {
      w.StartObject();
      std::string expr = c.IsObject() && c.HasMember("expression") && c["expression"].IsString()
                             ? c["expression"].GetString()
                             : "";
      static const rapidjson::Value kNull;
      const rapidjson::Value& resource =
          c.IsObject() && c.HasMember("resource") ? c["resource"] : kNull;
      auto parsed = FhirPathExpression::Parse(expr);
      if (!parsed.ok()) {
        w.Key("error");
        w.String(("unsupported: " + parsed.status().message()).c_str());
      } else {
        auto r = parsed->EvaluateToJson(resource);
        if (r.ok()) {
          w.Key("result");
          w.RawValue(r->c_str(), r->size(), rapidjson::kArrayType);
        } else {
          w.Key("error");
          w.String(r.status().message().c_str());
        }
      }
      w.EndObject();
    }
  }
  w.EndArray();
  return std::string(sb.GetString(), sb.GetSize());
}

int FhirPathCommand(const std::string& expression, const std::string& batch_file,
                    const std::string& resource_file) {
  auto read = [](const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
  };
  std::string text;
  if (!batch_file.empty()) {
    if (!read(batch_file, text)) {
      std::fprintf(stderr, "smart-imaging: cannot read %s\n", batch_file.c_str());
      return 1;
    }
    std::printf("%s\n", EvaluateFhirPathBatch(text).c_str());
    return 0;
  }
  if (expression.empty() || resource_file.empty()) {
    std::fprintf(stderr,
                 "usage: smart-imaging fhirpath EXPR --file RESOURCE.json | --batch CASES.json\n");
    return 2;
  }
  auto e = FhirPathExpression::Parse(expression);
  if (!e.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", e.status().message().c_str());
    return 1;
  }
  if (!read(resource_file, text)) {
    std::fprintf(stderr, "smart-imaging: cannot read %s\n", resource_file.c_str());
    return 1;
  }
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError()) {
    std::fprintf(stderr, "smart-imaging: %s is not JSON\n", resource_file.c_str());
    return 1;
  }
  auto r = e->EvaluateToJson(doc);
  if (!r.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", r.status().message().c_str());
    return 1;
  }
  std::printf("%s\n", r->c_str());
  return 0;
}

}  // namespace si
