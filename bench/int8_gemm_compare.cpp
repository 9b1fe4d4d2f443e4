// int8 GEMM side by side in one run: shrink's u8 x s8 GEMM (the kernel the registry picks here,
// f32 epilogue with per-channel scales), OpenBLAS sgemm (loaded by shrink with its best core
// type), and oneDNN 2.6.3's u8 x s8 -> f32 matmul with per-channel scales and its f32 matmul.
// Weights are packed or reordered outside the timing (standard inference practice); activations
// are already quantized for the int8 rows; "+quant" times shrink's whole dynamic path as
// DynamicQuantLinear runs it (PackedInt8Matrix::matmul_dynamic: the rows quantized in parallel,
// then the GEMM).
// The rows are measured in turn within each of 11 rounds (the host's minute-to-minute swings hit
// them alike); each row's median over the rounds is printed, and the ratios at the bottom are the
// medians of the rounds' own ratios. Where the CPU has AVX512-VNNI, the GEMMs with more than one
// row are also put against the vpdpbusd ceiling measured before and after their rows
// (measure_vnni_dot_peak). Usage: bench_int8_compare [threads]
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <omp.h>
#include <string>
#include <utility>
#include <vector>

#include "shrink/core/parallel.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/openblas.h"
#include "shrink/kernels/registry.h"
#include "shrink/quant/int8_linear.h"

