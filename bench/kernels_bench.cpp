// Every variant of every kernel slot that runs on this machine, side by side in one run:
// fp32 GEMM and a prompt's attention (GFLOP/s), conversions and dequantization (values/s). The __ref variant of each slot
// is the baseline; the gemm_f32__ref runs only at small sizes (it is the oracle, not a contender).
//   build/release/bench/bench_kernels --benchmark_min_time=0.2 --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one command line)
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/registry.h"

namespace shrink {
namespace {

void register_gemm() {
  for (const auto& variant : gemm_f32_variants()) {
    if (!variant.runs_here(active_isa())) continue;
    const bool is_ref = std::string(variant.name).ends_with("__ref");
    for (int64_t size : {128, 512, 1024}) {
      if (is_ref && size > 128) continue;
      benchmark::RegisterBenchmark((std::string(variant.name) + "/" + std::to_string(size)).c_str(),
                                   [fn = variant.fn, size](benchmark::State& state) {
                                     flush_denormals_in_this_thread();
                                     Rng rng(1);
                                     std::vector<float> a(size_t(size * size)), b(a.size()), c(a.size());
                                     for (auto& x : a) x = rng.uniform(-1, 1);
                                     for (auto& x : b) x = rng.uniform(-1, 1);
                                     for (auto _ : state) fn(false, true, size, size, size, 1.f, a.data(), size, b.data(), size, 0.f, c.data(), size);
                                     state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(size * size * size) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
                                   })->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
}

// One head of a 512-token prompt under the causal mask, SmolLM2's width (64), in one call: what
// ops::attend hands the kernel in blocks of 64 queries. 4 * dim multiply-adds per visible score.
void register_prompt_attention() {
  constexpr int64_t kTokens = 512, kDim = 64;
  for (const auto& variant : attend_prompt_f32_variants()) {
    if (!variant.runs_here(active_isa())) continue;
    benchmark::RegisterBenchmark((std::string(variant.name) + "/512").c_str(), [fn = variant.fn](benchmark::State& state) {
      flush_denormals_in_this_thread();
      Rng rng(5);
      std::vector<float> q(size_t(kTokens * kDim)), key_blocks(q.size()), v(q.size()), y(q.size());
      for (auto* x : {&q, &key_blocks, &v})
        for (auto& e : *x) e = rng.normal();
      for (auto _ : state) fn(kTokens, q.data(), kDim, key_blocks.data(), v.data(), kDim, kTokens, kDim, 0.125f, 0, y.data(), kDim);
      const double flops = 4.0 * double(kDim) * double(kTokens * (kTokens + 1) / 2);
      state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
    })->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

template <class Fn, class Make>
void register_streaming(std::span<const KernelVariant<Fn>> variants, int64_t values, Make make_input) {
  for (const auto& variant : variants) {
    if (!variant.runs_here(active_isa())) continue;
    benchmark::RegisterBenchmark(variant.name, [fn = variant.fn, values, make_input](benchmark::State& state) {
      auto input = make_input(values);
      // f32 -> 16-bit or block formats write at most 2 bytes per value; everything else writes f32.
      constexpr bool narrow = std::is_same_v<Fn, ConvertFromF32Fn> || std::is_same_v<Fn, QuantizeBlocksFn>;
      std::vector<std::conditional_t<narrow, uint16_t, float>> output(static_cast<size_t>(values));
      for (auto _ : state) {
        fn(input.data(), output.data(), values);
        benchmark::DoNotOptimize(output.data());
      }
      state.counters["values/s"] = benchmark::Counter(double(values) * double(state.iterations()), benchmark::Counter::kIsRate);
    })->UseRealTime();
  }
}

std::vector<uint8_t> random_blocks(int64_t values, int block_size, int block_bytes, std::vector<int> scale_offsets) {
  Rng rng(2);
  const int64_t blocks = values / block_size;
  std::vector<uint8_t> bytes(size_t(blocks * block_bytes));
  for (auto& b : bytes) b = uint8_t(rng.next_u32());
  for (int64_t i = 0; i < blocks; ++i)
    for (int offset : scale_offsets) {
      const uint16_t scale = f32_to_f16(rng.normal(0.f, 0.05f));
      std::memcpy(&bytes[size_t(i * block_bytes + offset)], &scale, 2);
    }
  return bytes;
}

void register_all() {
  register_gemm();
  register_prompt_attention();
  constexpr int64_t kValues = 1 << 20;
  auto halves = [](int64_t n) { Rng rng(3); std::vector<uint16_t> v(static_cast<size_t>(n)); for (auto& x : v) x = f32_to_f16(rng.normal()); return v; };
  auto floats = [](int64_t n) { Rng rng(4); std::vector<float> v(static_cast<size_t>(n)); for (auto& x : v) x = rng.normal(); return v; };
  register_streaming(convert_f16_to_f32_variants(), kValues, halves);
  register_streaming(convert_bf16_to_f32_variants(), kValues, halves);
  register_streaming(convert_f32_to_f16_variants(), kValues, floats);
  register_streaming(convert_f32_to_bf16_variants(), kValues, floats);
  register_streaming(quantize_q8_0_variants(), kValues, floats);
  register_streaming(quantize_q4_0_variants(), kValues, floats);
  register_streaming(quantize_q4_1_variants(), kValues, floats);
  struct Format { std::span<const KernelVariant<DequantizeFn>> (*variants)(); int block, bytes; std::vector<int> scales; };
  for (const Format& f : std::vector<Format>{{dequantize_q4_0_variants, 32, 18, {0}}, {dequantize_q4_1_variants, 32, 20, {0, 2}},
                                             {dequantize_q5_0_variants, 32, 22, {0}}, {dequantize_q5_1_variants, 32, 24, {0, 2}},
                                             {dequantize_q8_0_variants, 32, 34, {0}}, {dequantize_q4_k_variants, 256, 144, {0, 2}},
                                             {dequantize_q6_k_variants, 256, 210, {208}}})
    register_streaming(f.variants(), kValues, [f](int64_t n) { return random_blocks(n, f.block, f.bytes, f.scales); });
}

}  // namespace
}  // namespace shrink

int main(int argc, char** argv) {
  shrink::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
