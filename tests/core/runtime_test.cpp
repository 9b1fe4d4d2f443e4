// parallel_for (alone and in a run_as_team team), denormal flushing, the seeded RNG, the atomic file writer and max_value.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>
#include <vector>

#include "shrink/core/atomic_file.h"
#include "shrink/core/error.h"
#include "shrink/core/max_value.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "test_support.h"

namespace shrink {
namespace {

TEST(ParallelFor, VisitsEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 2, 7, 1000, 4097}) {
      for (int64_t grain : {1, 16, 5000}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
          EXPECT_LE(lo, hi);
          for (int64_t i = lo; i < hi; ++i) seen[size_t(i)]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)].load(), 1) << n << " " << grain;
      }
    }
  }
  set_num_threads(0);
  EXPECT_GE(num_threads(), 1);
}

TEST(ParallelFor, NestedCallsRunSeriallyAndErrorsReachTheCaller) {
  set_num_threads(2);
  std::atomic<int> inner_items = 0;
  parallel_for(0, 2, 1, [&](int64_t, int64_t) {
    EXPECT_TRUE(in_parallel_for());
    parallel_for(0, 10, 1, [&](int64_t lo, int64_t hi) { inner_items += int(hi - lo); });
  });
  EXPECT_FALSE(in_parallel_for());
  EXPECT_EQ(inner_items.load(), 20);
  // An exception in any chunk (the worker's included) comes out of parallel_for in the caller.
  for (int64_t failing : {0, 1})
    EXPECT_THROW(parallel_for(0, 2, 1,
                              [&](int64_t lo, int64_t) {
                                if (lo == failing) throw UsageError("chunk failed");
                              }),
                 UsageError);
  std::atomic<int> after = 0;  // and the pool still works
  parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { after += int(hi - lo); });
  EXPECT_EQ(after.load(), 100);
  set_num_threads(0);
}

TEST(ParallelFor, ConcurrentCallers) {
  set_num_threads(2);
  std::atomic<int64_t> total = 0;
  auto caller = [&] {  // one of the two runs its jobs serially whenever the pool is busy
    for (int round = 0; round < 200; ++round) {
      parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) { total += hi - lo; });
    }
  };
  std::thread other(caller);
  caller();
  other.join();
  EXPECT_EQ(total.load(), 2 * 200 * 1000);
  set_num_threads(0);
}

TEST(ParallelFor, WorkersFlushDenormals) {
  volatile float tiny = 1e-39f;  // a denormal
  std::atomic<int> flushed = 0;
  set_num_threads(2);
  parallel_for(0, 2, 1, [&](int64_t, int64_t) {
    volatile float product = tiny * 1.0f;
    if (product == 0.0f) flushed++;
  });
  set_num_threads(0);
  EXPECT_EQ(flushed.load(), 2);
}

TEST(ThreadSpeeds, SharesFollowTheMeasuredSpeedsWithAFloor) {
  ThreadSpeeds speeds;
  double share[3];
  speeds.shares(2, share);  // nothing measured: equal
  EXPECT_DOUBLE_EQ(share[0], 0.5);
  EXPECT_DOUBLE_EQ(share[1], 0.5);
  const int64_t items[2] = {100, 100};
  const double seconds[2] = {1.0, 2.0};  // thread 1 at half the speed
  for (int call = 0; call < 100; ++call) speeds.record(items, seconds, 2);
  speeds.shares(2, share);
  EXPECT_NEAR(share[0], 2.0 / 3, 1e-3);
  EXPECT_NEAR(share[0] + share[1], 1.0, 1e-9);
  // A call that measured nothing (an empty share, no time) changes nothing.
  const int64_t none[2] = {0, 100};
  const double zero[2] = {0.0, 1.0};
  speeds.record(none, seconds, 2);
  speeds.record(items, zero, 2);
  double again[2];
  speeds.shares(2, again);
  EXPECT_DOUBLE_EQ(again[0], share[0]);
  // A thread that stalls keeps at least a quarter of an equal share.
  const double stalled[2] = {1.0, 1000.0};
  for (int call = 0; call < 200; ++call) speeds.record(items, stalled, 2);
  speeds.shares(2, share);
  EXPECT_GT(share[1], 0.11);
  EXPECT_LT(share[1], 0.13);
  // Another team size starts from the shares of its first threads, renormalised.
  speeds.shares(3, share);
  EXPECT_NEAR(share[0] + share[1] + share[2], 1.0, 1e-9);
}