namespace {

// A call to time and how many calls make one measurement (~0.1 s).
struct Row {
  Row(const char* what_, std::function<void()> call_) : what(what_), call(std::move(call_)) {}
  const char* what;
  std::function<void()> call;
  int calls = 1;
  std::vector<double> seconds;  // per call, one per round
};

constexpr int kRounds = 11;

void measure_in_turn(std::vector<Row>& rows) {
  for (Row& r : rows) {
    r.call();  // warm up (weights reordered, buffers touched)
    const double once = std::max(shrink::median_seconds(1, [&](int) { r.call(); }), 1e-7);
    r.calls = std::max(1, int(0.1 / once));
  }
  for (int round = 0; round < kRounds; ++round)
    for (Row& r : rows) r.seconds.push_back(shrink::median_seconds(r.calls, [&](int) { r.call(); }));
}

// The median over the rounds of row a's time / row b's time.
double median_ratio(const Row& a, const Row& b) {
  std::vector<double> ratios;
  for (size_t i = 0; i < a.seconds.size(); ++i) ratios.push_back(a.seconds[i] / b.seconds[i]);
  return shrink::median(std::move(ratios));
}

// The int8 weights (n x k) with one scale for every channel, as DynamicQuantLinear holds them.
shrink::PackedInt8Matrix packed_int8_matrix(const std::vector<int8_t>& wq, int64_t n, int64_t k, float scale) {
  shrink::Tensor q = shrink::Tensor::uninitialized(shrink::Shape{n, k}, shrink::DType::i8);
  shrink::Tensor scales = shrink::Tensor::uninitialized(shrink::Shape{n}, shrink::DType::f32);
  std::copy(wq.begin(), wq.end(), q.mutable_data<int8_t>());
  std::fill_n(scales.mutable_data<float>(), n, scale);
  return shrink::PackedInt8Matrix(q, scales);
}

void compare(int64_t m, int64_t n, int64_t k, dnnl::engine& engine, dnnl::stream& stream) {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  shrink::Rng rng(1);
  std::vector<float> x(size_t(m * k)), w(size_t(n * k)), out(size_t(m * n));
  for (auto& v : x) v = rng.normal();
  for (auto& v : w) v = rng.normal(0.f, 0.05f);
  std::vector<int8_t> wq(size_t(n * k));
  for (auto& v : wq) v = int8_t(int(rng.below(255)) - 127);
  // On a cache line, as PackedInt8Matrix's weights are (weight_arena): a std::vector's 16-byte
  // alignment split every 64-byte tile row of the AMX kernel in two (1024^3 ran 1.25x slower).
  const size_t packed_bytes = (shrink::int8_packed_bytes(n, k) + 63) / 64 * 64;
  const std::unique_ptr<int8_t, decltype(&std::free)> packed_memory(
      static_cast<int8_t*>(std::aligned_alloc(64, packed_bytes)), &std::free);
  int8_t* packed = packed_memory.get();
  std::vector<int32_t> sums(static_cast<size_t>(n));
  shrink::pack_int8_weights(wq.data(), n, k, packed, sums.data());
  const int64_t lda = shrink::int8_padded_k(k);
  std::vector<uint8_t> a(size_t(m * lda));
  std::vector<float> a_scale(static_cast<size_t>(m)), b_scale(static_cast<size_t>(n), 0.01f);
  std::vector<int32_t> a_zero(static_cast<size_t>(m));
  const auto& table = shrink::kernels();
  table.quantize_rows_u8(x.data(), m, k, k, a.data(), lda, a_scale.data(), a_zero.data());
  shrink::Int8Epilogue e;
  e.a_scale = a_scale.data();
  e.a_zero = a_zero.data();
  e.b_scale = b_scale.data();
  e.b_col_sums = sums.data();
  e.out_f32 = out.data();
  e.ldo = n;

  std::vector<Row> rows;
  rows.push_back({"shrink gemm_u8s8", [&] { table.gemm_u8s8(m, n, k, a.data(), lda, packed, e); }});
  const shrink::PackedInt8Matrix matrix = packed_int8_matrix(wq, n, k, 0.01f);
  rows.push_back({"shrink gemm_u8s8 +quant", [&] { matrix.matmul_dynamic(x.data(), m, k, nullptr, out.data(), n); }});
  rows.push_back({"OpenBLAS sgemm", [&] {
                    table.gemm_f32(false, true, m, n, k, 1.f, x.data(), k, w.data(), k, 0.f, out.data(), n);
                  }});
  // oneDNN's primitives and memories live here for the whole measurement.
  struct OneDnn {
    matmul primitive;
    memory weights, src, dst;
  };
  std::vector<std::unique_ptr<OneDnn>> kept;
  auto onednn = [&](dt src_type, dt weight_type, bool scales) -> std::function<void()> {
    memory::desc src_md({m, k}, src_type, tag::ab), weights_any({k, n}, weight_type, tag::any), dst_md({m, n}, dt::f32, tag::ab);
    primitive_attr attr;
    if (scales) attr.set_output_scales(2, std::vector<float>(size_t(n), 0.01f));
    matmul::primitive_desc pd(matmul::desc(src_md, weights_any, dst_md), attr, engine);
    matmul primitive(pd);
    // The same operands as shrink's rows (constant ones had been oneDNN's before 2026-12-02).
    memory plain({{k, n}, weight_type, tag::ab}, engine), weights(pd.weights_desc(), engine);
    memory src(src_md, engine), dst(dst_md, engine);
    if (weight_type == dt::s8) {
      auto* to = static_cast<int8_t*>(plain.get_data_handle());
      for (int64_t j = 0; j < n; ++j)
        for (int64_t kk = 0; kk < k; ++kk) to[kk * n + j] = wq[size_t(j * k + kk)];
      auto* a_to = static_cast<uint8_t*>(src.get_data_handle());
      for (int64_t i = 0; i < m; ++i) std::memcpy(a_to + i * k, a.data() + i * lda, size_t(k));
    } else {
      auto* to = static_cast<float*>(plain.get_data_handle());
      for (int64_t j = 0; j < n; ++j)
        for (int64_t kk = 0; kk < k; ++kk) to[kk * n + j] = w[size_t(j * k + kk)];
      std::memcpy(src.get_data_handle(), x.data(), x.size() * sizeof(float));
    }
    reorder(plain, weights).execute(stream, plain, weights);
    stream.wait();
    kept.push_back(std::make_unique<OneDnn>(OneDnn{primitive, weights, src, dst}));
    OneDnn* o = kept.back().get();
    return [o, &stream] {
      o->primitive.execute(stream, {{DNNL_ARG_SRC, o->src}, {DNNL_ARG_WEIGHTS, o->weights}, {DNNL_ARG_DST, o->dst}});
      stream.wait();
    };
  };
  rows.push_back({"oneDNN u8s8->f32 +scales", onednn(dt::u8, dt::s8, true)});
  rows.push_back({"oneDNN f32", onednn(dt::f32, dt::f32, false)});
  // The compute ceiling, measured beside the rows (0 without VNNI): GEMMs with rows to reuse the
  // weights are held to it; the M = 1 rows read each weight once and are held to memory.
  const double peak_before = m > 1 ? shrink::measure_vnni_dot_peak() : 0;
  measure_in_turn(rows);
  const double peak = std::max(peak_before, m > 1 ? shrink::measure_vnni_dot_peak() : 0);

  const double ops = 2.0 * double(m) * double(n) * double(k);
  const double ours = shrink::median(rows[0].seconds);
  std::printf("\nM=%lld N=%lld K=%lld\n", (long long)m, (long long)n, (long long)k);
  std::printf("  %-26s %12s %10s %16s %14s\n", "", "time", "GOP/s", "weights GB/s", "vs shrink");
  for (const Row& r : rows) {
    const double t = shrink::median(r.seconds);
    std::printf("  %-26s %10.1f us %10.1f %16.1f %13.2fx\n", r.what, t * 1e6, ops / t / 1e9, double(n * k) / t / 1e9,
                t / ours);
  }
  std::printf("  shrink int8 vs OpenBLAS sgemm: %.2fx   vs oneDNN int8: %.2fx (medians of the %d rounds' ratios)\n",
              median_ratio(rows[2], rows[0]), median_ratio(rows[3], rows[0]), kRounds);
  if (peak > 0)
    std::printf("  VNNI peak (vpdpbusd chains on every thread, the higher of before and after): %.1f GOP/s;"
                " shrink at %.1f%%, oneDNN int8 at %.1f%% of it\n",
                peak / 1e9, 100 * ops / ours / peak, 100 * ops / shrink::median(rows[3].seconds) / peak);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : shrink::num_threads();
  shrink::set_num_threads(threads);
  omp_set_num_threads(threads);  // oneDNN's Debian build runs on OpenMP
  const auto& blas = shrink::openblas();
  std::printf("threads %d | ISA %s | OpenBLAS core %s (%s) | oneDNN %d.%d.%d\n", threads,
              std::string(shrink::isa_name(shrink::active_isa())).c_str(), blas.core_name.c_str(),
              blas.coretype_source.c_str(), dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  compare(1024, 1024, 1024, engine, stream);
  compare(256, 4096, 4096, engine, stream);
  compare(64, 4096, 4096, engine, stream);
  compare(1, 4096, 4096, engine, stream);
  compare(1, 1536, 576, engine, stream);
  return 0;
}
