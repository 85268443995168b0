/*
 * tests/test_http.c: the host's HTTP service (core/http.c) against the
 * project's mock LLM server (tests/mockllm), started per test on an
 * ephemeral loopback port. Each test runs its own libuv loop, closes the
 * service and ends by asserting that the loop closes cleanly. The failure
 * policy (assay_http_classify) is checked on real responses, and on
 * hand-made ones for the body shapes the mock does not produce.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "deadline.h"
#include "error.h"
#include "http.h"
#include "runner.h"
#include "util.h"

/* ---- the mock server --------------------------------------------------- */

struct mock {
  pid_t pid;
  int port;
  char portfile[128];
  char url[128]; /* the chat completions URL */
};

/* Starts tests/mockllm with extra arguments (NULL-ended); 0 on success. */
static int mock_start(struct mock *m, const char *const *extra) {
  static int seq;
  memset(m, 0, sizeof *m);
  snprintf(m->portfile, sizeof m->portfile, "/tmp/assay-test-http-%d-%d.port",
           (int)getpid(), seq++);
  unlink(m->portfile);
  char *path = test_build_path("mockllm");
  const char *argv[32];
  int n = 0;
  argv[n++] = path;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--port-file";
  argv[n++] = m->portfile;
  for (; extra != NULL && *extra != NULL && n < 31; extra++)
    argv[n++] = *extra;
  argv[n] = NULL;
  fflush(stdout);
  m->pid = fork();
  if (m->pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0)
      dup2(fd, 1);
    execv(path, (char *const *)argv);
    _exit(127);
  }
  free(path);
  if (m->pid < 0)
    return -1;
  /* The port file appears once the server listens. */
  for (int i = 0; i < 1000; i++) {
    size_t len;
    char *s = test_read_file(m->portfile, &len);
    if (s != NULL) {
      m->port = atoi(s);
      free(s);
      if (m->port > 0)
        break;
    }
    int status;
    if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
      m->pid = 0;
      return -1;
    }
    usleep(10000);
  }
  if (m->port <= 0)
    return -1;
  snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d/v1/chat/completions",
           m->port);
  return 0;
}

static void mock_stop(struct mock *m) {
  if (m->pid > 0) {
    kill(m->pid, SIGTERM);
    int status;
    waitpid(m->pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    m->pid = 0;
  }
  unlink(m->portfile);
}

struct buf {
  char *p;
  size_t n;
};

static size_t buf_write(char *d, size_t size, size_t nmemb, void *u) {
  struct buf *b = u;
  size_t n = size * nmemb;
  if (b->n + n > (1u << 20))
    return 0;
  b->p = assay__xrealloc(b->p, b->n + n + 1);
  memcpy(b->p + b->n, d, n);
  b->n += n;
  b->p[b->n] = '\0';
  return n;
}

/* GET /stats or POST /stats/reset, with a plain blocking curl handle so
 * that the service under test is not involved. Owned JSON or NULL. */
static cJSON *mock_stats(const struct mock *m, int reset) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stats%s", m->port,
           reset ? "/reset" : "");
  CURL *e = curl_easy_init();
  struct buf b = {NULL, 0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
  if (reset)
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  CURLcode rc = curl_easy_perform(e);
  curl_easy_cleanup(e);
  cJSON *j = rc == CURLE_OK && b.p ? cJSON_Parse(b.p) : NULL;
  free(b.p);
  return j;
}

static double num(const cJSON *j, const char *path) {
  const cJSON *v = assay__json_path(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* ---- a test fixture: loop, service, mock ------------------------------- */

struct fx {
  uv_loop_t loop;
  struct assay_http *h;
  struct mock m;
  uv_timer_t watchdog;
  int expired;
  int waiting; /* inside run_until */
  int ok;
};

static void on_watchdog(uv_timer_t *t) {
  struct fx *f = assay__container_of(t, struct fx, watchdog);
  f->expired = 1;
}

static int fx_start(struct fx *f, int max_inflight, size_t max_bytes,
                    double rps, const char *const *mock_args) {
  memset(f, 0, sizeof *f);
  CU_ASSERT_FATAL(uv_loop_init(&f->loop) == 0);
  uv_timer_init(&f->loop, &f->watchdog);
  struct assay_http_config cfg = {max_bytes, max_inflight, rps};
  char *err = NULL;
  int rc = assay_http_new(&f->h, &f->loop, &cfg, &err);
  CU_ASSERT(rc == 0);
  if (rc != 0) {
    printf("assay_http_new: %s\n", err);
    free(err);
  }
  int mrc = mock_args ? mock_start(&f->m, mock_args) : 0;
  CU_ASSERT(mrc == 0);
  f->ok = rc == 0 && mrc == 0;
  return f->ok;
}

/* Closes the service, runs the loop dry and checks nothing is left. */
static void fx_finish(struct fx *f) {
  if (f->h != NULL)
    assay_http_close(f->h);
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  CU_ASSERT(uv_loop_close(&f->loop) == 0);
  mock_stop(&f->m);
}

/* Runs the loop until *count reaches want or limit_ms pass; returns
 * whether it was reached. */
static int run_until(struct fx *f, const int *count, int want, long limit_ms) {
  f->expired = 0;
  f->waiting = 1;
  uv_timer_start(&f->watchdog, on_watchdog, (uint64_t)limit_ms, 0);
  while (*count < want && !f->expired)
    uv_run(&f->loop, UV_RUN_ONCE);
  uv_timer_stop(&f->watchdog);
  f->waiting = 0;
  return *count >= want;
}

static void run_for(struct fx *f, long ms) {
  int never = 0;
  run_until(f, &never, 1, ms);
}

/* ---- requests ---------------------------------------------------------- */

/* What a callback saw, copied out while the response was still valid. */
struct result {
  int *done; /* shared completion counter */
  int finished;
  int seq; /* completion order */
  int cause;
  long status;
  char *body;
  size_t body_len;
  char *error;
  double elapsed_ms;
  double done_ms;
  char *content_type, *content_type_upper, *absent, *retry_after;
  /* assay_http_classify, for anything but a 2xx */
  int code;
  long retry_after_ms;
  char *msg;
  const char *rcause;
  void (*then)(struct result *r); /* optional, runs inside the callback */
  struct fx *f;
};

static int completions;

static char *dup_or_null(const char *s) {
  return s ? assay__xstrdup(s) : NULL;
}

static void on_result(const struct assay_http_response *res, void *arg) {
  struct result *r = arg;
  r->finished++;
  r->seq = ++completions;
  r->cause = res->cause;
  r->status = res->status;
  CU_ASSERT(res->body != NULL && res->body[res->body_len] == '\0');
  r->body = assay__xstrndup(res->body, res->body_len);
  r->body_len = res->body_len;
  r->error = dup_or_null(res->error);
  r->elapsed_ms = res->elapsed_ms;
  r->done_ms = assay__now_ms();
  r->content_type = dup_or_null(assay_http_header(res, "content-type"));
  r->content_type_upper = dup_or_null(assay_http_header(res, "CONTENT-TYPE"));
  r->absent = dup_or_null(assay_http_header(res, "x-not-sent"));
  r->retry_after = dup_or_null(assay_http_header(res, "Retry-After"));
  r->code = 0;
  r->msg = NULL;
  r->rcause = NULL;
  if (!(res->cause == ASSAY_HTTP_OK && res->status / 100 == 2))
    r->rcause = assay_http_classify(res, "chat completion", &r->code,
                                    &r->retry_after_ms, &r->msg);
  if (r->done)
    (*r->done)++;
  /* A completion can run from a timer at the start of a loop iteration
   * (the service defers callbacks it cannot run inside curl); uv_run's
   * ONCE mode would then still block in poll for the next event, and
   * run_until would notice the count only when its watchdog fired.
   * uv_stop makes that poll return at once. */
  if (r->f && r->f->waiting)
    uv_stop(&r->f->loop);
  if (r->then)
    r->then(r);
}

static void result_clear(struct result *r) {
  free(r->body);
  free(r->error);
  free(r->content_type);
  free(r->content_type_upper);
  free(r->absent);
  free(r->retry_after);
  free(r->msg);
  memset(r, 0, sizeof *r);
}

static char *chat_body(const char *content) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", "mock");
  cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "user");
  cJSON_AddStringToObject(m, "content", content);
  cJSON_AddItemToArray(msgs, m);
  char *s = assay__json_print(o);
  cJSON_Delete(o);
  return s;
}

