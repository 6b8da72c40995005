#include "src/imaging_service.h"

#include <algorithm>

#include "schema/fhir_resources.h"
#include "src/dicomweb_json.h"
#include "src/log.h"
#include "src/text.h"

namespace si {
namespace {

// "http://host:8042/x" or "dimse://host:104" to "host".
std::string HostOf(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  auto at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);
  if (!rest.empty() && rest[0] == '[') return rest.substr(0, rest.find(']') + 1);
  return text::ToLower(rest.substr(0, rest.find(':')));
}

// The FHIR id a search names (patient/subject, last path segment), for authorizers
// that take the patient from the request (the meditech profile).
AuthRequest WithPatientHint(const AuthRequest& auth, const ParamList& params) {
  AuthRequest request = auth;
  if (!request.patient_hint.empty()) return request;
  for (auto& [k, v] : params)
    if (k == "patient" || k == "subject") {
      request.patient_hint = v.substr(v.rfind('/') == std::string::npos ? 0 : v.rfind('/') + 1);
      break;
    }
  return request;
}

std::string QueryString(const ParamList& params) {
  std::string out;
  for (auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += text::PercentEncode(k) + "=" + text::PercentEncode(v);
  }
  return out;
}

// Whether an instance is not the authorized patient's: another PatientID, or another
// IssuerOfPatientID when both the instance and the tenant carry one.
bool ForeignInstance(const StoredInstance& i, const std::string& patient_id,
                     const std::optional<std::string>& issuer) {
  if (i.patient_id != patient_id) return true;
  return issuer && !i.issuer_of_patient_id.empty() && i.issuer_of_patient_id != *issuer;
}

// Refuses, before its first byte, an instance that is not the authorized patient's.
class PatientCheckingSink final : public InstanceSink {
 public:
  PatientCheckingSink(InstanceSink& inner, const WadoAccess& access)
      : inner_(inner), access_(access) {}
  Status OnInstance(const StoredInstance& instance) override {
    if (ForeignInstance(instance, *access_.required_patient_id, access_.required_issuer)) {
      log::Warn("wado",
                "stopped a retrieval: an arriving instance carries another PatientID or "
                "IssuerOfPatientID than the token's patient (study sha256:" +
                    text::HexSha256(access_.binding.study_uid).substr(0, 16) + ")");
      return Forbidden("this study holds instances of another patient");
    }
    return inner_.OnInstance(instance);
  }

 private:
  InstanceSink& inner_;
  const WadoAccess& access_;
};

}  // namespace

bool EndpointRequiresAccessToken(const TenantConfig& tenant) {
  return !tenant.bearer_capability && tenant.authorization_type != "mock";
}

ImagingService::ImagingService(ServiceSettings settings, const StudyTokenCodec& codec,
                               SourceFactory factory)
    : settings_(std::move(settings)), codec_(codec), factory_(std::move(factory)) {}

std::shared_ptr<Tenant> ImagingService::Build(TenantConfig config) const {
  auto tenant = std::make_shared<Tenant>();
  tenant->authorizer = MakeAuthorizer(config);
  auto source = factory_(config);
  if (source.ok()) {
    tenant->source = std::move(source).value();
  } else {
    tenant->source_status = source.status();
  }
  tenant->config = std::move(config);
  return tenant;
}

void ImagingService::AddTenant(TenantConfig config) {
  std::string name = config.name;
  tenants_[name] = Build(std::move(config));
}

Result<std::shared_ptr<const Tenant>> ImagingService::FindTenant(const std::string& name) const {
  auto it = tenants_.find(name);
  if (it == tenants_.end()) return NotFound("unknown tenant");
  return it->second;
}

Result<std::shared_ptr<const Tenant>> ImagingService::FindDynTenant(
    const std::string& encoded) const {
  if (!settings_.dyn_enabled)
    return NotFound("dynamic tenants (/dyn/) are disabled on this server");
  {
    std::lock_guard<std::mutex> lock(dyn_mutex_);
    auto it = dyn_tenants_.find(encoded);
    if (it != dyn_tenants_.end()) return it->second;
  }
  auto json = Base64UrlDecode(encoded);
  if (!json) return InvalidArgument("the /dyn/ segment is not base64url");
  auto config = ParseTenant("dyn", *json, "dynamic tenant", std::filesystem::current_path());
  if (!config.ok()) return InvalidArgument(config.status().message());
  if (config->images_type == "folder")
    return Forbidden("dynamic tenants may not read local folders");
  std::string host = HostOf(config->endpoint);
  const auto& allowed = settings_.dyn_allowed_hosts;
  if (host.empty() || std::find(allowed.begin(), allowed.end(), host) == allowed.end())
    return Forbidden("upstream host is not in DYN_ALLOW_HOSTS");
  if (!config->fhir_base_url.empty()) {
    std::string ehr = HostOf(config->fhir_base_url);
    if (std::find(allowed.begin(), allowed.end(), ehr) == allowed.end())
      return Forbidden("EHR host is not in DYN_ALLOW_HOSTS");
  }
  // Tokens bind to this exact config: one /dyn/ tenant's tokens never open another's.
  config->key = "dyn:" + text::HexSha256(encoded);
  config->url_prefix = "/dyn/" + encoded;
  std::shared_ptr<const Tenant> tenant = Build(std::move(config).value());
  std::lock_guard<std::mutex> lock(dyn_mutex_);
  if (dyn_tenants_.size() > 256) dyn_tenants_.clear();  // bounded: configs are cheap to rebuild
  dyn_tenants_[encoded] = tenant;
  return tenant;
}

