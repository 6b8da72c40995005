#pragma once
// Our Storage SCP, the destination of C-MOVEs: listens on DIMSE_PORT, accepts many
// concurrent associations (one joined thread each; DCMTK's DcmSCPPool leaks them),
// writes each instance bit-preserving to a temporary file and hands it
// to the StoreTarget registered for the called AE title (which makes it durable).
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/dimse_source.h"

namespace si::dimse {

class StorageScp {
 public:
  // Which target takes instances sent to this called AE title; null refuses the
  // association. Must be thread-safe.
  using Router = std::function<StoreTarget*(const std::string& called_ae)>;

  StorageScp(uint16_t port, Router router);
  ~StorageScp();  // stops and joins every thread
  StorageScp(const StorageScp&) = delete;
  StorageScp& operator=(const StorageScp&) = delete;

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }

 private:
  void AcceptLoop();
  void ReapFinished(bool all);

  uint16_t port_;
  Router router_;
  struct Network;
  std::unique_ptr<Network> network_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex workers_mutex_;
  std::list<Worker> workers_;  // guarded by workers_mutex_
};

}  // namespace si::dimse
