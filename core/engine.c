/*
 * The engine (see engine.h): admission, dispatch of sync and async calls,
 * timeouts, retries and the in-order result pipeline, all owned by one loop
 * thread.
 *
 * Calls are named by opaque 64-bit handles: [engine serial:16][generation:24]
 * [slot:24]. A slot is one call attempt's state and is reused; its generation
 * changes whenever an attempt ends, so a late or second completion carries a
 * stale handle and is recognised and dropped instead of touching memory that
 * now belongs to another call. Completions from any thread (plugins' async
 * completions and the worker pool's sync results alike) go through one
 * mutex-guarded inbox and one uv_async_t, drained whole on each wake-up.
 *
 * An abandoned call (its timeout fired) keeps its slot, and with it a
 * reference on its item, until the plugin completes it late, because an
 * async plugin may still read its input until then.
 */
#include "engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "deadline.h"
#include "error.h"
#include "http.h"
#include "jsonw.h"
#include "pool.h"
#include "util.h"

#define SLOT_BITS 24
#define GEN_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define GEN_MASK ((1u << GEN_BITS) - 1)
#define REG_BITS 6
#define REG_MAX (1 << REG_BITS)

enum { SLOT_FREE, SLOT_ACTIVE, SLOT_ABANDONED, SLOT_BACKOFF };
enum { STAGE_ABANDONED = -1, STAGE_DONE = -2, STAGE_QUEUED = -3 };

struct instance {
  struct assay_engine *e;
  int kind;
  int metric;                   /* metric index, -1 for the task */
  char *spec;
  struct assay_module *mod;
  const struct assay_component *comp;
  cJSON *config;                /* validated options with defaults */
  cJSON *map;                   /* metrics: KEY -> FIELD */
  char *score_name;
  int renamed;
  int use_async;
  int quick;                    /* ASSAY_QUICK: sync calls run on the loop
                                   (see run_quick); 0 once they proved slow */
  int quick_slow;               /* its quick calls over QUICK_MAX_US */
  void *state;
  int inited;
  uv_mutex_t serial;            /* held around run_sync unless thread-safe */
  struct assay_host host;
  /* Written by the workers: a cache line of its own, away from what they
   * read on every call. */
  _Alignas(64) long sync_us;    /* atomic: recent run_sync time (a moving
                                   average of sampled calls, us), -1
                                   before the first */
  char sync_pad[64 - sizeof(long)];
};

/* A completion travelling to the loop thread. */
struct completion {
  struct completion *next;
  uint64_t call;
  cJSON *result;
  int failed;
  int code;             /* enum assay_fail_code when failed */
  long retry_after_ms;
  char *msg;
  const char *cause;    /* retry cause for statistics, or NULL */
  int synthetic;        /* made by the host: dropped if the call had ended */
  int no_result;        /* sync: returned NULL without failing */
  int twice;            /* sync: failed or completed and also returned */
  int embedded;         /* sync: the slot's own, not allocated */
  /* Sync calls that succeeded, prepared on the worker (see render): */
  int normalized;       /* metric: result is the scores object (1), or
                           the result was bad, why says how (-1) */
  const char *why;
  char *text;           /* the output's JSON, or the scores' members */
  size_t text_len;
  char *in_text;        /* the task's input as JSON */
  size_t in_len;
  double t_end;         /* sync: when the call returned (assay__now_ms) */
  /* A deferred item (see sync_work): */
  cJSON *json;          /* the item, parsed by the worker for its task */
  int unparsed;         /* the item is malformed: no call was made */
  /* An item its worker finished (see finish_item): one block with the
   * scores' values (a double per metric), the record's line and a NUL,
   * then the id's text and a NUL when the id is a string. */
  char *fast;
  size_t fast_len;      /* the line's length */
  int id_kind;          /* 0: no id (the index stands in), 1: a number
                           (id_num), 2: a string (after the line) */
  double id_num;
  double task_ms, metrics_ms; /* as the record gives them */
};

/* A part of an item's record printed ahead, on a worker. */
struct frag {
  char *p;
  size_t n;
};

struct item;

struct slot {
  uint32_t gen;
  int state;
  uint32_t idx;
  int next_free;
  uv_timer_t timer;     /* the backoff wait before a retry */
  struct assay_deadline dl; /* the running attempt's (loop time, ms) */
  struct item *item;    /* holds a reference */
  int job;              /* 0: the task, 1 + i: metric i */
  cJSON *view;          /* metrics: the input view (owned) */
  const cJSON *input;   /* what the plugin got */
  int attempt;
  long timeout_ms;
  struct assay_pool_job pjob;
  /* A sync call's completion: the slot outlives the worker's use of it
   * (an abandoned slot waits for its late completion). */
  struct completion done;
  /* A chain (see run_chain): the task's slot, its worker running the
   * item's metrics after the task. */
  int chain;
  int stage;            /* atomic, sync calls: STAGE_QUEUED until a worker
                           takes it, then the call running, 0 the first
                           (a chain: 1 + i metric i); STAGE_DONE or
                           STAGE_ABANDONED */
  uint64_t begun;       /* sync: when a worker took it (loop clock), set
                           before stage leaves STAGE_QUEUED */
  uint64_t cap_at;      /* sync: the item's deadline (loop clock), or 0 */
  int begun_seen;       /* loop: the deadline counts from begun now */
  int skipped;          /* abandoned before a worker took it */
  int dl_stage;         /* loop: the stage the deadline is for */
  int chain_done;       /* metrics the chain ran (read after the post) */
  cJSON *chain_view;    /* the metrics' shared view the worker made */
  struct due { uint64_t at; long ms; } *due; /* per metric: its call's
                           deadline (uv_now's clock) and timeout */
};

struct item {
  int64_t seq;          /* admission order: its place in the output */
  int64_t index;        /* the dataset item's index */
  int trial;
  cJSON *id;            /* rescore: the record's id; a malformed item's, when
                           its reader could read it; owned */
  int kept_attempts;    /* rescore: the record's attempts, or -1 */
  cJSON *json;          /* the dataset item, owned */
  char *bad;            /* a malformed item's message */
  cJSON *output;        /* task output, owned */
  cJSON *view;          /* metrics without --map: their shared input view
                           (one block, see shared_view) */
  cJSON **scores;       /* per metric: object name -> score, owned */
  cJSON *error;         /* {"code","message"}, owned */
  struct frag in;       /* the input printed ahead, or empty */
  struct frag *frags;   /* per job: the output (0), each metric's scores */
  int *attempts;        /* per job */
  /* Chains: per metric, the completion its worker left; the first
   * chain_done ran; chain_cut: the next one timed out, after cut_ms. */
  struct completion *pre;
  int chain_done, chain_cut;
  long cut_ms;
  double t_mend;        /* when the last chained metric returned */
  /* A deferred item: its text (a worker parses it), and what its
   * worker made of it when it finished it (see finish_item). */
  char *raw;
  size_t raw_len, line;
  char *fast;
  size_t fast_len;
  int id_kind;
  double id_num;
  int refs;
  int final;
  int metrics_left;
  double t_admit, deadline, t_task, task_ms, t_metrics, metrics_ms;
};

struct assay_engine {
  /* What the workers read, set before they start: away from what the
   * loop and the workers write (see the alignments below). */
  uint16_t serial;
  int reg_index;
  struct assay_engine_opts opts;
  struct assay_pool *pool;
  int chain;              /* items run as chains (see run_chain) */
  struct instance *task;
  struct instance **metrics;
  int nmetrics;
  /* Deferred items (see sync_work and finish_item): parsed and finished
   * on the workers; the record callback gets light records. */
  int defer;
  const char *ds_name;
  int names_distinct;     /* the metrics' score names differ */
  int hold;               /* atomic: every call is short, workers may hold
                             completions back (see post_later); written by
                             the loop when it changes */

  _Alignas(64) uv_loop_t loop;
  /* Written by every thread that posts a completion. */
  _Alignas(64) uv_async_t inbox_async;
  struct completion *inbox_head, *inbox_tail; /* under reg_lock */
  int stop_requested;                         /* atomic */

  _Alignas(64) cJSON *light; /* the light record, filled for each item */
  cJSON *l_index, *l_id, *l_trial, *l_task_ms, *l_metrics_ms, **l_vals;

  struct slot **slots;
  int nslots;
  int free_slot;

  struct item **ring;
  int64_t window;
  int64_t next_seq, next_write; /* units admitted, units handed out */
  int64_t items_read;           /* dataset items read */
  struct assay_dataset_item cur; /* the item whose trials are admitted */
  int cur_valid, cur_trial;
  int running, pending;
  struct assay_dataset *ds;
  int eof, stopping, done;
  int looping;            /* inside uv_run: uv_stop() has a loop to stop */
  uv_timer_t grace;       /* after a stop: how long in-flight items may take */
  uv_timer_t tick;        /* progress callbacks */
  struct assay_deadlines dl; /* running calls' deadlines */
  uv_timer_t nudge;       /* while quick jobs wait for fewer workers */
  int nudging;
  /* The next turn of the loop, without waiting: admission goes on past
   * ADMIT_TURN, and completions posted on the loop thread itself are
   * handled (see post_list). */
  uv_idle_t turn;
  struct completion *local_head, *local_tail; /* loop thread only */
  int idle_metrics; /* libuv measures the loop's idle time (loop_busy) */
  assay_tick_cb tick_cb;
  void *tick_arg;
  uint64_t tick_ms;
  int64_t skip;           /* items an earlier run already handed out */
  assay_skip_cb skip_cb;
  void *skip_arg;
  assay_record_cb cb;
  void *cb_arg;
  assay_flush_cb flush_cb;
  int run_rc;
  char *run_err;

  struct assay_http *http;
  struct assay_engine_stats stats;
  uint64_t rng;
  int warned_dup;
  int sync_abandoned; /* sync calls timed out whose worker has not returned */
  /* Sync jobs dispatched during the current loop callback, handed to the
   * pool in one go when it ends (see pump). */
  struct assay_pool_job *sub_head, *sub_tail;
  int sub_n;
  struct assay_pool_job *quick_head, *quick_tail; /* see run_quick */
  struct assay__buf line;  /* the record being handed out, as text */
  int *moved;              /* per metric: scores it put in that record */
  int dup;                 /* that record dropped a duplicate score */
};

/* ---- the registry: call handles to engines, across threads --------------- */

static uv_once_t reg_once = UV_ONCE_INIT;
static uv_mutex_t reg_lock;
static struct assay_engine *reg[REG_MAX];
static unsigned reg_counter;

static void reg_init(void) {
  if (uv_mutex_init(&reg_lock) != 0)
    abort();
}

static uint64_t make_call(const struct assay_engine *e, const struct slot *s) {
  return ((uint64_t)e->serial << 48) | ((uint64_t)(s->gen & GEN_MASK) << 24) |
         s->idx;
}

/* Frees what c holds, leaving it empty. */
static void completion_clear(struct completion *c) {
  cJSON_Delete(c->result);
  free(c->msg);
  free(c->text);
  free(c->in_text);
  cJSON_Delete(c->json);
  free(c->fast);
  c->result = c->json = NULL;
  c->msg = c->text = c->in_text = c->fast = NULL;
}

static void completion_free(struct completion *c) {
  completion_clear(c);
  if (!c->embedded)
    free(c);
}

static void on_turn(uv_idle_t *h);

/* The engine whose loop runs on this thread, while assay_engine_run runs
 * it. */
static _Thread_local struct assay_engine *tls_engine;

/* Any thread: hands a list of completions (linked through next) to their
 * engines' inboxes under one lock, freeing those whose engine is gone (a
 * completion arriving after the run ended).
 *
 * A completion posted on its engine's own loop thread (an async plugin
 * completing from an HTTP callback or a timer) goes on a list of the loop's
 * instead, handled at the loop's next turn: through the inbox it cost a
 * lock, an eventfd write, a wake-up from epoll and a read, about one per
 * LLM call. It is still never handled inside the plugin's own call. */
static void post_list(struct completion *c) {
  struct assay_engine *self = tls_engine;
  if (self != NULL) {
    struct completion *rest = NULL, **rest_tail = &rest;
    while (c != NULL) {
      struct completion *next = c->next;
      c->next = NULL;
      if ((uint16_t)(c->call >> 48) == self->serial) {
        if (self->local_tail)
          self->local_tail->next = c;
        else
          self->local_head = c;
        self->local_tail = c;
      } else {
        *rest_tail = c;
        rest_tail = &c->next;
      }
      c = next;
    }
    if (self->local_head != NULL)
      uv_idle_start(&self->turn, on_turn);
    if (rest == NULL)
      return;
    c = rest;
  }
  struct completion *orphans = NULL;
  uv_mutex_lock(&reg_lock);
  while (c != NULL) {
    struct completion *next = c->next;
    c->next = NULL;
    uint16_t serial = (uint16_t)(c->call >> 48);
    struct assay_engine *e = reg[serial & (REG_MAX - 1)];
    if (e != NULL && e->serial == serial) {
      if (e->inbox_tail)
        e->inbox_tail->next = c;
      else
        e->inbox_head = c;
      e->inbox_tail = c;
      /* Sends coalesce: one wake-up drains them all. */
      uv_async_send(&e->inbox_async);
    } else {
      c->next = orphans;
      orphans = c;
    }
    c = next;
  }
  uv_mutex_unlock(&reg_lock);
  while (orphans != NULL) {
    struct completion *next = orphans->next;
    completion_free(orphans);
    orphans = next;
  }
}

static void post(struct completion *c) {
  c->next = NULL;
  post_list(c);
}

/*
 * A worker's completions held back while it has more jobs (see
 * post_later), posted together: one lock, one wake-up of the loop and
 * one move of the inbox's cache line for several items instead of each.
 */
#define LATER_MAX 16
#define LATER_MS 1.0
static _Thread_local struct completion *later_head, *later_tail;
static _Thread_local int later_n;
static _Thread_local double later_since;

/* The pool's idle hook: this worker's queue ran dry. */
static void post_held(void) {
  if (later_head == NULL)
    return;
  struct completion *c = later_head;
  later_head = later_tail = NULL;
  later_n = 0;
  post_list(c);
}

/* On a worker, for a call the loop can no longer give up (a chain that
 * reached STAGE_DONE): posts c with the next ones, at the latest when the
 * worker finds no more work, LATER_MAX are held or the first has waited
 * LATER_MS; now is when c's call returned. */
static void post_later(struct completion *c, double now) {
  c->next = NULL;
  if (later_tail != NULL)
    later_tail->next = c;
  else
    later_head = c, later_since = now;
  later_tail = c;
  if (++later_n >= LATER_MAX || now - later_since >= LATER_MS)
    post_held();
}

