#include "src/dimse_source.h"

#include <gtest/gtest.h>

#include <thread>

#include "dimse/dcmtk_setup.h"
#include "dimse/dicom_file.h"
#include "dimse/samples.h"
#include "tests/unit/test_support.h"

namespace si {
namespace {

// A PACS stand-in for the retrieval logic: the studies are a folder of sample
// files; "moving" hands copies of them to the target, optionally failing midway.
class FolderPacs final : public DimseClient {
 public:
  FolderPacs(FolderIndex& pacs) : pacs_(pacs) {}
  StoreTarget* target = nullptr;
  std::atomic<int> moves{0};
  std::atomic<int> deliver_at_most{1 << 30};
  std::atomic<bool> unreachable{false};
  // IMAGE-level listing: wait (up to 5 s) for a C-MOVE to have started, and say
  // whether one had; or fail outright.
  std::atomic<bool> listing_waits_for_move{false};
  std::atomic<bool> move_started_before_listing{false};
  std::atomic<bool> listing_fails{false};

  Result<std::vector<StudyRecord>> FindStudies(const DimsePeer&,
                                               const StudyQuery& q) const override {
    if (unreachable) return Unavailable("PACS unreachable");
    return pacs_.FindStudies(q);
  }
  Result<std::vector<InstanceKey>> FindInstances(const DimsePeer&,
                                                 const RetrieveScope& s) const override {
    if (unreachable) return Unavailable("PACS unreachable");
    if (listing_waits_for_move) {
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (moves == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const_cast<FolderPacs*>(this)->move_started_before_listing = moves > 0;
    }
    if (listing_fails) return Unavailable("PACS stopped answering the listing");
    auto found = pacs_.FindInstances(s.study_uid, s.series_uid, s.sop_uid);
    if (!found.ok()) return found.status();
    std::vector<InstanceKey> keys;
    for (auto& i : *found) keys.push_back({i.study_uid, i.series_uid, i.sop_instance_uid, ""});
    return keys;
  }
  Result<RetrieveOutcome> Move(const DimsePeer&, const RetrieveScope& s,
                               const std::atomic<bool>&) const override {
    ++const_cast<FolderPacs*>(this)->moves;
    if (unreachable) return Unavailable("PACS unreachable");
    auto found = pacs_.FindInstances(s.study_uid, s.series_uid, s.sop_uid);
    RetrieveOutcome out;
    int n = 0;
    for (auto& i : *found) {
      if (n++ >= deliver_at_most) break;
      auto temp = target->TempDir() / (".t-" + i.sop_instance_uid);
      std::filesystem::copy_file(i.path, temp, std::filesystem::copy_options::overwrite_existing);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      EXPECT_TRUE(target->Accept(temp).ok());
      ++out.completed;
    }
    return out;
  }
  Result<RetrieveOutcome> Get(const DimsePeer& p, const RetrieveScope& s,
                              const std::vector<std::string>&, StoreTarget&,
                              const std::atomic<bool>& c) const override {
    return Move(p, s, c);
  }

 private:
  FolderIndex& pacs_;
};

class CountingSink final : public InstanceSink {
 public:
  std::vector<StoredInstance> got;
  Status OnInstance(const StoredInstance& i) override {
    EXPECT_TRUE(std::filesystem::exists(i.path));
    got.push_back(i);
    return Status::Ok();
  }
};

class DimseSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dimse::InitializeDcmtk().ok());
    auto s = dimse::GenerateSamples(pacs_dir_.path(), dimse::SampleOptions{5, 0.1});
    ASSERT_TRUE(s.ok());
    studies_ = *s;
    auto pacs_index =
        FolderIndex::Open(cache_dir_.path() / "pacs.sqlite", pacs_dir_.path(), parser_, clock_);
    ASSERT_TRUE(pacs_index.ok());
    pacs_index_ = std::move(pacs_index).value();
    ASSERT_TRUE(pacs_index_->Rescan().ok());
    pacs_ = std::make_unique<FolderPacs>(*pacs_index_);
    Reopen();
  }
  void Reopen(int64_t budget = 0) {
    source_.reset();
    auto root = cache_dir_.path() / "cache";
    auto index = FolderIndex::Open(cache_dir_.path() / "cache.sqlite", root, parser_, clock_);
    ASSERT_TRUE(index.ok());
    DimsePeer peer{"127.0.0.1", 104, "PACS", "US", 1, 5, 20};
    source_ = std::make_unique<DimseSource>(peer, RetrievalMode::kMove, 2, *pacs_, parser_,
                                            std::move(index).value(), root, budget);
    pacs_->target = source_.get();
  }
  const dimse::SampleStudySummary& Study(size_t i) { return studies_[i]; }