static const char *const json_headers[] = {
    "Content-Type: application/json", "Authorization: Bearer test-key", NULL};

/* POSTs a chat request with content; returns assay_http_request's code. */
static int chat(struct fx *f, const char *url, uint64_t call,
                const char *content, long timeout_ms, struct result *r,
                int *done) {
  char *body = chat_body(content);
  struct assay_http_request req = {
      .size = sizeof req,
      .url = url ? url : f->m.url,
      .headers = json_headers,
      .body = body,
      .body_len = strlen(body),
  };
  r->done = done;
  r->f = f;
  char *err = NULL;
  int rc = assay_http_request(f->h, call, &req, timeout_ms, on_result, r, &err);
  if (rc != 0) {
    printf("assay_http_request: %s\n", err);
    free(err);
  }
  free(body);
  return rc;
}

/* The assistant content of a chat completion body, owned, or NULL. */
static char *content_of(const char *body) {
  cJSON *j = cJSON_Parse(body);
  const cJSON *c = assay__json_path(j, "choices.0.message.content");
  char *s = cJSON_IsString(c) ? assay__xstrdup(c->valuestring) : NULL;
  cJSON_Delete(j);
  return s;
}

static const cJSON *endpoint0(const cJSON *stats) {
  return cJSON_GetArrayItem(cJSON_GetObjectItem(stats, "endpoints"), 0);
}

/* ---- tests ------------------------------------------------------------- */

static const char *const no_args[] = {NULL};

static void test_post_echo(void) {
  struct fx f;
  int done = 0;
  struct result r = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    CU_ASSERT(chat(&f, NULL, 1, "hello there", 10000, &r, &done) == 0);
    CU_ASSERT(done == 0); /* never inside assay_http_request */
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT(r.finished == 1);
    CU_ASSERT_EQUAL(r.cause, ASSAY_HTTP_OK);
    CU_ASSERT_EQUAL(r.status, 200);
    char *content = content_of(r.body);
    CU_ASSERT_STRING_EQUAL(content ? content : "", "hello there");
    free(content);
    CU_ASSERT(r.content_type && strstr(r.content_type, "application/json"));
    CU_ASSERT(r.content_type_upper &&
              strcmp(r.content_type, r.content_type_upper) == 0);
    CU_ASSERT(r.absent == NULL);
    CU_ASSERT(r.error == NULL);
    CU_ASSERT(r.elapsed_ms > 0);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "requests"), 1);
    CU_ASSERT_EQUAL(num(s, "responses.2xx"), 1);
    CU_ASSERT(num(s, "bytes_in") == (double)r.body_len);
    CU_ASSERT(num(s, "bytes_out") > 0);
    const cJSON *key = assay__json_path(s, "endpoints.0.endpoint");
    char want[160];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/v1/chat/completions",
             f.m.port);
    CU_ASSERT(cJSON_IsString(key) && strcmp(key->valuestring, want) == 0);
    cJSON_Delete(s);
  }
  result_clear(&r);
  fx_finish(&f);
}

/* Each callback starts the next request: strictly sequential traffic that
 * keep-alive should carry over one connection. */
struct chain {
  struct fx *f;
  int left, ok, done;
  struct result r;
};

static void chain_next(struct result *r) {
  struct chain *c = assay__container_of(r, struct chain, r);
  if (r->cause == ASSAY_HTTP_OK && r->status == 200)
    c->ok++;
  if (c->left-- <= 0)
    return;
  result_clear(r);
  r->then = chain_next;
  char content[64];
  snprintf(content, sizeof content, "sequential %d", c->left);
  CU_ASSERT(chat(c->f, NULL, 1, content, 10000, r, &c->done) == 0);
}

static void test_connection_reuse(void) {
  struct fx f;
  struct chain c = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    c.f = &f;
    c.left = 99;
    c.r.then = chain_next;
    CU_ASSERT(chat(&f, NULL, 1, "sequential first", 10000, &c.r, &c.done) == 0);
    CU_ASSERT(run_until(&f, &c.done, 100, 30000));
    CU_ASSERT_EQUAL(c.ok, 100);
    cJSON *s = assay_http_stats(f.h);
    /* One connection carried them all; allow one reconnect. */
    CU_ASSERT(num(s, "connections") >= 1 && num(s, "connections") <= 2);
    cJSON_Delete(s);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "requests"), 100);
    CU_ASSERT(num(ms, "connections") <= 2);
    cJSON_Delete(ms);
  }
  result_clear(&c.r);
  fx_finish(&f);
}

static void test_new_connections_send_at_once(void) {
  /* Requests started while the loop is busy leave at once on their new
   * connections, not at the loop's next turn: 20 requests started, then
   * 200 ms of other work, with 200 ms of server latency, are answered
   * right after that work, not 200 ms later. */
  enum { N = 20 };
  static const char *const slow[] = {"--latency-ms", "200", NULL};
  struct fx f;
  struct result r[N];
  int done = 0;
  memset(r, 0, sizeof r);
  if (fx_start(&f, 64, 0, 0, slow)) {
    for (int i = 0; i < N; i++)
      CU_ASSERT(chat(&f, NULL, (uint64_t)i + 1, "at once", 10000, &r[i],
                     &done) == 0);
    uv_sleep(200);
    double back = assay__now_ms();
    CU_ASSERT(run_until(&f, &done, N, 10000));
    double last = 0;
    int ok = 0;
    for (int i = 0; i < N; i++) {
      ok += r[i].cause == ASSAY_HTTP_OK && r[i].status == 200;
      if (r[i].done_ms > last)
        last = r[i].done_ms;
    }
    CU_ASSERT_EQUAL(ok, N);
    CU_ASSERT(last - back < 120);
    if (!(last - back < 120))
      printf("\n  answered %.0f ms after the loop came back\n", last - back);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "connections"), N);
    cJSON_Delete(s);
  }
  for (int i = 0; i < N; i++)
    result_clear(&r[i]);
  fx_finish(&f);
}

static void test_429_retry_after(void) {
  struct fx f;
  int done = 0;
  struct result a = {0}, b = {0}, past = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock fail=429]] [[mock retry_after=3]]", 10000, &a,
         &done);
    chat(&f, NULL, 2, "[[mock fail=429]] [[mock retry_after_date=5]]", 10000,
         &b, &done);
    chat(&f, NULL, 3, "[[mock fail=429]] [[mock retry_after_date=-30]]", 10000,
         &past, &done);
    CU_ASSERT(run_until(&f, &done, 3, 10000));
    CU_ASSERT_EQUAL(a.status, 429);
    CU_ASSERT_EQUAL(a.code, ASSAY_FAIL_RETRYABLE);
    CU_ASSERT_EQUAL(a.retry_after_ms, 3000);
    CU_ASSERT(a.rcause && strcmp(a.rcause, "429") == 0);
    CU_ASSERT(a.msg && strncmp(a.msg,
                               "chat completion: HTTP 429 Too Many "
                               "Requests: mock error 429",
                               60) == 0);
    CU_ASSERT(a.retry_after && strcmp(a.retry_after, "3") == 0);

    CU_ASSERT_EQUAL(b.status, 429);
    CU_ASSERT_EQUAL(b.code, ASSAY_FAIL_RETRYABLE);
    CU_ASSERT(b.retry_after_ms >= 4000 && b.retry_after_ms <= 6000);
    CU_ASSERT(b.rcause && strcmp(b.rcause, "429") == 0);

    CU_ASSERT_EQUAL(past.status, 429);
    CU_ASSERT_EQUAL(past.retry_after_ms, 0);
  }
  result_clear(&a);
  result_clear(&b);
  result_clear(&past);
  fx_finish(&f);
}