/* ---- the host API ---------------------------------------------------------- */

/* What the host knows about the call a plugin entry point is running. */
struct call_ctx {
  uint64_t call;
  int64_t index;
  int trial;
  int attempt;
  long timeout_ms;
  int capture;      /* inside run_sync: completions are captured here */
  int completed;
  int failed;
  cJSON *result;
  int code;
  long retry_after_ms;
  char *msg;
};

static _Thread_local struct call_ctx *tls_ctx;

static void host_complete(assay_call call, cJSON *result) {
  struct call_ctx *ctx = tls_ctx;
  if (ctx != NULL && ctx->capture && ctx->call == call) {
    if (ctx->completed || ctx->failed) {
      cJSON_Delete(result);
      ctx->completed = 2; /* a second completion: counted as a fault */
      return;
    }
    ctx->completed = 1;
    ctx->result = result;
    return;
  }
  struct completion *c = assay__xcalloc(1, sizeof *c);
  c->call = call;
  c->result = result;
  c->no_result = result == NULL;
  post(c);
}

static void post_failure(assay_call call, int code, long retry_after_ms,
                         char *msg, const char *cause) {
  struct call_ctx *ctx = tls_ctx;
  if (ctx != NULL && ctx->capture && ctx->call == call) {
    if (ctx->completed || ctx->failed) {
      free(msg);
      ctx->completed = 2;
      return;
    }
    ctx->failed = 1;
    ctx->code = code;
    ctx->retry_after_ms = retry_after_ms;
    ctx->msg = msg;
    return;
  }
  struct completion *c = assay__xcalloc(1, sizeof *c);
  c->call = call;
  c->failed = 1;
  c->code = code;
  c->retry_after_ms = retry_after_ms;
  c->msg = msg;
  c->cause = cause;
  post(c);
}

static void host_fail(assay_call call, int code, long retry_after_ms,
                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = assay__vformat(fmt ? fmt : "failed", ap);
  va_end(ap);
  if (code < ASSAY_FAIL_ERROR || code > ASSAY_FAIL_BAD_INPUT)
    code = ASSAY_FAIL_ERROR;
  post_failure(call, code, retry_after_ms, msg,
               code == ASSAY_FAIL_RETRYABLE ? "other" : NULL);
}

static int log_debug = -1;

static void host_log(const struct assay_host *host, int level, const char *fmt,
                     ...) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  if (log_debug < 0)
    log_debug = getenv("ASSAY_DEBUG") != NULL;
  if (level >= ASSAY_LOG_DEBUG && !log_debug)
    return;
  if (level < 0 || level > ASSAY_LOG_DEBUG)
    level = ASSAY_LOG_INFO;
  const struct instance *inst =
      host ? assay__container_of(host, struct instance, host) : NULL;
  va_list ap;
  va_start(ap, fmt);
  char *msg = assay__vformat(fmt, ap);
  va_end(ap);
  /* One fprintf per line so lines from several threads do not interleave. */
  fprintf(stderr, "assay: %s %s: %s: %s\n",
          inst ? assay_kind_name(inst->kind) : "plugin",
          inst ? inst->comp->name : "?", names[level], msg);
  free(msg);
}

static void *host_alloc(size_t n) {
  return assay__xmalloc(n);
}

static void host_dealloc(void *p) {
  free(p);
}

static char *host_format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = assay__vformat(fmt, ap);
  va_end(ap);
  return s;
}

static const char *host_opt_string(const cJSON *config, const char *name,
                                   const char *def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, name);
  return cJSON_IsString(v) ? v->valuestring : def;
}

static double host_opt_number(const cJSON *config, const char *name,
                              double def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, name);
  return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int host_opt_bool(const cJSON *config, const char *name, int def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, name);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static int host_call_info(assay_call call, struct assay_call_info *info) {
  struct call_ctx *ctx = tls_ctx;
  if (ctx == NULL || ctx->call != call || info == NULL ||
      info->size < sizeof(uint32_t))
    return -1;
  struct assay_call_info full = {.size = info->size,
                                 .index = ctx->index,
                                 .trial = ctx->trial,
                                 .attempt = ctx->attempt,
                                 .timeout_ms = ctx->timeout_ms};
  size_t n = info->size < sizeof full ? info->size : sizeof full;
  memcpy(info, &full, n);
  return 0;
}

/* Loop thread only: the engine and active slot of call, or NULL. */
static struct slot *active_slot(uint64_t call, struct assay_engine **ep) {
  uint16_t serial = (uint16_t)(call >> 48);
  uv_mutex_lock(&reg_lock);
  struct assay_engine *e = reg[serial & (REG_MAX - 1)];
  if (e != NULL && e->serial != serial)
    e = NULL;
  uv_mutex_unlock(&reg_lock);
  if (e == NULL)
    return NULL;
  uint32_t idx = (uint32_t)(call & SLOT_MASK);
  uint32_t gen = (uint32_t)((call >> 24) & GEN_MASK);
  if (idx >= (uint32_t)e->nslots)
    return NULL;
  struct slot *s = e->slots[idx];
  if ((s->gen & GEN_MASK) != gen || s->state != SLOT_ACTIVE)
    return NULL;
  *ep = e;
  return s;
}

static int host_http_request(assay_call call,
                             const struct assay_http_request *req,
                             assay_http_cb cb, void *arg, char **errmsg) {
  struct assay_engine *e;
  struct slot *s = active_slot(call, &e);
  if (s == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "http_request: the call is not running (it ended or "
                       "timed out)");
  if (e->http == NULL) {
    struct assay_http_config hc = {
        .max_response_bytes = e->opts.max_response_bytes,
        .max_inflight = e->opts.concurrency,
        .rps = e->opts.rps};
    int rc = assay_http_new(&e->http, &e->loop, &hc, errmsg);
    if (rc != 0)
      return rc;
    if (e->eof)
      assay_http_drain(e->http);
  }
  long timeout = req->timeout_ms;
  uint64_t now = uv_now(&e->loop);
  uint64_t left = s->dl.due > now ? s->dl.due - now : 0;
  if (timeout <= 0 || (left > 0 && (uint64_t)timeout > left))
    timeout = left > 0 ? (long)left : 1;
  return assay_http_request(e->http, call, req, timeout, cb, arg, errmsg);
}

static void host_http_fail(assay_call call,
                           const struct assay_http_response *res,
                           const char *what) {
  int code;
  long retry_after;
  char *msg = NULL;
  const char *cause = assay_http_classify(res, what ? what : "request", &code,
                                          &retry_after, &msg);
  post_failure(call, code, retry_after, msg ? msg : assay__xstrdup("failed"),
               cause);
}

static const struct assay_host host_template = {
    .size = sizeof(struct assay_host),
    .abi_major = ASSAY_ABI_MAJOR,
    .abi_minor = ASSAY_ABI_MINOR,
    .complete = host_complete,
    .fail = host_fail,
    .log = host_log,
    .alloc = host_alloc,
    .dealloc = host_dealloc,
    .format = host_format,
    .opt_string = host_opt_string,
    .opt_number = host_opt_number,
    .opt_bool = host_opt_bool,
    .http_request = host_http_request,
    .http_header = assay_http_header,
    .http_fail = host_http_fail,
    .call_info = host_call_info,
};

/* ---- engine set-up --------------------------------------------------------- */

void assay_engine_opts_init(struct assay_engine_opts *o) {
  memset(o, 0, sizeof *o);
  o->concurrency = 64;
  o->threads = (int)uv_available_parallelism();
  o->timeout_ms = 60000;
  o->retries = 3;
  o->backoff_base_ms = 200;
  o->backoff_max_ms = 30000;
  o->max_response_bytes = ASSAY_DEFAULT_MAX_RESPONSE_BYTES;
  o->grace_ms = 10000;
  o->trials = 1;
  o->chain = 1;
}

static void on_inbox(uv_async_t *a);
static void on_grace(uv_timer_t *t);
static void on_deadline(struct assay_deadlines *q, uint64_t now);

int assay_engine_new(struct assay_engine **ep, const struct assay_engine_opts *o,
                     char **errmsg) {
  uv_once(&reg_once, reg_init);
  if (o->concurrency < 1 || o->threads < 1 || o->timeout_ms < 1 ||
      o->retries < 0 || o->item_timeout_ms < 0 || o->backoff_base_ms < 0 ||
      o->backoff_max_ms < 0 || o->rps < 0 || o->limit < 0 || o->trials < 1)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "invalid engine options: concurrency, threads and "
                       "timeout must be at least 1, the others at least 0");
  if (o->concurrency > (1 << 20))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--concurrency %d is over the limit of %d",
                       o->concurrency, 1 << 20);
  struct assay_engine *e = assay__xcalloc_aligned(_Alignof(struct assay_engine), sizeof *e);
  e->opts = *o;
  e->free_slot = -1;
  e->rng = o->seed ? o->seed : uv_hrtime() | 1;
  int rc = uv_loop_init(&e->loop);
  if (rc != 0) {
    free(e);
    return assay__fail(errmsg, ASSAY_ENOMEM, "cannot create the event loop: %s",
                       uv_strerror(rc));
  }
  /* Time spent waiting in epoll, for loop_busy; where libuv cannot
   * measure it, loop_busy stays 0. */
  e->idle_metrics = uv_loop_configure(&e->loop, UV_METRICS_IDLE_TIME) == 0;
  uv_async_init(&e->loop, &e->inbox_async, on_inbox);
  uv_timer_init(&e->loop, &e->grace);
  uv_timer_init(&e->loop, &e->tick);
  assay_deadlines_init(&e->dl, &e->loop, on_deadline);
  uv_timer_init(&e->loop, &e->nudge);
  uv_unref((uv_handle_t *)&e->nudge);
  uv_idle_init(&e->loop, &e->turn);

  uv_mutex_lock(&reg_lock);
  int free_index = -1;
  for (int i = 0; i < REG_MAX && free_index < 0; i++)
    if (reg[i] == NULL)
      free_index = i;
  if (free_index >= 0) {
    reg_counter = (reg_counter + 1) & ((1u << (16 - REG_BITS)) - 1);
    if (reg_counter == 0)
      reg_counter = 1;
    e->serial = (uint16_t)((reg_counter << REG_BITS) | (unsigned)free_index);
    e->reg_index = free_index;
    reg[free_index] = e;
  }
  uv_mutex_unlock(&reg_lock);
  if (free_index < 0) {
    uv_close((uv_handle_t *)&e->inbox_async, NULL);
    uv_close((uv_handle_t *)&e->grace, NULL);
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_close((uv_handle_t *)&e->dl.timer, NULL);
    uv_close((uv_handle_t *)&e->nudge, NULL);
    uv_close((uv_handle_t *)&e->turn, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    free(e);
    return assay__fail(errmsg, ASSAY_ENOMEM,
                       "too many engines at once (at most %d)", REG_MAX);
  }
  *ep = e;
  return 0;
}

static const char *const metric_reserved[] = {"name", NULL};

int assay_engine_add(struct assay_engine *e, struct assay_loader *l, int kind,
                     const char *spec, const cJSON *opts, const cJSON *map,
                     char **errmsg) {
  if (kind == ASSAY_KIND_TASK && e->task != NULL)
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "only one --task per run (got '%s' after '%s')", spec,
                       e->task->spec);
  if (opts != NULL && !cJSON_IsObject(opts))
    return assay__fail(errmsg, ASSAY_EINVAL, "options of '%s' must be an object",
                       spec);
  struct assay_module *mod;
  const struct assay_component *comp;
  int rc = assay_loader_find(l, spec, kind, &mod, &comp, errmsg);
  if (rc != 0)
    return rc;

  const cJSON *name = cJSON_GetObjectItemCaseSensitive(opts, "name");
  if (kind == ASSAY_KIND_METRIC && name != NULL &&
      (!cJSON_IsString(name) || name->valuestring[0] == '\0'))
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "option 'name' of metric '%s' must be a non-empty "
                       "string",
                       spec);
  const char *score = kind == ASSAY_KIND_METRIC && name ? name->valuestring
                                                        : comp->name;
  for (int i = 0; kind == ASSAY_KIND_METRIC && i < e->nmetrics; i++)
    if (strcmp(e->metrics[i]->score_name, score) == 0)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "two scores named '%s' (metrics '%s' and '%s'); "
                         "rename one with --opt name=OTHER after its --metric",
                         score, e->metrics[i]->spec, spec);
  const cJSON *mv;
  cJSON_ArrayForEach(mv, map) {
    if (!cJSON_IsString(mv) || mv->valuestring[0] == '\0')
      return assay__fail(errmsg, ASSAY_EINVAL,
                         "--map %s: the field must be a non-empty path",
                         mv->string);
  }

  cJSON *config;
  rc = assay_options_apply(mod, comp, opts,
                           kind == ASSAY_KIND_METRIC ? metric_reserved : NULL,
                           &config, errmsg);
  if (rc != 0)
    return rc;

  struct instance *inst =
      assay__xcalloc_aligned(_Alignof(struct instance), sizeof *inst);
  inst->sync_us = -1;
  inst->e = e;
  inst->kind = kind;
  inst->metric = kind == ASSAY_KIND_METRIC ? e->nmetrics : -1;
  inst->spec = assay__xstrdup(spec);
  inst->mod = mod;
  inst->comp = comp;
  inst->config = config;
  inst->map = map ? cJSON_Duplicate(map, 1) : NULL;
  inst->score_name = assay__xstrdup(score);
  inst->renamed = name != NULL;
  inst->use_async = comp->run_async != NULL;
  inst->quick = !inst->use_async && (comp->flags & ASSAY_QUICK) != 0;
  uv_mutex_init(&inst->serial);
  inst->host = host_template;
  inst->host.loop = &e->loop;
  inst->host.datadir = assay_loader_data_dir();

  if (comp->init != NULL) {
    char *perr = NULL;
    void *state = NULL;
    int prc = comp->init(config, &inst->host, &state, &perr);
    if (prc != 0) {
      rc = assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s '%s' (plugin '%s') failed to initialise: %s",
                       assay_kind_name(kind), comp->name, mod->path,
                       perr ? perr : "no reason given");
      free(perr);
      cJSON_Delete(inst->config);
      cJSON_Delete(inst->map);
      free(inst->spec);
      free(inst->score_name);
      uv_mutex_destroy(&inst->serial);
      free(inst);
      return rc;
    }
    free(perr);
    inst->state = state;
  }
  inst->inited = 1;
  if (kind == ASSAY_KIND_TASK) {
    e->task = inst;
  } else {
    e->metrics =
        assay__xrealloc(e->metrics, (size_t)(e->nmetrics + 1) * sizeof *e->metrics);
    e->metrics[e->nmetrics++] = inst;
    e->moved = assay__xrealloc(e->moved, (size_t)e->nmetrics * sizeof *e->moved);
  }
  return 0;
}

