// DRAM read bandwidth: OpenMP threads sum a 1 GiB float buffer (far larger than any cache), best of
// several passes. Build: gcc -O3 -march=native -fopenmp membw.c -o membw; run with OMP_NUM_THREADS.
// Prints one JSON line: {"bytes":..., "threads":..., "passes":..., "bestGBps":..., "medianGBps":...}
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  size_t bytes = (argc > 1 ? strtoull(argv[1], 0, 10) : 1024) << 20;  // MiB
  int passes = argc > 2 ? atoi(argv[2]) : 10;
  size_t n = bytes / sizeof(float) / 64 * 64;
  float *a = aligned_alloc(64, bytes);
  if (!a) return 1;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023) * 1e-3f;  // first touch by the reading thread
  double gbps[64];
  if (passes > 64) passes = 64;
  volatile float sink = 0;
  for (int p = 0; p < passes; p++) {
    double t0 = now();
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      // 64 independent sums (4 AVX-512 registers): the loop is bound by memory, not by add latency
      float acc[64] = {0};
#pragma omp for schedule(static)
      for (size_t i = 0; i < n; i += 64)
        for (int j = 0; j < 64; j++) acc[j] += a[i + j];
      for (int j = 0; j < 64; j++) total += acc[j];
    }
    double dt = now() - t0;
    sink += total;
    gbps[p] = bytes / dt / 1e9;
  }
  double sorted[64];
  memcpy(sorted, gbps, sizeof(double) * passes);
  qsort(sorted, passes, sizeof(double), cmp);
  printf("{\"bytes\":%zu,\"threads\":%d,\"passes\":%d,\"bestGBps\":%.2f,\"medianGBps\":%.2f}\n", bytes,
         omp_get_max_threads(), passes, sorted[passes - 1], sorted[passes / 2]);
  return sink == 12345.f;  // keeps the sums alive
}