static void test_5xx_retryable(void) {
  struct fx f;
  int done = 0;
  struct result a = {0}, b = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock status=500]]", 10000, &a, &done);
    chat(&f, NULL, 2, "[[mock status=503]] [[mock retry_after=2]]", 10000, &b,
         &done);
    CU_ASSERT(run_until(&f, &done, 2, 10000));
    CU_ASSERT_EQUAL(a.status, 500);
    CU_ASSERT_EQUAL(a.code, ASSAY_FAIL_RETRYABLE);
    CU_ASSERT_EQUAL(a.retry_after_ms, -1);
    CU_ASSERT(a.rcause && strcmp(a.rcause, "5xx") == 0);
    CU_ASSERT_STRING_EQUAL(a.msg ? a.msg : "",
                           "chat completion: HTTP 500 Internal Server Error: "
                           "mock error 500");
    CU_ASSERT_EQUAL(b.status, 503);
    CU_ASSERT_EQUAL(b.code, ASSAY_FAIL_RETRYABLE);
    CU_ASSERT_EQUAL(b.retry_after_ms, 2000);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "responses.5xx"), 2);
    CU_ASSERT_EQUAL(num(s, "retryable.5xx"), 2);
    cJSON_Delete(s);
  }
  result_clear(&a);
  result_clear(&b);
  fx_finish(&f);
}

static void test_4xx_permanent(void) {
  struct fx f;
  int done = 0;
  struct result r[5] = {{0}};
  static const char *const content[] = {
      "[[mock status=302]]",
      "[[mock status=401]] [[mock message=Incorrect API key provided]]",
      "[[mock status=404]] [[mock message=The model does not exist]]",
      "[[mock status=422]]",
      "[[mock status=400]] [[mock message=line one\nline two]]",
  };
  static const char *const want[] = {
      "chat completion: HTTP 302 Found: redirects are not followed "
      "(Location: none); give the final URL",
      "chat completion: HTTP 401 Unauthorized: Incorrect API key provided",
      NULL, /* the 404 names the URL, with the mock's port: below */
      "chat completion: HTTP 422 Unprocessable Content: mock error 422",
      "chat completion: HTTP 400 Bad Request: line one line two",
  };
  if (fx_start(&f, 8, 0, 0, no_args)) {
    char not_found[200];
    snprintf(not_found, sizeof not_found,
             "chat completion: HTTP 404 Not Found from '%s': The model does "
             "not exist",
             f.m.url);
    for (int i = 0; i < 5; i++)
      chat(&f, NULL, 1, content[i], 10000, &r[i], &done);
    CU_ASSERT(run_until(&f, &done, 5, 10000));
    for (int i = 0; i < 5; i++) {
      CU_ASSERT_EQUAL(r[i].cause, ASSAY_HTTP_OK);
      CU_ASSERT_EQUAL(r[i].code, ASSAY_FAIL_ERROR);
      CU_ASSERT(r[i].rcause == NULL);
      const char *w = want[i] ? want[i] : not_found;
      if (r[i].msg == NULL || strcmp(r[i].msg, w) != 0)
        fprintf(stderr, "\n  got \"%s\", want \"%s\"\n",
                r[i].msg ? r[i].msg : "(none)", w);
      CU_ASSERT_STRING_EQUAL(r[i].msg ? r[i].msg : "", w);
    }
  }
  for (int i = 0; i < 5; i++)
    result_clear(&r[i]);
  fx_finish(&f);
}

/* A 404 names the endpoint it came from, never the URL's query (where
 * some APIs put keys). */
static void test_404_names_endpoint(void) {
  struct fx f;
  int done = 0;
  struct result r = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    char url[160], want[220];
    snprintf(url, sizeof url, "%s?key=sekrit", f.m.url);
    snprintf(want, sizeof want, "chat completion: HTTP 404 Not Found from '%s'",
             f.m.url);
    CU_ASSERT(chat(&f, url, 1, "[[mock status=404]]", 10000, &r, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(r.status, 404);
    CU_ASSERT(r.msg && strncmp(r.msg, want, strlen(want)) == 0);
    CU_ASSERT(r.msg && strstr(r.msg, "sekrit") == NULL);
    if (r.msg == NULL || strncmp(r.msg, want, strlen(want)) != 0)
      fprintf(stderr, "\n  got \"%s\"\n", r.msg ? r.msg : "(none)");
  }
  result_clear(&r);
  fx_finish(&f);
}

static void test_timeout(void) {
  struct fx f;
  int done = 0;
  struct result r = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    double t0 = assay__now_ms();
    chat(&f, NULL, 1, "[[mock hang]]", 300, &r, &done);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(r.cause, ASSAY_HTTP_TIMEOUT);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(r.done_ms - t0 >= 300);
    CU_ASSERT_EQUAL(r.code, ASSAY_FAIL_TIMEOUT);
    CU_ASSERT(r.rcause && strcmp(r.rcause, "timeout") == 0);
    CU_ASSERT_STRING_EQUAL(r.msg ? r.msg : "",
                           "chat completion: timed out after 300 ms");
    /* The hung connection was dropped, not left in the server. */
    run_for(&f, 100);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "in_flight"), 0);
    cJSON_Delete(ms);
  }
  result_clear(&r);
  fx_finish(&f);
}

/* Deadlines of different lengths, set longest first, each fire on time and
 * in the order they fall due (one sorted list and one timer serve them). */
static void test_timeouts_of_different_lengths(void) {
  static const long ms[3] = {700, 200, 450};
  struct fx f;
  int done = 0;
  struct result r[3] = {{0}};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    double t0 = assay__now_ms();
    for (int i = 0; i < 3; i++)
      chat(&f, NULL, (uint64_t)i + 1, "[[mock hang]]", ms[i], &r[i], &done);
    CU_ASSERT(run_until(&f, &done, 3, 10000));
    for (int i = 0; i < 3; i++) {
      CU_ASSERT_EQUAL(r[i].cause, ASSAY_HTTP_TIMEOUT);
      CU_ASSERT(r[i].done_ms - t0 >= ms[i]);
    }
    CU_ASSERT(r[1].seq < r[2].seq && r[2].seq < r[0].seq);
  }
  for (int i = 0; i < 3; i++)
    result_clear(&r[i]);
  fx_finish(&f);
}

/* The list alone: entries fire in due order whatever order they were
 * added in, a removed one never fires, and one added from the callback
 * fires on its own time. */
struct dl_fx {
  struct assay_deadlines q;
  struct assay_deadline d[5];
  int order[8], n;
  uint64_t fired_at[5], t0;
};

static void dl_fired(struct assay_deadlines *q, uint64_t now) {
  struct dl_fx *x = assay__container_of(q, struct dl_fx, q);
  struct assay_deadline *d;
  while ((d = assay_deadline_due(q, now)) != NULL) {
    int i = (int)(d - x->d);
    x->order[x->n++] = i;
    x->fired_at[i] = now;
    if (i == 1) /* from inside the callback */
      assay_deadline_add(q, &x->d[4], now + 30);
  }
}