/* ---- slots ------------------------------------------------------------------ */

static struct slot *slot_get(struct assay_engine *e, struct item *item,
                             int job) {
  struct slot *s;
  if (e->free_slot >= 0) {
    s = e->slots[e->free_slot];
    e->free_slot = s->next_free;
  } else {
    if ((uint32_t)e->nslots >= SLOT_MASK) {
      fprintf(stderr, "assay: more than %u calls at once\n", SLOT_MASK);
      abort();
    }
    if ((e->nslots & (e->nslots - 1)) == 0)
      e->slots = assay__xrealloc(e->slots, (size_t)(e->nslots ? e->nslots * 2 : 16) *
                                               sizeof *e->slots);
    s = assay__xcalloc(1, sizeof *s);
    s->idx = (uint32_t)e->nslots;
    if (e->chain)
      s->due = assay__xcalloc((size_t)e->nmetrics, sizeof *s->due);
    uv_timer_init(&e->loop, &s->timer);
    e->slots[e->nslots++] = s;
  }
  s->state = SLOT_BACKOFF;
  s->item = item;
  s->job = job;
  item->refs++;
  return s;
}

static void item_release(struct assay_engine *e, struct item *it);

static void slot_put(struct assay_engine *e, struct slot *s) {
  uv_timer_stop(&s->timer);
  assay_deadline_remove(&e->dl, &s->dl);
  cJSON_Delete(s->view);
  s->view = NULL;
  s->input = NULL;
  free(s->chain_view); /* a view the loop did not take (see shared_view) */
  s->chain_view = NULL;
  s->chain = s->chain_done = 0;
  s->gen = (s->gen + 1) & GEN_MASK;
  s->state = SLOT_FREE;
  struct item *it = s->item;
  s->item = NULL;
  s->next_free = e->free_slot;
  e->free_slot = (int)s->idx;
  item_release(e, it);
}

/* ---- items -------------------------------------------------------------------- */

/*
 * Records and scores are built once per item, so they take literal keys
 * without copying them (cJSON's "CS" keys: a cJSON_Duplicate of a record
 * keeps pointing at the literal, which lives as long as the program) and
 * share values by reference. This halves the allocations of the CPU path.
 */
/* Makes n a reference to v (a null for NULL): v's value shared, not
 * linked to anything, under v's own key (borrowed, never freed with n). */
static void set_ref(cJSON *n, const cJSON *v) {
  if (v == NULL) {
    memset(n, 0, sizeof *n);
    n->type = cJSON_NULL;
    return;
  }
  *n = *v;
  n->next = n->prev = NULL;
  n->type = (v->type & ~cJSON_StringIsConst) | cJSON_IsReference;
}

/* A new reference to v, without a key. */
static cJSON *ref_of(const cJSON *v) {
  cJSON *r = cJSON_CreateNull();
  if (r == NULL)
    abort();
  set_ref(r, v);
  r->string = NULL;
  return r;
}

/* Adds v to the end of object obj under the literal key. */
static void add_literal(cJSON *obj, const char *key, cJSON *v) {
  cJSON_AddItemToObjectCS(obj, key, v);
}

/* Moves v, which keeps its own key, to the end of object obj. */
static void move_keyed(cJSON *obj, cJSON *v) {
  cJSON_AddItemToArray(obj, v);
}

static void item_release(struct assay_engine *e, struct item *it) {
  if (--it->refs > 0)
    return;
  free(it->view); /* a block of references into json and output: first */
  cJSON_Delete(it->json);
  cJSON_Delete(it->output);
  cJSON_Delete(it->error);
  cJSON_Delete(it->id);
  for (int i = 0; it->scores && i < e->nmetrics; i++)
    cJSON_Delete(it->scores[i]);
  for (int i = 0; i <= e->nmetrics; i++)
    free(it->frags[i].p);
  for (int i = 0; it->pre && i < e->nmetrics; i++)
    completion_clear(&it->pre[i]);
  free(it->in.p);
  free(it->bad);
  free(it->raw);
  free(it->fast);
  free(it);
}

static struct instance *job_instance(struct assay_engine *e, int job) {
  return job == 0 ? e->task : e->metrics[job - 1];
}

static void item_final(struct assay_engine *e, struct item *it) {
  if (it->t_metrics > 0)
    it->metrics_ms =
        (it->t_mend > 0 ? it->t_mend : assay__now_ms()) - it->t_metrics;
  it->final = 1;
  e->running--;
}

/* A malformed item (it->bad says why) ends as its record's error. */
static void item_bad(struct assay_engine *e, struct item *it) {
  it->error = cJSON_CreateObject();
  cJSON_AddStringToObject(it->error, "code", assay_err_name(ASSAY_EBAD_ITEM));
  cJSON_AddStringToObject(it->error, "message", it->bad);
  e->stats.items_failed++;
  item_final(e, it);
}

/* Parses a deferred item on the loop, when the loop needs it before a
 * worker parsed it (or to learn why the worker could not): 0, or -1 with
 * it->bad set. */
static int item_parse(struct assay_engine *e, struct item *it) {
  if (it->json != NULL || it->raw == NULL)
    return it->json != NULL || it->bad == NULL ? 0 : -1;
  struct assay_dataset_item di;
  assay_dataset_parse(e->ds_name, it->raw, it->raw_len, it->line, &di);
  it->json = di.json;
  if (di.json == NULL) {
    free(it->bad);
    it->bad = di.error;
    if (it->id == NULL)
      it->id = di.id; /* what the text still shows of its id */
    else
      cJSON_Delete(di.id);
    return -1;
  }
  return 0;
}

static cJSON *score_error(const char *msg) {
  cJSON *s = cJSON_CreateObject();
  cJSON_AddNullToObject(s, "value");
  cJSON_AddNullToObject(s, "reason");
  cJSON_AddStringToObject(s, "error", msg);
  return s;
}

static void metric_done(struct assay_engine *e, struct item *it) {
  if (--it->metrics_left == 0)
    item_final(e, it);
}

/* Records a failed job: the item's error for the task, a failed score for a
 * metric. err is an ASSAY_E* code. */
static void job_failed(struct assay_engine *e, struct item *it, int job,
                       int err, const char *msg) {
  if (job == 0) {
    it->task_ms = assay__now_ms() - it->t_task;
    it->error = cJSON_CreateObject();
    cJSON_AddStringToObject(it->error, "code", assay_err_name(err));
    cJSON_AddStringToObject(it->error, "message", msg);
    e->stats.items_failed++;
    item_final(e, it);
    return;
  }
  struct instance *inst = e->metrics[job - 1];
  cJSON *scores = cJSON_CreateObject();
  /* A score's error is one string; its code leads it. */
  char *full = assay__format("%s: %s", assay_err_name(err), msg);
  cJSON_AddItemToObject(scores, inst->score_name, score_error(full));
  free(full);
  it->scores[job - 1] = scores;
  e->stats.scores_failed++;
  metric_done(e, it);
}

static void start_metrics(struct assay_engine *e, struct item *it);
static void chain_replay(struct assay_engine *e, struct item *it, int m);
static void chain_timeout(struct assay_engine *e, struct item *it, int m);
static void dispatch(struct assay_engine *e, struct slot *s);
static const cJSON *metric_input(struct assay_engine *e, struct item *it,
                                 struct instance *inst, struct slot *s);

static void start_job(struct assay_engine *e, struct item *it, int job) {
  struct slot *s = slot_get(e, it, job);
  dispatch(e, s);
}

/* Normalises a task's result into the item's output. */
static void task_succeeded(struct assay_engine *e, struct item *it,
                           cJSON *result, struct completion *c) {
  /* A sync call's time is the worker's: not the wait for the loop. */
  double end = c->t_end > 0 ? c->t_end : assay__now_ms();
  it->task_ms = end - it->t_task;
  it->t_metrics = end;
  if (c->text != NULL) {
    it->frags[0].p = c->text;
    it->frags[0].n = c->text_len;
    c->text = NULL;
  }
  if (c->in_text != NULL && it->in.p == NULL) {
    it->in.p = c->in_text;
    it->in.n = c->in_len;
    c->in_text = NULL;
  }
  if (!cJSON_IsObject(result)) {
    cJSON *wrap = cJSON_CreateObject();
    add_literal(wrap, "output", result);
    result = wrap;
  }
  it->output = result;
  start_metrics(e, it);
}

/* Turns one score value into {"value","reason","error"}, moving its value
 * and reason out of v (v stays the caller's); NULL when invalid, with *why
 * set. */
static cJSON *score_take(cJSON *v, const char **why) {
  cJSON *value = v, *reason = NULL;
  if (cJSON_IsObject(v)) {
    value = cJSON_GetObjectItemCaseSensitive(v, "value");
    reason = cJSON_GetObjectItemCaseSensitive(v, "reason");
  }
  if (!cJSON_IsNumber(value)) {
    *why = "a score must be a number or an object with a numeric \"value\"";
    return NULL;
  }
  if (!isfinite(value->valuedouble)) {
    *why = "the score is not a finite number";
    return NULL;
  }
  cJSON *s = cJSON_CreateObject();
  if (value == v)
    add_literal(s, "value", cJSON_CreateNumber(value->valuedouble));
  else {
    cJSON_SetNumberValue(value, value->valuedouble); /* its valueint too */
    add_literal(s, "value", cJSON_DetachItemViaPointer(v, value));
  }
  if (cJSON_IsString(reason))
    add_literal(s, "reason", cJSON_DetachItemViaPointer(v, reason));
  else
    add_literal(s, "reason", cJSON_CreateNull());
  add_literal(s, "error", cJSON_CreateNull());
  return s;
}

/* A metric's result as its scores object (name -> score); NULL when the
 * result is bad, with *why set. Reads only the instance, so a worker may
 * run it; result is left to the caller to delete. */
static cJSON *scores_of(const struct instance *inst, cJSON *result,
                        const char **why) {
  cJSON *scores = cJSON_CreateObject();
  *why = NULL;
  if (cJSON_IsArray(result)) {
    cJSON *entry;
    cJSON_ArrayForEach(entry, result) {
      const cJSON *n = cJSON_GetObjectItemCaseSensitive(entry, "name");
      if (!cJSON_IsString(n) || n->valuestring[0] == '\0') {
        *why = "every entry of a score array needs a non-empty \"name\"";
        break;
      }
      cJSON *s = score_take(entry, why);
      if (s == NULL)
        break;
      char *key = inst->renamed
                      ? assay__format("%s.%s", inst->score_name, n->valuestring)
                      : assay__xstrdup(n->valuestring);
      if (cJSON_GetObjectItemCaseSensitive(scores, key) != NULL) {
        cJSON_Delete(s);
        free(key);
        *why = "two entries of the score array have the same name";
        break;
      }
      cJSON_AddItemToObject(scores, key, s);
      free(key);
    }
    if (*why == NULL && cJSON_GetArraySize(result) == 0)
      *why = "the score array is empty";
  } else {
    cJSON *s = score_take(result, why);
    if (s != NULL)
      cJSON_AddItemToObject(scores, inst->score_name, s);
  }
  if (*why != NULL) {
    cJSON_Delete(scores);
    return NULL;
  }
  return scores;
}

/* A metric's call succeeded: result is the plugin's, or (normalized) the
 * scores a worker made of it, with their text in c. */
static void metric_succeeded(struct assay_engine *e, struct item *it, int job,
                             cJSON *result, struct completion *c) {
  struct instance *inst = e->metrics[job - 1];
  const char *why = c->normalized < 0 ? c->why : NULL;
  cJSON *scores = NULL;
  if (c->normalized > 0) {
    scores = result;
    it->frags[job].p = c->text;
    it->frags[job].n = c->text_len;
    c->text = NULL;
  } else if (why == NULL) {
    scores = scores_of(inst, result, &why);
    cJSON_Delete(result);
  } else {
    cJSON_Delete(result);
  }
  if (scores == NULL) {
    char *msg = assay__format("metric '%s' returned a bad result: %s",
                              inst->comp->name, why);
    job_failed(e, it, job, ASSAY_EBAD_OUTPUT, msg);
    free(msg);
    return;
  }
  it->scores[job - 1] = scores;
  metric_done(e, it);
}

static int is_retryable(int code) {
  return code == ASSAY_FAIL_RETRYABLE || code == ASSAY_FAIL_TIMEOUT;
}

static uint64_t rng_next(struct assay_engine *e) {
  uint64_t x = e->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return e->rng = x;
}

static void on_backoff(uv_timer_t *t);
static void pump(struct assay_engine *e);
static void flush(struct assay_engine *e);

/* An attempt of a job failed: retry it after a backoff, or record it. */
static void attempt_failed(struct assay_engine *e, struct item *it, int job,
                           int code, long retry_after_ms, const char *cause,
                           const char *msg) {
  int attempts = it->attempts[job];
  if (is_retryable(code) && attempts <= e->opts.retries) {
    /* Exponential backoff with full jitter, never sooner than asked. */
    double cap = (double)e->opts.backoff_base_ms * pow(2.0, attempts - 1);
    if (cap > (double)e->opts.backoff_max_ms)
      cap = (double)e->opts.backoff_max_ms;
    double delay = cap * (double)(rng_next(e) >> 11) / 9007199254740992.0;
    if (retry_after_ms >= 0 && delay < (double)retry_after_ms)
      delay = (double)retry_after_ms;
    double now = assay__now_ms();
    if (it->deadline == 0 || now + delay < it->deadline) {
      e->stats.retries++;
      if (cause == NULL || strcmp(cause, "other") == 0)
        e->stats.retries_other++;
      else if (strcmp(cause, "429") == 0)
        e->stats.retries_429++;
      else if (strcmp(cause, "5xx") == 0)
        e->stats.retries_5xx++;
      else if (strcmp(cause, "timeout") == 0)
        e->stats.retries_timeout++;
      else
        e->stats.retries_network++;
      struct slot *s = slot_get(e, it, job);
      /* libuv timers have millisecond granularity and may fire up to 1 ms
       * early; a retry-after is a promise, so round up and add one. The
       * timer counts from the loop's cached time, which is older than this
       * failure when it came in a batch of completions (under load, by
       * more than a millisecond): bring it up to date first. */
      uv_update_time(&e->loop);
      uv_timer_start(&s->timer, on_backoff, (uint64_t)ceil(delay) + 1, 0);
      return;
    }
  }
  int err = code == ASSAY_FAIL_TIMEOUT     ? ASSAY_ETIMEOUT
            : code == ASSAY_FAIL_RETRYABLE ? ASSAY_ERETRIES
            : code == ASSAY_FAIL_BAD_INPUT ? ASSAY_EBAD_INPUT
                                           : ASSAY_EERROR;
  char *full;
  if (attempts > 1)
    full = assay__format("%s (after %d attempts)", msg, attempts);
  else
    full = assay__xstrdup(msg);
  job_failed(e, it, job, err, full);
  free(full);
}

