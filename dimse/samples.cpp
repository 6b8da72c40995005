// Deterministic sample studies built from code with DCMTK.
//
// Nothing here reads a clock, the environment or an OS random source: every UID, accession
// number, lesion position and noise sample is derived from options.seed by hashing a key that
// names the object ("sop:1:0:2:7"). The same seed and scale therefore give byte-identical Part 10
// files, which lets demos, docs and tests refer to fixed data, and keeps objects independent of
// generation order.
//
// The images are slices (or, for CR, projections) through analytic phantoms made of ellipsoids in
// patient (LPS) coordinates: a 3D Shepp-Logan-style head and a simple torso. Each series samples
// the same phantom along its own orientation, so CT, MR and CR of one patient show consistent
// anatomy and the DICOM geometry (ImagePositionPatient etc.) is true to the pixels.
#include "dimse/samples.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string_view>
#include <system_error>
#include <utility>

// clang-format off
#include <dcmtk/config/osconfig.h>  // must precede every other DCMTK header
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
// clang-format on

namespace si::dimse {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness.

// splitmix64's finaliser: a cheap, well-mixed bijection on 64 bits.
uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A keyed hash: lane selects independent 64-bit outputs for the same key (two lanes make a UUID).
uint64_t HashKey(uint32_t seed, uint64_t lane, std::string_view key) {
  uint64_t h = Mix64((uint64_t{seed} << 8) ^ Mix64(lane));
  for (unsigned char c : key) h = Mix64(h ^ c);
  return Mix64(h ^ key.size());
}

// splitmix64 generator; small, fast and good enough for phantom jitter and image noise.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms from one draw. Noise
  // needs one draw per pixel, and its exact tail shape does not matter.
  float Gaussian() {
    const uint64_t r = Next();
    const uint32_t sum = static_cast<uint32_t>(r & 0xFFFF) +
                         static_cast<uint32_t>((r >> 16) & 0xFFFF) +
                         static_cast<uint32_t>((r >> 32) & 0xFFFF) + static_cast<uint32_t>(r >> 48);
    constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3): the sum's variance is 4/12
    return static_cast<float>(sum) * kScale - 2.0f * 1.7320508f;
  }

 private:
  uint64_t state_;
};

// "2.25." followed by the decimal form of a version-8 (custom) UUID built from the key's hash:
// standard-conformant, at most 44 characters, and never dcmGenerateUniqueIdentifier (random).
std::string UidFor(uint32_t seed, std::string_view key) {
  uint64_t hi = HashKey(seed, 1, key);
  uint64_t lo = HashKey(seed, 2, key);
  hi = (hi & ~0xF000ULL) | 0x8000ULL;                         // version 8
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  unsigned __int128 value = (static_cast<unsigned __int128>(hi) << 64) | lo;
  char digits[40];
  int n = 0;
  while (value != 0) {
    digits[n++] = static_cast<char>('0' + static_cast<int>(value % 10));
    value /= 10;
  }
  std::string uid = "2.25.";
  while (n > 0) uid.push_back(digits[--n]);
  return uid;
}

// ---------------------------------------------------------------------------------------------
// Small formatting helpers (DICOM string VRs).

