/*
 * A bounded pool of worker threads for sync plugin calls. Jobs are queued
 * from the loop thread and run in FIFO order; a job's work function runs on a
 * worker and reports back to the loop by itself (the engine posts its
 * completion to its inbox), so the pool knows nothing of the loop.
 */
#ifndef ASSAY_POOL_H
#define ASSAY_POOL_H

#include <stdint.h>

struct assay_pool_job {
  void (*work)(struct assay_pool_job *job); /* runs on a worker thread */
  struct assay_pool_job *next;              /* the pool's queue link */
  uint64_t queued_at;                       /* uv_hrtime() when queued */
};

struct assay_pool;

/* Starts nthreads workers (at least 1), each running one queued job at a
 * time. Returns 0 or a negative code. */
int assay_pool_new(struct assay_pool **p, int nthreads, char **errmsg);

/* Makes each worker call idle() (without the pool's lock) when it finds
 * the queue empty, before it sleeps, and before it exits: for work that
 * holds results back while more jobs wait (see the engine's post_later). */
void assay_pool_set_idle(struct assay_pool *p, void (*idle)(void));

/* Queues job (borrowed until its work function has returned). Any thread. */
void assay_pool_submit(struct assay_pool *p, struct assay_pool_job *job);

/*
 * Queues a list of n jobs linked through next, under one lock. With cap >
 * 0, wakes workers only while fewer than cap are awake (at least one):
 * for jobs known to be quick, where a worker that is already running takes
 * them sooner than a sleeping one wakes, and the thread that submits them
 * needs a core too. assay_pool_nudge() then makes sure none waits long.
 */
void assay_pool_submit_list(struct assay_pool *p, struct assay_pool_job *head,
                            struct assay_pool_job *tail, int n, int cap);

/* Wakes a sleeping worker when the oldest queued job has waited more than
 * max_wait_ns. Returns the number of jobs still queued. */
int assay_pool_nudge(struct assay_pool *p, uint64_t max_wait_ns);

/* Workers with no job queued for them, as last seen: a hint, not a
 * promise. Any thread, without the lock. */
int assay_pool_idle(struct assay_pool *p);

/* Jobs queued or running. Any thread. */
int assay_pool_busy(struct assay_pool *p);

/* Drops the jobs not yet started (returned as a list through *dropped, may
 * be NULL), waits for running ones to return, joins the workers, frees p. */
void assay_pool_free(struct assay_pool *p, struct assay_pool_job **dropped);

#endif