static void on_backoff(uv_timer_t *t) {
  struct slot *s = assay__container_of(t, struct slot, timer);
  struct assay_engine *e = assay__container_of(t->loop, struct assay_engine, loop);
  dispatch(e, s);
  pump(e);
}

/* A call's deadline passed. */
static void call_timed_out(struct assay_engine *e, struct slot *s) {
  struct instance *inst = job_instance(e, s->job);
  struct item *it = s->item;
  /* The plugin keeps the call (and its input) until it completes late; its
   * HTTP requests end now, so a hung one frees its connection. A sync
   * call no worker took holds none: the worker that takes it skips it. */
  s->state = SLOT_ABANDONED;
  e->stats.timeouts++;
  if (!inst->use_async && !s->skipped)
    e->sync_abandoned++;
  if (e->http != NULL)
    assay_http_cancel(e->http, make_call(e, s));
  char *msg;
  if (s->skipped && (s->cap_at == 0 || uv_now(&e->loop) < s->cap_at))
    msg = assay__format("%s '%s' waited for a worker for over %ld ms: all %d "
                        "are still running calls that timed out (see "
                        "--threads)",
                        assay_kind_name(inst->kind), inst->comp->name,
                        s->timeout_ms, e->opts.threads);
  else
    msg = assay__format("%s '%s' timed out after %ld ms",
                        assay_kind_name(inst->kind), inst->comp->name,
                        s->timeout_ms);
  it->refs++;
  attempt_failed(e, it, s->job, ASSAY_FAIL_TIMEOUT, -1, "timeout", msg);
  item_release(e, it);
  free(msg);
}

static int stage_move(struct slot *s, int from, int to);
static void job_completed(struct assay_engine *e, struct item *it, int job,
                          struct completion *c);

/*
 * A chain's deadline passed (see run_chain): the stage it was set for may
 * be over. Returns -1 when the chain finished or its current call's
 * deadline is still ahead (set now), else the stage the loop abandoned.
 */
static int chain_expire(struct assay_engine *e, struct slot *s, uint64_t now) {
  for (;;) {
    int st = __atomic_load_n(&s->stage, __ATOMIC_ACQUIRE);
    if (st == STAGE_DONE)
      return -1; /* its completion is on the way */
    if (st > s->dl_stage) {
      s->dl_stage = st;
      if (s->due[st - 1].at > now) {
        assay_deadline_add(&e->dl, &s->dl, s->due[st - 1].at);
        return -1;
      }
    }
    if (stage_move(s, st, STAGE_ABANDONED))
      return st;
  }
}

/* A chain was abandoned at metric m's call: the task and the metrics
 * before m are done, their completions are the loop's now. The worker
 * keeps the slot until it returns. */
static void chain_timed_out(struct assay_engine *e, struct slot *s, int m) {
  struct item *it = s->item;
  struct completion *d = &s->done, tc = {.embedded = 1};
  /* Field by field: the worker still links d into the inbox later. */
  tc.result = d->result;
  tc.text = d->text;
  tc.text_len = d->text_len;
  tc.in_text = d->in_text;
  tc.in_len = d->in_len;
  tc.t_end = d->t_end;
  d->result = NULL;
  d->text = d->in_text = NULL;
  /* The item the worker parsed, which its view still reads: the loop
   * keeps it (the abandoned slot holds the item until the worker is
   * done). */
  if (d->json != NULL && it->json == NULL) {
    it->json = d->json;
    d->json = NULL;
  }
  s->state = SLOT_ABANDONED;
  e->sync_abandoned++;
  it->view = s->chain_view;
  s->chain_view = NULL;
  it->chain_done = m;
  it->chain_cut = 1;
  it->cut_ms = s->due[m].ms;
  it->refs++;
  job_completed(e, it, 0, &tc);
  completion_clear(&tc);
  item_release(e, it);
}

/*
 * A sync call's deadline passed. Its timeout counts from when a worker
 * took it, not from when it was queued: while every worker is busy, calls
 * wait without using their time. The deadline set at dispatch is the
 * earliest it can be; here it moves to when it is due. A call still
 * queued ends only at its item's deadline, or when every worker is held
 * by a call that timed out (which may never return), so that a run ends.
 * Returns as chain_expire does; 0 for a single call abandoned.
 */
static int sync_expire(struct assay_engine *e, struct slot *s, uint64_t now) {
  int st = __atomic_load_n(&s->stage, __ATOMIC_ACQUIRE);
  if (st == STAGE_QUEUED) {
    if ((s->cap_at == 0 || now < s->cap_at) &&
        e->sync_abandoned < e->opts.threads) {
      uint64_t next = now + (uint64_t)s->timeout_ms;
      assay_deadline_add(&e->dl, &s->dl, s->cap_at != 0 && s->cap_at < next ? s->cap_at : next);
      return -1;
    }
    if (stage_move(s, STAGE_QUEUED, STAGE_ABANDONED)) {
      s->skipped = 1;
      return 0;
    }
    st = __atomic_load_n(&s->stage, __ATOMIC_ACQUIRE); /* just taken */
  }
  if (!s->begun_seen && st != STAGE_QUEUED) {
    s->begun_seen = 1;
    uint64_t due = s->begun + (uint64_t)s->timeout_ms;
    if (s->cap_at != 0 && s->cap_at < due)
      due = s->cap_at;
    /* A chain past its first call has its next deadlines in s->due. */
    if (due > now && (st == 0 || !s->chain)) {
      assay_deadline_add(&e->dl, &s->dl, due);
      return -1;
    }
  }
  return s->chain ? chain_expire(e, s, now) : 0;
}

/* Calls whose deadline passed (see deadline.h). */
static void on_deadline(struct assay_deadlines *q, uint64_t now) {
  struct assay_engine *e = assay__container_of(q, struct assay_engine, dl);
  struct assay_deadline *d;
  while ((d = assay_deadline_due(q, now)) != NULL) {
    struct slot *s = assay__container_of(d, struct slot, dl);
    int st = job_instance(e, s->job)->use_async ? 0 : sync_expire(e, s, now);
    if (st > 0)
      chain_timed_out(e, s, st - 1);
    else if (st == 0)
      call_timed_out(e, s);
  }
  pump(e);
}

/*
 * On the worker, after a sync call succeeded: the work on its result that
 * needs nothing of the loop's, so the loop thread (the CPU path's
 * bottleneck) does less. A task's output is wrapped as the engine would
 * and printed with the item's input; a metric's result becomes its scores
 * object, printed too. The loop puts the printed parts into the record's
 * line (see record_line).
 */
/* A copy of the scratch text, of its exact size. */
static char *take_text(const struct assay__buf *b, size_t *len) {
  char *p = assay__xmalloc(b->len ? b->len : 1);
  memcpy(p, b->p, b->len);
  *len = b->len;
  return p;
}

static void render(int job, const cJSON *input, const struct instance *inst,
                   struct completion *c) {
  /* Printed into a scratch buffer of this thread, handed over as an exact
   * copy (a growing buffer freed on another thread is what glibc's malloc
   * handles worst). */
  struct assay__buf scratch = {0};
  struct assay__buf *b = &scratch;
  if (job == 0) {
    if (!cJSON_IsObject(c->result)) {
      cJSON *wrap = cJSON_CreateObject();
      add_literal(wrap, "output", c->result);
      c->result = wrap;
    }
    b->len = 0;
    if (assay__json_write(b, c->result) == 0)
      c->text = take_text(b, &c->text_len);
    b->len = 0;
    if (input != NULL && assay__json_write(b, input) == 0)
      c->in_text = take_text(b, &c->in_len);
  } else {
    const char *why;
    cJSON *scores = scores_of(inst, c->result, &why);
    cJSON_Delete(c->result);
    c->result = scores;
    if (scores == NULL) {
      c->normalized = -1;
      c->why = why;
      /* Not "returned nothing": the loop reports why. */
      c->result = cJSON_CreateNull();
      free(b->p);
      return;
    }
    c->normalized = 1;
    b->len = 0;
    if (assay__json_write_members(b, scores) == 0)
      c->text = take_text(b, &c->text_len);
  }
  free(b->p);
}

/* A worker's random bits, to sample one call in eight (see call_sync). */
static _Thread_local uint32_t sample_rng;
static int sample_now(void) {
  uint32_t x = sample_rng ? sample_rng : 2463534242u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  sample_rng = x;
  return (x & 7) == 0;
}

/* On a worker: one sync call of job on input, starting at t0
 * (assay__now_ms), its outcome in c. */
static void call_sync(struct assay_engine *e, struct slot *s, int job,
                      const cJSON *input, int attempt, long timeout_ms,
                      double t0, struct completion *c) {
  struct instance *inst = job_instance(e, job);
  struct call_ctx ctx = {.call = make_call(e, s),
                         .index = s->item->index,
                         .trial = s->item->trial,
                         .attempt = attempt,
                         .timeout_ms = timeout_ms,
                         .capture = 1};
  struct call_ctx *saved = tls_ctx; /* a quick call runs on the loop */
  tls_ctx = &ctx;
  int serial = !(inst->comp->flags & ASSAY_THREAD_SAFE);
  if (serial)
    uv_mutex_lock(&inst->serial);
  cJSON *r = inst->comp->run_sync(inst->state, input, ctx.call);
  if (serial)
    uv_mutex_unlock(&inst->serial);
  tls_ctx = saved;

  memset(c, 0, sizeof *c);
  c->embedded = 1;
  c->call = ctx.call;
  c->t_end = assay__now_ms();
  /* Racy read-modify-write: a lost update only slows the average. One
   * call in eight, at random, counts: a store on every call would move
   * the average's cache line between the workers on every call. */
  long took = (long)((c->t_end - t0) * 1000), avg =
      __atomic_load_n(&inst->sync_us, __ATOMIC_RELAXED);
  if (avg < 0 || sample_now())
    __atomic_store_n(&inst->sync_us, avg < 0 ? took : avg + (took - avg) / 4,
                     __ATOMIC_RELAXED);
  if (ctx.failed) {
    c->failed = 1;
    c->code = ctx.code;
    c->retry_after_ms = ctx.retry_after_ms;
    c->msg = ctx.msg;
    c->cause = ctx.code == ASSAY_FAIL_RETRYABLE ? "other" : NULL;
    c->twice = r != NULL || ctx.completed == 2;
    cJSON_Delete(r);
  } else if (ctx.completed) {
    c->result = ctx.result;
    c->twice = r != NULL || ctx.completed == 2;
    cJSON_Delete(r);
  } else {
    c->result = r;
    c->no_result = r == NULL;
  }
  if (!c->failed && c->result != NULL && !c->twice)
    render(job, input, inst, c);
}

static cJSON *shared_view(const cJSON *json, const cJSON *output);
static const char *missing_input(const struct instance *inst,
                                 const cJSON *view);

/* A chain runs in turn what the loop would run at once: it goes on with
 * metric m unless two or more metrics are left, a worker is idle to run
 * them in parallel, and one of them is not known to be quick (under
 * CHAIN_QUICK_US lately). Any thread. */
#define CHAIN_QUICK_US 1000
static int chain_on(struct assay_engine *e, int m) {
  if (e->nmetrics - m < 2)
    return 1;
  for (int k = m; k < e->nmetrics; k++) {
    long us = __atomic_load_n(&e->metrics[k]->sync_us, __ATOMIC_RELAXED);
    if (us < 0 || us >= CHAIN_QUICK_US)
      /* The pool's count, which every worker writes, read only here. */
      return assay_pool_idle(e->pool) == 0;
  }
  return 1;
}

/* Moves a chain from stage from to stage to; 0 when the loop abandoned it
 * first. */
