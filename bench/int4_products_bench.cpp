// The int4 products of one decoded SmolLM2-135M token alone, in each decode layout, alternating
// (4-row panels, and the row blocks of the kernel that runs: 16 rows with AVX512-VNNI, else 8):
// 30 layers of q/k/v (one set), o, gate/up (one set) and down with random weights (59 MB at
// groups of 64, 128 for down's k = 1536, as a g128 file decodes), each set split over a
// run_as_team team as ops/linear.cpp splits it, and a plain read of the same bytes in the same
// shares for the limit of such short streams. Prints each round's times and the medians, with
// the ratio of the medians of the rounds' own ratios.
// Usage: bench_int4_products [rounds] [layers] [group]   (group 32: every layer at groups of 32)
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "kernels/int4_decode_layout.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/kernels/registry.h"

namespace {
using namespace shrink;

// One product set: layers of one input width decoded together.
struct Set {
  std::vector<Int4Storage> storage;
  std::vector<Int4DecodeLayout> layouts[2];  // panels, row blocks
  int64_t k = 0, group = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 30, layers = argc > 2 ? std::atoi(argv[2]) : 30;
  const int64_t group = argc > 3 ? std::atoi(argv[3]) : 64;
  if (rounds < 1 || layers < 1 || (group != 32 && group != 64)) {
    fmt::print(stderr, "usage: bench_int4_products [rounds >= 1] [layers >= 1] [group 32|64]\n");
    return 2;
  }
  // The row blocks of the kernel that runs here: 16 rows with AVX512-VNNI, 8 with AVX2.
  const bool vnni = active_isa() >= Isa::vnni;
  if (active_isa() < Isa::avx2) fmt::print("no AVX2 here: both layouts run the reference kernel\n");
  Rng rng(5);
  std::vector<Set> sets;
  size_t bytes = 0;
  const auto add = [&](std::vector<int64_t> ns, int64_t k, int64_t g) {
    Set s;
    s.k = k, s.group = g;
    for (int64_t n : ns) {
      Int4Storage w;
      w.n = n, w.k = k, w.group = g;
      w.nibbles.resize(size_t(n * k / 2));
      for (auto& b : w.nibbles) b = uint8_t(rng.next_u32());
      for (int64_t i = 0; i < n * k / g; ++i) {
        w.scales.push_back(uint16_t(0x2000 + rng.below(512)));
        w.mins.push_back(uint16_t(0xa000 + rng.below(512)));
      }
      bytes += w.nibbles.size() + 4 * w.scales.size();
      s.storage.push_back(std::move(w));
    }
    sets.push_back(std::move(s));
  };
  for (int l = 0; l < layers; ++l) {
    add({576, 192, 192}, 576, group);
    add({576}, 576, group);
    add({1536, 1536}, 576, group);
    add({576}, 1536, group == 32 ? 32 : 128);
  }
  // Each layout made for all layers in turn, in graph order, as the decoder makes them.
  const Int4DecodeForm forms[2] = {Int4DecodeForm::panels,
                                   vnni ? Int4DecodeForm::row_blocks_16 : Int4DecodeForm::row_blocks_8};
  for (int f = 0; f < 2; ++f)
    for (Set& s : sets)
      for (const Int4Storage& w : s.storage) s.layouts[f].push_back(make_int4_decode_layout(w.view(), forms[f]));

  std::vector<float> x(1536), y(1536);
  for (float& v : x) v = rng.normal();
  std::vector<int8_t> q(1536);
  std::vector<int32_t> sums(1536 / 32);
  float scale = 0;
  std::atomic<uint64_t> sink{0};
  const auto& table = kernels();
  // One pass over every set: the products from layout `form` (0 panels, 1 row blocks) or, with
  // read = true, a plain read of that layout's bytes.
  const auto pass = [&](int form, bool read) {
    for (Set& s : sets) {
      const std::vector<Int4DecodeLayout>& layout = s.layouts[form];
      const int64_t unit = int4_slice_rows(layout[0].weights);
      std::vector<int64_t> first{0};
      for (const auto& l : layout) first.push_back(first.back() + (l.weights.n + unit - 1) / unit);
      if (!read) table.quantize_rows_s8(x.data(), 1, s.k, s.group, q.data(), &scale, sums.data());
      static ThreadSpeeds speeds[3][4];
      ThreadSpeeds& balance = speeds[read ? 2 : form][(&s - sets.data()) % 4];
      parallel_for_balanced(0, first.back(), 1, balance, [&](int64_t s0, int64_t s1) {
        uint64_t sum = 0;
        for (size_t i = 0; i < layout.size(); ++i) {
          const Int4Weights& w = layout[i].weights;
          const int64_t lo = unit * (std::max(s0, first[i]) - first[i]);
          const int64_t hi = std::min(w.n, unit * (std::min(s1, first[i + 1]) - first[i]));
          if (lo >= hi) continue;
          if (!read) {
            table.gemm_q4s8(1, q.data(), &scale, sums.data(), int4_rows(w, lo, hi), nullptr, y.data() + lo, w.n);
            continue;
          }
          const size_t from = size_t(lo) * layout[i].memory.size() / size_t(w.n);
          const size_t to = size_t(hi) * layout[i].memory.size() / size_t(w.n);
          const auto* p = reinterpret_cast<const uint64_t*>(layout[i].memory.data() + from);
          for (size_t e = 0; e < (to - from) / 8; e += 8) sum += p[e];  // a word a line
        }
        sink += sum;
      });
    }
  };
  std::vector<double> times[3];
  run_as_team([&] {
    for (int r = 0; r < 3; ++r)
      for (int form = 0; form < 3; ++form) pass(form == 2 ? 1 : form, form == 2);
    for (int r = 0; r < rounds; ++r)
      for (int j = 0; j < 3; ++j) {
        const int form = (r % 2 ? 2 - j : j);  // the order turned every round
        const auto t0 = std::chrono::steady_clock::now();
        pass(form == 2 ? 1 : form, form == 2);
        times[form].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
  });
  std::vector<double> ratio;
  for (int r = 0; r < rounds; ++r) ratio.push_back(times[0][size_t(r)] / times[1][size_t(r)]);
  const double gb = double(bytes) / 1e9;
  fmt::print("{} sets, {:.1f} MB of int4 weights (groups of {}), {} threads, {} rounds\n", sets.size(), gb * 1e3,
             group, num_threads(), rounds);
  fmt::print(" 4-row panels   {:7.3f} ms  {:6.1f} GB/s\n", median(times[0]) * 1e3, gb / median(times[0]));
  fmt::print("{:>2}-row blocks   {:7.3f} ms  {:6.1f} GB/s\n", vnni ? 16 : 8, median(times[1]) * 1e3,
             gb / median(times[1]));
  fmt::print(" plain read     {:7.3f} ms  {:6.1f} GB/s  (the row blocks' bytes, in the same shares)\n",
             median(times[2]) * 1e3, gb / median(times[2]));
  std::sort(ratio.begin(), ratio.end());
  fmt::print("blocks / panels speed, median of the rounds' own: {:.3f} (range {:.3f}-{:.3f})\n",
             ratio[ratio.size() / 2],
             ratio.front(), ratio.back());
  return sink.load() == 42 ? 3 : 0;  // (keeps the reads)
}
