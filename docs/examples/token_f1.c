/*
 * token_f1: a minimal async metric plugin for assay whose calls finish on a
 * thread of its own, as a plugin wrapping a library with its own threads
 * would. The score is the F1 of the output's and the reference's words
 * (lower-cased, split on white space, each word matched once). It is the
 * second example of docs/writing-metric-plugins.md.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>
#include <uv.h>

/* One queued call. The thread works on its own copies of the texts. */
struct f1_job {
  assay_call call;
  char *output, *reference;
  struct f1_job *next;
};

struct token_f1 {
  const struct assay_host *host;
  uv_thread_t thread;
  uv_mutex_t lock; /* guards the queue and stopping */
  uv_cond_t wake;
  struct f1_job *head, *tail;
  int stopping;
};

static void job_free(struct f1_job *job) {
  free(job->output);
  free(job->reference);
  free(job);
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  return c != NULL ? memcpy(c, s, n) : NULL;
}

/* Lower-cases s in place and splits it into words; returns how many, with
 * *words (owned; the words point into s) set, or -1 when out of memory. */
static long split_words(char *s, char ***words) {
  size_t cap = strlen(s) / 2 + 1;
  long n = 0;
  *words = malloc(cap * sizeof(**words));
  if (*words == NULL)
    return -1;
  for (char *p = s; *p != '\0';) {
    while (isspace((unsigned char)*p))
      *p++ = '\0';
    if (*p == '\0')
      break;
    (*words)[n++] = p;
    for (; *p != '\0' && !isspace((unsigned char)*p); p++)
      *p = (char)tolower((unsigned char)*p);
  }
  return n;
}

/* Word F1 of job, or -1 when out of memory. */
static double f1_score(struct f1_job *job) {
  char **out = NULL, **ref = NULL;
  long n_out = split_words(job->output, &out);
  long n_ref = split_words(job->reference, &ref);
  double f1 = -1;
  if (n_out >= 0 && n_ref >= 0) {
    long common = 0;
    for (long i = 0; i < n_out; i++) {
      for (long j = 0; j < n_ref; j++) {
        if (ref[j] != NULL && strcmp(out[i], ref[j]) == 0) {
          ref[j] = NULL; /* each reference word matches once */
          common++;
          break;
        }
      }
    }
    if (n_out == 0 || n_ref == 0)
      f1 = n_out == n_ref ? 1.0 : 0.0;
    else
      f1 = 2.0 * (double)common / (double)(n_out + n_ref);
  }
  free(out);
  free(ref);
  return f1;
}

/* The plugin's own thread: not the loop, not a worker of the host. It may
 * call complete() and fail(), which are safe from any thread. */
static void worker(void *arg) {
  struct token_f1 *t = arg;
  for (;;) {
    uv_mutex_lock(&t->lock);
    while (t->head == NULL && !t->stopping)
      uv_cond_wait(&t->wake, &t->lock);
    struct f1_job *job = t->head;
    if (job != NULL && (t->head = job->next) == NULL)
      t->tail = NULL;
    uv_mutex_unlock(&t->lock);
    if (job == NULL)
      return; /* stopping, and the queue is empty */
    double f1 = f1_score(job);
    if (f1 < 0)
      t->host->fail(job->call, ASSAY_FAIL_ERROR, -1, "out of memory");
    else
      t->host->complete(job->call, cJSON_CreateNumber(f1));
    job_free(job);
  }
}

static int token_f1_init(const cJSON *config, const struct assay_host *host,
                         void **state, char **errmsg) {
  (void)config; /* token_f1 has no options */
  struct token_f1 *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    *errmsg = host->format("token_f1: out of memory");
    return -1;
  }
  t->host = host;
  if (uv_mutex_init(&t->lock) != 0) {
    free(t);
    *errmsg = host->format("token_f1: cannot create a mutex");
    return -1;
  }
  uv_cond_init(&t->wake);
  int err = uv_thread_create(&t->thread, worker, t);
  if (err != 0) {
    uv_cond_destroy(&t->wake);
    uv_mutex_destroy(&t->lock);
    free(t);
    *errmsg = host->format("token_f1: cannot start its thread: %s",
                           uv_strerror(err));
    return -1;
  }
  *state = t;
  return 0;
}

/* Loop thread, after the last call: finish the queue, join the thread. */
static void token_f1_fini(void *state) {
  struct token_f1 *t = state;
  uv_mutex_lock(&t->lock);
  t->stopping = 1;
  uv_cond_signal(&t->wake);
  uv_mutex_unlock(&t->lock);
  uv_thread_join(&t->thread);
  uv_cond_destroy(&t->wake);
  uv_mutex_destroy(&t->lock);
  free(t);
}

/* Loop thread: queue the call and return at once. */
static int token_f1_run(void *state, const cJSON *input, assay_call call) {
  struct token_f1 *t = state;
  const cJSON *output = cJSON_GetObjectItemCaseSensitive(input, "output");
  const cJSON *reference = cJSON_GetObjectItemCaseSensitive(input, "reference");
  if (!cJSON_IsString(output) || !cJSON_IsString(reference)) {
    t->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "'output' and 'reference' must be strings");
    return -1;
  }
  struct f1_job *job = calloc(1, sizeof(*job));
  if (job == NULL ||
      (job->output = copy_string(output->valuestring)) == NULL ||
      (job->reference = copy_string(reference->valuestring)) == NULL) {
    if (job != NULL)
      job_free(job);
    t->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return -1;
  }
  job->call = call;
  uv_mutex_lock(&t->lock);
  if (t->tail != NULL)
    t->tail->next = job;
  else
    t->head = job;
  t->tail = job;
  uv_cond_signal(&t->wake);
  uv_mutex_unlock(&t->lock);
  return 0;
}

static const struct assay_input token_f1_inputs[] = {
    {"output", 0, "the text to score"},
    {"reference", 0, "the expected text"},
    {NULL, 0, NULL}};

static const struct assay_component token_f1_metric = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "token_f1",
    .description = "F1 of output and reference words, on a thread",
    .inputs = token_f1_inputs,
    .init = token_f1_init,
    .fini = token_f1_fini,
    .run_async = token_f1_run,
};

static const struct assay_component *const token_f1_components[] = {
    &token_f1_metric, NULL};

static const struct assay_plugin token_f1_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "token_f1",
    .version = "1.0.0",
    .description = "example async metric",
    .components = token_f1_components,
};

ASSAY_PLUGIN(token_f1, token_f1_plugin)