std::string ImagingService::CapabilityStatement(const Tenant& tenant) const {
  schema::CapabilityOptions o;
  o.base_url = settings_.base_url + tenant.config.url_prefix + "/fhir";
  o.software_version = settings_.version;
  o.authorization_type = tenant.config.authorization_type;
  o.fhir_base_url = tenant.config.fhir_base_url;
  return schema::CapabilityStatement(o);
}

Result<std::string> ImagingService::SearchStudies(const Tenant& tenant, const AuthRequest& auth,
                                                  const ParamList& params) const {
  auto decision = tenant.authorizer->Authorize(WithPatientHint(auth, params));
  if (!decision.ok()) return decision.status();
  if (!tenant.source) return tenant.source_status;
  auto search = ParseStudySearch(params);
  if (!search.ok()) return search.status();
  auto patient = ResolveSearchPatient(tenant.config, *decision, *search);
  if (!patient.ok()) return patient.status();

  std::vector<StudyRecord> studies;
  bool lookup_possible = true;
  StudyQuery query;
  if (tenant.config.lookup == Lookup::kStudiesByMrn) {
    if (patient->mrn)
      query.patient_id = patient->mrn->value;
    else
      lookup_possible = false;  // a patient without identifiers has no images we can find
  }
  if (search->study_uids.size() == 1) query.study_instance_uid = search->study_uids.front();
  if (lookup_possible) {
    Result<std::vector<StudyRecord>> found = Status(ErrorCode::kInternal, "not searched");
    if (tenant.config.slow_search_ms > 0) {
      // Keyed by tenant, authorized patient and the query as asked: never shared
      // across tenants or patients.
      std::string key = tenant.config.key + "\n" + patient->fhir_id + "\n" +
                        (patient->mrn ? patient->mrn->system + "|" + patient->mrn->value : "") +
                        "\n" + QueryString(search->canonical) + "\n" +
                        std::to_string(search->offset);
      std::shared_ptr<ImageSource> source = tenant.source;
      found = slow_searches_.Get(key, std::chrono::milliseconds(tenant.config.slow_search_ms),
                                 [source, query] { return source->FindStudies(query); });
    } else {
      found = tenant.source->FindStudies(query);
    }
    if (!found.ok()) return found.status();
    studies = std::move(found).value();
  }
  if (decision->allowed_studies) {
    // Backend Services: studies outside the client's policy do not exist for it.
    const auto& allowed = *decision->allowed_studies;
    std::erase_if(studies, [&](const StudyRecord& s) {
      return std::find(allowed.begin(), allowed.end(), s.study_instance_uid) == allowed.end();
    });
  }
  if (change_log_) {
    // Before filtering, so meta.lastUpdated and _lastUpdated agree on every study.
    Status logged = change_log_->Observe(tenant.config.key, studies);
    if (!logged.ok()) log::Warn("search", "study change log: " + logged.message());
  }
  std::vector<const StudyRecord*> matching;
  for (auto& s : studies)
    if (StudyMatches(*search, s, settings_.dicom_offset_seconds)) matching.push_back(&s);

  const int64_t total = static_cast<int64_t>(matching.size());
  size_t begin = std::min<size_t>(search->offset, matching.size());
  size_t end = std::min<size_t>(begin + search->count, matching.size());
  std::vector<const StudyRecord*> page(matching.begin() + begin, matching.begin() + end);

  const std::string fhir_base = settings_.base_url + tenant.config.url_prefix + "/fhir";
  std::vector<schema::StudyLinks> links;
  for (auto* s : page) {
    StudyBinding binding;
    binding.study_uid = s->study_instance_uid;
    binding.tenant_key = tenant.config.key;
    // One or the other, as the reference server binds: the patient searched by id,
    // or the identifier searched by.
    if (search->patient_id)
      binding.by_patient_id = patient->fhir_id;
    else
      binding.by_patient_identifier = StudyBinding::Identifier{search->patient_identifier->system,
                                                               search->patient_identifier->value};
    if (tenant.config.bearer_capability) {
      // A bearer capability: it outlives neither the SMART token that authorized this
      // search nor, when the EHR gave no exp, the longest decision reuse.
      binding.bearer = true;
      if (patient->mrn) binding.mrn = patient->mrn->value;
      if (decision->expires_at > 0)
        binding.expires_at = decision->expires_at;
      else if (tenant.config.authorization_type != "mock")
        binding.expires_at =
            codec_.NowSeconds() + static_cast<int64_t>(tenant.config.decision_cache_seconds);
    }
    auto token = codec_.Issue(binding);
    if (!token.ok()) return token.status();
    schema::StudyLinks l;
    l.full_url = fhir_base + "/ImagingStudy/" + schema::ImagingStudyId(*s);
    l.endpoint_address = settings_.base_url + tenant.config.url_prefix + "/wado/" + *token;
    l.endpoint_id = "wado-" + text::HexSha256(*token).substr(0, 16);
    l.contain_endpoint = !search->include_endpoint;
    l.requires_access_token = EndpointRequiresAccessToken(tenant.config);
    l.assumed_offset_seconds = settings_.dicom_offset_seconds;
    if (!patient->fhir_id.empty()) {
      l.subject_reference = tenant.config.fhir_base_url.empty()
                                ? "Patient/" + patient->fhir_id
                                : tenant.config.fhir_base_url + "/Patient/" + patient->fhir_id;
    } else if (patient->mrn) {
      l.subject_identifier = std::make_pair(patient->mrn->system, patient->mrn->value);
    }
    links.push_back(std::move(l));
  }

  std::vector<schema::BundleLink> bundle_links;
  ParamList self = search->canonical;
  if (search->offset) self.emplace_back("_offset", std::to_string(search->offset));
  bundle_links.push_back({"self", fhir_base + "/ImagingStudy?" + QueryString(self)});
  if (static_cast<int64_t>(end) < total && search->count > 0) {
    ParamList next = search->canonical;
    next.emplace_back("_offset", std::to_string(end));
    bundle_links.push_back({"next", fhir_base + "/ImagingStudy?" + QueryString(next)});
  }
  if (begin > 0) {
    ParamList previous = search->canonical;
    previous.emplace_back(
        "_offset",
        std::to_string(begin >= static_cast<size_t>(search->count) ? begin - search->count : 0));
    bundle_links.push_back({"previous", fhir_base + "/ImagingStudy?" + QueryString(previous)});
  }
  return schema::SearchsetBundle(total, bundle_links, page, links, fhir_base);
}