static int stage_move(struct slot *s, int from, int to) {
  return __atomic_compare_exchange_n(&s->stage, &from, to, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}

/*
 * A chain: when the task and every metric are sync and unmapped, the
 * worker whose task call succeeded goes on with the item's metrics, one
 * after another, instead of handing each back to the loop and waiting
 * for it to queue the next: one pool job per item, not 1 + metrics. The
 * loop replays the metrics' completions when the task's arrives (see
 * start_metrics), so records, retries and counters come out as without
 * the chain.
 *
 * Each call keeps its own timeout. The worker publishes the call it runs
 * in s->stage (with its deadline in s->due, written first); the loop's
 * deadline for the task's call, when it passes, follows the stage to the
 * current call's deadline (chain_expire), and abandons the chain at that
 * call once its deadline has passed. Worker and loop move the stage by
 * compare-and-swap, so exactly one decides each call: a call the loop
 * abandoned is late, and the worker stops. The chain also stops, leaving
 * the rest to the loop, before a metric whose inputs are missing or when
 * the item's deadline is about to pass.
 */
static int run_chain(struct assay_engine *e, struct slot *s,
                     const cJSON *json, struct completion *tc) {
  struct item *it = s->item;
  cJSON *view = shared_view(json, tc->result);
  int at = 0, m;
  for (m = 0; m < e->nmetrics; m++) {
    if (missing_input(e->metrics[m], view) != NULL)
      break;
    if (!chain_on(e, m))
      break;
    /* Now is when the call before returned: clock reads cost. */
    double now = m == 0 ? tc->t_end : it->pre[m - 1].t_end;
    long timeout = e->opts.timeout_ms;
    if (it->deadline > 0) {
      double left = it->deadline - now;
      if (left < 1)
        break;
      if (left < (double)timeout)
        timeout = (long)left;
    }
    /* In the loop's clock, rounded up as dispatch() does. */
    s->due[m].at = (uint64_t)ceil(now) + (uint64_t)timeout;
    s->due[m].ms = timeout;
    if (m == 0)
      s->chain_view = view;
    if (!stage_move(s, at, at + 1))
      goto late;
    at++;
    call_sync(e, s, 1 + m, view, 1, timeout, now, &it->pre[m]);
  }
  s->chain_done = m;
  if (!stage_move(s, at, STAGE_DONE))
    goto late;
  if (m == 0)
    free(view); /* never published */
  return 1;
late:
  /* The loop abandoned the call at stage at; it took what came before. */
  if (at == 0) {
    s->chain_view = NULL;
    free(view);
  }
  return 0;
}

/*
 * A deferred item's whole chain succeeded: the worker prints its record
 * and frees what it made (the parsed item, the output, the scores, the
 * view), so that only the record's text and a few numbers cross to the
 * loop, which hands out a light record with the line (see flush). Moving
 * an item's trees between cores costs what moving their cache lines
 * costs: on machines whose cores share no cache, more than the calls
 * (docs/architecture.md). Returns 0, leaving everything as it was, for
 * anything out of the ordinary: a metric with several scores or a bad
 * one, two metrics with one score name, a task output with "usage" (the
 * summary reads it).
 */
#define ADD_LIT(b, lit) assay__buf_add(b, lit, sizeof lit - 1)
static int finish_item(struct assay_engine *e, struct slot *s,
                       struct completion *c) {
  struct item *it = s->item;
  int nm = e->nmetrics;
  if (!e->names_distinct || s->chain_done != nm || c->text == NULL ||
      c->in_text == NULL || !cJSON_IsObject(c->result) ||
      cJSON_GetObjectItemCaseSensitive(c->result, "usage") != NULL)
    return 0;
  for (int m = 0; m < nm; m++) {
    const struct completion *p = &it->pre[m];
    const cJSON *sc = p->result ? p->result->child : NULL;
    if (p->failed || p->twice || p->normalized <= 0 || p->text == NULL ||
        sc == NULL || sc->next != NULL ||
        strcmp(sc->string, e->metrics[m]->score_name) != 0 ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sc, "value")))
      return 0;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(c->json, "id");
  int kind = cJSON_IsString(id) ? 2 : cJSON_IsNumber(id) ? 1 : 0;
  double task_ms = round((c->t_end - it->t_task) * 1000) / 1000;
  double metrics_ms = round((it->pre[nm - 1].t_end - c->t_end) * 1000) / 1000;

  /* What record_line() prints for the record flush() would build. */
  struct assay__buf b = {0};
  size_t head = (size_t)nm * sizeof(double);
  assay__buf_reserve(&b, head + 64 + c->in_len + c->text_len);
  b.len = head;
  ADD_LIT(&b, "{\"index\":");
  assay__json_number(&b, (double)it->index);
  ADD_LIT(&b, ",\"id\":");
  if (kind)
    assay__json_write(&b, id);
  else
    assay__json_number(&b, (double)it->index);
  ADD_LIT(&b, ",\"trial\":");
  assay__json_number(&b, it->trial);
  ADD_LIT(&b, ",\"input\":");
  assay__buf_add(&b, c->in_text, c->in_len);
  ADD_LIT(&b, ",\"output\":");
  assay__buf_add(&b, c->text, c->text_len);
  ADD_LIT(&b, ",\"scores\":{");
  for (int m = 0; m < nm; m++) {
    if (m > 0)
      ADD_LIT(&b, ",");
    assay__buf_add(&b, it->pre[m].text, it->pre[m].text_len);
  }
  ADD_LIT(&b, "},\"error\":null,\"attempts\":1,\"task_ms\":");
  assay__json_number(&b, task_ms);
  ADD_LIT(&b, ",\"metrics_ms\":");
  assay__json_number(&b, metrics_ms);
  assay__buf_add(&b, "}", sizeof "}"); /* and its NUL */
  c->fast_len = b.len - head - 1;
  if (kind == 2)
    assay__buf_add(&b, id->valuestring, strlen(id->valuestring) + 1);
  for (int m = 0; m < nm; m++) {
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(it->pre[m].result->child, "value");
    double d = v->valuedouble;
    memcpy(b.p + (size_t)m * sizeof d, &d, sizeof d);
  }
  /* An exact copy: a buffer that grew is what allocators handle worst
   * when it is freed on another thread. */
  c->fast = assay__xmalloc(b.len);
  memcpy(c->fast, b.p, b.len);
  free(b.p);
  c->id_kind = kind;
  c->id_num = kind == 1 ? id->valuedouble : 0;
  c->task_ms = task_ms;
  c->metrics_ms = metrics_ms;

  /* The view holds references into the item and the output: first. */
  free(s->chain_view);
  s->chain_view = NULL;
  for (int m = 0; m < nm; m++)
    completion_clear(&it->pre[m]);
  cJSON_Delete(c->result);
  cJSON_Delete(c->json);
  free(c->text);
  free(c->in_text);
  c->result = c->json = NULL;
  c->text = c->in_text = NULL;
  return 1;
}

/* Whether every call of a run with a sync task has lately taken under us
 * (the task's and each metric's average). Any thread. */
#define HOLD_US 200
static int calls_under(struct assay_engine *e, long us) {
  for (int k = 0; k <= e->nmetrics; k++) {
    struct instance *inst = k == 0 ? e->task : e->metrics[k - 1];
    long avg = __atomic_load_n(&inst->sync_us, __ATOMIC_RELAXED);
    if (avg < 0 || avg >= us)
      return 0;
  }
  return 1;
}

/* On a worker: posts the slot's completion for a job that made no call:
 * given up while queued (skipped), or an item that is not valid JSON. */
static void post_no_call(struct assay_engine *e, struct slot *s, int skipped) {
  struct completion *c = &s->done;
  memset(c, 0, sizeof *c);
  c->embedded = 1;
  c->synthetic = skipped;
  c->unparsed = !skipped;
  c->call = make_call(e, s);
  post(c);
}

/* Runs on a worker thread. */
static void sync_work(struct assay_pool_job *job) {
  struct slot *s = assay__container_of(job, struct slot, pjob);
  struct assay_engine *e =
      assay__container_of(s->timer.loop, struct assay_engine, loop);
  struct completion *c = &s->done;
  double now = assay__now_ms();
  s->begun = (uint64_t)ceil(now);
  if (!stage_move(s, STAGE_QUEUED, 0)) {
    /* The loop gave up on it while it waited (see sync_expire). */
    post_no_call(e, s, 1);
    return;
  }
  /* A deferred item's first attempt: the worker parses it. */
  const cJSON *input = s->input;
  cJSON *parsed = NULL;
  struct item *it = s->item;
  if (s->job == 0 && input == NULL && it->raw != NULL) {
    struct assay_dataset_item di;
    assay_dataset_parse(e->ds_name, it->raw, it->raw_len, it->line, &di);
    if (di.json == NULL) {
      /* The loop parses it again for the message (see item_parse). */
      free(di.error);
      cJSON_Delete(di.id);
      post_no_call(e, s, 0);
      return;
    }
    input = parsed = di.json;
  }
  call_sync(e, s, s->job, input, s->attempt, s->timeout_ms, now, c);
  c->json = parsed;
  if (s->chain && !c->failed && c->result != NULL && !c->twice &&
      run_chain(e, s, input, c)) {
    double end = s->chain_done > 0 ? it->pre[s->chain_done - 1].t_end
                                   : c->t_end;
    if (parsed != NULL)
      finish_item(e, s, c);
    /* Held only while calls are short: a slow job after it would hold
     * it back as long. */
    if (__atomic_load_n(&e->hold, __ATOMIC_RELAXED)) {
      post_later(c, end);
      return;
    }
  }
  post(c);
}

/* Appends job to a list of jobs linked through next. */
static void job_append(struct assay_pool_job **head,
                       struct assay_pool_job **tail,
                       struct assay_pool_job *job) {
  job->next = NULL;
  if (*tail)
    (*tail)->next = job;
  else
    *head = job;
  *tail = job;
}

static void dispatch(struct assay_engine *e, struct slot *s) {
  struct item *it = s->item;
  struct instance *inst = job_instance(e, s->job);
  double now = assay__now_ms();
  long timeout = e->opts.timeout_ms;
  if (it->deadline > 0) {
    double left = it->deadline - now;
    if (left < 1) {
      char *msg = assay__format("item deadline of %ld ms reached "
                                "(--item-timeout)",
                                e->opts.item_timeout_ms);
      int job = s->job;
      it->refs++;
      slot_put(e, s);
      job_failed(e, it, job, ASSAY_ETIMEOUT, msg);
      item_release(e, it);
      free(msg);
      return;
    }
    if (left < (double)timeout)
      timeout = (long)left;
  }
  if (s->job == 0) {
    /* A deferred item's first attempt parses it on the worker; a later
     * one, when no worker got that far, here. */
    if (it->json == NULL && it->attempts[0] > 0 && item_parse(e, it) != 0) {
      it->refs++;
      slot_put(e, s);
      item_bad(e, it);
      item_release(e, it);
      return;
    }
    s->input = it->json;
    if (it->attempts[0] == 0)
      it->t_task = now;
  } else if (s->input == NULL) {
    /* Every attempt of a metric, retries included, gets its input. */
    s->input = metric_input(e, it, inst, s);
  }
  s->attempt = ++it->attempts[s->job];
  s->timeout_ms = timeout;
  s->state = SLOT_ACTIVE;
  s->skipped = 0;
  e->stats.calls++;
  /* In the loop's clock, counted from now by the precise one: the loop's
   * runs behind it (read once per turn, and coarsely), so a deadline
   * counted from it could come before the timeout had passed. */
  assay_deadline_add(&e->dl, &s->dl, (uint64_t)ceil(now) + (uint64_t)timeout);
  uint64_t call = make_call(e, s);
  if (inst->use_async) {
    struct call_ctx ctx = {.call = call,
                           .index = it->index,
                           .trial = it->trial,
                           .attempt = s->attempt,
                           .timeout_ms = timeout};
    struct call_ctx *saved = tls_ctx;
    tls_ctx = &ctx;
    int rc = inst->comp->run_async(inst->state, s->input, call);
    tls_ctx = saved;
    if (rc != 0) {
      /* It will never complete: fail it through the inbox, behind any
       * failure the plugin posted first with its reason. */
      struct completion *c = assay__xcalloc(1, sizeof *c);
      c->call = call;
      c->failed = 1;
      c->code = ASSAY_FAIL_ERROR;
      c->retry_after_ms = -1;
      c->msg = assay__format("%s '%s' could not start the call (run_async "
                             "returned %d)",
                             assay_kind_name(inst->kind), inst->comp->name, rc);
      c->synthetic = 1;
      post(c);
    }
  } else {
    if (s->job == 0 && e->chain) {
      s->chain = 1;
      s->dl_stage = 0;
    }
    s->begun_seen = 0;
    s->cap_at = it->deadline > 0 ? (uint64_t)ceil(it->deadline) : 0;
    __atomic_store_n(&s->stage, STAGE_QUEUED, __ATOMIC_RELAXED);
    s->pjob.work = sync_work;
    if (inst->quick && !s->chain) {
      job_append(&e->quick_head, &e->quick_tail, &s->pjob);
    } else {
      job_append(&e->sub_head, &e->sub_tail, &s->pjob);
      e->sub_n++;
    }
  }
}

/* The item's fields with the task output's fields over them, as references
 * (the view owns none of the values). */
static cJSON *base_view(struct item *it) {
  cJSON *view = cJSON_CreateObject();
  const cJSON *f;
  cJSON_ArrayForEach(f, it->json) {
    if (it->output && cJSON_GetObjectItemCaseSensitive(it->output, f->string))
      continue;
    cJSON_AddItemToObject(view, f->string, ref_of(f));
  }
  cJSON_ArrayForEach(f, it->output) {
    cJSON_AddItemToObject(view, f->string, ref_of(f));
  }
  return view;
}

/* " (they have: a, b, ...)": the fields a metric could be mapped to, for
 * a message about one it lacks. Owned. */
static char *view_fields(const cJSON *view) {
  char *keys = assay__json_keys(view, "no fields");
  char *s = assay__format(" (they have: %s)", keys);
  free(keys);
  return s;
}

/* Applies a metric's --map to a view. Returns 0, or -1 with *msg set when a
 * mapped field is missing. */
static int apply_map(cJSON *view, const cJSON *map, char **msg) {
  const cJSON *f;
  cJSON_ArrayForEach(f, map) {
    /* Paths resolve against the item and output as merged. */
    const cJSON *v = assay__json_path(view, f->valuestring);
    if (v == NULL) {
      char *why = msg ? assay__json_path_miss(view, f->valuestring) : NULL;
      if (why != NULL) {
        *msg = assay__format("--map %s=%s: %s", f->string, f->valuestring, why);
        free(why);
      } else if (msg != NULL) {
        char *have = view_fields(view);
        *msg = assay__format("--map %s=%s: neither the item nor the task "
                             "output has '%s'%s",
                             f->string, f->valuestring, f->valuestring, have);
        free(have);
      }
      return -1;
    }
    if (strcmp(f->string, f->valuestring) == 0)
      continue;
    /* Add the new reference first (v may be the entry it replaces), then
     * drop the older entry of that key, which comes first. */
    int existed = cJSON_GetObjectItemCaseSensitive(view, f->string) != NULL;
    cJSON_AddItemReferenceToObject(view, f->string, (cJSON *)v);
    if (existed)
      cJSON_DeleteItemFromObjectCaseSensitive(view, f->string);
  }
  return 0;
}

/*
 * The view all metrics without --map share, in one allocation: the object
 * and one reference per field, linked by hand. Its keys are the fields'
 * own (borrowed, not marked constant, so a cJSON_Duplicate of the view
 * copies them); it is freed with free(), never cJSON_Delete, and plugins
 * only read it.
 */
static cJSON *shared_view(const cJSON *json, const cJSON *output) {
  int n = 0;
  const cJSON *f;
  cJSON_ArrayForEach(f, json) n++;
  cJSON_ArrayForEach(f, output) n++;
  cJSON *v = assay__xcalloc((size_t)n + 1, sizeof *v);
  v->type = cJSON_Object;
  cJSON *prev = NULL, *node = v + 1;
  for (int pass = 0; pass < 2; pass++) {
    const cJSON *from = pass == 0 ? json : output;
    cJSON_ArrayForEach(f, from) {
      if (pass == 0 && output &&
          cJSON_GetObjectItemCaseSensitive(output, f->string))
        continue;
      set_ref(node, f);
      if (prev == NULL) {
        v->child = node;
      } else {
        prev->next = node;
        node->prev = prev;
      }
      v->child->prev = node; /* cJSON keeps the last child here */
      prev = node++;
    }
  }
  return v;
}

/* A metric's input: the item's shared view, built once for all metrics
 * without --map, or a view of the slot's own with the map applied. */