TEST(ParallelForBalanced, VisitsEveryIndexOnceNestedSeriallyAndErrorsReachTheCaller) {
  ThreadSpeeds speeds;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 2, 7, 1000, 4097}) {
      for (int64_t grain : {1, 16, 5000}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        parallel_for_balanced(0, n, grain, speeds, [&](int64_t lo, int64_t hi) {
          EXPECT_LE(lo, hi);
          for (int64_t i = lo; i < hi; ++i) seen[size_t(i)]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)].load(), 1) << n << " " << grain;
      }
    }
  }
  set_num_threads(2);
  // Fresh speeds (equal shares): the ones above may have learned a share of less than one item
  // for a thread on a busy host, and then one body call gets both items.
  ThreadSpeeds fresh;
  std::atomic<int> inner_items = 0;
  parallel_for_balanced(0, 2, 1, fresh, [&](int64_t, int64_t) {
    parallel_for_balanced(0, 10, 1, speeds, [&](int64_t lo, int64_t hi) { inner_items += int(hi - lo); });
  });
  EXPECT_EQ(inner_items.load(), 20);
  for (int64_t failing : {0, 1}) {
    ThreadSpeeds equal;
    EXPECT_THROW(parallel_for_balanced(0, 2, 1, equal,
                                       [&](int64_t lo, int64_t) {
                                         if (lo == failing) throw UsageError("share failed");
                                       }),
                 UsageError);
  }
  set_num_threads(0);
}

// 20 calls of parallel_for_balanced at 2 threads (in a run_as_team team or each its own region)
// whose other thread sleeps four times as long per item as the caller (sleeping, so that the
// machine's load matters less): the caller's share the speeds have learned.
double caller_share_with_a_slower_worker(bool in_team) {
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  ThreadSpeeds measured;
  std::atomic<int64_t> total = 0;
  const auto calls = [&] {
    for (int call = 0; call < 20; ++call)
      parallel_for_balanced(0, 200, 1, measured, [&](int64_t lo, int64_t hi) {
        const bool by_caller = std::this_thread::get_id() == caller;
        std::this_thread::sleep_for(std::chrono::microseconds((hi - lo) * (by_caller ? 50 : 200)));
        total += hi - lo;
      });
  };
  if (in_team)
    run_as_team(calls);
  else
    calls();
  set_num_threads(0);
  EXPECT_EQ(total.load(), 20 * 200);
  double share[2];
  measured.shares(2, share);
  return share[0];
}

TEST(ParallelForBalanced, SharesFollowTheSpeedsAndAreMeasured) {
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  // Speeds recorded beforehand (the worker four times slower): the next call's shares follow them.
  ThreadSpeeds preset;
  const int64_t items[2] = {100, 100};
  const double seconds[2] = {1.0, 4.0};
  for (int call = 0; call < 200; ++call) preset.record(items, seconds, 2);
  std::atomic<int64_t> callers = 0;
  parallel_for_balanced(0, 200, 1, preset, [&](int64_t lo, int64_t hi) {
    if (std::this_thread::get_id() == caller) callers = hi - lo;
  });
  EXPECT_NEAR(double(callers.load()), 160.0, 1.0);
  set_num_threads(0);
  // Measured: the worker sleeps four times as long per item as the caller; the shares move
  // towards 4:1.
  EXPECT_GT(caller_share_with_a_slower_worker(/*in_team=*/false), 0.6);  // 0.8 when the sleeps are exact
}