static void test_deadline_list(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct dl_fx x = {0};
  CU_ASSERT(assay_deadlines_init(&x.q, &loop, dl_fired) == 0);
  uv_update_time(&loop);
  x.t0 = uv_now(&loop);
  static const uint64_t after[4] = {80, 20, 50, 20};
  for (int i = 0; i < 4; i++)
    assay_deadline_add(&x.q, &x.d[i], x.t0 + after[i]);
  assay_deadline_remove(&x.q, &x.d[2]);
  assay_deadline_remove(&x.q, &x.d[2]); /* twice is harmless */
  uv_run(&loop, UV_RUN_DEFAULT);
  /* 1 and 3 (both at 20, in the order added), 4 (20 + 30), then 0. */
  CU_ASSERT_EQUAL(x.n, 4);
  CU_ASSERT(x.order[0] == 1 && x.order[1] == 3 && x.order[2] == 4 &&
            x.order[3] == 0);
  CU_ASSERT(x.fired_at[1] >= x.t0 + 20 && x.fired_at[4] >= x.t0 + 50 &&
            x.fired_at[0] >= x.t0 + 80);
  CU_ASSERT(!x.d[2].queued && x.q.head == NULL);
  /* The last one removed stops the timer: the loop has nothing to wait
   * for (uv_run returns at once). */
  assay_deadline_add(&x.q, &x.d[0], uv_now(&loop) + 60000);
  assay_deadline_remove(&x.q, &x.d[0]);
  CU_ASSERT(!uv_is_active((uv_handle_t *)&x.q.timer));
  CU_ASSERT(uv_run(&loop, UV_RUN_NOWAIT) == 0);
  uv_close((uv_handle_t *)&x.q.timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CU_ASSERT(uv_loop_close(&loop) == 0);
}

/* The deadline covers time spent queued behind the endpoint's limit. */
static void test_timeout_while_queued(void) {
  struct fx f;
  int done = 0;
  struct result hang = {0}, queued = {0};
  if (fx_start(&f, 1, 0, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock hang]] first", 20000, &hang, &done);
    double t0 = assay__now_ms();
    chat(&f, NULL, 2, "second", 300, &queued, &done);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(queued.finished, 1);
    CU_ASSERT_EQUAL(hang.finished, 0);
    CU_ASSERT_EQUAL(queued.cause, ASSAY_HTTP_TIMEOUT);
    CU_ASSERT(queued.done_ms - t0 >= 300);
    CU_ASSERT(queued.error && strstr(queued.error, "queued behind"));
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "requests"), 1); /* the second never went out */
    cJSON_Delete(ms);
  }
  fx_finish(&f); /* cancels the hang */
  CU_ASSERT_EQUAL(hang.cause, ASSAY_HTTP_CANCELLED);
  result_clear(&hang);
  result_clear(&queued);
}

/* A loopback port nobody listens on: bind, read the port, close. */
static int closed_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(s, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(s);
  return port;
}

static void test_connection_refused(void) {
  struct fx f;
  int done = 0;
  struct result r = {0};
  if (fx_start(&f, 8, 0, 0, NULL)) {
    int port = closed_port();
    CU_ASSERT(port > 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions?k=1",
             port);
    CU_ASSERT(chat(&f, url, 1, "anyone there?", 10000, &r, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(r.cause, ASSAY_HTTP_NETWORK);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.body_len, 0);
    char want[160];
    snprintf(
        want, sizeof want,
        "network error on 'http://127.0.0.1:%d/v1/chat/completions': ", port);
    CU_ASSERT(r.error && strncmp(r.error, want, strlen(want)) == 0);
    CU_ASSERT(r.error && strlen(r.error) > strlen(want)); /* curl's words */
    CU_ASSERT(r.error && strstr(r.error, "k=1") == NULL); /* no query */
    CU_ASSERT_EQUAL(r.code, ASSAY_FAIL_RETRYABLE);
    CU_ASSERT(r.rcause && strcmp(r.rcause, "network") == 0);
  }
  result_clear(&r);
  fx_finish(&f);
}

/* https:// to a server that speaks plain HTTP: a network error that says
 * what to try. */
static void test_tls_to_plain_http(void) {
  struct fx f;
  int done = 0;
  struct result r = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    char url[160];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/v1/chat/completions",
             f.m.port);
    CU_ASSERT(chat(&f, url, 1, "hello", 10000, &r, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(r.cause, ASSAY_HTTP_NETWORK);
    CU_ASSERT(r.error && strstr(r.error, "if the server speaks plain HTTP, "
                                         "use http://") != NULL);
    if (r.error == NULL || strstr(r.error, "plain HTTP") == NULL)
      fprintf(stderr, "\n  got \"%s\"\n", r.error ? r.error : "(none)");
  }
  result_clear(&r);
  fx_finish(&f);
}

static void test_oversize(void) {
  struct fx f;
  int done = 0;
  struct result big = {0}, fits = {0};
  if (fx_start(&f, 8, 4096, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock oversize=100000]]", 10000, &big, &done);
    chat(&f, NULL, 2, "[[mock oversize=4096]]", 10000, &fits, &done);
    CU_ASSERT(run_until(&f, &done, 2, 10000));
    CU_ASSERT_EQUAL(big.cause, ASSAY_HTTP_TOO_LARGE);
    CU_ASSERT_STRING_EQUAL(big.error ? big.error : "",
                           "response body over the 4096-byte limit "
                           "(--max-response-bytes)");
    CU_ASSERT_EQUAL(big.code, ASSAY_FAIL_ERROR);
    CU_ASSERT(big.rcause == NULL);
    CU_ASSERT(big.msg && strstr(big.msg, "chat completion: response body "
                                         "over the 4096-byte limit"));
    /* Exactly at the cap is still a response. */
    CU_ASSERT_EQUAL(fits.cause, ASSAY_HTTP_OK);
    CU_ASSERT_EQUAL(fits.status, 200);
    CU_ASSERT_EQUAL(fits.body_len, 4096);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "failures.too_large"), 1);
    cJSON_Delete(s);
  }
  result_clear(&big);
  result_clear(&fits);
  fx_finish(&f);
}

static void test_malformed_and_drip(void) {
  struct fx f;
  int done = 0;
  struct result bad = {0}, drip = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock malformed]]", 10000, &bad, &done);
    chat(&f, NULL, 2, "[[mock drip=1]] [[mock reply=slow but sure]]", 30000,
         &drip, &done);
    CU_ASSERT(run_until(&f, &done, 2, 30000));
    /* Parsing is the caller's job: the body arrives as sent. */
    CU_ASSERT_EQUAL(bad.cause, ASSAY_HTTP_OK);
    CU_ASSERT_EQUAL(bad.status, 200);
    CU_ASSERT(bad.body_len > 0);
    cJSON *j = cJSON_Parse(bad.body ? bad.body : "");
    CU_ASSERT(j == NULL);
    cJSON_Delete(j);
    CU_ASSERT_EQUAL(drip.cause, ASSAY_HTTP_OK);
    char *content = content_of(drip.body ? drip.body : "");
    CU_ASSERT_STRING_EQUAL(content ? content : "", "slow but sure");
    free(content);
  }
  result_clear(&bad);
  result_clear(&drip);
  fx_finish(&f);
}

/* With a ceiling of 64, a burst of 429s halves the endpoint's limit once;
 * after the cooldown successes grow it again, and the server never sees
 * more requests at once than the limit allows. */
