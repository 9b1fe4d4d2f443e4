// Scratch: AMX u8s8 GEMM loop variants head to head (not part of the project).
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

struct alignas(64) Cfg { uint8_t palette = 1, start = 0, r[14] = {}; uint16_t colsb[16] = {}; uint8_t rows[16] = {}; };
static void cfg() { Cfg c; for (int t = 0; t < 8; ++t) { c.rows[t] = 16; c.colsb[t] = 64; } _tile_loadconfig(&c); }

static inline void epilogue(const int32_t* c, float* out, int64_t ldo, int rows, const float* scale) {
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < 2; ++h) {
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + r * 32 + 16 * h)), _mm512_loadu_ps(scale + 16 * h));
      _mm512_storeu_ps(out + r * ldo + 16 * h, v);
    }
}

template <int PFA, int PFB>
static inline void block(const uint8_t* a0, const uint8_t* a1, int64_t a_step, int64_t a_stride, const int8_t* b0,
                         const int8_t* b1, int64_t steps, int32_t* c, bool zero) {
  if (zero) { _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); }
  else { _tile_loadd(0, c, 128); _tile_loadd(1, c + 16, 128); _tile_loadd(2, c + 512, 128); _tile_loadd(3, c + 528, 128); }
  for (int64_t s = 0; s < steps; ++s) {
    if (PFB) for (int l = 0; l < 16; ++l) {
        _mm_prefetch((const char*)(b0 + (s + PFB) * 1024 + l * 64), _MM_HINT_T0);
        _mm_prefetch((const char*)(b1 + (s + PFB) * 1024 + l * 64), _MM_HINT_T0);
      }
    if (PFA) for (int l = 0; l < 16; ++l) {
        _mm_prefetch((const char*)(a0 + (s + PFA) * a_step + l * 64), _MM_HINT_T0);
        _mm_prefetch((const char*)(a1 + (s + PFA) * a_step + l * 64), _MM_HINT_T0);
      }
    _tile_loadd(4, a0 + s * a_step, a_stride);
    _tile_loadd(6, b0 + s * 1024, 64);
    _tile_loadd(5, a1 + s * a_step, a_stride);
    _tile_loadd(7, b1 + s * 1024, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_stored(0, c, 128); _tile_stored(1, c + 16, 128); _tile_stored(2, c + 512, 128); _tile_stored(3, c + 528, 128);
}

struct Problem {
  int64_t M, N, K;
  std::vector<uint8_t> a, ap;  // ap: [M/16][K/64][16][64]
  std::vector<int8_t> b;       // [N/16][K/4][64]
  std::vector<float> out, scale;
};

enum Variant { PACKED, PF_B1, PF_A1, PF_AB1, PF_AB2, ROWS_PF_B1, ROWS_PF_AB1, NO_EPI, NVAR };
const char* names[] = {"A packed", "pf B 1", "pf A 1", "pf A+B 1", "pf A+B 2", "rows outer, pf B 1", "rows outer, pf A+B 1", "pf B 1, no epilogue"};

static void pack_a(Problem& p) {
  const int64_t steps = p.K / 64;
#pragma omp parallel for
  for (int64_t t = 0; t < p.M / 16; ++t)
    for (int64_t s = 0; s < steps; ++s)
      for (int r = 0; r < 16; ++r) std::memcpy(&p.ap[((t * steps + s) * 16 + r) * 64], &p.a[(t * 16 + r) * p.K + s * 64], 64);
}

static void run(Problem& p, Variant v) {
  const int64_t steps = p.K / 64, pairs = p.N / 32, rblocks = p.M / 32;
  pack_a(p);
#pragma omp parallel
  {
    cfg();
    alignas(64) int32_t c[1024];
    const int T = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t first = pairs * id / T, last = pairs * (id + 1) / T;
    auto do_block = [&](int64_t rb, int64_t pair) {
      const uint8_t* a0 = &p.ap[2 * rb * steps * 1024];
      const uint8_t* a1 = a0 + steps * 1024;
      const int8_t* b0 = &p.b[2 * pair * steps * 1024];
      const int8_t* b1 = b0 + steps * 1024;
      switch (v) {
        case PACKED: block<0, 0>(a0, a1, 1024, 64, b0, b1, steps, c, true); break;
        case PF_B1: case ROWS_PF_B1: case NO_EPI: block<0, 1>(a0, a1, 1024, 64, b0, b1, steps, c, true); break;
        case PF_A1: block<1, 0>(a0, a1, 1024, 64, b0, b1, steps, c, true); break;
        case PF_AB1: case ROWS_PF_AB1: block<1, 1>(a0, a1, 1024, 64, b0, b1, steps, c, true); break;
        case PF_AB2: block<2, 2>(a0, a1, 1024, 64, b0, b1, steps, c, true); break;
        default: break;
      }
      if (v != NO_EPI) epilogue(c, &p.out[rb * 32 * p.N + pair * 32], p.N, 32, &p.scale[pair * 32]);
      else p.out[rb * 32 * p.N + pair * 32] = float(c[0]);
    };
    if (v == ROWS_PF_B1 || v == ROWS_PF_AB1) {
      for (int64_t rb = 0; rb < rblocks; ++rb)
        for (int64_t pair = first; pair < last; ++pair) do_block(rb, pair);
    } else {
      for (int64_t pair = first; pair < last; ++pair)
        for (int64_t rb = 0; rb < rblocks; ++rb) do_block(rb, pair);
    }
    _tile_release();
  }
}

static double ceiling_ops(int threads) {  // tdpbusd on resident tiles
  double secs = 0;
  const int64_t iters = 200000;
#pragma omp parallel num_threads(threads)
  {
    cfg();
    alignas(64) static thread_local int8_t buf[1024] = {};
    _tile_loadd(4, buf, 64); _tile_loadd(5, buf, 64); _tile_loadd(6, buf, 64); _tile_loadd(7, buf, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
#pragma omp barrier
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) { _tile_dpbusd(0, 4, 6); _tile_dpbusd(1, 4, 7); _tile_dpbusd(2, 5, 6); _tile_dpbusd(3, 5, 7); }
    alignas(64) int32_t c[256];
    _tile_stored(0, c, 64);
    auto t1 = std::chrono::steady_clock::now();
#pragma omp master
    secs = std::chrono::duration<double>(t1 - t0).count();
    _tile_release();
  }
  return 2.0 * 16 * 16 * 64 * 4 * iters * threads / secs;
}

int main(int argc, char** argv) {
  syscall(SYS_arch_prctl, 0x1023, 18);
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  omp_set_num_threads(threads);
  std::printf("threads %d | tdpbusd ceiling %.0f GOP/s\n", threads, ceiling_ops(threads) / 1e9);
  const int64_t shapes[][3] = {{1024, 1024, 1024}, {256, 4096, 4096}, {64, 4096, 4096}};
  for (auto& s : shapes) {
    Problem p{s[0], s[1], s[2]};
    p.a.resize(p.M * p.K); p.ap.resize(p.M * p.K); p.b.resize(p.N * p.K); p.out.resize(p.M * p.N); p.scale.assign(p.N, 0.5f);
    for (size_t i = 0; i < p.a.size(); ++i) p.a[i] = uint8_t(i * 7 % 128);
    for (size_t i = 0; i < p.b.size(); ++i) p.b[i] = int8_t(i * 13 % 255 - 127);
    std::printf("M=%ld N=%ld K=%ld\n", p.M, p.N, p.K);
    std::vector<float> ref;
    for (int v = 0; v < NVAR; ++v) {
      std::vector<double> t;
      for (int rep = 0; rep < 9; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        run(p, Variant(v));
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      if (v == 0) ref = p.out;
      const bool same = v == NO_EPI || p.out == ref;
      std::printf("  %-28s %9.1f us %8.0f GOP/s %s\n", names[v], t[4] * 1e6, 2.0 * p.M * p.N * p.K / t[4] / 1e9, same ? "" : "MISMATCH");
    }
  }
}