TEST(RunAsTeam, TheLeadersCallsVisitEveryIndexOnceOnTheTeamsThreads) {
  for (int threads : {1, 2, 3}) {
    if (threads > available_cores()) continue;  // no team then (OversubscribedRunsAlone)
    set_num_threads(threads);
    const std::thread::id leader = std::this_thread::get_id();
    std::atomic<int> helper_shares = 0, nested_items = 0;
    bool leader_in_region = false;
    ThreadSpeeds speeds;
    run_as_team([&] {
      leader_in_region = in_parallel_for();
      for (int64_t n : {0, 1, 2, 7, 1000, 4097})
        for (int64_t grain : {1, 16, 5000})
          for (bool balanced : {false, true}) {
            std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
            const auto body = [&](int64_t lo, int64_t hi) {
              EXPECT_LE(lo, hi);
              EXPECT_TRUE(in_parallel_for() || threads == 1);
              if (std::this_thread::get_id() != leader) helper_shares++;
              for (int64_t i = lo; i < hi; ++i) seen[size_t(i)]++;
            };
            if (balanced)
              parallel_for_balanced(0, n, grain, speeds, body);
            else
              parallel_for(0, n, grain, body);
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)].load(), 1) << n << " " << grain << " " << balanced;
          }
      // A call inside a share runs serially on its thread.
      parallel_for(0, 2, 1, [&](int64_t, int64_t) {
        parallel_for(0, 10, 1, [&](int64_t lo, int64_t hi) { nested_items += int(hi - lo); });
      });
    });
    EXPECT_TRUE(leader_in_region || threads == 1);  // so that OpenBLAS starts no threads beside the helpers
    EXPECT_EQ(nested_items.load(), threads == 1 ? 10 : 20);
    if (threads > 1) {
      EXPECT_GT(helper_shares.load(), 0) << threads;
    }
    EXPECT_FALSE(in_parallel_for());
  }
  set_num_threads(0);
}

// More threads than cores: no team (the helpers would spin on the leader's core); the leader's
// calls open regions as usual and still visit every index once.
TEST(RunAsTeam, OversubscribedRunsAlone) {
  set_num_threads(available_cores() + 1);
  bool in_region = true;
  std::vector<std::atomic<int>> seen(1000);
  run_as_team([&] {
    in_region = in_parallel_for();
    parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) seen[size_t(i)]++;
    });
  });
  set_num_threads(0);
  EXPECT_FALSE(in_region);
  for (const auto& count : seen) ASSERT_EQ(count.load(), 1);
}

TEST(RunAsTeam, ErrorsReachTheCallerAndTheHelpersFlushDenormals) {
  if (available_cores() < 2) GTEST_SKIP() << "a team needs two cores";
  set_num_threads(2);
  volatile float tiny = 1e-39f;  // a denormal
  std::atomic<int> flushed = 0, after = 0;
  run_as_team([&] {
    // An exception in either share (the helper's included) comes out of the call in the leader,
    // and the team goes on.
    for (int64_t failing : {0, 1}) {
      EXPECT_THROW(parallel_for(0, 2, 1,
                                [&](int64_t lo, int64_t) {
                                  if (lo == failing) throw UsageError("share failed");
                                }),
                   UsageError);
      ThreadSpeeds equal;
      EXPECT_THROW(parallel_for_balanced(0, 2, 1, equal,
                                         [&](int64_t lo, int64_t) {
                                           if (lo == failing) throw UsageError("share failed");
                                         }),
                   UsageError);
    }
    parallel_for(0, 2, 1, [&](int64_t, int64_t) {
      volatile float product = tiny * 1.0f;
      if (product == 0.0f) flushed++;
    });
    parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { after += int(hi - lo); });
  });
  EXPECT_EQ(flushed.load(), 2);
  EXPECT_EQ(after.load(), 100);
  // The leader's own exception ends the team and comes out of run_as_team; threads work after.
  EXPECT_THROW(run_as_team([] { throw UsageError("leader failed"); }), UsageError);
  std::atomic<int> later = 0;
  parallel_for(0, 100, 1, [&](int64_t lo, int64_t hi) { later += int(hi - lo); });
  EXPECT_EQ(later.load(), 100);
  set_num_threads(0);
}

TEST(RunAsTeam, BalancedSharesAreMeasuredInTheTeam) {
  if (available_cores() < 2) GTEST_SKIP() << "a team needs two cores";
  // The helper sleeps four times as long per item as the leader; the shares move towards 4:1.
  EXPECT_GT(caller_share_with_a_slower_worker(/*in_team=*/true), 0.6);  // 0.8 when the sleeps are exact
}

TEST(ThreadSpeeds, KeyedSpeedsAreSharedByOneKeyAndApartOtherwise) {
  // Keys built by folding a kind and sizes: the order of the sizes and the kind both count.
  constexpr uint64_t kind = 0x1234, other_kind = 0x1235;
  const uint64_t a = speeds_key(speeds_key(kind, 64), 4096), b = speeds_key(speeds_key(kind, 4096), 64);
  EXPECT_NE(a, b);
  EXPECT_NE(a, speeds_key(speeds_key(other_kind, 64), 4096));
  EXPECT_EQ(&thread_speeds(a), &thread_speeds(speeds_key(speeds_key(kind, 64), 4096)));
  EXPECT_NE(&thread_speeds(a), &thread_speeds(b));
  // What one key's calls record is what that key's next call reads, and no other key's.
  const int64_t items[2] = {100, 100};
  const double seconds[2] = {1.0, 3.0};
  for (int call = 0; call < 200; ++call) thread_speeds(a).record(items, seconds, 2);
  double share_a[2], share_b[2];
  thread_speeds(a).shares(2, share_a);
  thread_speeds(b).shares(2, share_b);
  EXPECT_NEAR(share_a[0], 0.75, 0.02);
  EXPECT_DOUBLE_EQ(share_b[0], 0.5);
}