static const cJSON *metric_input(struct assay_engine *e, struct item *it,
                                 struct instance *inst, struct slot *s) {
  (void)e;
  if (cJSON_GetArraySize(inst->map) == 0) {
    if (it->view == NULL)
      it->view = shared_view(it->json, it->output);
    return it->view;
  }
  cJSON_Delete(s->view);
  s->view = base_view(it);
  apply_map(s->view, inst->map, NULL);
  return s->view;
}

/* The first input inst requires that view lacks, or NULL. Any thread. */
static const char *missing_input(const struct instance *inst,
                                 const cJSON *view) {
  for (const struct assay_input *in = inst->comp->inputs; in && in->name; in++)
    if (!(in->flags & ASSAY_INPUT_OPTIONAL) &&
        cJSON_GetObjectItemCaseSensitive(view, in->name) == NULL)
      return in->name;
  return NULL;
}

/* Checks, before a metric's first call, that its mapped fields and the
 * keys it reads are there; returns NULL or the message (owned). */
static char *metric_missing(struct item *it, struct instance *inst) {
  char *msg = NULL;
  cJSON *mapped = NULL;
  const cJSON *view;
  if (cJSON_GetArraySize(inst->map) == 0) {
    if (it->view == NULL)
      it->view = shared_view(it->json, it->output);
    view = it->view;
  } else {
    mapped = base_view(it);
    if (apply_map(mapped, inst->map, &msg) != 0) {
      cJSON_Delete(mapped);
      return msg;
    }
    view = mapped;
  }
  const char *name = missing_input(inst, view);
  if (name != NULL) {
    char *have = view_fields(view);
    msg = assay__format(
        "metric '%s' reads '%s', which neither the item nor the task "
        "output has%s; map a field to it with --map %s=FIELD after --metric",
        inst->comp->name, name, have, name);
    free(have);
  }
  cJSON_Delete(mapped);
  return msg;
}

static void start_metrics(struct assay_engine *e, struct item *it) {
  if (e->nmetrics == 0) {
    item_final(e, it);
    return;
  }
  if (it->t_metrics == 0)
    it->t_metrics = assay__now_ms();
  it->metrics_left = e->nmetrics;
  /* Hold the item so that a failure below cannot finish it mid-loop. */
  it->metrics_left++;
  for (int m = 0; m < e->nmetrics; m++) {
    if (m < it->chain_done) {
      chain_replay(e, it, m);
      continue;
    }
    if (m == it->chain_done && it->chain_cut) {
      chain_timeout(e, it, m);
      continue;
    }
    char *msg = metric_missing(it, e->metrics[m]);
    if (msg != NULL) {
      job_failed(e, it, 1 + m, ASSAY_EMISSING_INPUT, msg);
      free(msg);
      continue;
    }
    dispatch(e, slot_get(e, it, 1 + m));
  }
  if (it->metrics_left == 1 && it->chain_done == e->nmetrics)
    it->t_mend = it->pre[e->nmetrics - 1].t_end; /* all ran on the worker */
  metric_done(e, it);
}

/* ---- completions --------------------------------------------------------------- */


/* A call of job ended with c, on a slot already given back. */
static void job_completed(struct assay_engine *e, struct item *it, int job,
                          struct completion *c) {
  struct instance *inst = job_instance(e, job);
  if (c->twice)
    e->stats.plugin_faults++;
  if (c->failed) {
    attempt_failed(e, it, job, c->code, c->retry_after_ms, c->cause, c->msg);
  } else if (c->result == NULL) {
    char *msg = assay__format("%s '%s' returned nothing (neither a result "
                              "nor a failure)",
                              assay_kind_name(inst->kind), inst->comp->name);
    job_failed(e, it, job, ASSAY_ENO_OUTPUT, msg);
    free(msg);
  } else {
    cJSON *r = c->result;
    c->result = NULL;
    if (job == 0)
      task_succeeded(e, it, r, c);
    else
      metric_succeeded(e, it, job, r, c);
  }
}

/* Metric m ran in the item's chain: its call is counted and its
 * completion handled as if it had come through the inbox. */
static void chain_replay(struct assay_engine *e, struct item *it, int m) {
  e->stats.calls++;
  e->stats.chained++;
  it->attempts[1 + m]++;
  job_completed(e, it, 1 + m, &it->pre[m]);
  completion_clear(&it->pre[m]);
}

/* Metric m, running in the item's chain, timed out: the worker keeps the
 * call until it returns (see chain_expire). */
static void chain_timeout(struct assay_engine *e, struct item *it, int m) {
  struct instance *inst = e->metrics[m];
  e->stats.calls++;
  e->stats.chained++;
  e->stats.timeouts++;
  it->attempts[1 + m]++;
  char *msg = assay__format("%s '%s' timed out after %ld ms",
                            assay_kind_name(inst->kind), inst->comp->name,
                            it->cut_ms);
  attempt_failed(e, it, 1 + m, ASSAY_FAIL_TIMEOUT, -1, "timeout", msg);
  free(msg);
}

static void handle_completion(struct assay_engine *e, struct completion *c) {
  /* A slot's own completion is read after the slot may be reused. */
  struct completion local;
  if (c->embedded) {
    local = *c;
    c = &local;
  }
  uint32_t idx = (uint32_t)(c->call & SLOT_MASK);
  uint32_t gen = (uint32_t)((c->call >> 24) & GEN_MASK);
  struct slot *s = idx < (uint32_t)e->nslots ? e->slots[idx] : NULL;
  if (s == NULL || (s->gen & GEN_MASK) != gen || s->state == SLOT_FREE ||
      s->state == SLOT_BACKOFF) {
    if (!c->synthetic)
      e->stats.plugin_faults++;
    completion_free(c);
    return;
  }
  if (s->state == SLOT_ABANDONED) {
    /* The late completion of a timed-out call: drop it, free the slot. */
    if (!c->synthetic)
      e->stats.late_completions++;
    if (!job_instance(e, s->job)->use_async && !s->skipped)
      e->sync_abandoned--;
    completion_free(c);
    slot_put(e, s);
    return;
  }
  if (s->chain && !c->embedded) {
    /* Only the worker completes a chain's call (see run_chain). */
    e->stats.plugin_faults++;
    completion_free(c);
    return;
  }
  struct item *it = s->item;
  int job = s->job;
  if (c->json != NULL) {
    /* The item its worker parsed (see sync_work). */
    if (it->json == NULL)
      it->json = c->json;
    else
      cJSON_Delete(c->json);
    c->json = NULL;
  }
  if (c->unparsed || c->fast != NULL) {
    it->refs++;
    slot_put(e, s);
    if (c->unparsed) {
      /* Malformed: as if it had been found so when read. */
      e->stats.calls--;
      it->attempts[0] = 0;
      item_parse(e, it);
      item_bad(e, it);
    } else {
      /* Finished by its worker (see finish_item): the calls it made, one
       * attempt each (the light record says so; it->attempts goes
       * unread). */
      e->stats.calls += e->nmetrics;
      e->stats.chained += e->nmetrics;
      it->fast = c->fast;
      it->fast_len = c->fast_len;
      it->id_kind = c->id_kind;
      it->id_num = c->id_num;
      it->task_ms = c->task_ms;
      it->metrics_ms = c->metrics_ms;
      c->fast = NULL;
      e->stats.finished++;
      item_final(e, it);
    }
    item_release(e, it);
    completion_free(c);
    return;
  }
  if (s->chain) {
    it->chain_done = s->chain_done;
    if (s->chain_view != NULL) {
      it->view = s->chain_view;
      s->chain_view = NULL;
    }
  }
  it->refs++;
  slot_put(e, s);
  job_completed(e, it, job, c);
  item_release(e, it);
  completion_free(c);
}

/* The grace period after a stop ran out: items still in flight are given
 * up (not written: a resumed run does them again), and the run ends. */
static void on_grace(uv_timer_t *t) {
  struct assay_engine *e = assay__container_of(t, struct assay_engine, grace);
  e->stats.abandoned = e->running;
  if (!e->done) {
    flush(e);
    e->done = 1;
    if (e->looping)
      uv_stop(&e->loop);
  }
}

/* Handles a list of completions, then admits what they made room for. */
static void run_completions(struct assay_engine *e, struct completion *c) {
  while (c != NULL) {
    struct completion *next = c->next;
    handle_completion(e, c);
    c = next;
  }
  if (__atomic_load_n(&e->stop_requested, __ATOMIC_SEQ_CST) && !e->stopping) {
    e->stopping = 1;
    if (e->running > 0 && e->opts.grace_ms > 0)
      uv_timer_start(&e->grace, on_grace, (uint64_t)e->opts.grace_ms, 0);
    else if (e->running > 0)
      on_grace(&e->grace);
  }
  pump(e);
}

static void on_inbox(uv_async_t *a) {
  struct assay_engine *e = assay__container_of(a, struct assay_engine, inbox_async);
  uv_mutex_lock(&reg_lock);
  struct completion *c = e->inbox_head;
  e->inbox_head = e->inbox_tail = NULL;
  uv_mutex_unlock(&reg_lock);
  run_completions(e, c);
}

static void on_turn(uv_idle_t *h) {
  struct assay_engine *e = assay__container_of(h, struct assay_engine, turn);
  uv_idle_stop(h);
  struct completion *c = e->local_head;
  e->local_head = e->local_tail = NULL;
  run_completions(e, c);
}

/* ---- the pipeline: records out in order, items in ---------------------------- */

/*
 * The record of a final item, lent to the record callback. Its own nodes
 * are one block with literal keys (no allocation per member): values come
 * as references into the item, and the scores and error are moved in from
 * the item. record_free() undoes it.
 */
enum { R_INDEX, R_ID, R_TRIAL, R_INPUT, R_OUTPUT, R_SCORES, R_ERROR, R_ATTEMPTS,
       R_TASK_MS, R_METRICS_MS, R_COUNT };

static void set_number(cJSON *n, double d) {
  n->type = cJSON_Number;
  cJSON_SetNumberValue(n, d);
}

static cJSON *record_build(struct assay_engine *e, struct item *it) {
  static const char *const keys[R_COUNT] = {
      "index", "id", "trial", "input", "output", "scores", "error", "attempts",
      "task_ms", "metrics_ms"};
  cJSON *r = assay__xcalloc(R_COUNT + 1, sizeof *r);
  cJSON *m = r + 1;
  set_number(&m[R_INDEX], (double)it->index);
  const cJSON *id = it->id   ? it->id
                   : it->json ? cJSON_GetObjectItemCaseSensitive(it->json, "id")
                              : NULL;
  if (cJSON_IsString(id) || cJSON_IsNumber(id))
    set_ref(&m[R_ID], id);
  else
    set_number(&m[R_ID], (double)it->index);
  set_number(&m[R_TRIAL], it->trial);
  set_ref(&m[R_INPUT], it->json);
  set_ref(&m[R_OUTPUT], it->output);
  cJSON *scores = &m[R_SCORES];
  scores->type = cJSON_Object;
  e->dup = 0;
  for (int k = 0; it->scores && k < e->nmetrics; k++) {
    cJSON *sm = it->scores[k];
    e->moved[k] = 0;
    if (sm == NULL)
      continue;
    cJSON *s = sm->child;
    while (s != NULL) {
      cJSON *next = s->next;
      if (cJSON_GetObjectItemCaseSensitive(scores, s->string) == NULL) {
        move_keyed(scores, cJSON_DetachItemViaPointer(sm, s));
        e->moved[k]++;
      } else if (e->dup++, !e->warned_dup) {
        e->warned_dup = 1;
        fprintf(stderr, "assay: warning: two metrics produced a score named "
                        "'%s'; the second is dropped (rename with --opt "
                        "name=...)\n",
                s->string);
      }
      s = next;
    }
  }
  if (it->error) {
    /* The item's error object is moved in: its members come along. */
    m[R_ERROR] = *it->error;
    it->error->child = NULL;
    cJSON_Delete(it->error);
    it->error = NULL;
  } else {
    m[R_ERROR].type = cJSON_NULL;
  }
  int attempts = it->kept_attempts >= 0 ? it->kept_attempts
                 : it->attempts        ? it->attempts[0]
                                       : 0;
  set_number(&m[R_ATTEMPTS], attempts);
  set_number(&m[R_TASK_MS], round(it->task_ms * 1000) / 1000);
  set_number(&m[R_METRICS_MS], round(it->metrics_ms * 1000) / 1000);
  r->type = cJSON_Object;
  r->child = m;
  for (int k = 0; k < R_COUNT; k++) {
    m[k].string = (char *)keys[k];
    m[k].type |= cJSON_StringIsConst;
    m[k].prev = k > 0 ? &m[k - 1] : &m[R_COUNT - 1];
    m[k].next = k + 1 < R_COUNT ? &m[k + 1] : NULL;
  }
  return r;
}

/*
 * The record's line: the text assay__json_write() prints for it, with the
 * parts workers printed ahead (input, output, a metric's scores) copied
 * in. NULL when a duplicate score name was dropped (the record alone is
 * then right).
 */
static const char *record_line(struct assay_engine *e, struct item *it,
                               const cJSON *r, size_t *len) {
  static const char *const keys[R_COUNT] = {
      "{\"index\":", ",\"id\":", ",\"trial\":", ",\"input\":",
      ",\"output\":", ",\"scores\":{", ",\"error\":", ",\"attempts\":",
      ",\"task_ms\":", ",\"metrics_ms\":"};
  if (e->dup)
    return NULL;
  struct assay__buf *b = &e->line;
  const cJSON *m = r + 1;
  b->len = 0;
  for (int k = 0; k < R_COUNT; k++) {
    assay__buf_add(b, keys[k], strlen(keys[k]));
    const struct frag *f = k == R_INPUT ? &it->in : k == R_OUTPUT ? &it->frags[0] : NULL;
    if (f != NULL && f->p != NULL) {
      assay__buf_add(b, f->p, f->n);
    } else if (k == R_SCORES) {
      /* Each metric's scores, printed ahead or now, in order. */
      const cJSON *sc = m[k].child;
      int first = 1;
      for (int j = 0; j < e->nmetrics; j++) {
        for (int i = 0; i < e->moved[j]; i++, sc = sc->next) {
          if (it->frags[1 + j].p != NULL) {
            if (i == 0) {
              if (!first)
                assay__buf_add(b, ",", 1);
              assay__buf_add(b, it->frags[1 + j].p, it->frags[1 + j].n);
            }
          } else {
            if (!first || i > 0)
              assay__buf_add(b, ",", 1);
            assay__json_string(b, sc->string);
            assay__buf_add(b, ":", 1);
            if (assay__json_write(b, sc) != 0)
              return NULL;
          }
        }
        if (e->moved[j] > 0)
          first = 0;
      }
      assay__buf_add(b, "}", 1);
    } else if (assay__json_write(b, &m[k]) != 0) {
      return NULL;
    }
  }
  assay__buf_add(b, "}", 1);
  *len = b->len;
  return b->p;
}

