/*
 * bench/pagefault: what the first touch of a page of memory costs.
 *
 * Maps 4,000 fresh anonymous pages and writes one byte to each; prints the
 * microseconds per page (the median of 5 rounds, each on new pages). A
 * process pays this for every page it touches for the first time: its
 * libraries' data, its heap, each connection's buffers. It is a fraction of
 * a microsecond on bare metal, but on a virtual machine whose host backs
 * guest memory lazily it can be 10-40 us, and then it, not the code, is
 * most of a short run's start-up and of the first round of 1,000
 * connections (bench/ANALYSIS.md, "Session 7"). bench/run prints it beside
 * those results.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

enum { PAGES = 4000, ROUNDS = 5 };

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  double per[ROUNDS];
  size_t len = (size_t)PAGES * 4096;
  for (int r = 0; r < ROUNDS; r++) {
    volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      perror("pagefault: mmap");
      return 1;
    }
    /* No huge pages: they would turn 512 faults into one. */
    madvise((void *)p, len, MADV_NOHUGEPAGE);
    double t0 = now_us();
    for (size_t i = 0; i < PAGES; i++)
      p[i * 4096] = 1;
    per[r] = (now_us() - t0) / PAGES;
    munmap((void *)p, len);
  }
  qsort(per, ROUNDS, sizeof per[0], cmp);
  printf("%.2f\n", per[ROUNDS / 2]);
  return 0;
}
