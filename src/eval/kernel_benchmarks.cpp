// The measurements behind `shrink bench kernels`.
#include "shrink/eval/kernel_benchmarks.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "kernels/int4_decode_layout.h"
#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/registry.h"
#include "shrink/quant/int8_linear.h"

namespace shrink {
namespace {

std::string shape_text(int64_t m, int64_t n, int64_t k) { return fmt::format("{}x{}x{}", m, n, k); }

// A kernel's seconds per call and the fraction of the read bandwidth its `bytes` per call make,
// from 5 rounds of (probe, kernel) measured back to back; medians of each. Pairing keeps the
// host's minute-to-minute swings out of the ratio.
struct AgainstBandwidth {
  double seconds, fraction;
};
AgainstBandwidth against_bandwidth(const ReadBandwidthProbe& probe, double bytes, const std::function<double()>& seconds) {
  std::vector<double> times, fractions;
  for (int round = 0; round < 5; ++round) {
    const double bandwidth = probe.measure();
    times.push_back(seconds());
    fractions.push_back(bytes / times.back() / bandwidth);
  }
  return {median(times), median(fractions)};
}

double f32_gemm_seconds(int64_t m, int64_t n, int64_t k) {
  Rng rng(1);
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k)), c(static_cast<size_t>(m * n));
  for (auto& v : a) v = rng.normal();
  for (auto& v : b) v = rng.normal();
  return median_seconds(1, [&](int) { kernels().gemm_f32(false, true, m, n, k, 1.f, a.data(), k, b.data(), k, 0.f, c.data(), n); });
}

// int8 weights as DynamicQuantLinear holds them; `copies` > 1 rotates through copies (cold
// weights). Timed through PackedInt8Matrix::matmul_dynamic, the library's dynamic path: the rows
// quantized in parallel, then the u8 x s8 GEMM with its epilogue.
struct Int8Setup {
  std::vector<PackedInt8Matrix> weights;  // separate memory, same weights
  std::vector<float> x, out;
  int64_t m, n, k;
  size_t weight_bytes() const { return int8_packed_bytes(n, k) + 8 * size_t(n); }
};

Int8Setup make_int8(int64_t m, int64_t n, int64_t k, size_t copies) {
  Int8Setup s;
  s.m = m, s.n = n, s.k = k;
  Rng rng(2);
  Tensor q = Tensor::uninitialized(Shape{n, k}, DType::i8), scale = Tensor::uninitialized(Shape{n}, DType::f32);
  for (int8_t& v : std::span(q.mutable_data<int8_t>(), size_t(n * k))) v = int8_t(int(rng.below(255)) - 127);
  std::fill_n(scale.mutable_data<float>(), n, 0.01f);
  for (size_t c = 0; c < copies; ++c) s.weights.emplace_back(q, scale);  // copies would share the packed memory
  s.x.resize(size_t(m * k));
  for (auto& v : s.x) v = rng.normal();
  s.out.resize(size_t(m * n));
  return s;
}

double int8_seconds(Int8Setup& s, int calls) {
  return median_seconds(calls, [&](int c) {
    s.weights[size_t(c) % s.weights.size()].matmul_dynamic(s.x.data(), s.m, s.k, nullptr, s.out.data(), s.n);
  });
}

struct Int4Setup {
  std::vector<std::vector<uint8_t>> nibbles;
  std::vector<std::vector<uint16_t>> scales, mins;
  std::vector<Int4DecodeLayout> decode;  // m = 1: what Int4Linear decodes from (its layout, in 2 MB pages)
  std::vector<float> x, out, a_scale;
  std::vector<int8_t> q;
  std::vector<int32_t> sums;
  int64_t m, n, k, group;
  size_t weight_bytes() const { return size_t(n * k / 2) + 4 * size_t(n * k / group); }
  Int4Weights weights(size_t i) const {
    return decode.empty() ? Int4Weights{nibbles[i].data(), scales[i].data(), mins[i].data(), n, k, group} : decode[i].weights;
  }
};

Int4Setup make_int4(int64_t m, int64_t n, int64_t k, int64_t group, size_t copies) {
  Int4Setup s;
  s.m = m, s.n = n, s.k = k, s.group = group;
  Rng rng(3);
  for (size_t c = 0; c < copies; ++c) {
    s.nibbles.emplace_back(size_t(n * k / 2));
    for (auto& b : s.nibbles.back()) b = uint8_t(rng.next_u32());
    s.scales.emplace_back(size_t(n * k / group), f32_to_f16(0.01f));
    s.mins.emplace_back(size_t(n * k / group), f32_to_f16(-0.08f));
    if (m == 1)
      s.decode.push_back(make_int4_decode_layout({s.nibbles.back().data(), s.scales.back().data(), s.mins.back().data(), n, k, group}));
  }
  s.x.resize(size_t(m * k));
  for (auto& v : s.x) v = rng.normal();
  s.out.resize(size_t(m * n));
  s.a_scale.resize(size_t(m));
  s.q.resize(size_t(m * k));
  s.sums.resize(size_t(m * k / group));
  return s;
}