std::string Format(const char* fmt, auto... args) {
  char buf[96];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

// DS: fixed point, trailing zeros trimmed, at most 16 characters for our value ranges.
std::string Ds(double v) {
  if (std::fabs(v) < 5e-5) v = 0.0;  // never write "-0"
  std::string s = Format("%.4f", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string Ds3(double a, double b, double c) { return Ds(a) + '\\' + Ds(b) + '\\' + Ds(c); }

// HHMMSS plus an offset in seconds (sample series never cross midnight).
std::string AddSeconds(std::string_view hhmmss, int seconds) {
  const int h = (hhmmss[0] - '0') * 10 + (hhmmss[1] - '0');
  const int m = (hhmmss[2] - '0') * 10 + (hhmmss[3] - '0');
  const int s = (hhmmss[4] - '0') * 10 + (hhmmss[5] - '0');
  const int total = std::min(h * 3600 + m * 60 + s + seconds, 86399);
  return Format("%02d%02d%02d", total / 3600, total / 60 % 60, total % 60);
}

// Patient's Age (AS) at the study date, both YYYYMMDD.
std::string AgeAt(std::string_view birth, std::string_view date) {
  const int by = std::stoi(std::string(birth.substr(0, 4)));
  const int dy = std::stoi(std::string(date.substr(0, 4)));
  const bool before_birthday = date.substr(4) < birth.substr(4);
  return Format("%03dY", dy - by - (before_birthday ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Geometry and phantoms, in millimetres, DICOM patient coordinates (x to the patient's left,
// y to posterior, z to head).

struct Vec3 {
  double x = 0, y = 0, z = 0;
};
Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec3 operator*(Vec3 a, double s) { return {a.x * s, a.y * s, a.z * s}; }
double Dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Vec3 Cross(Vec3 a, Vec3 b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

enum Tissue : uint8_t {
  kAir,
  kLung,
  kFat,
  kSoftTissue,
  kMuscle,
  kBone,
  kBlood,
  kBrainWhite,
  kBrainGray,
  kCsf,
  kLesion,
  kLiver,
  kKidney,
  kSpleen,
  kTissueCount,
};

// An ellipsoid rotated by angle_deg about the z axis. Phantoms paint them in order: a voxel takes
// the tissue of the last ellipsoid containing it, so organs can be placed inside the body.
struct Ellipsoid {
  Vec3 center;
  Vec3 semi_axes;
  double angle_deg;
  Tissue tissue;
};

// The ellipsoid as the linear map M = diag(1/a, 1/b, 1/c) * R^T: p is inside iff |M (p - c)| <= 1.
struct PreparedEllipsoid {
  Vec3 center;
  Vec3 m_rows[3];
  Tissue tissue;
};

std::vector<PreparedEllipsoid> Prepare(const std::vector<Ellipsoid>& ellipsoids) {
  std::vector<PreparedEllipsoid> out;
  out.reserve(ellipsoids.size());
  for (const Ellipsoid& e : ellipsoids) {
    const double rad = e.angle_deg * 3.14159265358979323846 / 180.0;
    const double c = std::cos(rad), s = std::sin(rad);
    out.push_back({e.center,
                   {Vec3{c, s, 0} * (1.0 / e.semi_axes.x), Vec3{-s, c, 0} * (1.0 / e.semi_axes.y),
                    Vec3{0, 0, 1.0 / e.semi_axes.z}},
                   e.tissue});
  }
  return out;
}

Vec3 Apply(const PreparedEllipsoid& e, Vec3 v) {
  return {Dot(e.m_rows[0], v), Dot(e.m_rows[1], v), Dot(e.m_rows[2], v)};
}

// The 3D Shepp-Logan head (Kak & Slaney, as in the common "modified" phantom3d table), scaled to
// an adult head, with a scalp, a grey/white split and one seed-dependent lesion added so that
// patients differ. Shepp-Logan's y axis points to the top of the image, i.e. anterior: flip it.
std::vector<Ellipsoid> HeadPhantom(SplitMix64& rng) {
  constexpr double s = 100.0;  // mm per phantom unit
  auto sl = [](double x0, double y0, double z0, double a, double b, double c, double phi,
               Tissue t) {
    return Ellipsoid{{x0 * s, -y0 * s, z0 * s}, {a * s, b * s, c * s}, -phi, t};
  };
  // Aligned by hand: a table reads better than one field per line.
  // clang-format off
  std::vector<Ellipsoid> e = {
      sl(0, 0, 0, 0.725, 0.955, 0.845, 0, kFat),                 // scalp
      sl(0, 0, 0, 0.69, 0.92, 0.81, 0, kBone),                   // skull
      sl(0, -0.0184, 0, 0.64, 0.86, 0.76, 0, kBrainGray),        // cortex (thicker skull)
      sl(0, -0.0184, 0, 0.58, 0.79, 0.69, 0, kBrainWhite),       // white matter
      sl(0.22, 0, 0, 0.11, 0.31, 0.22, -18, kCsf),               // ventricle, patient's left
      sl(-0.22, 0, 0, 0.16, 0.41, 0.28, 18, kCsf),               // ventricle, patient's right
      sl(0, 0.35, -0.15, 0.21, 0.25, 0.41, 0, kBrainGray),       // deep grey matter
      sl(0, 0.1, 0.25, 0.046, 0.046, 0.05, 0, kLesion),
      sl(0, -0.1, 0.25, 0.046, 0.046, 0.05, 0, kLesion),
      sl(-0.08, -0.605, 0, 0.046, 0.023, 0.05, 0, kLesion),
      sl(0, -0.605, 0, 0.023, 0.023, 0.02, 0, kLesion),
      sl(0.06, -0.605, 0, 0.023, 0.046, 0.02, 0, kLesion),
  };
  // clang-format on
  // A lesion in the white matter of one hemisphere, where the seed puts it.
  const double side = rng.Uniform() < 0.5 ? -1.0 : 1.0;
  const double r = rng.Uniform(6, 12);
  e.push_back({{side * rng.Uniform(35, 45), rng.Uniform(-40, 20), rng.Uniform(-15, 25)},
               {r, r * rng.Uniform(0.8, 1.2), r},
               rng.Uniform(0, 180),
               kLesion});
  return e;
}

// A torso: fat and muscle walls, lungs, heart with blood pool, aorta, spine, sternum,
// clavicles, liver, spleen, kidneys and one seed-dependent lung nodule.
std::vector<Ellipsoid> TorsoPhantom(SplitMix64& rng) {
  // Aligned by hand: a table reads better than one field per line.
  // clang-format off
  std::vector<Ellipsoid> e = {
      // Long z semi-axes make the trunk nearly cylindrical over the imaged range.
      {{0, 0, -150}, {170, 120, 900}, 0, kFat},            // body outline, subcutaneous fat
      {{0, 0, -150}, {160, 110, 895}, 0, kMuscle},         // body wall
      {{0, 5, -150}, {148, 98, 890}, 0, kSoftTissue},      // body cavity
      {{-55, 10, -100}, {100, 85, 85}, 10, kLiver},
      {{85, 40, -90}, {35, 40, 55}, -20, kSpleen},
      {{-70, 55, -170}, {28, 25, 55}, 15, kKidney},
      {{70, 55, -170}, {28, 25, 55}, -15, kKidney},
      {{-72, 5, 60}, {55, 80, 120}, 0, kLung},              // right lung
      {{72, 5, 60}, {52, 80, 120}, 0, kLung},               // left lung
      {{20, -20, 30}, {55, 45, 55}, 25, kMuscle},           // myocardium
      {{20, -20, 30}, {35, 28, 38}, 25, kBlood},            // cardiac blood pool
      {{22, 40, -20}, {12, 12, 200}, 0, kBlood},            // descending aorta
      {{0, 65, -150}, {20, 17, 800}, 0, kBone},             // vertebral bodies
      {{0, 88, -150}, {22, 10, 790}, 0, kBone},             // posterior elements
      {{0, 84, -150}, {7, 7, 795}, 0, kCsf},                // spinal canal
      {{0, -100, 60}, {14, 6, 90}, 0, kBone},               // sternum
      {{-55, -40, 185}, {60, 8, 8}, 20, kBone},             // right clavicle
      {{55, -40, 185}, {60, 8, 8}, -20, kBone},             // left clavicle
  };
  // clang-format on
  const double r = rng.Uniform(5, 10);
  e.push_back({{rng.Uniform(-90, -55), rng.Uniform(-25, 20), rng.Uniform(20, 80)},
               {r, r, r * rng.Uniform(0.8, 1.2)},
               0,
               kSoftTissue});
  return e;
}

// A sampled image plane: pixel (row i, column j) has its centre at
// origin + row_dir * (j * spacing) + col_dir * (i * spacing) (DICOM's ImageOrientationPatient
// order: the first vector runs along a row).
struct Plane {
  Vec3 origin;
  Vec3 row_dir;
  Vec3 col_dir;
  double spacing;
  int rows;
  int cols;
};

Plane CenteredPlane(Vec3 center, Vec3 row_dir, Vec3 col_dir, double spacing, int rows, int cols) {
  const Vec3 origin =
      center - row_dir * (0.5 * (cols - 1) * spacing) - col_dir * (0.5 * (rows - 1) * spacing);
  return {origin, row_dir, col_dir, spacing, rows, cols};
}

// Writes the tissue of every pixel into labels (rows * cols). Per row and ellipsoid it solves one
// quadratic for the span of columns inside, so the cost is rows * ellipsoids plus the filled
// pixels, not pixels * ellipsoids.
void Rasterize(const std::vector<PreparedEllipsoid>& phantom, const Plane& plane,
               std::vector<uint8_t>& labels) {
  labels.assign(static_cast<size_t>(plane.rows) * plane.cols, kAir);
  for (const PreparedEllipsoid& e : phantom) {
    const Vec3 w = Apply(e, plane.row_dir * plane.spacing);  // step per column, ellipsoid frame
    const double a = Dot(w, w);
    for (int i = 0; i < plane.rows; ++i) {
      const Vec3 v0 = Apply(e, plane.origin + plane.col_dir * (i * plane.spacing) - e.center);
      const double b = 2.0 * Dot(v0, w);
      const double c = Dot(v0, v0) - 1.0;
      const double disc = b * b - 4.0 * a * c;
      if (disc < 0) continue;
      const double root = std::sqrt(disc);
      const double t1 = (-b - root) / (2.0 * a);
      const double t2 = (-b + root) / (2.0 * a);
      const int j0 = std::max(0, static_cast<int>(std::ceil(t1)));
      const int j1 = std::min(plane.cols - 1, static_cast<int>(std::floor(t2)));
      if (j0 > j1) continue;
      uint8_t* row = labels.data() + static_cast<size_t>(i) * plane.cols;
      std::fill(row + j0, row + j1 + 1, static_cast<uint8_t>(e.tissue));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Contrast: what each tissue looks like in each kind of image.

enum class Weighting { kCt, kCtContrast, kMrT1, kMrT1Post, kMrT2, kMrFlair, kXray };

// Aligned by hand: a table reads better than one field per line.
// clang-format off
// Hounsfield units, without and with (portal venous) iodine contrast.
constexpr std::array<float, kTissueCount> kHu = {-1000, -850, -100, 40, 50, 1100, 45,
                                                 27,    38,   6,    42, 60, 32,  48};
constexpr std::array<float, kTissueCount> kHuContrast = {-1000, -850, -100, 45,  55,  1100, 200,
                                                         28,    40,   6,    95,  115, 170, 120};
// MR signal on a 12-bit scale (spin echo T1, T1 after gadolinium, T2, FLAIR).
constexpr std::array<float, kTissueCount> kMrT1 = {0,    40,  1800, 800, 650, 120, 250,
                                                   1250, 950, 300,  850, 950, 750, 800};
constexpr std::array<float, kTissueCount> kMrT1Post = {0,    40,  1800, 850, 700,  120,  1200,
                                                       1250, 980, 300,  1850, 1100, 1500, 1100};
constexpr std::array<float, kTissueCount> kMrT2 = {0,   30,  1300, 700,  450, 100, 150,
                                                   650, 950, 2400, 1600, 450, 1100, 900};
constexpr std::array<float, kTissueCount> kMrFlair = {0,   30,   900, 600,  450, 100, 150,
                                                      800, 1050, 180, 1700, 450, 800, 700};
// clang-format on

const std::array<float, kTissueCount>& ValuesFor(Weighting w) {
  switch (w) {
    case Weighting::kCtContrast:
      return kHuContrast;
    case Weighting::kMrT1:
      return kMrT1;
    case Weighting::kMrT1Post:
      return kMrT1Post;
    case Weighting::kMrT2:
      return kMrT2;
    case Weighting::kMrFlair:
      return kMrFlair;
    case Weighting::kCt:
    case Weighting::kXray:
      break;
  }
  return kHu;
}

// Separable [1 2 1]/4 blur with clamped edges: softens the phantom's hard edges and correlates the
// noise, as a soft-tissue reconstruction kernel would.
void Blur121(std::vector<float>& img, int rows, int cols) {
  std::vector<float> tmp(img.size());
  for (int i = 0; i < rows; ++i) {
    const float* in = img.data() + static_cast<size_t>(i) * cols;
    float* out = tmp.data() + static_cast<size_t>(i) * cols;
    for (int j = 0; j < cols; ++j) {
      const float l = in[std::max(j - 1, 0)], r = in[std::min(j + 1, cols - 1)];
      out[j] = 0.25f * l + 0.5f * in[j] + 0.25f * r;
    }
  }
  for (int i = 0; i < rows; ++i) {
    const float* up = tmp.data() + static_cast<size_t>(std::max(i - 1, 0)) * cols;
    const float* mid = tmp.data() + static_cast<size_t>(i) * cols;
    const float* down = tmp.data() + static_cast<size_t>(std::min(i + 1, rows - 1)) * cols;
    float* out = img.data() + static_cast<size_t>(i) * cols;
    for (int j = 0; j < cols; ++j) out[j] = 0.25f * up[j] + 0.5f * mid[j] + 0.25f * down[j];
  }
}

// ---------------------------------------------------------------------------------------------
// The sample set.

enum class Orientation { kAxial, kSagittal, kCoronal, kProjectionPa, kProjectionLat };
enum class Phantom { kHead, kTorso };

struct SeriesSpec {
  const char* description;
  int instances;  // at scale 1
  Orientation orientation;
  Weighting weighting;
  Vec3 center;  // centre of the slab (or of the detector field for projections)
  double slice_thickness;
  double pixel_spacing;
  int matrix;  // rows = columns
  double window_center;
  double window_width;
  float noise_sigma;  // in output units (HU, MR signal, 8-bit grey)
  bool smooth;
  const char* kernel;  // CT convolution kernel; empty for MR and CR
};

struct StudySpec {
  const char* modality;
  const char* description;
  const char* body_part;
  const char* date;
  const char* time;
  const char* referring_physician;
  Phantom phantom;
  std::vector<SeriesSpec> series;
};

struct PatientSpec {
  const char* id;
  const char* name;  // UTF-8
  const char* birth_date;
  const char* sex;
  std::vector<StudySpec> studies;
};

constexpr Vec3 kXAxis{1, 0, 0};
constexpr Vec3 kYAxis{0, 1, 0};
constexpr Vec3 kFeet{0, 0, -1};

SeriesSpec CtAxial(const char* description, int n, Vec3 center, double spacing, double wc,
                   double ww, float noise, bool smooth, const char* kernel,
                   Weighting w = Weighting::kCt) {
  return {description, n,     Orientation::kAxial, w, center, 5.0, spacing, 256, wc, ww, noise,
          smooth,      kernel};
}

SeriesSpec Mr(const char* description, int n, Orientation o, Weighting w, Vec3 center,
              double thickness, double spacing) {
  double wc = 1000, ww = 2000;
  if (w == Weighting::kMrT2) wc = 1200, ww = 2400;
  if (w == Weighting::kMrFlair) wc = 900, ww = 1800;
  return {description, n, o, w, center, thickness, spacing, 256, wc, ww, 18.0f, false, ""};
}

SeriesSpec WithWindow(SeriesSpec s, double center, double width) {
  s.window_center = center;
  s.window_width = width;
  return s;
}

SeriesSpec Cr(const char* description, Orientation o) {
  return {description, 1, o, Weighting::kXray, {0, 0, 40}, 0, 1.6, 256, 128, 256, 2.0f, true, ""};
}

// Aligned by hand: a table reads better than one field per line.
// clang-format off
StudySpec CtChest(const char* date, const char* time, const char* referring) {
  return {"CT", "CT CHEST W/O CONTRAST", "CHEST", date, time, referring, Phantom::kTorso,
          {CtAxial("AX 5mm SOFT TISSUE", 24, {0, 0, 30}, 1.4, 40, 400, 12, true, "STANDARD"),
           CtAxial("AX 5mm LUNG", 24, {0, 0, 30}, 1.4, -600, 1500, 30, false, "LUNG")}};
}

StudySpec MrBrain(const char* description, const char* date, const char* time,
                  const char* referring, std::vector<SeriesSpec> series) {
  return {"MR", description, "BRAIN", date, time, referring, Phantom::kHead, std::move(series)};
}

SeriesSpec T1Sag() {
  return Mr("T1 SAG", 16, Orientation::kSagittal, Weighting::kMrT1, {0, 0, 0}, 5, 0.9375);
}
SeriesSpec T2Ax() {
  return Mr("T2 AX", 16, Orientation::kAxial, Weighting::kMrT2, {0, 0, 0}, 5, 0.9375);
}
SeriesSpec FlairAx() {
  return Mr("FLAIR AX", 16, Orientation::kAxial, Weighting::kMrFlair, {0, 0, 0}, 5, 0.9375);
}
SeriesSpec T1AxPost() {
  return Mr("T1 AX POST", 16, Orientation::kAxial, Weighting::kMrT1Post, {0, 0, 0}, 5, 0.9375);
}

const std::vector<PatientSpec>& SampleSet() {
  static const auto* const kSet = new std::vector<PatientSpec>{
      {"293ee354-f8ad-4345-b10c-759fdfdcc082", "Kshlerin^Danae", "19810214", "F",
       {CtChest("20190314", "083012", "Smith^John^^Dr"),
        MrBrain("MR BRAIN W/WO CONTRAST", "20210602", "141530", "Smith^John^^Dr",
                {T1Sag(), T2Ax(), T1AxPost()}),
        {"CR", "XR CHEST PA AND LATERAL", "CHEST", "20231120", "101005", "Nguyen^Linh^^Dr",
         Phantom::kTorso,
         {Cr("PA", Orientation::kProjectionPa), Cr("LAT", Orientation::kProjectionLat)}}}},
      {"MRN-10001", "Rivera^Ana^M", "19650923", "F",
       {{"CT", "CT ABDOMEN PELVIS W CONTRAST", "ABDOMEN", "20200108", "160245", "Smith^John^^Dr",
         Phantom::kTorso,
         {CtAxial("AX 5mm PORTAL VENOUS", 24, {0, 0, -150}, 1.4, 50, 350, 12, true, "STANDARD",
                  Weighting::kCtContrast),
          {"COR 5mm", 16, Orientation::kCoronal, Weighting::kCtContrast, {0, 40, -150}, 5.0, 1.4,
           256, 50, 350, 12, true, "STANDARD"}}},
        MrBrain("MR BRAIN W/O CONTRAST", "20220915", "074500", "Smith^John^^Dr",
                {T1Sag(), T2Ax(), FlairAx()})}},
      {"MRN-10002", "Okafor^Chidi", "19900117", "M",
       {{"CT", "CT HEAD W/O CONTRAST", "HEAD", "20240229", "231700", "Nguyen^Linh^^Dr",
         Phantom::kHead,
         {CtAxial("AX 5mm BRAIN", 20, {0, 0, 0}, 0.9, 40, 80, 4, true, "STANDARD"),
          CtAxial("AX 5mm BONE", 20, {0, 0, 0}, 0.9, 600, 2800, 40, false, "BONE")}},
        {"MR", "MR ABDOMEN W/O CONTRAST", "ABDOMEN", "20240311", "110830", "Nguyen^Linh^^Dr",
         Phantom::kTorso,
         // The abdomen has no bright CSF: a narrower T2 window than the brain's.
         {WithWindow(Mr("T2 HASTE AX", 16, Orientation::kAxial, Weighting::kMrT2, {0, 0, -130}, 6,
                        1.5),
                     800, 1600),
          Mr("T1 COR", 16, Orientation::kCoronal, Weighting::kMrT1, {0, 40, -130}, 6, 1.5)}}}},
      {"MRN-10003", "M\xC3\xBCller^J\xC3\xBCrgen", "19521105", "M",
       {CtChest("20230718", "103045", "Nguyen^Linh^^Dr"),
        MrBrain("MR BRAIN W/O CONTRAST", "20200422", "153010", "Nguyen^Linh^^Dr",
                {T2Ax(), FlairAx()})}},
  };
  return *kSet;
}

// 512x512 16-bit axial CT, as a modern scanner writes it (~0.5 MB per instance).
SeriesSpec CtAxial512(const char* description, int n, double thickness, Vec3 center, double wc,
                      double ww, float noise, bool smooth, const char* kernel) {
  return {description, n,  Orientation::kAxial, Weighting::kCt, center, thickness, 0.7, 512, wc, ww,
          noise,       smooth, kernel};
}

// The benchmark patient (bench/run.js): five studies, so a search has five to find; the "CT"
// study of the issue (3 x 200 at 512x512) and a ~1 GB one (4 x 500 at 512x512) for peak RSS.
const PatientSpec& BenchPatient() {
  static const auto* const kPatient = new PatientSpec{
      "BENCH-0001", "Bench^Patient", "19700101", "O",
      {{"CT", "CT CHEST ABDOMEN PELVIS", "CHEST", "20250110", "090000", "Smith^John^^Dr",
        Phantom::kTorso,
        {CtAxial512("AX 1.25mm SOFT", 200, 1.25, {0, 0, -60}, 40, 400, 12, true, "STANDARD"),
         CtAxial512("AX 1.25mm LUNG", 200, 1.25, {0, 0, -60}, -600, 1500, 30, false, "LUNG"),
         CtAxial512("AX 1.25mm BONE", 200, 1.25, {0, 0, -60}, 600, 2800, 40, false, "BONE")}},
       {"CT", "CT WHOLE BODY THIN", "WHOLEBODY", "20250215", "101500", "Smith^John^^Dr",
        Phantom::kTorso,
        {CtAxial512("AX 0.625mm SOFT", 500, 0.625, {0, 0, -60}, 40, 400, 12, true, "STANDARD"),
         CtAxial512("AX 0.625mm LUNG", 500, 0.625, {0, 0, -60}, -600, 1500, 30, false, "LUNG"),
         CtAxial512("AX 0.625mm BONE", 500, 0.625, {0, 0, -60}, 600, 2800, 40, false, "BONE"),
         CtAxial512("AX 0.625mm SHARP", 500, 0.625, {0, 0, -60}, 40, 400, 40, false, "SHARP")}},
       CtChest("20240305", "080000", "Nguyen^Linh^^Dr"),
       MrBrain("MR BRAIN W/O CONTRAST", "20230412", "113000", "Nguyen^Linh^^Dr",
               {T2Ax(), FlairAx()}),
       {"CR", "XR CHEST PA AND LATERAL", "CHEST", "20220901", "141500", "Nguyen^Linh^^Dr",
        Phantom::kTorso,
        {Cr("PA", Orientation::kProjectionPa), Cr("LAT", Orientation::kProjectionLat)}}}};
  return *kPatient;
}
// clang-format on

const char* SopClassFor(std::string_view modality) {
  if (modality == "CT") return UID_CTImageStorage;
  if (modality == "MR") return UID_MRImageStorage;
  return UID_ComputedRadiographyImageStorage;
}

// ---------------------------------------------------------------------------------------------
// Pixels.

struct SliceGeometry {
  Plane plane;
  Vec3 normal;
  double slice_location;
};

// Slices keep the scale-1 slab: fewer instances at small scales are spread over the same anatomy
// (the spacing grows beyond the thickness), so scaled-down sets still show the whole organ.
SliceGeometry SliceAt(const SeriesSpec& s, int index, int count) {
  Vec3 row_dir = kXAxis, col_dir = kYAxis;
  if (s.orientation == Orientation::kSagittal) row_dir = kYAxis, col_dir = kFeet;
  if (s.orientation == Orientation::kCoronal) row_dir = kXAxis, col_dir = kFeet;
  const Vec3 normal = Cross(row_dir, col_dir);
  const double slab = s.slice_thickness * s.instances;
  const double step = slab / count;
  // First instance at the positive end of the normal: head first for axial, as scanners do.
  const double offset = (0.5 * (count - 1) - index) * step;
  const Vec3 center = s.center + normal * offset;
  return {CenteredPlane(center, row_dir, col_dir, s.pixel_spacing, s.matrix, s.matrix), normal,
          Dot(center, normal)};
}

// CT/MR slice: tissue values, noise, optional blur, then the stored representation.
std::vector<uint16_t> RenderSlice(const std::vector<PreparedEllipsoid>& phantom,
                                  const SeriesSpec& s, const Plane& plane, SplitMix64& rng) {
  std::vector<uint8_t> labels;
  Rasterize(phantom, plane, labels);
  const auto& values = ValuesFor(s.weighting);
  const bool ct = s.weighting == Weighting::kCt || s.weighting == Weighting::kCtContrast;
  std::vector<float> img(labels.size());
  const float half = 0.5f * static_cast<float>(plane.cols - 1);
  for (int i = 0; i < plane.rows; ++i) {
    // MR: receive-coil shading, brightest in the middle, so the images are not flat cartoons.
    const float dy = (static_cast<float>(i) - half) / half;
    for (int j = 0; j < plane.cols; ++j) {
      const size_t k = static_cast<size_t>(i) * plane.cols + j;
      float v = values[labels[k]];
      if (!ct) {
        const float dx = (static_cast<float>(j) - half) / half;
        v *= 1.0f - 0.12f * (dx * dx + dy * dy);
      }
      img[k] = v + s.noise_sigma * rng.Gaussian();
    }
  }
  if (s.smooth) Blur121(img, plane.rows, plane.cols);
  std::vector<uint16_t> out(img.size());
  for (size_t k = 0; k < img.size(); ++k) {
    if (ct) {
      // Stored = HU + 1024 (RescaleIntercept -1024), written as signed 16-bit.
      const long hu = std::lround(std::clamp(img[k], -1024.0f, 3071.0f));
      out[k] = static_cast<uint16_t>(static_cast<int16_t>(hu + 1024));
    } else {
      // Magnitude images: noise folds at zero; 12 bits stored.
      out[k] = static_cast<uint16_t>(std::lround(std::min(std::fabs(img[k]), 4095.0f)));
    }
  }
  return out;
}

// CR: a radiograph as the line integral of attenuation through the torso, sampled on planes
// parallel to the detector. Bright where attenuation is high (MONOCHROME2, bone white).
std::vector<uint8_t> RenderProjection(const std::vector<PreparedEllipsoid>& phantom,
                                      const SeriesSpec& s, SplitMix64& rng) {
  const bool lateral = s.orientation == Orientation::kProjectionLat;
  const Vec3 row_dir = lateral ? kYAxis : kXAxis;  // PA: to patient's left; LAT: to posterior
  const Vec3 depth_dir = lateral ? kXAxis : kYAxis;
  constexpr double kDepthHalf = 180.0, kDepthStep = 2.0;
  constexpr float kMuWater = 0.02f;  // 1/mm, roughly 60 keV
  std::vector<float> line(static_cast<size_t>(s.matrix) * s.matrix, 0.0f);
  std::vector<uint8_t> labels;
  std::array<float, kTissueCount> mu{};
  for (int t = 0; t < kTissueCount; ++t) {
    mu[t] = std::max(0.0f, kMuWater * (1.0f + kHu[t] / 1000.0f)) * static_cast<float>(kDepthStep);
  }
  for (double d = -kDepthHalf; d <= kDepthHalf; d += kDepthStep) {
    const Plane plane = CenteredPlane(s.center + depth_dir * d, row_dir, kFeet, s.pixel_spacing,
                                      s.matrix, s.matrix);
    Rasterize(phantom, plane, labels);
    for (size_t k = 0; k < labels.size(); ++k) line[k] += mu[labels[k]];
  }
  const float max_line = std::max(1e-3f, *std::max_element(line.begin(), line.end()));
  std::vector<float> img(line.size());
  for (size_t k = 0; k < line.size(); ++k) {
    img[k] = 255.0f * std::pow(line[k] / max_line, 1.4f) + s.noise_sigma * rng.Gaussian();
  }
  if (s.smooth) Blur121(img, s.matrix, s.matrix);
  std::vector<uint8_t> out(img.size());
  for (size_t k = 0; k < img.size(); ++k) {
    out[k] = static_cast<uint8_t>(std::lround(std::clamp(img[k], 0.0f, 255.0f)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DICOM writing.

// Collects the first failed put so that building a dataset reads as a list of attributes.
class DatasetWriter {
 public:
  explicit DatasetWriter(DcmDataset* dataset) : dataset_(dataset) {}

  void Str(const DcmTagKey& tag, const std::string& value) {
    Check(dataset_->putAndInsertString(tag, value.c_str()), tag);
  }
  void U16(const DcmTagKey& tag, uint16_t value) {
    Check(dataset_->putAndInsertUint16(tag, value), tag);
  }
  void Pixels(const std::vector<uint16_t>& words) {
    Check(dataset_->putAndInsertUint16Array(DCM_PixelData, words.data(), words.size()),
          DCM_PixelData);
  }
  void Pixels(const std::vector<uint8_t>& bytes) {
    Check(dataset_->putAndInsertUint8Array(DCM_PixelData, bytes.data(), bytes.size()),
          DCM_PixelData);
  }
  Status status() const { return error_.empty() ? Status::Ok() : Internal(error_); }

 private:
  void Check(const OFCondition& cond, const DcmTagKey& tag) {
    if (cond.bad() && error_.empty()) {
      error_ =
          std::string("sample dataset: cannot set ") + tag.toString().c_str() + ": " + cond.text();
    }
  }

  DcmDataset* dataset_;
  std::string error_;
};

struct InstanceContext {
  const PatientSpec& patient;
  const StudySpec& study;
  const SeriesSpec& series;
  const std::string& study_uid;
  const std::string& series_uid;
  const std::string& frame_of_reference_uid;
  const std::string& accession;
  const std::string& study_id;
  int series_number;
  int instance_number;  // 1-based
  int instance_count;
};

void WriteCommonAttributes(const InstanceContext& c, const std::string& sop_uid, DatasetWriter& w) {
  const StudySpec& st = c.study;
  const SeriesSpec& se = c.series;
  // Series start a few minutes apart; instances a second apart, as on a real scanner.
  const std::string series_time = AddSeconds(st.time, 60 + 240 * (c.series_number - 1));
  const std::string content_time = AddSeconds(series_time, c.instance_number);

  w.Str(DCM_SpecificCharacterSet, "ISO_IR 192");
  w.Str(DCM_SOPClassUID, SopClassFor(st.modality));
  w.Str(DCM_SOPInstanceUID, sop_uid);
  w.Str(DCM_StudyDate, st.date);
  w.Str(DCM_SeriesDate, st.date);
  w.Str(DCM_AcquisitionDate, st.date);
  w.Str(DCM_ContentDate, st.date);
  w.Str(DCM_StudyTime, st.time);
  w.Str(DCM_SeriesTime, series_time);
  w.Str(DCM_AcquisitionTime, content_time);
  w.Str(DCM_ContentTime, content_time);
  w.Str(DCM_AccessionNumber, c.accession);
  w.Str(DCM_Modality, st.modality);
  w.Str(DCM_Manufacturer, "SMART-IMAGING");
  w.Str(DCM_InstitutionName, "Riverside General Hospital");
  w.Str(DCM_ReferringPhysicianName, st.referring_physician);
  w.Str(DCM_StationName, Format("%s01", st.modality));
  w.Str(DCM_StudyDescription, st.description);
  w.Str(DCM_SeriesDescription, se.description);
  w.Str(DCM_ManufacturerModelName, Format("Phantom %s", st.modality));
  w.Str(DCM_PatientName, c.patient.name);
  w.Str(DCM_PatientID, c.patient.id);
  w.Str(DCM_PatientBirthDate, c.patient.birth_date);
  w.Str(DCM_PatientSex, c.patient.sex);
  w.Str(DCM_PatientAge, AgeAt(c.patient.birth_date, st.date));
  w.Str(DCM_BodyPartExamined, st.body_part);
  w.Str(DCM_SoftwareVersions, "smart-imaging samples 1");
  w.Str(DCM_ProtocolName, Format("%s %s", st.description, se.description));
  w.Str(DCM_StudyInstanceUID, c.study_uid);
  w.Str(DCM_SeriesInstanceUID, c.series_uid);
  w.Str(DCM_StudyID, c.study_id);
  w.Str(DCM_SeriesNumber, std::to_string(c.series_number));
  w.Str(DCM_AcquisitionNumber, "1");
  w.Str(DCM_InstanceNumber, std::to_string(c.instance_number));
  w.Str(DCM_ImageComments, "Synthetic phantom image, not patient data");
  w.U16(DCM_SamplesPerPixel, 1);
  w.Str(DCM_PhotometricInterpretation, "MONOCHROME2");
  w.U16(DCM_Rows, static_cast<uint16_t>(se.matrix));
  w.U16(DCM_Columns, static_cast<uint16_t>(se.matrix));
  w.Str(DCM_PixelSpacing, Ds(se.pixel_spacing) + '\\' + Ds(se.pixel_spacing));
  w.Str(DCM_WindowCenter, Ds(se.window_center));
  w.Str(DCM_WindowWidth, Ds(se.window_width));
}

void WriteSliceAttributes(const InstanceContext& c, const SliceGeometry& g, DatasetWriter& w) {
  const Plane& p = g.plane;
  w.Str(DCM_PatientPosition, "HFS");
  w.Str(DCM_FrameOfReferenceUID, c.frame_of_reference_uid);
  w.Str(DCM_PositionReferenceIndicator, "");
  w.Str(DCM_ImagePositionPatient, Ds3(p.origin.x, p.origin.y, p.origin.z));
  w.Str(DCM_ImageOrientationPatient, Ds3(p.row_dir.x, p.row_dir.y, p.row_dir.z) + '\\' +
                                         Ds3(p.col_dir.x, p.col_dir.y, p.col_dir.z));
  w.Str(DCM_SliceThickness, Ds(c.series.slice_thickness));
  w.Str(DCM_SliceLocation, Ds(g.slice_location));
}

void WriteCtAttributes(const InstanceContext& c, DatasetWriter& w) {
  const bool axial = c.series.orientation == Orientation::kAxial;
  w.Str(DCM_ImageType, axial ? "ORIGINAL\\PRIMARY\\AXIAL" : "DERIVED\\SECONDARY\\REFORMATTED");
  w.Str(DCM_KVP, "120");
  w.Str(DCM_XRayTubeCurrent, "220");
  w.Str(DCM_ConvolutionKernel, c.series.kernel);
  if (c.series.weighting == Weighting::kCtContrast) w.Str(DCM_ContrastBolusAgent, "Iohexol");
  w.U16(DCM_BitsAllocated, 16);
  w.U16(DCM_BitsStored, 16);
  w.U16(DCM_HighBit, 15);
  w.U16(DCM_PixelRepresentation, 1);
  w.Str(DCM_RescaleIntercept, "-1024");
  w.Str(DCM_RescaleSlope, "1");
  w.Str(DCM_RescaleType, "HU");
}

void WriteMrAttributes(const InstanceContext& c, DatasetWriter& w) {
  const Weighting wt = c.series.weighting;
  const bool t1 = wt == Weighting::kMrT1 || wt == Weighting::kMrT1Post;
  const bool flair = wt == Weighting::kMrFlair;
  w.Str(DCM_ImageType, "ORIGINAL\\PRIMARY\\M\\ND");
  w.Str(DCM_ScanningSequence, flair ? "SE\\IR" : "SE");
  w.Str(DCM_SequenceVariant, t1 ? "NONE" : "SK");
  w.Str(DCM_ScanOptions, "");
  w.Str(DCM_MRAcquisitionType, "2D");
  w.Str(DCM_RepetitionTime, t1 ? "550" : (flair ? "9000" : "4000"));
  w.Str(DCM_EchoTime, t1 ? "12" : (flair ? "120" : "100"));
  if (flair) w.Str(DCM_InversionTime, "2500");
  w.Str(DCM_EchoTrainLength, t1 ? "1" : "16");
  w.Str(DCM_MagneticFieldStrength, c.study.phantom == Phantom::kHead ? "3" : "1.5");
  if (wt == Weighting::kMrT1Post) w.Str(DCM_ContrastBolusAgent, "Gadobutrol");
  w.U16(DCM_BitsAllocated, 16);
  w.U16(DCM_BitsStored, 12);
  w.U16(DCM_HighBit, 11);
  w.U16(DCM_PixelRepresentation, 0);
}

void WriteCrAttributes(const InstanceContext& c, DatasetWriter& w) {
  const bool lateral = c.series.orientation == Orientation::kProjectionLat;
  w.Str(DCM_ImageType, "ORIGINAL\\PRIMARY");
  w.Str(DCM_ViewPosition, lateral ? "LL" : "PA");
  w.Str(DCM_PatientOrientation, lateral ? "P\\F" : "L\\F");
  w.Str(DCM_KVP, lateral ? "110" : "120");
  w.Str(DCM_ImagerPixelSpacing, Ds(c.series.pixel_spacing) + '\\' + Ds(c.series.pixel_spacing));
  w.U16(DCM_BitsAllocated, 8);
  w.U16(DCM_BitsStored, 8);
  w.U16(DCM_HighBit, 7);
  w.U16(DCM_PixelRepresentation, 0);
}

// Writes path atomically: a hidden temporary in the same directory, then rename, so a folder
// watcher (or a concurrent reader) sees either no file or the whole file. No fsync: sample data
// can be regenerated, and a crash leaves only a stray ".tmp".
Status SaveAtomically(DcmFileFormat& file, const fs::path& path) {
  fs::path tmp = path;
  tmp.replace_filename("." + path.filename().string() + ".tmp");
  const OFCondition cond = file.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
  std::error_code ec;
  if (cond.bad()) {
    fs::remove(tmp, ec);
    return IoError("cannot write " + tmp.string() + ": " + cond.text());
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return IoError("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Status WriteInstance(const InstanceContext& c, const std::vector<PreparedEllipsoid>& phantom,
                     uint32_t seed, const std::string& key, const fs::path& series_dir) {
  const std::string sop_uid = UidFor(seed, "sop:" + key);
  SplitMix64 noise(HashKey(seed, 3, "noise:" + key));

  DcmFileFormat file;
  DatasetWriter w(file.getDataset());
  WriteCommonAttributes(c, sop_uid, w);
  const std::string_view modality = c.study.modality;
  if (modality == "CR") {
    WriteCrAttributes(c, w);
    w.Pixels(RenderProjection(phantom, c.series, noise));
  } else {
    const SliceGeometry g = SliceAt(c.series, c.instance_number - 1, c.instance_count);
    WriteSliceAttributes(c, g, w);
    if (modality == "CT") {
      WriteCtAttributes(c, w);
    } else {
      WriteMrAttributes(c, w);
    }
    w.Pixels(RenderSlice(phantom, c.series, g.plane, noise));
  }
  SI_RETURN_IF_ERROR(w.status());
  return SaveAtomically(file, series_dir / (sop_uid + ".dcm"));
}

Result<std::vector<SampleStudySummary>> Generate(const fs::path& out_dir,
                                                 const SampleOptions& options) {
  const uint32_t seed = options.seed;
  std::vector<SampleStudySummary> summaries;
  int study_ordinal = 0;
  std::vector<PatientSpec> patients = SampleSet();
  if (options.profile == SampleProfile::kBench) patients.push_back(BenchPatient());
  for (size_t pi = 0; pi < patients.size(); ++pi) {
    const PatientSpec& patient = patients[pi];
    // One phantom per patient and body region, so all studies of a patient agree.
    const std::string pkey = std::to_string(pi);
    SplitMix64 head_rng(HashKey(seed, 4, "head:" + pkey));
    SplitMix64 torso_rng(HashKey(seed, 4, "torso:" + pkey));
    const std::vector<PreparedEllipsoid> head = Prepare(HeadPhantom(head_rng));
    const std::vector<PreparedEllipsoid> torso = Prepare(TorsoPhantom(torso_rng));

    for (size_t si = 0; si < patient.studies.size(); ++si) {
      const StudySpec& study = patient.studies[si];
      ++study_ordinal;
      const std::string skey = pkey + ":" + std::to_string(si);
      const std::string study_uid = UidFor(seed, "study:" + skey);
      const std::string frame_uid = UidFor(seed, "frame:" + skey);
      // The ordinal makes accession numbers unique within one set whatever the hash says.
      const std::string accession =
          Format("A%02d%06u", study_ordinal,
                 static_cast<unsigned>(HashKey(seed, 5, "accession:" + skey) % 1000000));
      const std::string study_id =
          Format("%u", static_cast<unsigned>(10000 + HashKey(seed, 6, "id:" + skey) % 90000));
      const std::vector<PreparedEllipsoid>& phantom =
          study.phantom == Phantom::kHead ? head : torso;

      SampleStudySummary summary;
      summary.patient_id = patient.id;
      summary.patient_name = patient.name;
      summary.study_uid = study_uid;
      summary.modality = study.modality;
      for (size_t ri = 0; ri < study.series.size(); ++ri) {
        const SeriesSpec& series = study.series[ri];
        const std::string rkey = skey + ":" + std::to_string(ri);
        const std::string series_uid = UidFor(seed, "series:" + rkey);
        const fs::path series_dir = out_dir / patient.id / study_uid / series_uid;
        std::error_code ec;
        fs::create_directories(series_dir, ec);
        if (ec) return IoError("cannot create " + series_dir.string() + ": " + ec.message());

        const int count =
            std::max(1, static_cast<int>(std::lround(series.instances * options.scale)));
        for (int k = 0; k < count; ++k) {
          const InstanceContext context{patient,   study,      series,
                                        study_uid, series_uid, frame_uid,
                                        accession, study_id,   static_cast<int>(ri) + 1,
                                        k + 1,     count};
          SI_RETURN_IF_ERROR(
              WriteInstance(context, phantom, seed, rkey + ":" + std::to_string(k), series_dir));
        }
        ++summary.series_count;
        summary.instance_count += count;
      }
      summaries.push_back(std::move(summary));
    }
  }
  return summaries;
}

}  // namespace

Result<std::vector<SampleStudySummary>> GenerateSamples(const std::filesystem::path& out_dir,
                                                        const SampleOptions& options) {
  if (out_dir.empty()) return InvalidArgument("sample output directory is empty");
  // Upper bound: a typo like 1000 would otherwise fill the disk with 40 GB of phantoms.
  if (!std::isfinite(options.scale) || options.scale <= 0.0 || options.scale > 100.0) {
    return InvalidArgument("sample scale must be in (0, 100]");
  }
  // Without the dictionary DCMTK cannot tell VRs and would write garbage or fail per tag.
  if (!dcmDataDict.isDictionaryLoaded()) {
    return InvalidConfig("DICOM data dictionary not loaded (check DCMDICTPATH)");
  }
  try {
    return Generate(out_dir, options);
  } catch (const std::exception& e) {  // e.g. bad_alloc: keep the errors-as-values contract
    return Internal(std::string("sample generation failed: ") + e.what());
  }
}

}  // namespace si::dimse
