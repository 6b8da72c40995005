#include "dimse/storage_scp.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/scpthrd.h>
#include <fcntl.h>
#include <unistd.h>

#include "src/log.h"

namespace si::dimse {
namespace {

const char* kAcceptedSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_JPEGProcess1TransferSyntax,         UID_JPEGProcess2_4TransferSyntax,
    UID_JPEGProcess14SV1TransferSyntax,     UID_JPEGProcess14TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,       UID_JPEGLSLossyTransferSyntax,
    UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax,
    UID_RLELosslessTransferSyntax};

// One association: C-ECHO by the base class, C-STORE here.
class StoreAssociation final : public DcmThreadSCP {
 public:
  explicit StoreAssociation(const StorageScp::Router& router) : router_(router) {}

 protected:
  OFBool checkCalledAETitleAccepted(const OFString& called) override {
    target_ = router_(called.c_str());
    return target_ != nullptr;
  }

  OFCondition handleIncomingCommand(T_DIMSE_Message* msg,
                                    const DcmPresentationContextInfo& info) override {
    if (msg->CommandField != DIMSE_C_STORE_RQ || !target_)
      return DcmThreadSCP::handleIncomingCommand(msg, info);
    T_DIMSE_C_StoreRQ& rq = msg->msg.CStoreRQ;
    static std::atomic<uint64_t> counter{0};
    auto temp = target_->TempDir() /
                (".store-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tmp");
    OFCondition c = receiveSTORERequest(rq, info.presentationContextID, OFString(temp.c_str()));
    Uint16 status = STATUS_Success;
    if (c.good()) {
      Status s = target_->Accept(temp);
      if (!s.ok()) {
        log::Warn("scp", std::string("refused a received instance: ") + s.message());
        status = STATUS_STORE_Error_CannotUnderstand;
      }
    } else {
      std::error_code ec;
      std::filesystem::remove(temp, ec);
      status = STATUS_STORE_Refused_OutOfResources;
    }
    if (c.bad() && (c == DUL_PEERABORTEDASSOCIATION || c == DUL_NETWORKCLOSED)) return c;
    return sendSTOREResponse(info.presentationContextID, rq, status);
  }

 private:
  const StorageScp::Router& router_;
  StoreTarget* target_ = nullptr;
};

}  // namespace

struct StorageScp::Network {
  T_ASC_Network* net = nullptr;
  DcmSharedSCPConfig config;
  ~Network() {
    if (net) ASC_dropNetwork(&net);
  }
};

StorageScp::StorageScp(uint16_t port, Router router) : port_(port), router_(std::move(router)) {}

StorageScp::~StorageScp() { Stop(); }

Status StorageScp::Start() {
  network_ = std::make_unique<Network>();
  OFList<OFString> syntaxes;
  for (const char* ts : kAcceptedSyntaxes) syntaxes.push_back(ts);
  OFList<OFString> verification;
  verification.push_back(UID_LittleEndianExplicitTransferSyntax);
  verification.push_back(UID_LittleEndianImplicitTransferSyntax);
  auto& cfg = network_->config;
  cfg->addPresentationContext(UID_VerificationSOPClass, verification);
  // 120 long-SCU storage classes plus verification stay under the 128 limit.
  for (int i = 0; i < numberOfDcmLongSCUStorageSOPClassUIDs; ++i)
    cfg->addPresentationContext(dcmLongSCUStorageSOPClassUIDs[i], syntaxes);
  cfg->setConnectionBlockingMode(DUL_NOBLOCK);
  cfg->setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  cfg->setDIMSETimeout(60);
  cfg->setACSETimeout(30);
  cfg->setHostLookupEnabled(OFFalse);
  cfg->setRespondWithCalledAETitle(OFTrue);
  OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, port_, 30, &network_->net);
  if (c.bad())
    return Status(ErrorCode::kUnavailable,
                  "cannot listen on DIMSE port " + std::to_string(port_) + ": " + c.text());
  acceptor_ = std::thread([this] { AcceptLoop(); });
  log::Info("scp", "storage SCP listening on port " + std::to_string(port_));
  return Status::Ok();
}

void StorageScp::AcceptLoop() {
  while (!stopping_) {
    T_ASC_Association* assoc = nullptr;
    OFCondition c = ASC_receiveAssociation(network_->net, &assoc, ASC_DEFAULTMAXPDU, nullptr,
                                           nullptr, OFFalse, DUL_NOBLOCK, 1);
    if (c.bad()) {
      if (assoc) ASC_destroyAssociation(&assoc);
      ReapFinished(false);
      continue;  // timeout (no request) or a broken attempt: keep listening
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, assoc, done] {
      StoreAssociation scp(router_);
      scp.setSharedConfig(network_->config);
      scp.run(assoc);  // negotiates, serves, releases and frees the association
      *done = true;
    });
    std::lock_guard<std::mutex> lock(workers_mutex_);
    workers_.push_back(Worker{std::move(t), done});
  }
}

void StorageScp::ReapFinished(bool all) {
  std::lock_guard<std::mutex> lock(workers_mutex_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (all || *it->done) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void StorageScp::Stop() {
  if (stopping_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  ReapFinished(true);
  network_.reset();
}

}  // namespace si::dimse