double int4_seconds(Int4Setup& s, int calls) {
  const auto& table = kernels();
  return median_seconds(calls, [&](int c) {
    const Int4Weights w = s.weights(size_t(c) % s.nibbles.size());
    table.quantize_rows_s8(s.x.data(), s.m, s.k, s.group, s.q.data(), s.a_scale.data(), s.sums.data());
    table.gemm_q4s8(s.m, s.q.data(), s.a_scale.data(), s.sums.data(), w, nullptr, s.out.data(), s.n);
  });
}

double int4_f32_seconds(Int4Setup& s, int calls) {
  return median_seconds(calls, [&](int c) {
    const size_t i = size_t(c) % s.nibbles.size();
    const Int4Weights w{s.nibbles[i].data(), s.scales[i].data(), s.mins[i].data(), s.n, s.k, s.group};
    kernels().gemm_q4f32(s.m, s.x.data(), w, nullptr, s.out.data(), s.n);
  });
}

// Dense f32 weights pruned 2:4 by magnitude, and their packed form; copies rotate (cold weights).
struct Sparse2of4Setup {
  std::vector<std::vector<float>> dense;
  std::vector<Sparse2of4Storage> packed;
  std::vector<float> x, out;
  int64_t m, n, k;
  size_t dense_bytes() const { return 4 * size_t(n * k); }
  size_t packed_bytes() const { return 4 * size_t(n * k / 2) + size_t(n * k / 8); }
};

Sparse2of4Setup make_2of4(int64_t m, int64_t n, int64_t k, size_t copies) {
  Sparse2of4Setup s;
  s.m = m, s.n = n, s.k = k;
  Rng rng(6);
  for (size_t c = 0; c < copies; ++c) {
    std::vector<float> w(static_cast<size_t>(n * k));
    for (auto& v : w) v = rng.normal();
    for (size_t g = 0; g < w.size(); g += 4) {  // zero the two smallest of each 4
      std::array<size_t, 4> order = {g, g + 1, g + 2, g + 3};
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::fabs(w[a]) < std::fabs(w[b]); });
      w[order[0]] = w[order[1]] = 0.f;
    }
    s.packed.push_back(pack_2of4(w.data(), n, k));
    s.dense.push_back(std::move(w));
  }
  s.x.resize(size_t(m * k));
  for (auto& v : s.x) v = rng.normal();
  s.out.resize(size_t(m * n));
  return s;
}

// Batch-1 (and small-batch) 2:4 sparse against the dense f32 product of the same weights.
void add_2of4_rows(KernelReport& report, size_t cold_bytes, int64_t big, const ReadBandwidthProbe& probe) {
  struct Case { int64_t m, n, k; };
  for (const Case& c : {Case{1, big, big}, Case{1, 1536, 576}, Case{1, 576, 1536}, Case{8, big, big}}) {
    const size_t copies = std::max<size_t>(2, cold_bytes / (4 * size_t(c.n * c.k)));
    Sparse2of4Setup s = make_2of4(c.m, c.n, c.k, copies);
    const int calls = int(std::max<size_t>(copies, 20));
    const AgainstBandwidth dense_run = against_bandwidth(probe, double(s.dense_bytes()), [&] {
      return median_seconds(calls, [&](int i) {
        const float* w = s.dense[size_t(i) % copies].data();
        kernels().gemm_f32(false, true, s.m, s.n, s.k, 1.f, s.x.data(), s.k, w, s.k, 0.f, s.out.data(), s.n);
      });
    });
    const double dense = dense_run.seconds;
    const double sparse = median_seconds(calls, [&](int i) {
      kernels().gemm_f32_2of4(s.m, s.x.data(), s.k, s.packed[size_t(i) % copies].view(), nullptr, s.out.data(), s.n);
    });
    const std::string shape = shape_text(c.m, c.n, c.k);
    report.rows.push_back({"fp32 dense GEMV, cold weights", shape, dense, double(s.dense_bytes()) / dense / 1e9, "GB/s",
                           dense_run.fraction, "read bandwidth"});
    report.rows.push_back({"2:4 sparse fp32, cold weights", shape, sparse, double(s.packed_bytes()) / sparse / 1e9, "GB/s",
                           dense / sparse, "dense fp32, same shape (ceiling 1.88x)"});
  }
}

}  // namespace

