// int8 GEMM side by side in one run: shrink's u8 x s8 GEMM (the kernel the registry picks here,
// f32 epilogue with per-channel scales), OpenBLAS sgemm (loaded by shrink with its best core
// type), and oneDNN 2.6.3's u8 x s8 -> f32 matmul with per-channel scales and its f32 matmul.
// Weights are packed or reordered outside the timing (standard inference practice); activations
// are already quantized for the int8 rows ("+quant" also times shrink's per-row quantization).
// Medians over 5 repetitions. Usage: bench_int8_compare [threads]
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <omp.h>
#include <string>
#include <vector>

#include "shrink/core/parallel.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/openblas.h"
#include "shrink/kernels/registry.h"

namespace {

// Seconds per call: median over 5 repetitions of enough calls to take ~0.2 s.
double time_call(const std::function<void()>& call) {
  const double once = std::max(shrink::median_seconds(1, [&](int) { call(); }), 1e-7);
  return shrink::median_seconds(std::max(1, int(0.2 / once)), [&](int) { call(); });
}

struct Row {
  const char* what;
  double seconds;
};

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
  std::vector<int8_t> packed(shrink::int8_packed_bytes(n, k));
  std::vector<int32_t> sums(static_cast<size_t>(n));
  shrink::pack_int8_weights(wq.data(), n, k, packed.data(), sums.data());
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
  rows.push_back({"shrink gemm_u8s8", time_call([&] { table.gemm_u8s8(m, n, k, a.data(), lda, packed.data(), e); })});
  rows.push_back({"shrink gemm_u8s8 +quant", time_call([&] {
                    table.quantize_rows_u8(x.data(), m, k, k, a.data(), lda, a_scale.data(), a_zero.data());
                    table.gemm_u8s8(m, n, k, a.data(), lda, packed.data(), e);
                  })});
  rows.push_back({"OpenBLAS sgemm", time_call([&] {
                    table.gemm_f32(false, true, m, n, k, 1.f, x.data(), k, w.data(), k, 0.f, out.data(), n);
                  })});
  auto onednn = [&](dt src_type, dt weight_type, bool scales) {
    memory::desc src_md({m, k}, src_type, tag::ab), weights_any({k, n}, weight_type, tag::any), dst_md({m, n}, dt::f32, tag::ab);
    primitive_attr attr;
    if (scales) attr.set_output_scales(2, std::vector<float>(size_t(n), 0.01f));
    matmul::primitive_desc pd(matmul::desc(src_md, weights_any, dst_md), attr, engine);
    matmul primitive(pd);
    memory plain({{k, n}, weight_type, tag::ab}, engine), weights(pd.weights_desc(), engine);
    std::memset(plain.get_data_handle(), 1, plain.get_desc().get_size());
    reorder(plain, weights).execute(stream, plain, weights);
    memory src(src_md, engine), dst(dst_md, engine);
    std::memset(src.get_data_handle(), 1, src.get_desc().get_size());
    stream.wait();
    return time_call([&] {
      primitive.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
      stream.wait();
    });
  };
  rows.push_back({"oneDNN u8s8->f32 +scales", onednn(dt::u8, dt::s8, true)});
  rows.push_back({"oneDNN f32", onednn(dt::f32, dt::f32, false)});

  const double ops = 2.0 * double(m) * double(n) * double(k);
  const double ours = rows[0].seconds, blas = rows[2].seconds, dnnl_int8 = rows[3].seconds;
  std::printf("\nM=%lld N=%lld K=%lld\n", (long long)m, (long long)n, (long long)k);
  std::printf("  %-26s %12s %10s %16s %14s\n", "", "time", "GOP/s", "weights GB/s", "vs shrink");
  for (const Row& r : rows)
    std::printf("  %-26s %10.1f us %10.1f %16.1f %13.2fx\n", r.what, r.seconds * 1e6, ops / r.seconds / 1e9,
                double(n * k) / r.seconds / 1e9, r.seconds / ours);
  std::printf("  shrink int8 vs OpenBLAS sgemm: %.2fx   vs oneDNN int8: %.2fx\n", blas / ours, dnnl_int8 / ours);
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
