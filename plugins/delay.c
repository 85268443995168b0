/*
 * delay: an async task that answers like echo after a libuv timer, for demos,
 * tests and benchmarks of the engine. It never blocks the loop: thousands of
 * calls wait at once on one thread. fail_rate makes a deterministic fraction
 * of items fail (chosen by item index, so tests can rely on which).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include <uv.h>

#include "jsonwords.h"

struct delay_call;

struct delay {
  const struct assay_host *host;
  char *field;
  double ms, jitter_ms, fail_rate;
  int retryable;
  long fail_attempts;
  struct delay_call *live; /* timers not yet fired, closed by fini */
};

struct delay_call {
  uv_timer_t timer;
  struct delay *d;
  assay_call call;
  cJSON *output; /* owned until handed to complete() */
  int fail;
  struct delay_call *prev, *next;
};

static int delay_init(const cJSON *config, const struct assay_host *host,
                      void **state, char **errmsg) {
  struct delay *d = host->alloc(sizeof *d);
  memset(d, 0, sizeof *d);
  d->host = host;
  d->field = host->format("%s", host->opt_string(config, "field", "input"));
  d->ms = host->opt_number(config, "ms", 100);
  d->jitter_ms = host->opt_number(config, "jitter_ms", 0);
  d->fail_rate = host->opt_number(config, "fail_rate", 0);
  d->retryable = host->opt_bool(config, "retryable", 0);
  d->fail_attempts = (long)host->opt_number(config, "fail_attempts", 0);
  if (d->ms < 0 || d->jitter_ms < 0 || d->fail_rate < 0 || d->fail_rate > 1 ||
      d->fail_attempts < 0) {
    *errmsg = host->format("delay: ms and jitter_ms must be >= 0, fail_rate "
                           "within 0..1 and fail_attempts >= 0");
    host->dealloc(d->field);
    host->dealloc(d);
    return -1;
  }
  *state = d;
  return 0;
}

static void call_unlink(struct delay_call *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    c->d->live = c->next;
  if (c->next)
    c->next->prev = c->prev;
}

static void call_free(uv_handle_t *h) {
  struct delay_call *c = (struct delay_call *)h;
  cJSON_Delete(c->output);
  free(c);
}

static void delay_fini(void *state) {
  struct delay *d = state;
  /* Calls the host abandoned still have timers running: close them. */
  while (d->live != NULL) {
    struct delay_call *c = d->live;
    call_unlink(c);
    uv_close((uv_handle_t *)&c->timer, call_free);
  }
  d->host->dealloc(d->field);
  d->host->dealloc(d);
}

static void on_timer(uv_timer_t *t) {
  struct delay_call *c = (struct delay_call *)t;
  struct delay *d = c->d;
  call_unlink(c);
  if (c->fail)
    d->host->fail(c->call,
                  d->retryable ? ASSAY_FAIL_RETRYABLE : ASSAY_FAIL_ERROR, -1,
                  "delay: injected failure (fail_rate %g)", d->fail_rate);
  else {
    d->host->complete(c->call, c->output);
    c->output = NULL;
  }
  uv_close((uv_handle_t *)&c->timer, call_free);
}

/* A low-discrepancy sequence: the first N indices hold round(N * rate)
 * failures, so small runs already show the configured fraction. */
static int fails(int64_t index, double rate) {
  double x = (double)index * 0.6180339887498949;
  return x - floor(x) < rate;
}

static int delay_run(void *state, const cJSON *input, assay_call call) {
  struct delay *d = state;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, d->field);
  if (v == NULL) {
    char *have = assay_json_keys(input, "no fields");
    d->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "item has no field '%s' (it has: %s); pick one with --opt "
                  "field=NAME",
                  d->field, have ? have : "?");
    free(have);
    return 0;
  }
  struct assay_call_info info = {.size = sizeof info};
  if (d->host->call_info(call, &info) != 0)
    info.index = 0, info.attempt = 1;
  struct delay_call *c = calloc(1, sizeof *c);
  if (c == NULL) {
    d->host->fail(call, ASSAY_FAIL_ERROR, -1, "delay: out of memory");
    return -1;
  }
  c->d = d;
  c->call = call;
  c->fail = d->fail_rate > 0 && fails(info.index, d->fail_rate) &&
            (d->fail_attempts == 0 || info.attempt <= d->fail_attempts);
  if (!c->fail) {
    c->output = cJSON_CreateObject();
    cJSON_AddItemToObject(c->output, "output", cJSON_Duplicate(v, 1));
  }
  double ms = d->ms;
  if (d->jitter_ms > 0) {
    /* Deterministic jitter from the index and attempt. */
    uint64_t h = (uint64_t)info.index * 0x9e3779b97f4a7c15ull +
                 (uint64_t)info.attempt * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    ms += (double)(h % 1000003) / 1000003.0 * d->jitter_ms;
  }
  uv_timer_init(d->host->loop, &c->timer);
  c->next = d->live;
  if (d->live)
    d->live->prev = c;
  d->live = c;
  uv_timer_start(&c->timer, on_timer, (uint64_t)llround(ms), 0);
  return 0;
}

static const struct assay_option delay_options[] = {
    {"ms", ASSAY_OPT_NUMBER, "100", "milliseconds before answering", 0},
    {"jitter_ms", ASSAY_OPT_NUMBER, "0",
     "up to this many extra milliseconds, deterministic per item", 0},
    {"field", ASSAY_OPT_STRING, "\"input\"", "the item field to output", 0},
    {"fail_rate", ASSAY_OPT_NUMBER, "0",
     "fraction of items (0..1, chosen by index) whose calls fail", 0},
    {"retryable", ASSAY_OPT_BOOLEAN, "false",
     "injected failures are retryable", 0},
    {"fail_attempts", ASSAY_OPT_INTEGER, "0",
     "a failing item fails only its first N attempts (0: all)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component delay_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "delay",
    .description = "outputs an item field after a timer (async)",
    .options = delay_options,
    .init = delay_init,
    .fini = delay_fini,
    .run_async = delay_run,
};

static const struct assay_component *const delay_components[] = {&delay_task,
                                                                 NULL};

static const struct assay_plugin delay_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "delay",
    .version = "1.0.0",
    .description = "delay task",
    .components = delay_components,
};

ASSAY_PLUGIN(delay, delay_plugin)