KernelReport run_kernel_benchmarks(bool quick, const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& text) {
    if (progress) progress(text);
  };
  KernelReport report;
  report.threads = num_threads();
  report.isa = std::string(isa_name(active_isa()));
  say("read bandwidth");
  const ReadBandwidthProbe probe(quick ? size_t(256) << 20 : size_t(1) << 30);
  report.read_bandwidth = probe.measure();

  const std::vector<std::array<int64_t, 3>> gemm_shapes =
      quick ? std::vector<std::array<int64_t, 3>>{{256, 256, 256}, {64, 1024, 1024}}
            : std::vector<std::array<int64_t, 3>>{{1024, 1024, 1024}, {256, 4096, 4096}, {64, 4096, 4096}};
  for (const auto& [m, n, k] : gemm_shapes) {
    say("GEMM " + shape_text(m, n, k));
    const double ops = 2.0 * double(m) * double(n) * double(k);
    const double f32 = f32_gemm_seconds(m, n, k);
    Int8Setup s = make_int8(m, n, k, 1);
    const double int8 = int8_seconds(s, 1);
    report.rows.push_back({"fp32 GEMM (" + std::string(kernels().chosen.front().second) + ")", shape_text(m, n, k), f32,
                           ops / f32 / 1e9, "GOP/s", 0, ""});
    report.rows.push_back({"int8 GEMM incl. activation quantization", shape_text(m, n, k), int8, ops / int8 / 1e9, "GOP/s",
                           f32 / int8, "fp32 GEMM, same shape"});
  }

  // Cold weights: rotate through copies filling several times the last-level cache (a 300 MB L3
  // held most of a fixed 256 MB, which read as 141% of the memory bandwidth).
  const size_t cold_bytes = std::max(quick ? size_t(64) << 20 : size_t(256) << 20, size_t(3 * l3_cache_bytes()));
  const int64_t big = quick ? 2048 : 4096;
  struct Gemv { int64_t n, k, group; };
  const std::vector<Gemv> int4_cases = {{big, big, 128}, {big, big, 32}, {1536, 576, 32}, {576, 1536, 32}};
  for (const Gemv& g : int4_cases) {
    say("int4 GEMV " + shape_text(1, g.n, g.k));
    const size_t copies = std::max<size_t>(2, cold_bytes / (size_t(g.n * g.k / 2) + 4 * size_t(g.n * g.k / g.group)));
    Int4Setup s = make_int4(1, g.n, g.k, g.group, copies);
    const int calls = int(std::max<size_t>(copies, 20));
    const AgainstBandwidth run = against_bandwidth(probe, double(s.weight_bytes()), [&] { return int4_seconds(s, calls); });
    report.rows.push_back({fmt::format("int4 g{} GEMV, cold weights", g.group), shape_text(1, g.n, g.k), run.seconds,
                           double(s.weight_bytes()) / run.seconds / 1e9, "GB/s", run.fraction, "read bandwidth"});
    if (g.n == big && g.group == 128) {
      const AgainstBandwidth f32 = against_bandwidth(probe, double(s.weight_bytes()), [&] { return int4_f32_seconds(s, calls); });
      report.rows.push_back({"int4 g128 x f32 GEMV, cold weights", shape_text(1, g.n, g.k), f32.seconds,
                             double(s.weight_bytes()) / f32.seconds / 1e9, "GB/s", f32.fraction, "read bandwidth"});
    }
  }
  // Hot weights: SmolLM2's decode shapes at the groups its g128 files get (k = 576 allows 64),
  // one copy resident in L2, so the time is the kernel's own: the most bytes per second the
  // cold rows could reach, whatever the memory gives (on the Sapphire Rapids host these sat near
  // the read bandwidth, so the decode there is bound by the kernel as much as by the memory).
  for (const Gemv& g : std::vector<Gemv>{{1536, 576, 64}, {576, 1536, 128}}) {
    say("int4 GEMV " + shape_text(1, g.n, g.k) + ", hot weights");
    Int4Setup s = make_int4(1, g.n, g.k, g.group, 1);
    const AgainstBandwidth run = against_bandwidth(probe, double(s.weight_bytes()), [&] { return int4_seconds(s, 200); });
    report.rows.push_back({fmt::format("int4 g{} GEMV, hot weights (L2)", g.group), shape_text(1, g.n, g.k), run.seconds,
                           double(s.weight_bytes()) / run.seconds / 1e9, "GB/s", run.fraction, "read bandwidth"});
  }
  {
    say("int8 GEMV " + shape_text(1, big, big));
    const size_t copies = std::max<size_t>(2, cold_bytes / (int8_packed_bytes(big, big) + 8 * size_t(big)));
    Int8Setup s = make_int8(1, big, big, copies);
    const int calls = int(std::max<size_t>(copies, 20));
    const AgainstBandwidth run = against_bandwidth(probe, double(s.weight_bytes()), [&] { return int8_seconds(s, calls); });
    report.rows.push_back({"int8 GEMV, cold weights", shape_text(1, big, big), run.seconds,
                           double(s.weight_bytes()) / run.seconds / 1e9, "GB/s", run.fraction, "read bandwidth"});
  }
  say("2:4 sparse fp32 GEMV");
  add_2of4_rows(report, cold_bytes, big, probe);
  {
    const int64_t m = quick ? 64 : 512;
    say("int4 prefill " + shape_text(m, big, big));
    const double f32 = f32_gemm_seconds(m, big, big);
    Int4Setup s = make_int4(m, big, big, 128, 1);
    const double t = int4_seconds(s, 1);
    const double ops = 2.0 * double(m) * double(big) * double(big);
    report.rows.push_back({"int4 g128 GEMM (prefill)", shape_text(m, big, big), t, ops / t / 1e9, "GOP/s", f32 / t,
                           "fp32 GEMM, same shape"});
  }
  {
    say("quantize to int4 g128");
    const int64_t n = 256, k = 4096;
    Rng rng(5);
    std::vector<float> w(static_cast<size_t>(n * k));
    for (auto& v : w) v = rng.normal();
    std::vector<uint8_t> nibbles(static_cast<size_t>(n * k / 2));
    std::vector<uint16_t> scales(static_cast<size_t>(n * k / 128)), mins(scales.size());
    const double t = median_seconds(5, [&](int) {
      kernels().quantize_int4(w.data(), n, k, 128, nibbles.data(), scales.data(), mins.data());
    });
    const double t_ref = median_seconds(1, [&](int) {
      quantize_int4_variants().front().fn(w.data(), n, k, 128, nibbles.data(), scales.data(), mins.data());
    });
    report.rows.push_back({"quantize to int4 g128, GPTQ (1 thread)", fmt::format("{} values", n * k), t,
                           double(n * k) / t / 1e9, "G values/s", t_ref / t, "scalar reference"});
  }
  struct Quantizer { const char* name; QuantizeBlocksFn fn; QuantizeBlocksFn reference; };
  const Quantizer quantizers[] = {{"quantize to Q8_0", kernels().quantize_q8_0, quantize_q8_0_variants().front().fn},
                                  {"quantize to Q4_0", kernels().quantize_q4_0, quantize_q4_0_variants().front().fn},
                                  {"quantize to Q4_1", kernels().quantize_q4_1, quantize_q4_1_variants().front().fn}};
  for (const Quantizer& q : quantizers) {
    say(q.name);
    const int64_t values = int64_t(1) << 20;
    Rng rng(4);
    std::vector<float> x(static_cast<size_t>(values));
    for (auto& v : x) v = rng.normal();
    std::vector<uint8_t> blocks(static_cast<size_t>(values) * 2);
    const double t = median_seconds(10, [&](int) { q.fn(x.data(), blocks.data(), values); });
    const double t_ref = median_seconds(3, [&](int) { q.reference(x.data(), blocks.data(), values); });
    report.rows.push_back({std::string(q.name) + " (1 thread)", fmt::format("{} values", values), t, double(values) / t / 1e9,
                           "G values/s", t_ref / t, "scalar reference"});
  }
  {
    // Dynamic int8's activations: 256 rows of 1024 (1 MB, in L2 as a layer's input would be).
    say("quantize activation rows to u8");
    const int64_t m = 256, k = 1024, ldq = int8_padded_k(k);
    Rng rng(6);
    std::vector<float> x(static_cast<size_t>(m * k)), scale(static_cast<size_t>(m));
    for (auto& v : x) v = rng.normal();
    std::vector<uint8_t> q(static_cast<size_t>(m * ldq));
    std::vector<int32_t> zero(static_cast<size_t>(m));
    const auto run = [&](QuantizeRowsU8Fn fn) {
      return [&, fn](int) { fn(x.data(), m, k, k, q.data(), ldq, scale.data(), zero.data()); };
    };
    const double t = median_seconds(20, run(kernels().quantize_rows_u8));
    const double t_ref = median_seconds(3, run(quantize_rows_u8_variants().front().fn));
    report.rows.push_back({"quantize activation rows to u8 (1 thread)", fmt::format("{} values", m * k), t,
                           double(m * k) / t / 1e9, "G values/s", t_ref / t, "scalar reference"});
  }
  return report;
}

}  // namespace shrink
