// smart-imaging: the composition root. Parses settings, builds the components and
// wires them: tenants, image sources, token codec, HTTP server.
#include <openssl/rand.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dimse/bulk_data_reader.h"
#include "dimse/dcmtk_setup.h"
#include "dimse/dicom_file.h"
#include "dimse/dimse_client.h"
#include "dimse/pixel_samples.h"
#include "dimse/pixel_service.h"
#include "dimse/samples.h"
#include "dimse/storage_scp.h"
#include "facade/bench_static.h"
#include "facade/facade.h"
#include "facade/http_server.h"
#include "src/dicomweb_source.h"
#include "src/dimse_source.h"
#include "src/fhirpath.h"
#include "src/folder_source.h"
#include "src/imaging_service.h"
#include "src/log.h"
#include "src/study_token.h"
#include "src/tenant.h"
#include "src/text.h"

namespace {

constexpr const char* kVersion = "0.1.0";

struct Setting {
  const char* flag;
  const char* env;
  const char* default_value;  // nullptr: computed
  const char* help;
};

const Setting kServeSettings[] = {
    {"port", "PORT", "8000", "HTTP port (0 picks a free one)"},
    {"bind", "BIND_ADDRESS", "127.0.0.1", "address to listen on"},
    {"base-url", "BASE_URL", nullptr,
     "public base URL used in every absolute URL (default http://127.0.0.1:$PORT, the listening "
     "address)"},
    {"path-key", "PATH_KEY", nullptr,
     "secret for study tokens (default: random per process, with a warning)"},
    {"config-dir", "CONFIG_DIR", "./config", "directory of tenant *.json files"},
    {"dimse-dir", "DIMSE_DIR", "./var/cache", "cache and index directory"},
    {"dimse-port", "DIMSE_PORT", "30104", "port of our Storage SCP (DIMSE tenants)"},
    {"token-ttl", "TOKEN_TTL", "86400", "study token lifetime in seconds"},
    {"cache-max-bytes", "CACHE_MAX_BYTES", "10G",
     "DIMSE instance cache budget (bytes, or with K/M/G); 0 is unlimited"},
    {"dyn-config", "DYN_CONFIG", "0", "1 enables /dyn/{base64url-config} tenants"},
    {"dyn-allow-hosts", "DYN_ALLOW_HOSTS", "",
     "comma-separated upstream hosts /dyn/ tenants may use"},
    {"dicom-tz", "DICOM_TZ", "",
     "UTC offset (+HH:MM) assumed for DICOM times without one (default: this machine's)"},
    {"threads", "HTTP_THREADS", "2", "HTTP reactor threads"},
    {"log-level", "LOG_LEVEL", "info", "debug, info, warn or error"},
    {"bench-static", "BENCH_STATIC", "",
     "benchmarks only: serve this file (read once) at GET /bench-static"},
};

void PrintServeHelp() {
  std::printf(
      "usage: smart-imaging serve [options]\n\n"
      "Serves FHIR ImagingStudy search and WADO-RS for every tenant in the config directory.\n"
      "Each option can also be given as the environment variable shown.\n\n");
  for (auto& s : kServeSettings)
    std::printf(
        "  --%-17s %-16s %s%s%s\n", s.flag, s.env, s.help,
        s.default_value && *s.default_value ? " [" : "",
        s.default_value && *s.default_value ? (std::string(s.default_value) + "]").c_str() : "");
}

void PrintHelp() {
  std::printf(
      "smart-imaging %s: SMART on FHIR imaging facade over PACS, DICOMweb servers and DICOM "
      "folders\n\n"
      "usage: smart-imaging <command> [options]\n\n"
      "commands:\n"
      "  serve            run the server (serve --help for its options)\n"
      "  samples          write sample studies: --out DIR [--seed N] [--scale X] [--profile P]\n"
      "  encode-dyn FILE  print the /dyn/ path segment for a tenant JSON file\n"
      "  check-config     validate tenant files: [--config-dir DIR]\n"
      "  fhirpath EXPR    evaluate an images.mrn expression: --file PATIENT.json (or --batch "
      "CASES.json)\n"
      "  version          print the version\n",
      kVersion);
}

// --name value, --name=value; flags listed in `boolean` take no value.
std::map<std::string, std::string> ParseFlags(int argc, char** argv, int first,
                                              std::string& error) {
  std::map<std::string, std::string> flags;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      flags["help"] = "1";
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      flags["_positional"] += (flags["_positional"].empty() ? "" : "\n") + a;
      continue;
    }
    a = a.substr(2);
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      flags[a.substr(0, eq)] = a.substr(eq + 1);
    } else if (a == "dyn-config") {
      flags[a] = "1";
    } else if (i + 1 < argc) {
      flags[a] = argv[++i];
    } else {
      error = "--" + a + " needs a value";
    }
  }
  return flags;
}