Result<WadoAccess> ImagingService::AuthorizeWado(const Tenant& tenant, const AuthRequest& auth,
                                                 std::string_view token,
                                                 const std::string& study_uid) const {
  // One message for every mismatch: the caller learns nothing about other tenants or studies.
  const Status kWrongToken = Forbidden("invalid study token");
  {
    // A bearer capability stands alone: checked on every request (key, expiry, tenant,
    // study), no SMART token involved, whatever Authorization header comes with it.
    auto early = codec_.Verify(token);
    if (early.ok() && early->bearer) {
      if (!tenant.config.bearer_capability || early->tenant_key != tenant.config.key ||
          early->study_uid != study_uid)
        return kWrongToken;
      if (!tenant.source) return tenant.source_status;
      WadoAccess access;
      access.tenant = &tenant;
      access.bearer_capability = true;
      access.binding = std::move(early).value();
      if (tenant.config.lookup == Lookup::kStudiesByMrn) {
        if (!access.binding.mrn) return kWrongToken;
        access.required_patient_id = *access.binding.mrn;
        if (!tenant.config.issuer_of_patient_id.empty())
          access.required_issuer = tenant.config.issuer_of_patient_id;
      }
      return access;
    }
    // At a bearer-capability tenant a request without a SMART token can only be a
    // capability: a tampered or expired one is refused as such (403), not asked for
    // a token it never needed.
    if (tenant.config.bearer_capability && auth.bearer_token.empty())
      return early.ok() ? kWrongToken : early.status();
  }
  AuthRequest request = auth;
  // Only the meditech profile and Backend Services (checked against the client's
  // policy) take the patient a request names: here, the study token's.
  if (request.patient_hint.empty() &&
      (tenant.config.authorization_type == "smart-on-fhir-with-meditech-bugfixes" ||
       tenant.config.backend_services_enabled))
    if (auto b = codec_.Verify(token); b.ok() && b->by_patient_id)
      request.patient_hint = *b->by_patient_id;
  auto decision = tenant.authorizer->Authorize(request);
  if (!decision.ok()) return decision.status();
  auto binding = codec_.Verify(token);
  if (!binding.ok()) return binding.status();
  if (binding->tenant_key != tenant.config.key || binding->study_uid != study_uid)
    return kWrongToken;
  if (decision->allowed_studies &&
      std::find(decision->allowed_studies->begin(), decision->allowed_studies->end(), study_uid) ==
          decision->allowed_studies->end())
    return Forbidden("this client is not authorized for this study");
  // The token's patient, checked against who the caller is now.
  std::optional<PatientIdentifier> mrn;
  if (!decision->any_patient) {
    if (!decision->patient) return Forbidden("no authorized patient");
    const FhirPatient& p = *decision->patient;
    bool same = false;
    if (binding->by_patient_id) {
      same = *binding->by_patient_id == p.id;
    } else if (binding->by_patient_identifier) {
      const auto& b = *binding->by_patient_identifier;
      same =
          std::any_of(p.identifiers.begin(), p.identifiers.end(), [&](const PatientIdentifier& k) {
            return k.value == b.value &&
                   (b.system.empty() || k.system.empty() || b.system == k.system);
          });
    }
    if (!same) return Forbidden("the study token was issued for another patient");
    mrn = MrnIdentifierOf(p);
  } else if (binding->by_patient_id) {
    // Open tenant: the search resolved the MRN the same way (configured patient, else the id).
    if (decision->patient && decision->patient->id == *binding->by_patient_id)
      mrn = MrnIdentifierOf(*decision->patient);
    else
      mrn = PatientIdentifier{"", *binding->by_patient_id, {}, ""};
  } else if (binding->by_patient_identifier) {
    const auto& b = *binding->by_patient_identifier;
    bool configured =
        decision->patient &&
        std::any_of(decision->patient->identifiers.begin(), decision->patient->identifiers.end(),
                    [&](const PatientIdentifier& k) {
                      return k.value == b.value &&
                             (b.system.empty() || k.system.empty() || b.system == k.system);
                    });
    mrn = configured ? MrnIdentifierOf(*decision->patient)
                     : PatientIdentifier{b.system, b.value, {}, ""};
  }
  if (!tenant.source) return tenant.source_status;
  WadoAccess access;
  access.tenant = &tenant;
  access.binding = std::move(binding).value();
  if (tenant.config.lookup == Lookup::kStudiesByMrn) {
    if (!mrn) return kWrongToken;
    access.required_patient_id = mrn->value;
    if (!tenant.config.issuer_of_patient_id.empty())
      access.required_issuer = tenant.config.issuer_of_patient_id;
  }
  return access;
}