  testing::TempDir pacs_dir_{"pacs"};
  testing::TempDir cache_dir_{"cache"};
  dimse::DcmtkInstanceParser parser_;
  FakeClock clock_{1'700'000'000};
  std::vector<dimse::SampleStudySummary> studies_;
  std::unique_ptr<FolderIndex> pacs_index_;
  std::unique_ptr<FolderPacs> pacs_;
  std::unique_ptr<DimseSource> source_;
};

TEST_F(DimseSourceTest, ColdRetrievalFillsTheCacheAndWarmNeedsNoPacs) {
  RetrieveScope scope{Study(0).study_uid, std::nullopt, std::nullopt};
  auto plan = source_->PlanRetrieval(scope);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(static_cast<int>(plan->size()), Study(0).instance_count);
  CountingSink sink;
  ASSERT_TRUE(source_->Retrieve(*plan, sink).ok());
  EXPECT_EQ(static_cast<int>(sink.got.size()), Study(0).instance_count);
  EXPECT_EQ(pacs_->moves, 1);

  // After a restart, with the PACS gone: served from the cache.
  Reopen();
  pacs_->unreachable = true;
  auto warm = source_->PlanRetrieval(scope);
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  CountingSink again;
  ASSERT_TRUE(source_->Retrieve(*warm, again).ok());
  EXPECT_EQ(again.got.size(), sink.got.size());
  EXPECT_EQ(pacs_->moves, 1);
}

TEST_F(DimseSourceTest, ColdStudyMoveStartsBeforeItsInstanceListing) {
  pacs_->listing_waits_for_move = true;
  RetrieveScope scope{Study(2).study_uid, std::nullopt, std::nullopt};
  auto plan = source_->PlanRetrieval(scope);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(pacs_->move_started_before_listing);
  CountingSink sink;
  ASSERT_TRUE(source_->Retrieve(*plan, sink).ok());
  EXPECT_EQ(static_cast<int>(sink.got.size()), Study(2).instance_count);
  EXPECT_EQ(pacs_->moves, 1);  // the early C-MOVE served the request; none after it
}

TEST_F(DimseSourceTest, FailedListingNeverMarksTheEarlyMoveComplete) {
  pacs_->listing_waits_for_move = true;
  pacs_->listing_fails = true;
  pacs_->deliver_at_most = 1;  // the early C-MOVE brings one instance only
  RetrieveScope scope{Study(3).study_uid, std::nullopt, std::nullopt};
  EXPECT_FALSE(source_->PlanRetrieval(scope).ok());
  // Let the early retrieval end, then ask again with a PACS that answers: the one
  // cached instance must not pass for the whole study.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  pacs_->listing_fails = false;
  pacs_->listing_waits_for_move = false;
  pacs_->deliver_at_most = 1 << 30;
  auto plan = source_->PlanRetrieval(scope);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(static_cast<int>(plan->size()), Study(3).instance_count);
  CountingSink sink;
  ASSERT_TRUE(source_->Retrieve(*plan, sink).ok());
  EXPECT_EQ(static_cast<int>(sink.got.size()), Study(3).instance_count);
}

TEST_F(DimseSourceTest, ConcurrentRequestsShareOneRetrieval) {
  RetrieveScope scope{Study(1).study_uid, std::nullopt, std::nullopt};
  std::vector<std::thread> clients;
  std::atomic<int> complete{0};
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&] {
      auto plan = source_->PlanRetrieval(scope);
      ASSERT_TRUE(plan.ok());
      CountingSink sink;
      if (source_->Retrieve(*plan, sink).ok() &&
          static_cast<int>(sink.got.size()) == Study(1).instance_count)
        ++complete;
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(complete, 8);
  EXPECT_EQ(pacs_->moves, 1);
}

TEST_F(DimseSourceTest, PartialDeliveryFailsAndIsRetriedNextTime) {
  RetrieveScope scope{Study(0).study_uid, std::nullopt, std::nullopt};
  pacs_->deliver_at_most = 1;
  auto plan = source_->PlanRetrieval(scope);
  ASSERT_TRUE(plan.ok());
  CountingSink sink;
  Status s = source_->Retrieve(*plan, sink);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.http_status(), 502);
  EXPECT_LT(static_cast<int>(sink.got.size()), Study(0).instance_count);

  pacs_->deliver_at_most = 1 << 30;
  auto retry = source_->PlanRetrieval(scope);
  ASSERT_TRUE(retry.ok());
  CountingSink all;
  ASSERT_TRUE(source_->Retrieve(*retry, all).ok());
  EXPECT_EQ(static_cast<int>(all.got.size()), Study(0).instance_count);
}

TEST_F(DimseSourceTest, UnknownAndUnreachable) {
  auto missing = source_->PlanRetrieval(RetrieveScope{"1.2.3.999", std::nullopt, std::nullopt});
  EXPECT_EQ(missing.status().http_status(), 404);
  pacs_->unreachable = true;
  auto down = source_->PlanRetrieval(RetrieveScope{Study(0).study_uid, std::nullopt, std::nullopt});
  EXPECT_EQ(down.status().http_status(), 503);
}

TEST_F(DimseSourceTest, BudgetEvictsLeastRecentlyUsed) {
  Reopen(1);  // one byte: every finished study is over budget
  RetrieveScope a{Study(0).study_uid, std::nullopt, std::nullopt};
  auto plan = source_->PlanRetrieval(a);
  CountingSink sink;
  ASSERT_TRUE(source_->Retrieve(*plan, sink).ok()) << "the study being streamed is never evicted";
  EXPECT_EQ(static_cast<int>(sink.got.size()), Study(0).instance_count);
  // Eviction runs when the last stream or the retrieval ends, whichever is later.
  bool evicted = false;
  for (int i = 0; i < 200 && !evicted; ++i) {
    auto again = source_->PlanRetrieval(a);
    ASSERT_TRUE(again.ok());
    evicted = std::any_of(again->begin(), again->end(), [](auto& i) { return i.path.empty(); });
    if (!evicted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(evicted) << "evicted once nobody streams it";
}

}  // namespace
}  // namespace si