/*
 * The record of an item its worker finished, lent to the record callback
 * with the line: what the summary and the gates read (index, id, trial,
 * each score's value, error, attempts, times), without input or output.
 * One tree, made once and filled for each item.
 */
static cJSON *light_record(struct assay_engine *e, struct item *it) {
  if (e->light == NULL) {
    cJSON *r = e->light = cJSON_CreateObject();
    e->l_index = cJSON_AddNumberToObject(r, "index", 0);
    e->l_id = cJSON_AddNullToObject(r, "id");
    e->l_trial = cJSON_AddNumberToObject(r, "trial", 0);
    cJSON *scores = cJSON_AddObjectToObject(r, "scores");
    e->l_vals = assay__xcalloc((size_t)e->nmetrics, sizeof *e->l_vals);
    for (int m = 0; m < e->nmetrics; m++) {
      cJSON *sc = cJSON_AddObjectToObject(scores, e->metrics[m]->score_name);
      e->l_vals[m] = cJSON_AddNumberToObject(sc, "value", 0);
    }
    cJSON_AddNullToObject(r, "error");
    cJSON_AddNumberToObject(r, "attempts", 1);
    e->l_task_ms = cJSON_AddNumberToObject(r, "task_ms", 0);
    e->l_metrics_ms = cJSON_AddNumberToObject(r, "metrics_ms", 0);
  }
  set_number(e->l_index, (double)it->index);
  cJSON *id = e->l_id;
  if (it->id_kind == 2) {
    /* Borrowed from after the line: a reference is never freed. */
    id->type = cJSON_String | cJSON_IsReference;
    id->valuestring = it->fast + (size_t)e->nmetrics * sizeof(double) +
                      it->fast_len + 1;
  } else {
    id->valuestring = NULL;
    set_number(id, it->id_kind == 1 ? it->id_num : (double)it->index);
  }
  set_number(e->l_trial, it->trial);
  for (int m = 0; m < e->nmetrics; m++) {
    double v;
    memcpy(&v, it->fast + (size_t)m * sizeof v, sizeof v);
    set_number(e->l_vals[m], v);
  }
  set_number(e->l_task_ms, it->task_ms);
  set_number(e->l_metrics_ms, it->metrics_ms);
  return e->light;
}

/* Frees a record of record_build(): what was moved in, then the block. */
static void record_free(cJSON *r) {
  cJSON *m = r + 1;
  cJSON_Delete(m[R_SCORES].child);
  m[R_SCORES].child = NULL;
  if (m[R_ERROR].child != NULL)
    cJSON_Delete(m[R_ERROR].child);
  free(r);
}

static void flush(struct assay_engine *e) {
  int64_t written = e->next_write;
  while (e->next_write < e->next_seq) {
    struct item *it = e->ring[e->next_write % e->window];
    if (!it->final)
      break;
    e->ring[e->next_write % e->window] = NULL;
    e->next_write++;
    e->pending--;
    if (e->run_rc == 0) {
      cJSON *r;
      size_t len = 0;
      const char *line;
      if (it->fast != NULL) {
        r = light_record(e, it);
        line = it->fast + (size_t)e->nmetrics * sizeof(double);
        len = it->fast_len;
      } else {
        /* A deferred item no worker parsed (its first call given up
         * while queued, or its deadline passed first): its input. */
        if (it->json == NULL && it->raw != NULL)
          item_parse(e, it);
        r = record_build(e, it);
        line = record_line(e, it, r, &len);
      }
      e->stats.items++;
      if (e->cb(e->cb_arg, r, line, len) != 0) {
        e->run_rc = ASSAY_EIO;
        e->stopping = 1;
        if (e->run_err == NULL)
          e->run_err = assay__xstrdup("cannot write a result record");
      }
      if (r != e->light)
        record_free(r);
    }
    item_release(e, it);
  }
  /* The records handed out above leave together. */
  if (e->flush_cb != NULL && e->next_write > written && e->run_rc == 0 &&
      e->flush_cb(e->cb_arg) != 0) {
    e->run_rc = ASSAY_EIO;
    e->stopping = 1;
    if (e->run_err == NULL)
      e->run_err = assay__xstrdup("cannot write the result records");
  }
}

/* Makes the dataset item whose trials are admitted next current; 0 at the
 * end of the dataset (or of --limit), -1 on a read error. */
static int next_item(struct assay_engine *e) {
  if (e->cur_valid)
    return 1;
  if (e->opts.limit > 0 && e->items_read >= e->opts.limit)
    return 0;
  char *err = NULL;
  int rc = assay_dataset_next(e->ds, &e->cur, &err);
  if (rc < 0) {
    e->run_rc = rc;
    e->run_err = err ? err : assay__xstrdup("cannot read the dataset");
    return -1;
  }
  free(err);
  if (rc == 0)
    return 0;
  e->items_read++;
  e->cur_valid = 1;
  e->cur_trial = 0;
  return 1;
}

/* Takes the current item's next trial: its JSON and error (or its text,
 * deferred), and a malformed item's id, moved out on the last trial and
 * copied before. */
static void take_trial(struct assay_engine *e, cJSON **json, char **bad,
                       char **raw, cJSON **id, int64_t *index, int *trial) {
  int last = e->cur_trial + 1 >= e->opts.trials;
  *index = e->cur.index;
  *trial = e->cur_trial++;
  if (last) {
    *json = e->cur.json;
    *bad = e->cur.error;
    *raw = e->cur.raw;
    *id = e->cur.id;
    e->cur.json = e->cur.id = NULL;
    e->cur.error = e->cur.raw = NULL;
    e->cur_valid = 0;
  } else {
    *json = e->cur.json ? cJSON_Duplicate(e->cur.json, 1) : NULL;
    *bad = e->cur.error ? assay__xstrdup(e->cur.error) : NULL;
    *id = e->cur.id ? cJSON_Duplicate(e->cur.id, 1) : NULL;
    *raw = NULL;
    if (e->cur.raw != NULL) {
      *raw = assay__xmalloc(e->cur.raw_len + 1);
      memcpy(*raw, e->cur.raw, e->cur.raw_len + 1);
    }
  }
}

/*
 * Rescore: the dataset item is a result record. Its input becomes the
 * item, its output the task's output, and its identity, error, attempts and
 * task time are kept, so the new record differs only in its scores.
 */
static void unpack_record(const struct assay_engine *e, struct item *it) {
  cJSON *rec = it->json;
  it->json = NULL;
  const cJSON *index = cJSON_GetObjectItemCaseSensitive(rec, "index");
  const cJSON *trial = cJSON_GetObjectItemCaseSensitive(rec, "trial");
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(rec, "input");
  const cJSON *output = cJSON_GetObjectItemCaseSensitive(rec, "output");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(rec, "error");
  if (!cJSON_IsNumber(index) || !cJSON_HasObjectItem(rec, "input") ||
      !cJSON_HasObjectItem(rec, "output")) {
    it->bad = assay__format("%s:%zu: not a result record of 'assay run' (it "
                            "needs index, input and output)",
                            e->ds_name, it->line);
    cJSON_Delete(rec);
    return;
  }
  it->index = (int64_t)index->valuedouble;
  it->trial = cJSON_IsNumber(trial) ? trial->valueint : 0;
  cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(rec, "id");
  it->id = id;
  const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(rec, "attempts");
  it->kept_attempts = cJSON_IsNumber(attempts) ? attempts->valueint : 0;
  const cJSON *task_ms = cJSON_GetObjectItemCaseSensitive(rec, "task_ms");
  it->task_ms = cJSON_IsNumber(task_ms) ? task_ms->valuedouble : 0;
  if (cJSON_IsObject(input))
    it->json = cJSON_DetachItemViaPointer(rec, (cJSON *)input);
  if (cJSON_IsObject(output))
    it->output = cJSON_DetachItemViaPointer(rec, (cJSON *)output);
  else if (output != NULL && !cJSON_IsNull(output)) {
    /* A stored non-object output is wrapped as the engine would. */
    it->output = cJSON_CreateObject();
    cJSON_AddItemToObject(it->output, "output",
                          cJSON_DetachItemViaPointer(rec, (cJSON *)output));
  }
  if (cJSON_IsObject(error))
    it->error = cJSON_DetachItemViaPointer(rec, (cJSON *)error);
  else if (it->json == NULL)
    it->bad = assay__format("%s:%zu: the record of item %lld has no input "
                            "to score",
                            e->ds_name, it->line, (long long)it->index);
  cJSON_Delete(rec);
}

/* Admits the next unit (an item's trial) as a new struct item; 0 at the
 * end. */
static int admit_one(struct assay_engine *e) {
  if (next_item(e) <= 0)
    return 0;
  /* One allocation: the item, then a chain's completions, its fragments,
   * scores and attempts. */
  size_t nm = (size_t)e->nmetrics, npre = e->chain ? nm : 0;
  struct item *it = assay__xcalloc(
      1, sizeof *it + npre * sizeof *it->pre + (nm + 1) * sizeof *it->frags +
             nm * sizeof *it->scores + (nm + 1) * sizeof *it->attempts);
  it->pre = npre ? (struct completion *)(it + 1) : NULL;
  it->frags = (struct frag *)((struct completion *)(it + 1) + npre);
  it->scores = nm ? (cJSON **)(it->frags + nm + 1) : NULL;
  it->attempts = (int *)((cJSON **)(it->frags + nm + 1) + nm);
  it->seq = e->next_seq++;
  it->raw_len = e->cur.raw_len;
  it->line = e->cur.line;
  take_trial(e, &it->json, &it->bad, &it->raw, &it->id, &it->index, &it->trial);
  it->kept_attempts = -1;
  if (e->opts.rescore && it->bad == NULL)
    unpack_record(e, it);
  it->refs = 1;
  it->t_admit = assay__now_ms();
  if (e->opts.item_timeout_ms > 0)
    it->deadline = it->t_admit + (double)e->opts.item_timeout_ms;
  e->ring[it->seq % e->window] = it;
  e->running++;
  e->pending++;
  if (e->running > e->stats.max_running)
    e->stats.max_running = e->running;
  if (e->pending > e->stats.max_pending)
    e->stats.max_pending = e->pending;
  if (it->bad != NULL) {
    item_bad(e, it);
  } else if (it->error != NULL) {
    /* Rescoring a record whose task failed: it stays as it was. */
    e->stats.items_failed++;
    item_final(e, it);
  } else if (e->task != NULL) {
    start_job(e, it, 0);
  } else {
    start_metrics(e, it);
  }
  return 1;
}

/*
 * Hands the sync jobs gathered during this callback to the pool.
 *
 * Quick chains (every call of the run known to take under CHAIN_QUICK_US)
 * wake one worker fewer than there are: the loop thread is busy too, and
 * on a machine with as many workers as cores, the last worker to wake only
 * takes the core the loop needs (the CPU path: 2.5 s -> 2.2 s for 1M
 * items on 2 cores). Every NUDGE_MS a job that waited that long wakes a
 * sleeping worker, so a quick call turned slow holds nothing up.
 */
#define NUDGE_MS 2

static int quick_run(struct assay_engine *e) {
  /* Deferred items leave the loop little to do: every worker is needed. */
  if (!e->chain || e->defer || e->opts.threads < 2)
    return 0;
  return calls_under(e, CHAIN_QUICK_US);
}

static void on_nudge(uv_timer_t *t) {
  struct assay_engine *e = assay__container_of(t, struct assay_engine, nudge);
  if (e->pool == NULL ||
      assay_pool_nudge(e->pool, (uint64_t)NUDGE_MS * 1000000) == 0) {
    uv_timer_stop(t);
    e->nudging = 0;
  }
}

static void submit_jobs(struct assay_engine *e) {
  if (e->sub_n == 0)
    return;
  int hold = e->chain && calls_under(e, HOLD_US);
  if (hold != e->hold)
    __atomic_store_n(&e->hold, hold, __ATOMIC_RELAXED);
  int cap = quick_run(e) ? e->opts.threads - 1 : 0;
  assay_pool_submit_list(e->pool, e->sub_head, e->sub_tail, e->sub_n, cap);
  e->sub_head = e->sub_tail = NULL;
  e->sub_n = 0;
  if (cap > 0 && !e->nudging) {
    uv_timer_start(&e->nudge, on_nudge, NUDGE_MS, NUDGE_MS);
    e->nudging = 1;
  }
}

/*
 * Quick calls (ASSAY_QUICK: a sync component that promises never to block
 * and to return within microseconds) that are not part of a chain run here,
 * on the loop thread, instead of going to a worker and back: for a metric
 * like equals after an LLM task, the hand-off (a wake-up, the inbox, the
 * loop's wake-up) cost ten times the call. The loop cannot interrupt a
 * call, so a quick call is not held to --timeout while it runs. A
 * component whose calls turn out slow goes to the workers for the rest of
 * the run, with a warning: at its QUICK_STRIKES-th call over QUICK_MAX_US,
 * or at once for one over QUICK_STALL_US. One slow call is forgiven: a
 * first call pays for cold caches and lazy binding (under valgrind, 3 ms
 * for equals).
 */
#define QUICK_MAX_US 2000
#define QUICK_STRIKES 3
#define QUICK_STALL_US 100000

static int run_quick(struct assay_engine *e) {
  struct assay_pool_job *j = e->quick_head;
  if (j == NULL)
    return 0;
  e->quick_head = e->quick_tail = NULL;
  while (j != NULL) {
    struct assay_pool_job *next = j->next;
    struct slot *s = assay__container_of(j, struct slot, pjob);
    struct instance *inst = job_instance(e, s->job);
    if (!inst->quick) {
      /* Turned slow since it was queued. */
      job_append(&e->sub_head, &e->sub_tail, j);
      e->sub_n++;
    } else {
      struct completion *c = &s->done;
      double t0 = assay__now_ms();
      s->begun = (uint64_t)ceil(t0);
      __atomic_store_n(&s->stage, 0, __ATOMIC_RELAXED);
      call_sync(e, s, s->job, s->input, s->attempt, s->timeout_ms, t0, c);
      e->stats.quick++;
      double us = (c->t_end - t0) * 1000;
      if (us > QUICK_STALL_US ||
          (us > QUICK_MAX_US && ++inst->quick_slow >= QUICK_STRIKES)) {
        inst->quick = 0;
        fprintf(stderr,
                "assay: warning: %s '%s' is flagged quick, but its calls "
                "take milliseconds on the main thread (the last: %.1f ms); "
                "they go to the workers from now on\n",
                assay_kind_name(inst->kind), inst->comp->name, us / 1000);
      }
      handle_completion(e, c);
    }
    j = next;
  }
  return 1;
}

