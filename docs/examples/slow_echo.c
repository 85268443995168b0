/*
 * slow_echo: a minimal async task plugin for assay. Its output is one field
 * of the item, handed back after a libuv timer of `ms` milliseconds on the
 * host's loop, so thousands of calls wait at once without a thread each. It
 * is the second example of docs/writing-task-plugins.md.
 */
#include <stdlib.h>

#include <assay/plugin.h>
#include <uv.h>

struct slow_echo_job;

struct slow_echo {
  const struct assay_host *host;
  const char *field;          /* borrowed from the config until fini */
  uint64_t ms;
  struct slow_echo_job *jobs; /* timers still running, for fini */
};

/* One call in flight. The timer is embedded, so the job lives until the
 * timer's close callback frees it. */
struct slow_echo_job {
  uv_timer_t timer;
  struct slow_echo *se;
  assay_call call;
  cJSON *output; /* taken by the host at complete() */
  struct slow_echo_job *prev, *next;
};

static int slow_echo_init(const cJSON *config, const struct assay_host *host,
                          void **state, char **errmsg) {
  double ms = host->opt_number(config, "ms", 100);
  if (ms < 0) {
    *errmsg = host->format("slow_echo: option 'ms' must be >= 0, not %g", ms);
    return -1;
  }
  struct slow_echo *se = calloc(1, sizeof(*se));
  if (se == NULL) {
    *errmsg = host->format("slow_echo: out of memory");
    return -1;
  }
  se->host = host;
  se->field = host->opt_string(config, "field", "input");
  se->ms = (uint64_t)ms;
  *state = se;
  return 0;
}

static void job_unlink(struct slow_echo_job *job) {
  if (job->prev != NULL)
    job->prev->next = job->next;
  else
    job->se->jobs = job->next;
  if (job->next != NULL)
    job->next->prev = job->prev;
}

static void job_free(uv_handle_t *handle) { free(handle->data); }

/* Loop thread. complete() is safe even if the host gave up on the call at
 * its timeout: the late result is dropped and counted, never a crash. */
static void on_timer(uv_timer_t *timer) {
  struct slow_echo_job *job = timer->data;
  job_unlink(job);
  job->se->host->complete(job->call, job->output);
  uv_close((uv_handle_t *)&job->timer, job_free);
}

/* Loop thread: must not block. Returns 0 once the timer is running. */
static int slow_echo_run(void *state, const cJSON *input, assay_call call) {
  struct slow_echo *se = state;
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(input, se->field);
  if (value == NULL) {
    se->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "item has no field '%s'",
                   se->field);
    return -1;
  }
  struct slow_echo_job *job = calloc(1, sizeof(*job));
  /* The output is copied now: the input is only borrowed. */
  if (job == NULL || (job->output = cJSON_Duplicate(value, 1)) == NULL) {
    free(job);
    se->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return -1;
  }
  job->se = se;
  job->call = call;
  uv_timer_init(se->host->loop, &job->timer);
  job->timer.data = job;
  /* Timers count from the loop's cached "now", which may be stale if the
   * host did a lot of work since the loop last woke: refresh it. */
  uv_update_time(se->host->loop);
  uv_timer_start(&job->timer, on_timer, se->ms, 0);
  job->next = se->jobs;
  if (se->jobs != NULL)
    se->jobs->prev = job;
  se->jobs = job;
  return 0;
}

/* Loop thread, after every call ended or was abandoned: timers of abandoned
 * calls may still run, and every handle must be closed here. */
static void slow_echo_fini(void *state) {
  struct slow_echo *se = state;
  while (se->jobs != NULL) {
    struct slow_echo_job *job = se->jobs;
    se->jobs = job->next;
    cJSON_Delete(job->output);
    uv_close((uv_handle_t *)&job->timer, job_free);
  }
  free(se);
}

static const struct assay_option slow_echo_options[] = {
    {"field", ASSAY_OPT_STRING, "\"input\"", "item field to echo", 0},
    {"ms", ASSAY_OPT_INTEGER, "100", "delay in milliseconds", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component slow_echo_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "slow_echo",
    .description = "an item field, after a delay on a libuv timer",
    .options = slow_echo_options,
    .init = slow_echo_init,
    .fini = slow_echo_fini,
    .run_async = slow_echo_run,
};

static const struct assay_component *const slow_echo_components[] = {
    &slow_echo_task, NULL};

static const struct assay_plugin slow_echo_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "slow_echo",
    .version = "1.0.0",
    .description = "example async task",
    .components = slow_echo_components,
};

ASSAY_PLUGIN(slow_echo, slow_echo_plugin)