std::string SettingValue(const std::map<std::string, std::string>& flags, const Setting& s) {
  auto it = flags.find(s.flag);
  if (it != flags.end()) return it->second;
  if (const char* env = std::getenv(s.env); env && *env) return env;
  return s.default_value ? s.default_value : "";
}

bool ParseOffset(const std::string& v, int64_t& out) {
  if (v.size() != 6 || (v[0] != '+' && v[0] != '-') || v[3] != ':') return false;
  int h = std::atoi(v.substr(1, 2).c_str()), m = std::atoi(v.substr(4, 2).c_str());
  out = (v[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
  return true;
}

std::atomic<bool> g_stop{false};

int Serve(const std::map<std::string, std::string>& flags) {
  if (flags.count("help")) {
    PrintServeHelp();
    return 0;
  }
  std::map<std::string, std::string> v;
  for (auto& s : kServeSettings) v[s.flag] = SettingValue(flags, s);
  for (auto& [k, _] : flags) {
    bool known = k == "_positional";
    for (auto& s : kServeSettings) known |= k == s.flag;
    if (!known) {
      std::fprintf(stderr, "smart-imaging: unknown option --%s (see serve --help)\n", k.c_str());
      return 2;
    }
  }
  std::string level = v["log-level"];
  si::log::SetLevel(level == "debug"   ? si::log::Level::kDebug
                    : level == "warn"  ? si::log::Level::kWarn
                    : level == "error" ? si::log::Level::kError
                                       : si::log::Level::kInfo);

  char* end = nullptr;
  long port = std::strtol(v["port"].c_str(), &end, 10);
  if (*end || port < 0 || port > 65535) {
    std::fprintf(stderr, "smart-imaging: invalid port '%s'\n", v["port"].c_str());
    return 2;
  }
  long ttl = std::strtol(v["token-ttl"].c_str(), &end, 10);
  if (*end || ttl <= 0) {
    std::fprintf(stderr, "smart-imaging: invalid token-ttl '%s'\n", v["token-ttl"].c_str());
    return 2;
  }

  si::Status dcmtk = si::dimse::InitializeDcmtk();
  if (!dcmtk.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", dcmtk.message().c_str());
    return 1;
  }

  std::string path_key = v["path-key"];
  if (path_key.empty()) {
    unsigned char random[32];
    RAND_bytes(random, sizeof random);
    path_key = si::text::HexSha256(std::string(reinterpret_cast<char*>(random), sizeof random));
    si::log::Warn(
        "main",
        "*** PATH_KEY is not set: using a random key. Every study token dies with this process; "
        "set PATH_KEY (or --path-key) so tokens survive restarts and work across replicas. ***");
  }

  auto started = std::chrono::steady_clock::now();
  std::filesystem::path config_dir = v["config-dir"];
  auto tenants = si::LoadTenantDirectory(config_dir, config_dir);
  if (!tenants.ok()) {
    std::fprintf(stderr, "smart-imaging: invalid configuration: %s\n",
                 tenants.status().message().c_str());
    return 1;
  }

  si::SystemClock clock;
  si::StudyTokenCodec codec(path_key, clock, std::chrono::seconds(ttl));
  si::dimse::DcmtkInstanceParser parser;
  si::dimse::DcmtkBulkDataReader bulk_reader;  // outlives the HTTP server below
  std::filesystem::path cache_dir = v["dimse-dir"];

  // Tenants that read the same folder share one index and one rescanner.
  std::map<std::string, std::shared_ptr<si::FolderSource>> folders;
  std::mutex folders_mutex;
  int64_t cache_max_bytes = 0;
  {
    std::string b = v["cache-max-bytes"];
    char* e = nullptr;
    double n = std::strtod(b.c_str(), &e);
    std::string unit = e ? std::string(e) : "";
    double scale = unit.empty()  ? 1
                   : unit == "K" ? 1024.0
                   : unit == "M" ? 1048576.0
                   : unit == "G" ? 1073741824.0
                                 : -1;
    if (b.empty() || e == b.c_str() || scale < 0 || n < 0) {
      std::fprintf(stderr, "smart-imaging: invalid cache-max-bytes '%s'\n", b.c_str());
      return 2;
    }
    cache_max_bytes = static_cast<int64_t>(n * scale);
  }
  si::dimse::DcmtkDimseClient dimse_client;
  // DIMSE tenants by their AE title: the Storage SCP routes incoming instances there.
  std::map<std::string, std::shared_ptr<si::DimseSource>> dimse_by_ae;
  std::map<std::string, std::shared_ptr<si::DimseSource>> dimse_by_peer;
  long dimse_port = std::strtol(v["dimse-port"].c_str(), &end, 10);
  if (*end || dimse_port <= 0 || dimse_port > 65535) {
    std::fprintf(stderr, "smart-imaging: invalid dimse-port '%s'\n", v["dimse-port"].c_str());
    return 2;
  }
  // DICOMweb tenants share one HTTP client: one pool of keep-alive connections.
  si::CurlHttpClientOptions dicomweb_http;
  dicomweb_http.max_body_bytes = 64 * 1024 * 1024;
  dicomweb_http.max_idle_handles = 64;
  auto dicomweb_client = std::make_shared<si::CurlHttpClient>(dicomweb_http);
  si::SourceFactory factory =
      [&](const si::TenantConfig& t) -> si::Result<std::shared_ptr<si::ImageSource>> {
    std::lock_guard<std::mutex> lock(folders_mutex);
    if (t.images_type == "dicom-web") {
      auto web = si::ParseDicomWebSettings(t);
      if (!web.ok()) return web.status();
      return std::shared_ptr<si::ImageSource>(
          std::make_shared<si::DicomWebSource>(std::move(web).value(), dicomweb_client, clock));
    }
    if (t.images_type == "dicom-dimse") {
      auto hostport = si::ParseDimseEndpoint(t.endpoint);
      if (!hostport) return si::InvalidConfig("endpoint must be dimse://host:port");
      std::string peer_key = t.endpoint + "|" + t.called_ae + "|" + t.ae + "|" + t.retrieval;
      if (auto it = dimse_by_peer.find(peer_key); it != dimse_by_peer.end())
        return std::shared_ptr<si::ImageSource>(it->second);
      si::DimsePeer peer;
      peer.host = hostport->first;
      peer.port = hostport->second;
      peer.called_ae = t.called_ae;
      peer.calling_ae = t.ae;
      peer.connect_timeout_seconds = t.connect_timeout_seconds;
      peer.dimse_timeout_seconds = t.dimse_timeout_seconds;
      peer.operation_timeout_seconds = t.operation_timeout_seconds;
      std::string hash = si::text::HexSha256(peer_key).substr(0, 16);
      auto root = cache_dir / "dimse" / hash;
      auto index = si::FolderIndex::Open(cache_dir / "index" / ("dimse-" + hash + ".sqlite"), root,
                                         parser, clock);
      if (!index.ok()) return index.status();
      auto source = std::make_shared<si::DimseSource>(
          peer, t.retrieval == "c-get" ? si::RetrievalMode::kGet : si::RetrievalMode::kMove,
          t.max_associations, dimse_client, parser, std::move(index).value(), root,
          cache_max_bytes);
      dimse_by_peer[peer_key] = source;
      if (!dimse_by_ae.count(t.ae)) dimse_by_ae[t.ae] = source;
      return std::shared_ptr<si::ImageSource>(source);
    }
    if (t.images_type != "folder")
      return si::NotImplemented("image source type '" + t.images_type +
                                "' is not available in this version of smart-imaging");
    auto it = folders.find(t.folder_path);
    if (it != folders.end()) return std::shared_ptr<si::ImageSource>(it->second);
    auto db = cache_dir / "index" /
              ("folder-" + si::text::HexSha256(t.folder_path).substr(0, 16) + ".sqlite");
    auto index = si::FolderIndex::Open(db, t.folder_path, parser, clock);
    if (!index.ok()) return index.status();
    if (!std::filesystem::is_directory(t.folder_path))
      si::log::Warn("folder", t.folder_path +
                                  " does not exist yet; it is watched and indexed once it appears");
    auto source = std::make_shared<si::FolderSource>(std::move(index).value(), t.rescan_seconds);
    folders[t.folder_path] = source;
    return std::shared_ptr<si::ImageSource>(source);
  };

  si::ServiceSettings settings;
  settings.base_url = v["base-url"];
  settings.dyn_enabled = v["dyn-config"] == "1" || v["dyn-config"] == "true";
  for (auto& h : si::text::Split(v["dyn-allow-hosts"], ','))
    if (!si::text::Trim(h).empty())
      settings.dyn_allowed_hosts.push_back(si::text::ToLower(si::text::Trim(h)));
  settings.version = kVersion;
  if (!v["dicom-tz"].empty()) {
    if (!ParseOffset(v["dicom-tz"], settings.dicom_offset_seconds)) {
      std::fprintf(stderr, "smart-imaging: invalid dicom-tz '%s' (use +HH:MM)\n",
                   v["dicom-tz"].c_str());
      return 2;
    }
  } else {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    settings.dicom_offset_seconds = local.tm_gmtoff;
  }

  si::facade::HttpServerOptions http;
  http.bind_address = v["bind"];
  http.port = static_cast<uint16_t>(port);
  http.reactor_threads = std::max(1, std::atoi(v["threads"].c_str()));
  http.redact_for_log = [](std::string_view p) { return si::facade::Facade::RedactForLog(p); };

  // The benchmark baseline (bench/run.js): the same HTTP stack serving one fixed file.
  std::optional<si::facade::BenchStatic> bench_static;
  if (!v["bench-static"].empty()) {
    auto loaded = si::facade::BenchStatic::Load(v["bench-static"]);
    if (!loaded.ok()) {
      std::fprintf(stderr, "smart-imaging: %s\n", loaded.status().message().c_str());
      return 1;
    }
    bench_static = std::move(loaded).value();
  }

  // The base URL needs the real port when port 0 was asked for, so the service is
  // built after the listener is bound; the handler reaches it through this pointer.
  si::dimse::DcmtkPixelService pixels;  // stateless; outlives the facade that uses it
  std::unique_ptr<si::ImagingService> service;
  std::unique_ptr<si::facade::Facade> facade;
  std::atomic<si::facade::Facade*> ready{nullptr};
  si::facade::HttpServer server(
      http, [&](si::facade::HttpRequest& req, si::facade::ResponseChannel& out) {
        if (bench_static && bench_static->Handle(req, out)) return;
        si::facade::Facade* f = ready.load();
        if (!f) {
          out.SendWhole(503, {{"Retry-After", "1"}, {"Content-Type", "application/json"}},
                        "{\"error\":\"starting\"}")
              .ok();
          return;
        }
        f->Handle(req, out);
      });
  si::Status bound = server.Start();
  if (!bound.ok()) {
    std::fprintf(stderr, "smart-imaging: cannot listen on %s:%ld: %s\n", http.bind_address.c_str(),
                 port, bound.message().c_str());
    return 1;
  }
  // The address we listen on, not "localhost": clients that resolve localhost to ::1
  // first (node 18 on Debian, say) would reach nothing.
  if (settings.base_url.empty()) {
    std::string host = http.bind_address;
    if (host == "0.0.0.0" || host == "::" || host.empty()) host = "127.0.0.1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    settings.base_url = "http://" + host + ":" + std::to_string(server.port());
  }
  while (!settings.base_url.empty() && settings.base_url.back() == '/')
    settings.base_url.pop_back();
  service = std::make_unique<si::ImagingService>(settings, codec, factory);
  {
    // meta.lastUpdated for PACS and DICOMweb studies (first seen, counts changed).
    auto change_log =
        si::SqliteStudyChangeLog::Open(cache_dir / "index" / "study-changes.sqlite", clock);
    if (!change_log.ok()) {
      std::fprintf(stderr, "smart-imaging: %s\n", change_log.status().message().c_str());
      return 1;
    }
    service->SetChangeLog(std::move(change_log).value());
  }
  for (auto& t : *tenants) {
    std::string name = t.name, type = t.images_type, auth = t.authorization_type;
    service->AddTenant(std::move(t));
    si::log::Info("main", "tenant " + name + ": " + auth + " authorization, " + type + " images");
  }
  std::unique_ptr<si::dimse::StorageScp> scp;
  if (!dimse_by_ae.empty()) {
    scp = std::make_unique<si::dimse::StorageScp>(
        static_cast<uint16_t>(dimse_port), [&](const std::string& called) -> si::StoreTarget* {
          std::string ae = si::text::Trim(called);
          auto it = dimse_by_ae.find(ae);
          return it == dimse_by_ae.end() ? nullptr : it->second.get();
        });
    si::Status listening = scp->Start();
    if (!listening.ok()) {
      std::fprintf(stderr, "smart-imaging: %s\n", listening.message().c_str());
      return 1;
    }
  }
  facade = std::make_unique<si::facade::Facade>(*service, &bulk_reader, &pixels);
  ready = facade.get();
  double startup_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "smart-imaging %s listening on http://%s:%u (base URL %s, %zu tenants, ready in %.0f ms)\n",
      kVersion, http.bind_address.c_str(), server.port(), settings.base_url.c_str(),
      tenants->size(), startup_ms);
  std::fflush(stdout);

  signal(SIGINT, [](int) { g_stop = true; });
  signal(SIGTERM, [](int) { g_stop = true; });
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  si::log::Info("main", "shutting down");
  server.Shutdown();
  ready = nullptr;
  if (scp) scp->Stop();
  return 0;
}

int Samples(const std::map<std::string, std::string>& flags) {
  if (flags.count("help") || !flags.count("out")) {
    std::printf(
        "usage: smart-imaging samples --out DIR [--seed N] [--scale X] [--profile demo|bench]\n");
    return flags.count("help") ? 0 : 2;
  }
  si::Status dcmtk = si::dimse::InitializeDcmtk();
  if (!dcmtk.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", dcmtk.message().c_str());
    return 1;
  }
  if (flags.count("pixel-variants")) {
    // Hidden test option: one study of the same pixels in many encodings.
    auto written = si::dimse::GeneratePixelSamples(flags.at("out"), flags.at("pixel-variants"));
    if (!written.ok()) {
      std::fprintf(stderr, "smart-imaging: %s\n", written.status().message().c_str());
      return 1;
    }
    for (auto& s : *written)
      std::printf("%s %s %s\n", s.name.c_str(), s.transfer_syntax.c_str(), s.path.c_str());
    return 0;
  }
  si::dimse::SampleOptions options;
  if (flags.count("seed"))
    options.seed = static_cast<uint32_t>(std::strtoul(flags.at("seed").c_str(), nullptr, 10));
  if (flags.count("scale")) options.scale = std::strtod(flags.at("scale").c_str(), nullptr);
  if (flags.count("profile")) {
    const std::string& profile = flags.at("profile");
    if (profile == "bench") {
      options.profile = si::dimse::SampleProfile::kBench;
    } else if (profile != "demo") {
      std::fprintf(stderr, "smart-imaging: unknown sample profile '%s' (demo or bench)\n",
                   profile.c_str());
      return 2;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  auto studies = si::dimse::GenerateSamples(flags.at("out"), options);
  if (!studies.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", studies.status().message().c_str());
    return 1;
  }
  int instances = 0;
  for (auto& s : *studies) instances += s.instance_count;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %zu studies, %d instances to %s in %.1f s\n", studies->size(), instances,
              flags.at("out").c_str(), secs);
  for (auto& s : *studies)
    std::printf("  %-38s %-3s %d series, %3d instances  study %s\n", s.patient_id.c_str(),
                s.modality.c_str(), s.series_count, s.instance_count, s.study_uid.c_str());
  return 0;
}

int EncodeDyn(const std::map<std::string, std::string>& flags) {
  auto it = flags.find("_positional");
  if (it == flags.end() || it->second.empty()) {
    std::fprintf(stderr, "usage: smart-imaging encode-dyn FILE\n");
    return 2;
  }
  std::ifstream in(it->second, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "smart-imaging: cannot read %s\n", it->second.c_str());
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto tenant = si::ParseTenant("dyn", ss.str(), it->second, std::filesystem::current_path());
  if (!tenant.ok()) {
    std::fprintf(stderr, "smart-imaging: %s\n", tenant.status().message().c_str());
    return 1;
  }
  std::printf("/dyn/%s\n", si::Base64UrlEncode(ss.str()).c_str());
  return 0;
}

int CheckConfig(const std::map<std::string, std::string>& flags) {
  std::string dir = flags.count("config-dir")
                        ? flags.at("config-dir")
                        : (std::getenv("CONFIG_DIR") ? std::getenv("CONFIG_DIR") : "./config");
  auto tenants = si::LoadTenantDirectory(dir, dir);
  if (!tenants.ok()) {
    std::fprintf(stderr, "smart-imaging: invalid configuration: %s\n",
                 tenants.status().message().c_str());
    return 1;
  }
  for (auto& t : *tenants)
    std::printf("%-32s %-40s %s\n", t.name.c_str(), t.authorization_type.c_str(),
                t.images_type.c_str());
  std::printf("%zu tenants valid\n", tenants->size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp();
    return 2;
  }
  std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    PrintHelp();
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::printf("smart-imaging %s\n", kVersion);
    return 0;
  }
  std::string error;
  auto flags = ParseFlags(argc, argv, 2, error);
  if (!error.empty()) {
    std::fprintf(stderr, "smart-imaging: %s\n", error.c_str());
    return 2;
  }
  if (command == "serve") return Serve(flags);
  if (command == "samples") return Samples(flags);
  if (command == "encode-dyn") return EncodeDyn(flags);
  if (command == "check-config") return CheckConfig(flags);
  if (command == "fhirpath")
    return si::FhirPathCommand(flags.count("_positional") ? flags.at("_positional") : "",
                               flags.count("batch") ? flags.at("batch") : "",
                               flags.count("file") ? flags.at("file") : "");
  std::fprintf(stderr, "smart-imaging: unknown command '%s'\n", command.c_str());
  PrintHelp();
  return 2;
}