static void test_adaptive_concurrency(void) {
  struct fx f;
  int done = 0;
  enum { BURST = 100, OK = 400 };
  struct result *r = assay__xcalloc(BURST + OK, sizeof *r);
  if (fx_start(&f, 64, 0, 0, no_args)) {
    char content[96];
    for (int i = 0; i < BURST; i++) {
      snprintf(content, sizeof content,
               "burst %d [[mock fail=429]] [[mock latency=50]]", i);
      chat(&f, NULL, 1, content, 20000, &r[i], &done);
    }
    CU_ASSERT(run_until(&f, &done, BURST, 30000));
    int n429 = 0;
    for (int i = 0; i < BURST; i++)
      n429 += r[i].status == 429;
    CU_ASSERT_EQUAL(n429, BURST);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT(num(ms, "max_in_flight") >= 1 && num(ms, "max_in_flight") <= 64);
    cJSON_Delete(ms);
    cJSON_Delete(mock_stats(&f.m, 1));
    cJSON *s = assay_http_stats(f.h);
    const cJSON *ep = endpoint0(s);
    CU_ASSERT_EQUAL(num(ep, "limit"), 32); /* the burst counted once */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(ep, "history")), 1);
    const cJSON *why = assay__json_path(ep, "history.0.why");
    CU_ASSERT(cJSON_IsString(why) && strcmp(why->valuestring, "429") == 0);
    CU_ASSERT_EQUAL(num(ep, "history.0.limit"), 32);
    CU_ASSERT_EQUAL(num(s, "retryable.429"), BURST);
    cJSON_Delete(s);

    /* Past the cooldown, a stream of successes. */
    run_for(&f, 1100);
    for (int i = 0; i < OK; i++) {
      snprintf(content, sizeof content, "calm %d [[mock latency=20]]", i);
      chat(&f, NULL, 1, content, 30000, &r[BURST + i], &done);
    }
    CU_ASSERT(run_until(&f, &done, BURST + OK, 60000));
    int n200 = 0;
    for (int i = 0; i < OK; i++)
      n200 += r[BURST + i].status == 200;
    CU_ASSERT_EQUAL(n200, OK);
    s = assay_http_stats(f.h);
    ep = endpoint0(s);
    double limit = num(ep, "limit");
    CU_ASSERT(limit > 32 && limit <= 64);
    CU_ASSERT_EQUAL(num(ep, "min_limit"), 32);
    int nh = cJSON_GetArraySize(cJSON_GetObjectItem(ep, "history"));
    CU_ASSERT(nh >= 2);
    const cJSON *last =
        cJSON_GetArrayItem(cJSON_GetObjectItem(ep, "history"), nh - 1);
    why = cJSON_GetObjectItem(last, "why");
    CU_ASSERT(cJSON_IsString(why) &&
              strcmp(why->valuestring, "recovered") == 0);
    CU_ASSERT(num(last, "t_ms") > 1000);
    ms = mock_stats(&f.m, 0);
    /* The limit held: never more at once than it allowed at its peak. */
    CU_ASSERT(num(ms, "max_in_flight") <= limit);
    CU_ASSERT(num(ms, "max_in_flight") >= 16);
    cJSON_Delete(ms);
    cJSON_Delete(s);
  }
  for (int i = 0; i < BURST + OK; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

static void test_rps(void) {
  struct fx f;
  int done = 0;
  struct result r[20] = {{0}};
  if (fx_start(&f, 64, 0, 50, no_args)) {
    double t0 = assay__now_ms();
    char content[32];
    for (int i = 0; i < 20; i++) {
      snprintf(content, sizeof content, "paced %d", i);
      chat(&f, NULL, 1, content, 20000, &r[i], &done);
    }
    CU_ASSERT(run_until(&f, &done, 20, 20000));
    double last = 0;
    for (int i = 0; i < 20; i++) {
      CU_ASSERT_EQUAL(r[i].status, 200);
      if (r[i].done_ms > last)
        last = r[i].done_ms;
    }
    /* 20 requests at 50/s: 19 intervals of 20 ms at the least. */
    CU_ASSERT(last - t0 >= 350);
  }
  for (int i = 0; i < 20; i++)
    result_clear(&r[i]);
  fx_finish(&f);
}

static void test_2000_in_flight(void) {
  enum { N = 2000 };
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur < N + 100) {
    printf("skipped: RLIMIT_NOFILE is %lu, need %d\n",
           (unsigned long)rl.rlim_cur, N + 100);
    return;
  }
  /* Every answer waits until all 2000 requests are in: 3 s is ample at
   * native speed; under a sanitizer (and beside CI's valgrind run) opening
   * 2000 connections has taken longer. */
  static const char *const native[] = {"--latency-ms", "3000", NULL};
  static const char *const slow[] = {"--latency-ms", "12000", NULL};
  const char *const *args = test_sanitized() ? slow : native;
  struct fx f;
  int done = 0;
  struct result *r = assay__xcalloc(N, sizeof *r);
  if (fx_start(&f, N, 0, 0, args)) {
    char content[32];
    for (int i = 0; i < N; i++) {
      snprintf(content, sizeof content, "many %d", i);
      chat(&f, NULL, 1, content, 60000, &r[i], &done);
    }
    CU_ASSERT(run_until(&f, &done, N, 120000));
    int ok = 0;
    for (int i = 0; i < N; i++)
      ok += r[i].status == 200;
    CU_ASSERT_EQUAL(ok, N);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "max_in_flight"), N);
    CU_ASSERT_EQUAL(num(ms, "requests"), N);
    cJSON_Delete(ms);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "max_in_flight"), N);
    cJSON_Delete(s);
  }
  for (int i = 0; i < N; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

/* More transfers than one multi handle takes (64) spread over several;
 * each keeps its connections, so a second wave, started when the first
 * is done, opens none. The server's latency keeps every answer of a wave
 * out until the whole wave is started: requests leave as they start, and
 * an answer in sooner would free a connection for a later request. */
static void test_shards_reuse_connections(void) {
  enum { N = 150 };
  static const char *const slow[] = {"--latency-ms", "100", NULL};
  struct fx f;
  int done = 0;
  struct result *r = assay__xcalloc(N, sizeof *r);
  if (fx_start(&f, N, 0, 0, slow)) {
    char content[64];
    for (int wave = 0; wave < 2; wave++) {
      for (int i = 0; i < N; i++) {
        result_clear(&r[i]);
        snprintf(content, sizeof content, "wave %d item %d", wave, i);
        chat(&f, NULL, 1, content, 30000, &r[i], &done);
      }
      CU_ASSERT(run_until(&f, &done, (wave + 1) * N, 60000));
      int ok = 0;
      for (int i = 0; i < N; i++) {
        char *got = content_of(r[i].body ? r[i].body : "");
        snprintf(content, sizeof content, "wave %d item %d", wave, i);
        ok += r[i].status == 200 && got && strcmp(got, content) == 0;
        free(got);
      }
      CU_ASSERT_EQUAL(ok, N);
    }
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "max_in_flight"), N);
    CU_ASSERT_EQUAL(num(s, "connections"), N);
    if (num(s, "connections") != N)
      printf("\n  %.0f connections for %d requests in flight\n",
             num(s, "connections"), N);
    cJSON_Delete(s);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "requests"), 2 * N);
    cJSON_Delete(ms);
  }
  for (int i = 0; i < N; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

/* Requests started from a callback after assay_http_drain, as a metric's
 * request follows a task's in the last items of a run. */
static struct result *drain_results;

static void drain_follow_up(struct result *r) {
  enum { N = 150 };
  ptrdiff_t i = r - drain_results;
  if (i < N)
    CU_ASSERT(chat(r->f, NULL, 2, "second", 30000, &drain_results[N + i],
                   r->done) == 0);
}

/* Polls the mock until it has at most want connections open (its own
 * /stats one included) or 5 s pass; returns the last count. */
static double mock_connections_settle(struct fx *f, double want) {
  double open = -1;
  for (int i = 0; i < 500; i++) {
    cJSON *ms = mock_stats(&f->m, 0);
    open = num(ms, "connections");
    cJSON_Delete(ms);
    if (open >= 0 && open <= want)
      break;
    run_for(f, 10);
  }
  return open;
}

/* Drains the service, runs until the n requests of r (the N first ones
 * and their follow-ups) are answered, and checks that all got a 200 and
 * that each follow-up took the connection its first request left: N
 * connections in all. */
static void drain_and_check(struct fx *f, struct result *r, int *done, int n,
                            int want_connections) {
  assay_http_drain(f->h);
  CU_ASSERT(run_until(f, done, n, 60000));
  int ok = 0;
  for (int i = 0; i < n; i++)
    ok += r[i].status == 200;
  CU_ASSERT_EQUAL(ok, n);
  cJSON *s = assay_http_stats(f->h);
  CU_ASSERT_EQUAL(num(s, "connections"), want_connections);
  if (num(s, "connections") != want_connections)
    printf("\n  %.0f connections for %d follow-ups\n", num(s, "connections"),
           want_connections);
  cJSON_Delete(s);
}

static void test_drain(void) {
  enum { N = 150 };
  static const char *const slow[] = {"--latency-ms", "100", NULL};
  struct fx f;
  int done = 0;
  struct result *r = assay__xcalloc(2 * N + 1, sizeof *r);
  drain_results = r;
  if (fx_start(&f, N, 0, 0, slow)) {
    for (int i = 0; i < N; i++) {
      r[i].then = drain_follow_up;
      chat(&f, NULL, 1, "first", 30000, &r[i], &done);
    }
    drain_and_check(&f, r, &done, 2 * N, N);
    /* All but one idle connection per multi handle (3 for 150 transfers)
     * closed as the second requests ended; without the drain all 150 stay
     * open until assay_http_close. */
    double open = mock_connections_settle(&f, 1 + 3);
    CU_ASSERT(open >= 1 && open <= 1 + 3);
    if (!(open >= 1 && open <= 1 + 3))
      printf("\n  %.0f connections open after the drain\n", open);
    /* The service still serves whatever comes. */
    CU_ASSERT(chat(&f, NULL, 3, "after", 30000, &r[2 * N], &done) == 0);
    CU_ASSERT(run_until(&f, &done, 2 * N + 1, 30000));
    CU_ASSERT_EQUAL(r[2 * N].status, 200);
  }
  for (int i = 0; i < 2 * N + 1; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

/* A drained multi handle closes connections as its transfers end; a
 * request started as a task ends must go where that task's connection is,
 * not to the first multi handle with room. Here the first 64 requests (the
 * first handle) and their follow-ups are answered before the other 64
 * are: their follow-ups still find a connection each, in their own
 * handle. */
static void drain_late_follow_up(struct result *r) {
  enum { N = 128 };
  ptrdiff_t i = r - drain_results;
  if (i < N)
    CU_ASSERT(chat(r->f, NULL, 2, "[[mock latency=10]] second", 30000,
                   &drain_results[N + i], r->done) == 0);
}

static void test_drain_follow_up_in_place(void) {
  enum { N = 128 };
  struct fx f;
  int done = 0;
  static const char *const none[] = {NULL};
  struct result *r = assay__xcalloc(2 * N, sizeof *r);
  drain_results = r;
  if (fx_start(&f, N, 0, 0, none)) {
    for (int i = 0; i < N; i++) {
      r[i].then = drain_late_follow_up;
      chat(&f, NULL, 1,
           i < N / 2 ? "[[mock latency=10]] early" : "[[mock latency=400]] late",
           30000, &r[i], &done);
    }
    drain_and_check(&f, r, &done, 2 * N, N);
  }
  for (int i = 0; i < 2 * N; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

/* After the drain, requests paced by --rps still reuse connections (a
 * service closing every connection as it went idle would open one per
 * request here: 16). */
static void test_drain_keeps_queued(void) {
  enum { N = 16 };
  static const char *const slow[] = {"--latency-ms", "250", NULL};
  struct fx f;
  int done = 0;
  struct result *r = assay__xcalloc(N, sizeof *r);
  if (fx_start(&f, N, 0, 20.0, slow)) {
    for (int i = 0; i < N; i++)
      chat(&f, NULL, 1, "paced", 30000, &r[i], &done);
    assay_http_drain(f.h);
    CU_ASSERT(run_until(&f, &done, N, 60000));
    int ok = 0;
    for (int i = 0; i < N; i++)
      ok += r[i].status == 200;
    CU_ASSERT_EQUAL(ok, N);
    /* One every 50 ms, each answered 250 ms later: about 6 in flight. */
    cJSON *s = assay_http_stats(f.h);
    double conns = num(s, "connections"), most = num(s, "max_in_flight");
    CU_ASSERT(conns <= most + 1);
    if (!(conns <= most + 1))
      printf("\n  %.0f connections for %.0f in flight at most\n", conns, most);
    cJSON_Delete(s);
  }
  for (int i = 0; i < N; i++)
    result_clear(&r[i]);
  free(r);
  fx_finish(&f);
}

/* The size of this process's descriptor table (FDSize in
 * /proc/self/status), or -1 where there is none to read. */
static long fd_table_size(void) {
  FILE *fp = fopen("/proc/self/status", "r");
  if (fp == NULL)
    return -1;
  char line[256];
  long n = -1;
  while (fgets(line, sizeof line, fp) != NULL)
    if (sscanf(line, "FDSize: %ld", &n) == 1)
      break;
  fclose(fp);
  return n;
}

static void test_reserve_fds(void) {
  long before = fd_table_size();
  struct rlimit rl;
  if (before < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
      (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < before + 600)) {
    printf("skipped: no FDSize to read, or RLIMIT_NOFILE too low\n");
    return;
  }
  uv_loop_t loop;
  CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
  assay_http_reserve_fds(&loop, (int)before + 500);
  CU_ASSERT(fd_table_size() >= before + 500);
  CU_ASSERT(uv_loop_close(&loop) == 0);
}

static void test_close_cancels(void) {
  struct fx f;
  int done = 0;
  struct result r[5] = {{0}};
  if (fx_start(&f, 3, 0, 0, no_args)) {
    char content[48];
    for (int i = 0; i < 5; i++) {
      snprintf(content, sizeof content, "[[mock hang]] %d", i);
      chat(&f, NULL, 1, content, 60000, &r[i], &done);
    }
    run_for(&f, 300);
    CU_ASSERT_EQUAL(done, 0);
    cJSON *ms = mock_stats(&f.m, 0);
    CU_ASSERT_EQUAL(num(ms, "in_flight"), 3); /* two wait in the queue */
    cJSON_Delete(ms);
    assay_http_close(f.h);
    f.h = NULL;
    CU_ASSERT_EQUAL(done, 5); /* before close returned */
    for (int i = 0; i < 5; i++) {
      CU_ASSERT_EQUAL(r[i].finished, 1);
      CU_ASSERT_EQUAL(r[i].cause, ASSAY_HTTP_CANCELLED);
      CU_ASSERT_EQUAL(r[i].code, ASSAY_FAIL_ERROR);
      CU_ASSERT(r[i].rcause == NULL);
    }
  }
  for (int i = 0; i < 5; i++)
    result_clear(&r[i]);
  fx_finish(&f); /* the loop must close with nothing left */
}

/* A callback that closes the service while another request hangs. */
static void close_from_callback(struct result *r) {
  assay_http_close(r->f->h);
  r->f->h = NULL;
}

static void test_close_from_callback(void) {
  struct fx f;
  int done = 0;
  struct result fast = {0}, hang = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    chat(&f, NULL, 1, "[[mock hang]] forever", 60000, &hang, &done);
    fast.then = close_from_callback;
    chat(&f, NULL, 2, "[[mock latency=100]] quick", 60000, &fast, &done);
    CU_ASSERT(run_until(&f, &done, 2, 10000));
    CU_ASSERT_EQUAL(fast.status, 200);
    CU_ASSERT_EQUAL(hang.cause, ASSAY_HTTP_CANCELLED);
    CU_ASSERT(f.h == NULL);
  }
  result_clear(&fast);
  result_clear(&hang);
  fx_finish(&f);
}

static void test_cancel_call(void) {
  struct fx f;
  int done = 0;
  struct result a = {0}, b = {0}, c = {0};
  if (fx_start(&f, 8, 0, 0, no_args)) {
    chat(&f, NULL, 7, "[[mock hang]] seven", 60000, &a, &done);
    chat(&f, NULL, 7, "[[mock hang]] seven again", 60000, &b, &done);
    chat(&f, NULL, 8, "[[mock latency=100]] eight", 60000, &c, &done);
    run_for(&f, 50);
    CU_ASSERT_EQUAL(assay_http_cancel(f.h, 7), 2);
    CU_ASSERT_EQUAL(done, 0); /* never inside assay_http_cancel */
    CU_ASSERT(run_until(&f, &done, 3, 10000));
    CU_ASSERT_EQUAL(a.cause, ASSAY_HTTP_CANCELLED);
    CU_ASSERT_EQUAL(b.cause, ASSAY_HTTP_CANCELLED);
    CU_ASSERT_EQUAL(c.status, 200);
    CU_ASSERT_EQUAL(assay_http_cancel(f.h, 7), 0);
  }
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
  fx_finish(&f);
}

/* Sends one request with any method, URL, headers and body; returns
 * assay_http_request's code. */
static int send_req(struct fx *f, const char *method, const char *url,
                    const char *const *headers, const char *body,
                    struct result *r, int *done) {
  struct assay_http_request req = {
      .size = sizeof req,
      .method = method,
      .url = url,
      .headers = headers,
      .body = body,
      .body_len = body ? strlen(body) : 0,
  };
  r->done = done;
  r->f = f;
  char *err = NULL;
  int rc = assay_http_request(f->h, 1, &req, 10000, on_result, r, &err);
  if (rc != 0) {
    printf("assay_http_request: %s\n", err);
    free(err);
  }
  return rc;
}

/* With a limit of one, every request after the first reuses the previous
 * one's curl handle and buffers: nothing of an earlier request (its method,
 * its body, the response's headers) may leak into a later one. */
static void test_reuse_starts_clean(void) {
  struct fx f;
  int done = 0;
  struct result del = {0}, busy = {0}, ok = {0}, get = {0};
  if (fx_start(&f, 1, 0, 0, no_args)) {
    CU_ASSERT(send_req(&f, "DELETE", f.m.url, NULL, NULL, &del, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(del.status, 405);

    char *b = chat_body("[[mock fail=429]] [[mock retry_after=1]] r");
    CU_ASSERT(send_req(&f, NULL, f.m.url, json_headers, b, &busy, &done) == 0);
    free(b);
    CU_ASSERT(run_until(&f, &done, 2, 10000));
    CU_ASSERT_EQUAL(busy.status, 429); /* a POST, not a DELETE */
    CU_ASSERT(busy.retry_after && strcmp(busy.retry_after, "1") == 0);

    b = chat_body("plain again");
    CU_ASSERT(send_req(&f, NULL, f.m.url, json_headers, b, &ok, &done) == 0);
    free(b);
    CU_ASSERT(run_until(&f, &done, 3, 10000));
    CU_ASSERT_EQUAL(ok.status, 200);
    CU_ASSERT(ok.retry_after == NULL); /* the 429's header is gone */
    char *content = content_of(ok.body);
    CU_ASSERT_STRING_EQUAL(content ? content : "", "plain again");
    free(content);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models", f.m.port);
    CU_ASSERT(send_req(&f, NULL, url, NULL, NULL, &get, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 4, 10000));
    CU_ASSERT_EQUAL(get.status, 200); /* a GET, not the last POST */
    CU_ASSERT(get.body && strstr(get.body, "mock-judge") != NULL);
    CU_ASSERT(get.body && strstr(get.body, "plain again") == NULL);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "requests"), 4);
    CU_ASSERT_EQUAL(num(s, "connections"), 1);
    cJSON_Delete(s);
  }
  result_clear(&del);
  result_clear(&busy);
  result_clear(&ok);
  result_clear(&get);
  fx_finish(&f);
}

/* Each request on its own connection: the kernel hands out the same socket
 * number again and again, and every new socket must be watched afresh. */
static void test_connection_close_each(void) {
  static const char *const close_headers[] = {"Content-Type: application/json",
                                              "Connection: close", NULL};
  struct fx f;
  int done = 0, ok = 0;
  if (fx_start(&f, 4, 0, 0, no_args)) {
    for (int i = 0; i < 30; i++) {
      struct result r = {0};
      char content[32];
      snprintf(content, sizeof content, "closing %d", i);
      char *b = chat_body(content);
      CU_ASSERT(send_req(&f, NULL, f.m.url, close_headers, b, &r, &done) == 0);
      free(b);
      CU_ASSERT(run_until(&f, &done, i + 1, 10000));
      char *got = content_of(r.body ? r.body : "");
      if (r.status == 200 && got && strcmp(got, content) == 0)
        ok++;
      free(got);
      result_clear(&r);
    }
    CU_ASSERT_EQUAL(ok, 30);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "connections"), 30);
    cJSON_Delete(s);
  }
  fx_finish(&f);
}

static void on_idle_watchdog(uv_timer_t *t) {
  *(int *)t->data = 1;
  uv_stop(t->loop);
}

/* A keep-alive connection stays open between requests, but must not keep
 * the loop running: the engine's loop ends when its work is done. When the
 * server goes away meanwhile, the next request opens a new connection. */
static void test_idle_connection(void) {
  struct fx f;
  int done = 0, stuck = 0;
  struct result a = {0}, b = {0};
  if (fx_start(&f, 4, 0, 0, no_args)) {
    CU_ASSERT(chat(&f, NULL, 1, "first", 10000, &a, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 1, 10000));
    CU_ASSERT_EQUAL(a.status, 200);

    uv_timer_t dog;
    uv_timer_init(&f.loop, &dog);
    dog.data = &stuck;
    uv_timer_start(&dog, on_idle_watchdog, 5000, 0);
    uv_unref((uv_handle_t *)&dog);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(stuck, 0);
    uv_close((uv_handle_t *)&dog, NULL);
    run_for(&f, 10);

    /* The server restarts on the same port: the idle connection ends. */
    char port[16];
    snprintf(port, sizeof port, "%d", f.m.port);
    const char *const again[] = {"--port", port, NULL};
    mock_stop(&f.m);
    run_for(&f, 100);
    CU_ASSERT_FATAL(mock_start(&f.m, again) == 0);
    CU_ASSERT(chat(&f, NULL, 1, "second", 10000, &b, &done) == 0);
    CU_ASSERT(run_until(&f, &done, 2, 10000));
    CU_ASSERT_EQUAL(b.status, 200);
    cJSON *s = assay_http_stats(f.h);
    CU_ASSERT_EQUAL(num(s, "connections"), 2);
    cJSON_Delete(s);
  }
  result_clear(&a);
  result_clear(&b);
  fx_finish(&f);
}

static void test_bad_requests(void) {
  struct fx f;
  if (fx_start(&f, 8, 0, 0, NULL)) {
    static const char *const urls[] = {"ftp://example.com/x", "/v1/chat",
                                       "not a url", NULL};
    int calls = 0;
    for (int i = 0; urls[i] != NULL; i++) {
      struct assay_http_request req = {.size = sizeof req, .url = urls[i]};
      char *err = NULL;
      struct result r = {0};
      r.done = &calls;
      CU_ASSERT_EQUAL(
          assay_http_request(f.h, 1, &req, 1000, on_result, &r, &err),
          ASSAY_EINVAL);
      CU_ASSERT(err != NULL && strstr(err, urls[i]) != NULL);
      free(err);
    }
    static const char *const bad_header[] = {"X-Evil: a\r\nX-Injected: b",
                                             NULL};
    struct assay_http_request req = {.size = sizeof req,
                                     .url = "http://127.0.0.1:1/",
                                     .headers = bad_header};
    char *err = NULL;
    struct result r = {0};
    CU_ASSERT_EQUAL(assay_http_request(f.h, 1, &req, 1000, on_result, &r, &err),
                    ASSAY_EINVAL);
    CU_ASSERT(err && strstr(err, "invalid request header"));
    free(err);
    run_for(&f, 20);
    CU_ASSERT_EQUAL(calls, 0);
    CU_ASSERT_EQUAL(r.finished, 0);
    struct assay_http_config bad = {0, 0, 0};
    struct assay_http *h2 = NULL;
    CU_ASSERT_EQUAL(assay_http_new(&h2, &f.loop, &bad, &err), ASSAY_EINVAL);
    CU_ASSERT(h2 == NULL && err != NULL);
    free(err);
  }
  fx_finish(&f);
}

/* The policy on response shapes the mock does not produce. */
static void classify(long status, int cause, const char *body, int *code,
                     long *ra, char **msg, const char **rc) {
  struct assay_http_response res = {
      .cause = cause,
      .status = status,
      .body = body,
      .body_len = strlen(body),
      .error = cause == ASSAY_HTTP_OK ? NULL : "what went wrong",
  };
  *rc = assay_http_classify(&res, "judge", code, ra, msg);
}

static void test_classify_shapes(void) {
  int code;
  long ra;
  char *msg;
  const char *rc;
  classify(404, 0, "{\"error\":\"model 'x' not found\"}", &code, &ra, &msg,
           &rc);
  CU_ASSERT_STRING_EQUAL(msg, "judge: HTTP 404 Not Found: model 'x' not found");
  CU_ASSERT(code == ASSAY_FAIL_ERROR && rc == NULL && ra == -1);
  free(msg);
  classify(400, 0, "{\"message\":\"bad\"}", &code, &ra, &msg, &rc);
  CU_ASSERT_STRING_EQUAL(msg, "judge: HTTP 400 Bad Request: bad");
  free(msg);
  classify(422, 0, "{\"detail\":\"field required\"}", &code, &ra, &msg, &rc);
  CU_ASSERT_STRING_EQUAL(msg, "judge: HTTP 422 Unprocessable Content: field "
                              "required");
  free(msg);
  classify(403, 0, "<html>\n<body>\tForbidden\n</body></html>", &code, &ra,
           &msg, &rc);
  CU_ASSERT_STRING_EQUAL(msg, "judge: HTTP 403 Forbidden: <html> <body> "
                              "Forbidden </body></html>");
  free(msg);
  char long_body[1000];
  memset(long_body, 'x', sizeof long_body - 1);
  long_body[sizeof long_body - 1] = '\0';
  classify(418, 0, long_body, &code, &ra, &msg, &rc);
  CU_ASSERT(strlen(msg) == strlen("judge: HTTP 418: ") + 200);
  CU_ASSERT(code == ASSAY_FAIL_ERROR && rc == NULL);
  free(msg);
  classify(502, 0, "", &code, &ra, &msg, &rc);
  CU_ASSERT_STRING_EQUAL(msg, "judge: HTTP 502 Bad Gateway");
  CU_ASSERT(code == ASSAY_FAIL_RETRYABLE && rc && strcmp(rc, "5xx") == 0);
  free(msg);
  classify(0, ASSAY_HTTP_TOO_LARGE, "", &code, &ra, &msg, &rc);
  CU_ASSERT(code == ASSAY_FAIL_ERROR && rc == NULL);
  CU_ASSERT_STRING_EQUAL(msg, "judge: what went wrong");
  free(msg);
  classify(0, ASSAY_HTTP_CANCELLED, "", &code, &ra, &msg, &rc);
  CU_ASSERT(code == ASSAY_FAIL_ERROR && rc == NULL);
  free(msg);
  classify(0, ASSAY_HTTP_TIMEOUT, "", &code, &ra, &msg, &rc);
  CU_ASSERT(code == ASSAY_FAIL_TIMEOUT && rc && strcmp(rc, "timeout") == 0);
  free(msg);
  classify(0, ASSAY_HTTP_NETWORK, "", &code, &ra, &msg, &rc);
  CU_ASSERT(code == ASSAY_FAIL_RETRYABLE && rc && strcmp(rc, "network") == 0);
  free(msg);
  /* A cut multi-byte character is dropped, not split. */
  char utf[260];
  memset(utf, 'a', 199);
  memcpy(utf + 199, "\xc3\xa9 tail", 8);
  classify(400, 0, utf, &code, &ra, &msg, &rc);
  CU_ASSERT(strlen(msg) == strlen("judge: HTTP 400 Bad Request: ") + 199);
  free(msg);
}

static const struct test_case http_cases[] = {
    {"POST gets the echoed answer and its headers", test_post_echo},
    {"sequential requests reuse one connection", test_connection_reuse},
    {"new connections send at once", test_new_connections_send_at_once},
    {"429 with Retry-After in seconds and as a date", test_429_retry_after},
    {"5xx is retryable", test_5xx_retryable},
    {"3xx and 4xx fail at once with the server's message", test_4xx_permanent},
    {"a 404 names its endpoint, not the query", test_404_names_endpoint},
    {"a hang times out", test_timeout},
    {"the deadline covers time queued", test_timeout_while_queued},
    {"timeouts of different lengths fire in order", test_timeouts_of_different_lengths},
    {"the deadline list", test_deadline_list},
    {"connection refused is a network error", test_connection_refused},
    {"https:// to a plain HTTP server says to use http://",
     test_tls_to_plain_http},
    {"an oversize body is refused", test_oversize},
    {"malformed and dripped bodies are delivered", test_malformed_and_drip},
    {"a 429 burst shrinks the limit once, successes grow it",
     test_adaptive_concurrency},
    {"--rps paces requests", test_rps},
    {"2000 requests in flight at once", test_2000_in_flight},
    {"multi handles keep their connections", test_shards_reuse_connections},
    {"a draining service closes connections as they end", test_drain},
    {"a follow-up takes its task's connection after the drain",
     test_drain_follow_up_in_place},
    {"a draining service still reuses connections for paced requests",
     test_drain_keeps_queued},
    {"the descriptor table grows once, up front", test_reserve_fds},
    {"close cancels pending and queued requests", test_close_cancels},
    {"close from inside a callback", test_close_from_callback},
    {"cancel by call", test_cancel_call},
    {"malformed requests are refused without a callback", test_bad_requests},
    {"a reused request starts clean", test_reuse_starts_clean},
    {"a new connection per request", test_connection_close_each},
    {"an idle connection keeps no loop alive and can be lost",
     test_idle_connection},
    {"classify on hand-made responses", test_classify_shapes},
    {NULL, NULL}};

static const struct test_suite suites[] = {{"http", NULL, NULL, http_cases},
                                           {NULL, NULL, NULL, NULL}};

int main(int argc, char **argv) {
  /* The service's traffic goes to loopback: keep a developer's proxy
   * settings out of it. */
  setenv("no_proxy", "127.0.0.1,localhost", 1);
  return test_main(argc, argv, suites);
}