TEST(MaxValue, FindsTheLargestInEveryLaneAndTheTailAndSkipsNaN) {
  EXPECT_EQ(max_value(nullptr, 0), -INFINITY);
  for (int64_t n : {1, 15, 16, 17, 40, 64}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t at = 0; at < n; ++at) {  // the largest in each lane of the blocks, and in the tail
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -float(i) - 100.f;
      x[size_t(at)] = 5.f;
      ASSERT_EQ(max_value(x.data(), n), 5.f) << n << " " << at;
      x[size_t((at + 1) % n)] = NAN;  // a NaN beside it changes nothing (unless it replaced it)
      if (n > 1) {
        ASSERT_EQ(max_value(x.data(), n), 5.f) << n << " " << at;
      }
    }
  }
  const float all_nan[3] = {NAN, NAN, NAN};
  EXPECT_EQ(max_value(all_nan, 3), -INFINITY);
}

TEST(Rng, IsDeterministicAndWellSpread) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Rng(42).next_u64(), c.next_u64());
  Rng rng(7);
  double sum = 0, sum_squares = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float x = rng.normal();
    sum += x;
    sum_squares += double(x) * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_squares / n, 1.0, 0.02);
  std::vector<int> counts(10);
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.uniform();
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    counts[rng.below(10)]++;
  }
  for (int count : counts) EXPECT_NEAR(count, 10000, 500);
  std::vector<int> items = {0, 1, 2, 3, 4, 5, 6, 7};
  rng.shuffle(items);
  std::vector<int> sorted = items;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(AtomicFileWriter, OnlyCommittedFilesAppear) {
  testing::ScratchDir dir;
  {
    AtomicFileWriter writer(dir.file("model.bin"));
    writer.write("abc", 3);
    writer.write_zeros(5);
    EXPECT_EQ(writer.written(), 8u);
    EXPECT_EQ(dir.list().size(), 1u);  // only the hidden temporary so far
    writer.commit();
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.bin"});
  EXPECT_EQ(testing::read_bytes(dir.file("model.bin")).size(), 8u);
  {
    AtomicFileWriter abandoned(dir.file("other.bin"));
    abandoned.write("x", 1);
  }  // destroyed without commit: nothing left behind
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.bin"});
  EXPECT_THROW(AtomicFileWriter(dir.file("no/such/dir/file")), IoError);
}

TEST(RunAsTeam, HelpersReadTheirPartOfAPostedRangeWhileTheyWait) {
  if (available_cores() < 2) GTEST_SKIP() << "a team needs two cores";
  std::vector<std::byte> weights(size_t(1) << 20), next(size_t(64) << 10);
  const uint64_t at_start = read_ahead_bytes();
  team_prefetch(weights.data(), weights.size());  // off a team: nothing
  EXPECT_EQ(read_ahead_bytes(), at_start);
  // Until the helper has read `bytes` more than `from` (or 20 s have passed); then a moment more,
  // in which it must read nothing further.
  const auto read_after = [](uint64_t from, uint64_t bytes) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (read_ahead_bytes() - from < bytes && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return read_ahead_bytes() - from;
  };
  set_num_threads(2);
  std::atomic<int64_t> items = 0;
  run_as_team([&] {
    uint64_t before = read_ahead_bytes();
    team_prefetch(weights.data(), weights.size());
    team_prefetch(weights.data(), weights.size());  // the same range again: not read twice
    EXPECT_EQ(read_after(before, weights.size() / 2), weights.size() / 2);  // the helper's half
    parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) { items += hi - lo; });
    before = read_ahead_bytes();
    team_prefetch(next.data(), next.size());  // a new range replaces the old
    EXPECT_EQ(read_after(before, next.size() / 2), next.size() / 2);
  });
  set_num_threads(0);
  EXPECT_EQ(items.load(), 1000);
}

}  // namespace
}  // namespace shrink
