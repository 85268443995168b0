/*
 * bench/pingpong: what one cache line costs to move between two CPUs.
 *
 * Two threads, pinned to CPUs 0 and 1, hand one cache line back and forth
 * 200,000 times; prints the nanoseconds per round trip (two transfers).
 * assay's sync path moves each item between the loop thread and a worker,
 * so its CPU time follows this number (bench/ANALYSIS.md, "Session 5"):
 * about 100 ns when the two CPUs share a cache, several hundred when they
 * do not, which on a virtual machine can change from one hour to the next.
 * bench/run prints it beside the CPU path's runs. Exits 1 with no output on
 * a machine with one CPU.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 200000 };

static _Alignas(64) atomic_int ball;

static int pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *partner(void *arg) {
  (void)arg;
  pin(1);
  for (int i = 0; i < ROUNDS; i++) {
    while (atomic_load_explicit(&ball, memory_order_acquire) != 1)
      ;
    atomic_store_explicit(&ball, 0, memory_order_release);
  }
  return NULL;
}

int main(void) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || pin(0) != 0)
    return 1;
  pthread_t t;
  if (pthread_create(&t, NULL, partner, NULL) != 0)
    return 1;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < ROUNDS; i++) {
    atomic_store_explicit(&ball, 1, memory_order_release);
    while (atomic_load_explicit(&ball, memory_order_acquire) != 0)
      ;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  pthread_join(t, NULL);
  double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 +
              (double)(b.tv_nsec - a.tv_nsec);
  printf("%.0f\n", ns / ROUNDS);
  return 0;
}
