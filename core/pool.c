/* The worker pool for sync plugin calls (see pool.h). */
#include "pool.h"

#include <stdlib.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <uv.h>

#include "error.h"
#include "util.h"

struct assay_pool {
  uv_mutex_t lock;
  uv_cond_t cond;
  struct assay_pool_job *head, *tail;
  int queued;
  int busy;    /* queued + running; atomic, written under the lock */
  int waiting; /* workers asleep on cond */
  int stop;
  int nthreads;
  uv_thread_t *threads;
  void (*idle)(void); /* see assay_pool_set_idle */
};

static void worker(void *arg) {
  struct assay_pool *p = arg;
#ifdef __linux__
  /* Named for top -H, perf and gdb. */
  prctl(PR_SET_NAME, "assay-worker", 0, 0, 0);
#endif
  uv_mutex_lock(&p->lock);
  for (;;) {
    if ((p->head == NULL || p->stop) && p->idle != NULL) {
      void (*idle)(void) = p->idle;
      uv_mutex_unlock(&p->lock);
      idle();
      uv_mutex_lock(&p->lock);
    }
    while (p->head == NULL && !p->stop) {
      p->waiting++;
      uv_cond_wait(&p->cond, &p->lock);
      p->waiting--;
    }
    if (p->stop)
      break;
    /* One job at a time (its work function hands its result over): a slow
     * job must not hold back results that are final, nor jobs that an idle
     * worker could run. */
    struct assay_pool_job *job = p->head;
    p->head = job->next;
    if (p->head == NULL)
      p->tail = NULL;
    p->queued--;
    uv_mutex_unlock(&p->lock);
    job->next = NULL;
    job->work(job);
    uv_mutex_lock(&p->lock);
    __atomic_sub_fetch(&p->busy, 1, __ATOMIC_RELAXED);
  }
  uv_mutex_unlock(&p->lock);
}

int assay_pool_new(struct assay_pool **pp, int nthreads, char **errmsg) {
  struct assay_pool *p = assay__xcalloc(1, sizeof *p);
  if (nthreads < 1)
    nthreads = 1;
  if (uv_mutex_init(&p->lock) != 0 || uv_cond_init(&p->cond) != 0) {
    free(p);
    return assay__fail(errmsg, ASSAY_ENOMEM, "cannot create the worker pool");
  }
  p->threads = assay__xcalloc((size_t)nthreads, sizeof *p->threads);
  for (int i = 0; i < nthreads; i++) {
    int rc = uv_thread_create(&p->threads[i], worker, p);
    if (rc != 0) {
      p->nthreads = i;
      assay_pool_free(p, NULL);
      return assay__fail(errmsg, ASSAY_ENOMEM,
                         "cannot start worker thread %d of %d: %s", i + 1,
                         nthreads, uv_strerror(rc));
    }
    p->nthreads = i + 1;
  }
  *pp = p;
  return 0;
}

void assay_pool_set_idle(struct assay_pool *p, void (*idle)(void)) {
  uv_mutex_lock(&p->lock);
  p->idle = idle;
  uv_mutex_unlock(&p->lock);
}

void assay_pool_submit(struct assay_pool *p, struct assay_pool_job *job) {
  job->next = NULL;
  assay_pool_submit_list(p, job, job, 1, 0);
}

void assay_pool_submit_list(struct assay_pool *p, struct assay_pool_job *head,
                            struct assay_pool_job *tail, int n, int cap) {
  if (n <= 0)
    return;
  tail->next = NULL;
  uint64_t now = uv_hrtime();
  for (struct assay_pool_job *j = head; j != NULL; j = j->next)
    j->queued_at = now;
  uv_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = head;
  else
    p->head = head;
  p->tail = tail;
  p->queued += n;
  __atomic_add_fetch(&p->busy, n, __ATOMIC_RELAXED);
  /* Wake only workers that sleep, and no more than there is work for; a
   * busy worker finds the jobs when it comes back for more. */
  int wake = p->waiting < n ? p->waiting : n;
  if (cap > 0) {
    int awake = p->nthreads - p->waiting;
    int room = awake == 0 ? 1 : cap - awake;
    if (wake > room)
      wake = room > 0 ? room : 0;
  }
  uv_mutex_unlock(&p->lock);
  if (wake == 1)
    uv_cond_signal(&p->cond);
  else if (wake > 1)
    uv_cond_broadcast(&p->cond);
}

int assay_pool_nudge(struct assay_pool *p, uint64_t max_wait_ns) {
  uv_mutex_lock(&p->lock);
  int wake = p->head != NULL && p->waiting > 0 &&
             uv_hrtime() - p->head->queued_at > max_wait_ns;
  int queued = p->queued;
  uv_mutex_unlock(&p->lock);
  if (wake)
    uv_cond_signal(&p->cond);
  return queued;
}

int assay_pool_idle(struct assay_pool *p) {
  int n = p->nthreads - __atomic_load_n(&p->busy, __ATOMIC_RELAXED);
  return n > 0 ? n : 0;
}

int assay_pool_busy(struct assay_pool *p) {
  uv_mutex_lock(&p->lock);
  int n = p->busy;
  uv_mutex_unlock(&p->lock);
  return n;
}

void assay_pool_free(struct assay_pool *p, struct assay_pool_job **dropped) {
  if (p == NULL)
    return;
  uv_mutex_lock(&p->lock);
  p->stop = 1;
  if (dropped != NULL)
    *dropped = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->lock);
  for (int i = 0; i < p->nthreads; i++)
    uv_thread_join(&p->threads[i]);
  uv_cond_destroy(&p->cond);
  uv_mutex_destroy(&p->lock);
  free(p->threads);
  free(p);
}