Result<std::string> ImagingService::BoundStudy(std::string_view token) const {
  auto binding = codec_.Verify(token);
  if (!binding.ok()) return binding.status();
  return binding->study_uid;
}

Result<std::vector<StoredInstance>> ImagingService::PlanWado(const WadoAccess& access,
                                                             const RetrieveScope& scope) const {
  auto plan = access.tenant->source->PlanRetrieval(scope);
  if (!plan.ok()) return plan.status();
  if (access.required_patient_id) {
    size_t foreign =
        static_cast<size_t>(std::count_if(plan->begin(), plan->end(), [&](const StoredInstance& i) {
          return ForeignInstance(i, *access.required_patient_id, access.required_issuer);
        }));
    if (foreign > 0) {
      // No PHI in the log: how many, and a hash that lets an operator find the study.
      log::Warn(
          "wado",
          "refused a retrieval: " + std::to_string(foreign) + " of " +
              std::to_string(plan->size()) +
              " instances carry another PatientID (or IssuerOfPatientID) than the token's patient "
              "(study " +
              "sha256:" + text::HexSha256(scope.study_uid).substr(0, 16) + ")");
      return Forbidden(
          "this study holds instances of another patient; it cannot be served under this token");
    }
  }
  return plan;
}

Status ImagingService::Retrieve(const WadoAccess& access, const std::vector<StoredInstance>& plan,
                                InstanceSink& sink) const {
  if (!access.required_patient_id) return access.tenant->source->Retrieve(plan, sink);
  PatientCheckingSink checked(sink, access);
  return access.tenant->source->Retrieve(plan, checked);
}

Result<std::vector<std::string>> ImagingService::Metadata(
    const WadoAccess& access, const RetrieveScope& scope,
    const std::vector<StoredInstance>& plan) const {
  auto objects = access.tenant->source->Metadata(scope);
  if (!objects.ok() || !access.required_patient_id) return objects;
  // PlanWado checked the plan's PatientIDs. A cold PACS plan knows only the study's;
  // now that the cache holds the instances, planning again checks their own.
  bool cold =
      std::any_of(plan.begin(), plan.end(), [](const StoredInstance& i) { return i.path.empty(); });
  if (cold) {
    auto checked = PlanWado(access, scope);
    if (!checked.ok()) return checked.status();
  }
  return objects;
}

}  // namespace si
