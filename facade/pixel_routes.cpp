#include "facade/pixel_routes.h"

#include <algorithm>
#include <map>

#include "facade/facade_internal.h"
#include "src/log.h"
#include "src/pixel_params.h"
#include "src/text.h"

namespace si::facade {
namespace {

// Runs `work` on the instance's local file while the source holds it (a DIMSE
// cache may evict it afterwards).
template <typename Fn>
class FileVisitor final : public InstanceSink {
 public:
  explicit FileVisitor(Fn fn) : fn_(std::move(fn)) {}
  Status OnInstance(const StoredInstance& instance) override {
    visited_ = true;
    return fn_(instance);
  }
  bool visited() const { return visited_; }

 private:
  Fn fn_;
  bool visited_ = false;
};

template <typename Fn>
Status WithFile(const ImagingService& service, const WadoAccess& access,
                const StoredInstance& instance, Fn fn) {
  FileVisitor<Fn> visitor(std::move(fn));
  // Through the service: an arriving instance of another patient is never handed on.
  Status s = service.Retrieve(access, {instance}, visitor);
  if (s.ok() && !visitor.visited()) return NotFound("the instance was not delivered");
  return s;
}

}  // namespace

bool IsPixelRoute(const std::string& segment) {
  return segment == "frames" || segment == "rendered" || segment == "thumbnail";
}

void PixelRoutes::Handle(const HttpRequest& request, ResponseChannel& out, const Tenant& tenant,
                         const WadoAccess& access, const RetrieveScope& scope,
                         const std::vector<std::string>& tail) const {
  // Parse the route first: a malformed frame list is 400 whatever the data.
  bool frames_route = tail[0] == "frames";
  std::vector<int> frames;
  bool render = false, thumbnail = false;
  int render_frame = 1;
  if (frames_route) {
    if (!scope.sop_uid || tail.size() < 2 || tail.size() > 3)
      return SendWadoError(
          request, out,
          NotFound("frames are addressed per instance: .../instances/{uid}/frames/{list}"));
    auto list = ParseFrameList(tail[1]);
    if (!list.ok()) return SendWadoError(request, out, list.status());
    frames = std::move(list).value();
    if (tail.size() == 3) {
      if (tail[2] != "rendered" && tail[2] != "thumbnail")
        return SendWadoError(request, out, NotFound("no such resource"));
      if (frames.size() != 1)
        return SendWadoError(request, out, InvalidArgument("render one frame at a time"));
      render = true;
      thumbnail = tail[2] == "thumbnail";
      render_frame = frames[0];
    }
  } else {
    if (tail.size() != 1) return SendWadoError(request, out, NotFound("no such resource"));
    render = true;
    thumbnail = tail[0] == "thumbnail";
  }
  if (!pixels_)
    return SendWadoError(request, out,
                         NotImplemented("pixel services are not available in this build"));

  auto plan = service_.PlanWado(access, scope);
  if (!plan.ok()) return SendWadoError(request, out, plan.status());
  if (plan->empty()) return SendWadoError(request, out, NotFound("no instances"));
  // Series and study level: a representative instance, the middle one in order.
  const StoredInstance& chosen = (*plan)[plan->size() / 2];

  if (render) {
    auto options = ParseRenderRequest(text::ParseQueryString(request.raw_query),
                                      request.Header("accept"), thumbnail);
    if (!options.ok()) return SendWadoError(request, out, options.status());
    Result<RenderedImage> image = Internal("not rendered");
    Status s = WithFile(service_, access, chosen, [&](const StoredInstance& inst) {
      image = pixels_->Render(inst.path, render_frame, *options);
      return Status::Ok();
    });
    if (!s.ok()) return SendWadoError(request, out, s);
    if (!image.ok()) return SendWadoError(request, out, image.status());
    HeaderList h = CorsHeaders(request);
    h.emplace_back("Content-Type", image->media_type);
    out.SendWhole(200, h, image->bytes).ok();
    return;
  }

  // Negotiated on the delivered file's syntax: a DIMSE plan may not know it yet.
  Result<FrameFormat> format = Internal("not negotiated");
  Result<std::vector<Frame>> extracted = Internal("not extracted");
  Status s = WithFile(service_, access, chosen, [&](const StoredInstance& inst) {
    const std::string& stored =
        inst.transfer_syntax_uid.empty() ? chosen.transfer_syntax_uid : inst.transfer_syntax_uid;
    format = NegotiateFrames(request.Header("accept"), stored, frames.size());
    if (format.ok()) extracted = pixels_->ExtractFrames(inst.path, frames, format->target);
    return Status::Ok();
  });
  if (!s.ok()) return SendWadoError(request, out, s);
  if (!format.ok()) return SendWadoError(request, out, format.status());
  if (!extracted.ok()) return SendWadoError(request, out, extracted.status());
  HeaderList h = CorsHeaders(request);
  const Frame& first = extracted->front();
  if (format->single_part) {
    h.emplace_back("Content-Type", first.media_type);
    out.SendWhole(200, h, first.bytes).ok();
    return;
  }
  std::string boundary = RandomBoundary();
  h.emplace_back("Content-Type", "multipart/related; type=\"" + first.media_type +
                                     "\"; transfer-syntax=" + first.transfer_syntax +
                                     "; boundary=" + boundary);
  std::string body;
  for (const Frame& f : *extracted) {
    body += "--" + boundary + "\r\nContent-Type: " + f.media_type +
            "; transfer-syntax=" + f.transfer_syntax +
            "\r\nContent-Length: " + std::to_string(f.bytes.size()) + "\r\n\r\n";
    body += f.bytes;
    body += "\r\n";
  }
  body += "--" + boundary + "--\r\n";
  out.SendWhole(200, h, body).ok();
}

void PixelRoutes::RetrieveTranscoded(const HttpRequest& request, ResponseChannel& out,
                                     const WadoAccess& access,
                                     const std::vector<StoredInstance>& plan,
                                     const std::string& target, bool single) const {
  if (!pixels_)
    return SendWadoError(request, out,
                         NotImplemented("transcoding is not available in this build"));
  // Every instance must be decodable before the head goes out: a stream cut in
  // the middle of a study would look like a shorter study. A DIMSE plan made from
  // C-FIND does not know the stored syntaxes: retrieving into the cache first tells.
  std::vector<StoredInstance> known = plan;
  if (std::any_of(known.begin(), known.end(),
                  [](const StoredInstance& i) { return i.transfer_syntax_uid.empty(); })) {
    std::map<std::string, std::string> syntax_of;
    auto record = [&](const StoredInstance& inst) {
      syntax_of[inst.sop_instance_uid] = inst.transfer_syntax_uid;
      return Status::Ok();
    };
    FileVisitor<decltype(record)> recorder(record);
    Status filled = service_.Retrieve(access, plan, recorder);
    if (!filled.ok()) return SendWadoError(request, out, filled);
    for (auto& inst : known)
      if (inst.transfer_syntax_uid.empty())
        inst.transfer_syntax_uid = syntax_of[inst.sop_instance_uid];
  }
  for (auto& inst : known)
    if (inst.transfer_syntax_uid != target && !pixels_->CanDecode(inst.transfer_syntax_uid))
      return SendWadoError(
          request, out,
          NotAcceptable("instance " + inst.sop_instance_uid + " is stored as " +
                        inst.transfer_syntax_uid +
                        ", which this server cannot decode; ask for transfer-syntax=*"));
  HeaderList h = CorsHeaders(request);
  std::string boundary = RandomBoundary();
  h.emplace_back("Content-Type",
                 single ? "application/dicom; transfer-syntax=" + target
                        : "multipart/related; type=\"application/dicom\"; transfer-syntax=" +
                              target + "; boundary=" + boundary);
  bool started = false;
  int parts = 0;
  // One instance at a time: transcode, write the part, let it go.
  class Writer final : public InstanceSink {
   public:
    Writer(const PixelService& px, ResponseChannel& o, const HeaderList& head, const std::string& b,
           const std::string& t, bool single, bool& started, int& parts)
        : px_(px),
          out_(o),
          head_(head),
          boundary_(b),
          target_(t),
          single_(single),
          started_(started),
          parts_(parts) {}
    Status OnInstance(const StoredInstance& inst) override {
      auto bytes = px_.Transcode(inst.path, target_);
      if (!bytes.ok()) return bytes.status();
      if (!started_) {
        started_ = true;
        SI_RETURN_IF_ERROR(out_.BeginChunked(200, head_));
      }
      if (single_) {
        SI_RETURN_IF_ERROR(out_.WriteChunk(*bytes));
      } else {
        SI_RETURN_IF_ERROR(out_.WriteChunk(
            "--" + boundary_ + "\r\nContent-Type: application/dicom; transfer-syntax=" + target_ +
            "\r\nContent-Length: " + std::to_string(bytes->size()) + "\r\n\r\n"));
        SI_RETURN_IF_ERROR(out_.WriteChunk(*bytes));
        SI_RETURN_IF_ERROR(out_.WriteChunk("\r\n"));
      }
      ++parts_;
      return Status::Ok();
    }

   private:
    const PixelService& px_;
    ResponseChannel& out_;
    const HeaderList& head_;
    const std::string& boundary_;
    const std::string& target_;
    bool single_;
    bool& started_;
    int& parts_;
  } writer(*pixels_, out, h, boundary, target, single, started, parts);
  Status s = service_.Retrieve(access, plan, writer);
  if (!s.ok() && !started) {
    if (!out.ClientGone()) SendWadoError(request, out, s);
    return;
  }
  if (s.ok() && parts != static_cast<int>(plan.size()))
    s = Status(ErrorCode::kBadGateway, "fewer instances than planned");
  if (s.ok() && !single) s = out.WriteChunk("--" + boundary + "--\r\n");
  if (s.ok()) s = out.EndChunked();
  if (!s.ok()) {
    if (!out.ClientGone())
      log::Warn("wado", "transcoded retrieval failed after the response started: " + s.message());
    out.Abort();
  }
}

}  // namespace si::facade