/*
 * Items admitted per turn of the loop. Starting an item can cost tens of
 * microseconds (an async LLM task opens its connection and sends its
 * request inline), and at --concurrency 1000 admitting all at once kept
 * the loop from reading any answer for over 100 ms. Past this many the
 * loop polls (without blocking: the turn handle) and admits more at its
 * next turn, so answers to the first requests are read, and their slots
 * refilled, while the window is still opening.
 */
#define ADMIT_TURN 64

static int can_admit(const struct assay_engine *e) {
  return !e->eof && !e->stopping && e->running < e->opts.concurrency &&
         e->next_seq - e->next_write < e->window;
}

static void pump(struct assay_engine *e) {
  int budget = ADMIT_TURN;
  for (;;) {
    flush(e);
    int admitted = 0;
    while (budget > 0 && can_admit(e)) {
      if (!admit_one(e)) {
        /* The last items are in flight: connections and requests kept
         * for items to come can go as they finish. */
        e->eof = 1;
        assay_http_drain(e->http);
        break;
      }
      admitted = 1;
      budget--;
    }
    if (budget == 0 && can_admit(e))
      uv_idle_start(&e->turn, on_turn);
    if (!admitted && !run_quick(e))
      break;
  }
  submit_jobs(e);
  if ((e->eof || e->stopping) && e->running == 0 && !e->done) {
    flush(e);
    e->done = 1;
    if (e->looping)
      uv_stop(&e->loop);
  }
}

static void on_tick(uv_timer_t *t) {
  struct assay_engine *e = assay__container_of(t, struct assay_engine, tick);
  e->tick_cb(e->tick_arg, e);
}

void assay_engine_set_flush(struct assay_engine *e, assay_flush_cb cb) {
  e->flush_cb = cb;
}

void assay_engine_set_tick(struct assay_engine *e, long interval_ms,
                           assay_tick_cb cb, void *arg) {
  e->tick_cb = cb;
  e->tick_arg = arg;
  e->tick_ms = interval_ms > 0 ? (uint64_t)interval_ms : 100;
}

int64_t assay_engine_running(const struct assay_engine *e) {
  return e->running;
}

void assay_engine_skip(struct assay_engine *e, int64_t count, assay_skip_cb cb,
                       void *arg) {
  e->skip = count;
  e->skip_cb = cb;
  e->skip_arg = arg;
}

/* Reads past the units an earlier run already handed out, letting the
 * caller check each is the one it saw. */
static int skip_done(struct assay_engine *e) {
  while (e->next_seq < e->skip) {
    int rc = next_item(e);
    if (rc < 0)
      return -1;
    if (rc == 0) {
      e->run_rc = ASSAY_ECONFIG;
      e->run_err = assay__format("the dataset gives only %lld results, but "
                                 "%lld records exist already",
                                 (long long)e->next_seq, (long long)e->skip);
      return -1;
    }
    cJSON *json, *id;
    char *bad, *raw, *err = NULL;
    int64_t index;
    int trial;
    size_t raw_len = e->cur.raw_len, line = e->cur.line;
    take_trial(e, &json, &bad, &raw, &id, &index, &trial);
    cJSON_Delete(id);
    if (raw != NULL) {
      struct assay_dataset_item di;
      assay_dataset_parse(e->ds_name, raw, raw_len, line, &di);
      json = di.json;
      bad = di.error;
      cJSON_Delete(di.id);
      free(raw);
    }
    rc = e->skip_cb ? e->skip_cb(e->skip_arg, index, trial, json, &err) : 0;
    cJSON_Delete(json);
    free(bad);
    if (rc != 0) {
      e->run_rc = ASSAY_ECONFIG;
      e->run_err = err ? err : assay__xstrdup("an existing record does not "
                                              "match the dataset");
      return -1;
    }
    e->next_seq++;
    e->next_write++;
  }
  return 0;
}

int assay_engine_run(struct assay_engine *e, struct assay_dataset *ds,
                     assay_record_cb cb, void *arg, char **errmsg) {
  if (e->ds != NULL)
    return assay__fail(errmsg, ASSAY_EINVAL, "an engine runs only once");
  int need_pool = e->task && !e->task->use_async;
  int any_async = e->task && e->task->use_async;
  for (int m = 0; m < e->nmetrics; m++) {
    need_pool |= !e->metrics[m]->use_async;
    any_async |= e->metrics[m]->use_async;
  }
  /* Async calls may open a connection each: the descriptor table grows
   * now, before the workers start (with threads, each growth waits for an
   * RCU grace period of 10-15 ms). */
  if (any_async)
    assay_http_reserve_fds(&e->loop, e->opts.concurrency);
  if (need_pool) {
    int rc = assay_pool_new(&e->pool, e->opts.threads, errmsg);
    if (rc != 0)
      return rc;
    assay_pool_set_idle(e->pool, post_held);
  }
  e->chain = e->opts.chain && e->task && !e->task->use_async &&
             e->nmetrics > 0 && !e->opts.rescore;
  for (int m = 0; m < e->nmetrics; m++)
    e->chain &= !e->metrics[m]->use_async &&
                cJSON_GetArraySize(e->metrics[m]->map) == 0;
  e->ds = ds;
  e->ds_name = assay_dataset_name(ds);
  /* Items parsed and finished on the workers: a chain, and a caller that
   * takes light records. */
  e->defer = e->chain && e->opts.light_records && assay_dataset_defer(ds);
  e->names_distinct = 1;
  for (int m = 0; m < e->nmetrics; m++)
    for (int k = 0; k < m; k++)
      if (strcmp(e->metrics[m]->score_name, e->metrics[k]->score_name) == 0)
        e->names_distinct = 0;
  e->cb = cb;
  e->cb_arg = arg;
  e->window = 2 * (int64_t)e->opts.concurrency;
  e->ring = assay__xcalloc((size_t)e->window, sizeof *e->ring);
  if (skip_done(e) != 0) {
    if (errmsg != NULL)
      *errmsg = assay__xstrdup(e->run_err);
    return e->run_rc;
  }
  /* Loading plugins took time the loop's clock has not seen yet; timeouts
   * start from now. */
  uv_update_time(&e->loop);
  if (e->tick_cb != NULL) {
    uv_timer_start(&e->tick, on_tick, e->tick_ms, e->tick_ms);
    /* Progress never keeps the loop alive on its own. */
    uv_unref((uv_handle_t *)&e->tick);
  }
  struct assay_engine *outer = tls_engine;
  tls_engine = e;
  uint64_t t0 = uv_hrtime(), idle0 = uv_metrics_idle_time(&e->loop);
  pump(e);
  e->looping = 1;
  while (!e->done)
    uv_run(&e->loop, UV_RUN_DEFAULT);
  e->looping = 0;
  tls_engine = outer;
  /* Busy near 1 means the loop thread set the pace: more --concurrency
   * would not go faster, and task times include waiting for the loop. */
  uint64_t wall = uv_hrtime() - t0;
  uint64_t idle = uv_metrics_idle_time(&e->loop) - idle0;
  if (e->idle_metrics && wall > 0)
    e->stats.loop_busy = idle >= wall ? 0 : 1.0 - (double)idle / (double)wall;
  uv_idle_stop(&e->turn);
  uv_timer_stop(&e->tick);
  uv_timer_stop(&e->nudge);
  e->nudging = 0;
  if (e->run_rc == 0 && e->stopping && (!e->eof || e->stats.abandoned > 0))
    e->run_rc = ASSAY_EINTERRUPTED;
  if (e->run_rc != 0 && errmsg != NULL)
    *errmsg = assay__xstrdup(e->run_err ? e->run_err
                                        : assay_strerror(e->run_rc));
  return e->run_rc;
}

void assay_engine_stop(struct assay_engine *e) {
  __atomic_store_n(&e->stop_requested, 1, __ATOMIC_SEQ_CST);
  uv_async_send(&e->inbox_async);
}

const struct assay_engine_stats *assay_engine_stats(const struct assay_engine *e) {
  return &e->stats;
}

cJSON *assay_engine_counters_json(const struct assay_engine *e) {
  const struct assay_engine_stats *s = &e->stats;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "calls", (double)s->calls);
  cJSON_AddNumberToObject(j, "chained", (double)s->chained);
  cJSON_AddNumberToObject(j, "quick", (double)s->quick);
  cJSON_AddNumberToObject(j, "finished", (double)s->finished);
  cJSON_AddNumberToObject(j, "retries", (double)s->retries);
  cJSON *by = cJSON_AddObjectToObject(j, "retries_by_cause");
  cJSON_AddNumberToObject(by, "429", (double)s->retries_429);
  cJSON_AddNumberToObject(by, "5xx", (double)s->retries_5xx);
  cJSON_AddNumberToObject(by, "timeout", (double)s->retries_timeout);
  cJSON_AddNumberToObject(by, "network", (double)s->retries_network);
  cJSON_AddNumberToObject(by, "other", (double)s->retries_other);
  cJSON_AddNumberToObject(j, "timeouts", (double)s->timeouts);
  cJSON_AddNumberToObject(j, "late_completions", (double)s->late_completions);
  cJSON_AddNumberToObject(j, "plugin_faults", (double)s->plugin_faults);
  cJSON_AddNumberToObject(j, "abandoned", (double)s->abandoned);
  cJSON_AddNumberToObject(j, "max_running", s->max_running);
  cJSON_AddNumberToObject(j, "max_pending", s->max_pending);
  cJSON_AddNumberToObject(j, "concurrency", e->opts.concurrency);
  cJSON_AddNumberToObject(j, "threads", e->opts.threads);
  cJSON_AddNumberToObject(j, "loop_busy",
                          floor(s->loop_busy * 1000 + 0.5) / 1000);
  if (e->http != NULL)
    cJSON_AddItemToObject(j, "http", assay_http_stats(e->http));
  return j;
}

static cJSON *instance_json(const struct instance *inst) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "kind", assay_kind_name(inst->kind));
  cJSON_AddStringToObject(j, "component", inst->comp->name);
  if (inst->kind == ASSAY_KIND_METRIC)
    cJSON_AddStringToObject(j, "score", inst->score_name);
  cJSON_AddStringToObject(j, "spec", inst->spec);
  cJSON_AddStringToObject(j, "plugin", inst->mod->desc->name);
  cJSON_AddStringToObject(j, "version", inst->mod->desc->version);
  cJSON_AddStringToObject(j, "file", inst->mod->path);
  cJSON_AddStringToObject(j, "mode", inst->use_async ? "async" : "sync");
  cJSON_AddItemToObject(j, "options", cJSON_Duplicate(inst->config, 1));
  if (inst->map != NULL)
    cJSON_AddItemToObject(j, "map", cJSON_Duplicate(inst->map, 1));
  return j;
}

cJSON *assay_engine_plugins_json(const struct assay_engine *e) {
  cJSON *a = cJSON_CreateArray();
  if (e->task)
    cJSON_AddItemToArray(a, instance_json(e->task));
  for (int m = 0; m < e->nmetrics; m++)
    cJSON_AddItemToArray(a, instance_json(e->metrics[m]));
  return a;
}

int assay_engine_busy_workers(const struct assay_engine *e) {
  /* Not assay_pool_busy(): a worker counts itself busy until just after it
   * posted its last completion, which would race with the end of a run. */
  return e->sync_abandoned;
}

static void instance_free(struct instance *inst) {
  if (inst == NULL)
    return;
  if (inst->inited && inst->comp->fini != NULL)
    inst->comp->fini(inst->state);
  cJSON_Delete(inst->config);
  cJSON_Delete(inst->map);
  free(inst->spec);
  free(inst->score_name);
  uv_mutex_destroy(&inst->serial);
  free(inst);
}

int assay_engine_free(struct assay_engine *e) {
  if (e == NULL)
    return 0;
  /* Workers first: after this no plugin code runs on another thread of
   * ours, and every sync result is in the inbox. */
  assay_pool_free(e->pool, NULL);
  e->pool = NULL;
  /* Pending HTTP exchanges call back into plugins: finish them while the
   * plugins are still there. */
  if (e->http != NULL) {
    assay_http_close(e->http);
    e->http = NULL;
    uv_run(&e->loop, UV_RUN_NOWAIT);
  }
  uv_mutex_lock(&reg_lock);
  reg[e->reg_index] = NULL;
  struct completion *c = e->inbox_head;
  e->inbox_head = e->inbox_tail = NULL;
  uv_mutex_unlock(&reg_lock);
  if (e->local_tail != NULL) {
    e->local_tail->next = c;
    c = e->local_head;
    e->local_head = e->local_tail = NULL;
  }
  while (c != NULL) {
    struct completion *next = c->next;
    completion_free(c);
    c = next;
  }
  instance_free(e->task);
  for (int m = 0; m < e->nmetrics; m++)
    instance_free(e->metrics[m]);

  for (int i = 0; i < e->nslots; i++)
    uv_close((uv_handle_t *)&e->slots[i]->timer, NULL);
  uv_close((uv_handle_t *)&e->inbox_async, NULL);
  uv_close((uv_handle_t *)&e->grace, NULL);
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_close((uv_handle_t *)&e->dl.timer, NULL);
  uv_close((uv_handle_t *)&e->nudge, NULL);
  uv_close((uv_handle_t *)&e->turn, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&e->loop);
  if (rc != 0) {
    fprintf(stderr, "assay: warning: a plugin left libuv handles open at "
                    "exit:\n");
    uv_print_all_handles(&e->loop, stderr);
  }

  /* Drop the references of calls never completed and of items never
   * written (an interrupted run); each item goes with its last one. */
  for (int i = 0; i < e->nslots; i++) {
    struct slot *s = e->slots[i];
    if (s->item != NULL) {
      cJSON_Delete(s->view);
      free(s->chain_view);
      item_release(e, s->item);
    }
    free(s->due);
    free(s);
  }
  for (int64_t i = 0; e->ring && i < e->window; i++)
    if (e->ring[i] != NULL)
      item_release(e, e->ring[i]);
  free(e->metrics);
  free(e->moved);
  free(e->line.p);
  free(e->slots);
  free(e->ring);
  assay_dataset_item_clear(&e->cur);
  if (e->light != NULL) {
    e->l_id->type = cJSON_NULL; /* not a reference into an item now */
    e->l_id->valuestring = NULL;
    cJSON_Delete(e->light);
  }
  free(e->l_vals);
  free(e->run_err);
  free(e);
  return rc;
}
