/*
 * tests/test_mockllm: the mock LLM server as its users see it. Each suite
 * starts the real tests/mockllm binary on an ephemeral loopback port and
 * talks to it over plain blocking sockets with a minimal client (status
 * line, headers, Content-Length body), so every directive, the statistics
 * and the HTTP edge cases the HTTP client tests rely on are pinned here.
 * The last suite runs the server under valgrind and stops it with SIGTERM.
 */
/* strptime and timegm, to read back the Retry-After date. */
#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>

#include "runner.h"
#include "util.h"

/* ---- the server process -------------------------------------------------- */

struct server {
  pid_t pid;
  int port;
  char *dir; /* its port file, stdout and valgrind log live here */
};

static char *tmp_root;
static struct server main_srv;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int ensure_tmp_root(void) {
  if (tmp_root != NULL)
    return 0;
  char tmpl[] = "/tmp/test_mockllm.XXXXXX";
  if (mkdtemp(tmpl) == NULL)
    return -1;
  tmp_root = assay__xstrdup(tmpl);
  return 0;
}

/*
 * Starts tests/mockllm with --port 0 --port-file and the extra arguments
 * (NULL-terminated), under valgrind when vg_log is not NULL, and waits for
 * the port file. Returns 0, or -1 with a message on stderr.
 */
static int server_start(struct server *s, const char *name,
                        const char *const *extra, const char *vg_log) {
  if (ensure_tmp_root() != 0)
    return -1;
  memset(s, 0, sizeof *s);
  s->dir = assay__format("%s/%s", tmp_root, name);
  if (mkdir(s->dir, 0700) != 0 && errno != EEXIST)
    return -1;
  char *bin = test_build_path("mockllm");
  char *port_file = assay__format("%s/port", s->dir);
  char *out = assay__format("%s/stdout", s->dir);
  char *vg_arg = vg_log ? assay__format("--log-file=%s", vg_log) : NULL;
  remove(port_file);
  const char *argv[40];
  int n = 0;
  if (vg_log != NULL) {
    argv[n++] = "valgrind";
    argv[n++] = "--leak-check=full";
    argv[n++] = "--errors-for-leak-kinds=definite";
    argv[n++] = "--error-exitcode=99";
    argv[n++] = vg_arg;
  }
  argv[n++] = bin;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--port-file";
  argv[n++] = port_file;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0)
      dup2(fd, 1);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "test_mockllm: cannot run '%s': %s\n", argv[0],
            strerror(errno));
    _exit(127);
  }
  int rc = -1;
  if (pid > 0) {
    s->pid = pid;
    double deadline = now_ms() + (vg_log ? 60000 : 15000);
    while (now_ms() < deadline) {
      char *text = test_read_file(port_file, NULL);
      if (text != NULL) {
        s->port = atoi(text);
        free(text);
        rc = s->port > 0 ? 0 : -1;
        break;
      }
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        fprintf(stderr, "test_mockllm: server '%s' exited before listening\n",
                bin);
        s->pid = 0;
        break;
      }
      sleep_ms(10);
    }
  }
  if (rc != 0)
    fprintf(stderr, "test_mockllm: server '%s' did not start\n", bin);
  free(bin);
  free(port_file);
  free(out);
  free(vg_arg);
  return rc;
}

/* Sends sig, then waits (SIGKILL after 60 s). Returns the exit status, or
 * -1 when the server did not exit normally. */
static int server_signal_stop(struct server *s, int sig) {
  int result = -1;
  if (s->pid > 0) {
    kill(s->pid, sig);
    double deadline = now_ms() + 60000;
    int status = 0;
    pid_t r;
    while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
      sleep_ms(10);
    if (r == 0) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, &status, 0);
    } else if (r == s->pid && WIFEXITED(status)) {
      result = WEXITSTATUS(status);
    }
    s->pid = 0;
  }
  free(s->dir);
  s->dir = NULL;
  return result;
}

static int server_stop(struct server *s) {
  return server_signal_stop(s, SIGTERM);
}

/* ---- a minimal blocking HTTP client ----------------------------------------
 */

struct client {
  int fd;
  char *buf;
  size_t len, cap;
};

struct resp {
  int status;
  char *head; /* status line and headers */
  char *body; /* NUL-terminated */
  size_t body_len;
};

static int client_open(struct client *c, int port, int timeout_s) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0)
    return -1;
  struct timeval tv = {timeout_s, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

static void client_close(struct client *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

static int client_send(struct client *c, const char *data, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    data += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads more bytes: the count, 0 at EOF, -1 on error or timeout. */
static ssize_t client_fill(struct client *c) {
  if (c->cap - c->len < 65536) {
    c->cap = c->cap * 2 + 65536;
    c->buf = assay__xrealloc(c->buf, c->cap);
  }
  ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
  if (r > 0)
    c->len += (size_t)r;
  return r;
}

static void resp_free(struct resp *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* The value of a header (owned), or NULL. */
static char *resp_header(const struct resp *r, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(r->head, "\r\n"); p != NULL;
       p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
      const char *v = p + 3 + n;
      while (*v == ' ')
        v++;
      return assay__xstrndup(v, strcspn(v, "\r\n"));
    }
  }
  return NULL;
}

/* Reads one response (a missing Content-Length counts as 0). */
static int client_read(struct client *c, struct resp *r) {
  memset(r, 0, sizeof *r);
  char *end;
  for (;;) {
    if (c->len > 0) {
      c->buf[c->len] = '\0';
      if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
        break;
    }
    if (client_fill(c) <= 0)
      return -1;
  }
  size_t head_len = (size_t)(end - c->buf) + 2;
  r->head = assay__xstrndup(c->buf, head_len);
  if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
    return -1;
  char *cl = resp_header(r, "Content-Length");
  size_t body_len = cl ? strtoul(cl, NULL, 10) : 0;
  free(cl);
  size_t total = head_len + 2 + body_len;
  while (c->len < total)
    if (client_fill(c) <= 0)
      return -1;
  r->body = assay__xstrndup(c->buf + head_len + 2, body_len);
  r->body_len = body_len;
  memmove(c->buf, c->buf + total, c->len - total);
  c->len -= total;
  return 0;
}

/* Whether the server closed the connection (EOF within timeout_ms). */
static int client_sees_eof(struct client *c, int timeout_ms) {
  struct pollfd p = {c->fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1)
    return 0;
  char b;
  return recv(c->fd, &b, 1, 0) == 0;
}

/* Whether any byte arrives within timeout_ms. */
static int client_gets_data(struct client *c, int timeout_ms) {
  struct pollfd p = {c->fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1)
    return 0;
  char b;
  return recv(c->fd, &b, 1, MSG_PEEK) > 0;
}

static char *request_text(const char *method, const char *path,
                          const char *body, const char *extra_headers) {
  return assay__format("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                       "Content-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       method, path, extra_headers ? extra_headers : "",
                       body ? strlen(body) : 0, body ? body : "");
}

static char *chat_body(const char *model, const char *user) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", model);
  cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "user");
  cJSON_AddStringToObject(m, "content", user);
  cJSON_AddItemToArray(msgs, m);
  char *s = assay__json_print(root);
  cJSON_Delete(root);
  return s;
}

/* One request on a new connection. */
static int exchange(int port, const char *method, const char *path,
                    const char *body, struct resp *r) {
  struct client c;
  if (client_open(&c, port, 20) != 0)
    return -1;
  char *req = request_text(method, path, body, NULL);
  int rc = client_send(&c, req, strlen(req));
  if (rc == 0)
    rc = client_read(&c, r);
  free(req);
  client_close(&c);
  return rc;
}

static int chat_on(int port, const char *model, const char *user,
                   struct resp *r) {
  char *body = chat_body(model, user);
  int rc = exchange(port, "POST", "/v1/chat/completions", body, r);
  free(body);
  return rc;
}

static int chat(const char *model, const char *user, struct resp *r) {
  return chat_on(main_srv.port, model, user, r);
}

/* The status of a chat request (-1 on a transport failure). */
static int chat_status(const char *user) {
  struct resp r;
  int rc = chat("mock", user, &r);
  int status = rc == 0 ? r.status : -1;
  resp_free(&r);
  return status;
}

/* choices[0].message.content of a 200 body (owned), or NULL. */
static char *reply_content(const struct resp *r) {
  cJSON *root = cJSON_ParseWithLength(r->body, r->body_len);
  const cJSON *v = assay__json_path(root, "choices.0.message.content");
  char *s = cJSON_IsString(v) ? assay__xstrdup(v->valuestring) : NULL;
  cJSON_Delete(root);
  return s;
}

static double json_number(const cJSON *root, const char *path) {
  const cJSON *v = assay__json_path(root, path);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *stats_on(int port) {
  struct resp r;
  if (exchange(port, "GET", "/stats", NULL, &r) != 0)
    return NULL;
  cJSON *root = r.status == 200 ? cJSON_Parse(r.body) : NULL;
  resp_free(&r);
  return root;
}

static double stat_value(const char *path) {
  cJSON *s = stats_on(main_srv.port);
  double v = json_number(s, path);
  cJSON_Delete(s);
  return v;
}

/* Polls /stats until in_flight equals want (the server notices closed
 * connections asynchronously). Returns the last value seen. */
static double wait_in_flight(double want) {
  double v = NAN;
  for (int i = 0; i < 500; i++) {
    v = stat_value("in_flight");
    if (v == want)
      break;
    sleep_ms(10);
  }
  return v;
}

static uint32_t fnv1a32(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 16777619u;
  }
  return h;
}

/* ---- suite: the protocol
 * ------------------------------------------------------ */

static int main_init(void) {
  signal(SIGPIPE, SIG_IGN);
  return server_start(&main_srv, "main", NULL, NULL);
}

static int main_cleanup(void) {
  return server_stop(&main_srv) == 0 ? 0 : -1;
}

static void test_listening_line(void) {
  char *path = assay__format("%s/main/stdout", tmp_root);
  char *text = test_read_file(path, NULL);
  char *want = assay__format("listening on 127.0.0.1:%d\n", main_srv.port);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_STRING_EQUAL(text, want);
  free(path);
  free(text);
  free(want);
}

static void test_echo(void) {
  const char *body =
      "{\"model\":\"gpt-test\",\"messages\":["
      "{\"role\":\"system\",\"content\":\"be brief\"},"
      "{\"role\":\"user\",\"content\":\"first question\"},"
      "{\"role\":\"assistant\",\"content\":\"an answer\"},"
      "{\"role\":\"user\",\"content\":\"what is two plus two\"}]}";
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "POST", "/v1/chat/completions", body, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  char *ctype = resp_header(&r, "Content-Type");
  CU_ASSERT_STRING_EQUAL(ctype ? ctype : "", "application/json");
  free(ctype);
  cJSON *root = cJSON_Parse(r.body);
  CU_ASSERT_PTR_NOT_NULL_FATAL(root);
  const cJSON *v = assay__json_path(root, "choices.0.message.content");
  CU_ASSERT(cJSON_IsString(v) &&
            strcmp(v->valuestring, "what is two plus two") == 0);
  v = assay__json_path(root, "model");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "gpt-test") == 0);
  v = assay__json_path(root, "object");
  CU_ASSERT(cJSON_IsString(v) &&
            strcmp(v->valuestring, "chat.completion") == 0);
  v = assay__json_path(root, "choices.0.message.role");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "assistant") == 0);
  v = assay__json_path(root, "choices.0.finish_reason");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "stop") == 0);
  CU_ASSERT(cJSON_IsString(assay__json_path(root, "id")));
  CU_ASSERT(cJSON_IsNumber(assay__json_path(root, "created")));
  /* Words: 2 + 2 + 2 + 5 in the prompt, 5 in the reply. */
  CU_ASSERT_EQUAL(json_number(root, "usage.prompt_tokens"), 11);
  CU_ASSERT_EQUAL(json_number(root, "usage.completion_tokens"), 5);
  CU_ASSERT_EQUAL(json_number(root, "usage.total_tokens"), 16);
  cJSON_Delete(root);
  resp_free(&r);
}

static void test_content_parts(void) {
  const char *body =
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
      "{\"type\":\"text\",\"text\":\"alpha \"},"
      "{\"type\":\"text\",\"text\":\"beta\"}]}]}";
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "POST", "/v1/chat/completions", body, &r), 0);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", "alpha beta");
  free(content);
  resp_free(&r);
}

static void test_reply(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      chat("m", "[[mock reply=Paris is the capital]] where is it?", &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", "Paris is the capital");
  cJSON *root = cJSON_Parse(r.body);
  CU_ASSERT_EQUAL(json_number(root, "usage.completion_tokens"), 4);
  cJSON_Delete(root);
  free(content);
  resp_free(&r);

  /* Without reply=, directives stay in the echo. */
  const char *msg = "keep [[mock latency=0]] me";
  CU_ASSERT_EQUAL_FATAL(chat("m", msg, &r), 0);
  content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", msg);
  free(content);
  resp_free(&r);
}

static void test_fail_sequence(void) {
  const char *a = "[[mock fail=429,500,ok]][[mock key=seq-a]] one";
  CU_ASSERT_EQUAL(chat_status(a), 429);
  CU_ASSERT_EQUAL(chat_status(a), 500);
  CU_ASSERT_EQUAL(chat_status(a), 200);
  CU_ASSERT_EQUAL(chat_status(a), 200);
  /* Another key has its own counter, whatever the text. */
  CU_ASSERT_EQUAL(
      chat_status("[[mock fail=429,500,ok]][[mock key=seq-b]] other"), 429);
  CU_ASSERT_EQUAL(
      chat_status("[[mock key=seq-b]][[mock fail=429,500,ok]] text"), 500);
  /* Without key=, the whole message is the key. */
  const char *d = "[[mock fail=503]] default key";
  CU_ASSERT_EQUAL(chat_status(d), 503);
  CU_ASSERT_EQUAL(chat_status(d), 200);
  CU_ASSERT_EQUAL(chat_status("[[mock fail=503]] default key!"), 503);

  /* malformed then ok. */
  const char *m = "[[mock fail=malformed]][[mock key=seq-m]] x";
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(chat("m", m, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  cJSON *root = cJSON_ParseWithLength(r.body, r.body_len);
  CU_ASSERT_PTR_NULL(root);
  cJSON_Delete(root);
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(chat("m", m, &r), 0);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", m);
  free(content);
  resp_free(&r);

  /* hang then ok. */
  const char *h = "[[mock fail=hang,ok]][[mock key=seq-h]] x";
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  char *body = chat_body("m", h);
  char *req = request_text("POST", "/v1/chat/completions", body, NULL);
  CU_ASSERT_EQUAL(client_send(&c, req, strlen(req)), 0);
  CU_ASSERT_FALSE(client_gets_data(&c, 300));
  client_close(&c);
  CU_ASSERT_EQUAL(chat_status(h), 200);
  free(req);
  free(body);
}

static void test_retry_after(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      chat("m", "[[mock status=429]][[mock retry_after=2]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 429);
  char *ra = resp_header(&r, "Retry-After");
  CU_ASSERT_STRING_EQUAL(ra ? ra : "", "2");
  free(ra);
  resp_free(&r);

  CU_ASSERT_EQUAL_FATAL(
      chat("m", "[[mock fail=503]][[mock retry_after=1]] retry once", &r), 0);
  CU_ASSERT_EQUAL(r.status, 503);
  ra = resp_header(&r, "Retry-After");
  CU_ASSERT_STRING_EQUAL(ra ? ra : "", "1");
  free(ra);
  resp_free(&r);

  /* No directive, no header. */
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock status=429]] plain", &r), 0);
  ra = resp_header(&r, "Retry-After");
  CU_ASSERT_PTR_NULL(ra);
  free(ra);
  resp_free(&r);
}

static void test_retry_after_date(void) {
  struct resp r;
  time_t before = time(NULL);
  CU_ASSERT_EQUAL_FATAL(
      chat("m", "[[mock status=503]][[mock retry_after_date=5]] x", &r), 0);
  time_t after = time(NULL);
  CU_ASSERT_EQUAL(r.status, 503);
  char *ra = resp_header(&r, "Retry-After");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ra);
  /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
  struct tm tm = {0};
  const char *end = strptime(ra, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  CU_ASSERT(end != NULL && *end == '\0');
  CU_ASSERT_EQUAL(strlen(ra), 29);
  time_t when = timegm(&tm);
  CU_ASSERT(when >= before + 5 && when <= after + 6);
  free(ra);
  resp_free(&r);
}

static void test_status_message(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      chat("m", "[[mock status=401]][[mock message=invalid api key]] x", &r),
      0);
  CU_ASSERT_EQUAL(r.status, 401);
  cJSON *root = cJSON_Parse(r.body);
  const cJSON *v = assay__json_path(root, "error.message");
  CU_ASSERT(cJSON_IsString(v) &&
            strcmp(v->valuestring, "invalid api key") == 0);
  v = assay__json_path(root, "error.type");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "mock_error") == 0);
  CU_ASSERT_EQUAL(json_number(root, "error.code"), 401);
  cJSON_Delete(root);
  resp_free(&r);

  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock status=503]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 503);
  root = cJSON_Parse(r.body);
  v = assay__json_path(root, "error.message");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "mock error 503") == 0);
  cJSON_Delete(root);
  resp_free(&r);
}

static void test_oversize(void) {
  struct resp r;
  const char *msg = "[[mock oversize=200000]] big";
  CU_ASSERT_EQUAL_FATAL(chat("m", msg, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_EQUAL(r.body_len, 200000);
  char *content = reply_content(&r); /* parses the whole body */
  CU_ASSERT_STRING_EQUAL(content ? content : "", msg);
  free(content);
  resp_free(&r);
}

static void test_malformed(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock malformed]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT(r.body_len > 0);
  cJSON *root = cJSON_ParseWithLength(r.body, r.body_len);
  CU_ASSERT_PTR_NULL(root);
  cJSON_Delete(root);
  resp_free(&r);
}

static void test_drip(void) {
  struct resp r;
  const char *msg = "[[mock drip=2]] slowly";
  double t0 = now_ms();
  CU_ASSERT_EQUAL_FATAL(chat("m", msg, &r), 0);
  double elapsed = now_ms() - t0;
  CU_ASSERT_EQUAL(r.status, 200);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", msg);
  /* Generous lower bound: 2 ms a byte, counted as half a millisecond. */
  CU_ASSERT(elapsed >= r.body_len / 2.0);
  free(content);
  resp_free(&r);
}

static void test_latency(void) {
  struct resp r;
  double t0 = now_ms();
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock latency=250]] x", &r), 0);
  CU_ASSERT(now_ms() - t0 >= 250);
  CU_ASSERT_EQUAL(r.status, 200);
  resp_free(&r);
}

/* The latency timer runs on the loop's millisecond clock, which can make
 * it fire up to a millisecond early; the server must then wait out the
 * rest. Short latencies over many requests make such early firings likely,
 * and each answer must still come no sooner than asked. */
static void test_latency_never_early(void) {
  int early = 0;
  for (int i = 0; i < 120; i++) {
    int ms = 1 + i % 3;
    char msg[64];
    snprintf(msg, sizeof msg, "[[mock latency=%d]] n%d", ms, i);
    struct resp r;
    double t0 = now_ms();
    CU_ASSERT_EQUAL_FATAL(chat("m", msg, &r), 0);
    if (now_ms() - t0 < ms)
      early++;
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
  }
  CU_ASSERT_EQUAL(early, 0);
}

static void test_hang(void) {
  CU_ASSERT_EQUAL_FATAL(wait_in_flight(0), 0);
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  char *body = chat_body("m", "[[mock hang]] wait");
  char *req = request_text("POST", "/v1/chat/completions", body, NULL);
  CU_ASSERT_EQUAL(client_send(&c, req, strlen(req)), 0);
  CU_ASSERT_FALSE(client_gets_data(&c, 300));
  CU_ASSERT_EQUAL(wait_in_flight(1), 1);
  client_close(&c);
  CU_ASSERT_EQUAL(wait_in_flight(0), 0);
  free(req);
  free(body);
}

static void test_judge(void) {
  const char *msgs[] = {"Is the sky blue?", "Rate this answer: 42", "hello",
                        "The capital of France is Paris.", ""};
  for (size_t i = 0; i < assay__array_size(msgs); i++) {
    double first = NAN;
    for (int k = 0; k < 2; k++) {
      struct resp r;
      CU_ASSERT_EQUAL_FATAL(chat("mock-judge", msgs[i], &r), 0);
      CU_ASSERT_EQUAL(r.status, 200);
      char *content = reply_content(&r);
      cJSON *j = content ? cJSON_Parse(content) : NULL;
      CU_ASSERT_PTR_NOT_NULL(j);
      double score = json_number(j, "score");
      CU_ASSERT(score >= 0 && score <= 1);
      CU_ASSERT_DOUBLE_EQUAL(score, (fnv1a32(msgs[i]) % 11) / 10.0, 1e-9);
      const cJSON *reason = assay__json_path(j, "reason");
      CU_ASSERT(cJSON_IsString(reason) &&
                strcmp(reason->valuestring, "mock judge") == 0);
      if (k == 0)
        first = score;
      else
        CU_ASSERT_EQUAL(score, first);
      cJSON_Delete(j);
      free(content);
      resp_free(&r);
    }
  }
  /* reply= wins over the judge. */
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(chat("mock-judge", "[[mock reply=not json]] x", &r), 0);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", "not json");
  free(content);
  resp_free(&r);
}

static void test_keep_alive(void) {
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  const char *texts[] = {"first on the connection", "second on it"};
  for (int i = 0; i < 2; i++) {
    char *body = chat_body("m", texts[i]);
    char *req = request_text("POST", "/v1/chat/completions", body, NULL);
    struct resp r;
    CU_ASSERT_EQUAL(client_send(&c, req, strlen(req)), 0);
    CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
    char *content = reply_content(&r);
    CU_ASSERT_STRING_EQUAL(content ? content : "", texts[i]);
    free(content);
    resp_free(&r);
    free(req);
    free(body);
  }
  /* Pipelined: both requests in one write, answers in order even when the
   * first is the slower one. */
  char *b1 = chat_body("m", "[[mock latency=100]] slow first");
  char *b2 = chat_body("m", "fast second");
  char *r1 = request_text("POST", "/v1/chat/completions", b1, NULL);
  char *r2 = request_text("POST", "/v1/chat/completions", b2, NULL);
  char *both = assay__format("%s%s", r1, r2);
  CU_ASSERT_EQUAL(client_send(&c, both, strlen(both)), 0);
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "",
                         "[[mock latency=100]] slow first");
  free(content);
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", "fast second");
  free(content);
  resp_free(&r);
  free(b1);
  free(b2);
  free(r1);
  free(r2);
  free(both);

  /* Connection: close is honoured. */
  char *body = chat_body("m", "last");
  char *req = request_text("POST", "/v1/chat/completions", body,
                           "Connection: close\r\n");
  CU_ASSERT_EQUAL(client_send(&c, req, strlen(req)), 0);
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  char *conn = resp_header(&r, "Connection");
  CU_ASSERT_STRING_EQUAL(conn ? conn : "", "close");
  CU_ASSERT(client_sees_eof(&c, 5000));
  free(conn);
  resp_free(&r);
  free(req);
  free(body);
  client_close(&c);
}

static void test_expect_continue(void) {
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  char *body = chat_body("m", "after continue");
  char *head = assay__format("POST /v1/chat/completions HTTP/1.1\r\n"
                             "Host: x\r\nExpect: 100-continue\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             strlen(body));
  CU_ASSERT_EQUAL(client_send(&c, head, strlen(head)), 0);
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  CU_ASSERT_EQUAL(r.status, 100);
  resp_free(&r);
  CU_ASSERT_EQUAL(client_send(&c, body, strlen(body)), 0);
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  char *content = reply_content(&r);
  CU_ASSERT_STRING_EQUAL(content ? content : "", "after continue");
  free(content);
  resp_free(&r);
  free(head);
  free(body);
  client_close(&c);
}

static void test_stats(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(wait_in_flight(0), 0);
  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "POST", "/stats/reset", "", &r),
                        0);
  CU_ASSERT_EQUAL(r.status, 200);
  resp_free(&r);
  cJSON *s = stats_on(main_srv.port);
  CU_ASSERT_EQUAL(json_number(s, "requests"), 0);
  CU_ASSERT_EQUAL(json_number(s, "max_in_flight"), 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(assay__json_path(s, "responses")), 0);
  cJSON_Delete(s);

  CU_ASSERT_EQUAL(chat_status("one"), 200);
  CU_ASSERT_EQUAL(chat_status("two"), 200);
  CU_ASSERT_EQUAL(chat_status("[[mock status=429]] three"), 429);
  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "GET", "/nope", NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 404);
  resp_free(&r);
  /* Health checks do not count. */
  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "GET", "/healthz", NULL, &r),
                        0);
  resp_free(&r);
  s = stats_on(main_srv.port);
  CU_ASSERT_EQUAL(json_number(s, "requests"), 4);
  CU_ASSERT_EQUAL(json_number(s, "in_flight"), 0);
  CU_ASSERT_EQUAL(json_number(s, "max_in_flight"), 1);
  CU_ASSERT_EQUAL(json_number(s, "responses.200"), 2);
  CU_ASSERT_EQUAL(json_number(s, "responses.429"), 1);
  CU_ASSERT_EQUAL(json_number(s, "responses.404"), 1);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(assay__json_path(s, "responses")), 3);
  cJSON_Delete(s);

  /* Three hanging requests at once. */
  struct client c[3];
  char *body = chat_body("m", "[[mock hang]] stats");
  char *req = request_text("POST", "/v1/chat/completions", body, NULL);
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL_FATAL(client_open(&c[i], main_srv.port, 20), 0);
    CU_ASSERT_EQUAL(client_send(&c[i], req, strlen(req)), 0);
  }
  CU_ASSERT_EQUAL(wait_in_flight(3), 3);
  CU_ASSERT_EQUAL(stat_value("max_in_flight"), 3);
  for (int i = 0; i < 3; i++)
    client_close(&c[i]);
  CU_ASSERT_EQUAL(wait_in_flight(0), 0);
  CU_ASSERT_EQUAL(stat_value("max_in_flight"), 3);
  CU_ASSERT_EQUAL(stat_value("requests"), 7);
  free(req);
  free(body);

  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "POST", "/stats/reset", "", &r),
                        0);
  resp_free(&r);
  s = stats_on(main_srv.port);
  CU_ASSERT_EQUAL(json_number(s, "requests"), 0);
  CU_ASSERT_EQUAL(json_number(s, "max_in_flight"), 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(assay__json_path(s, "responses")), 0);
  cJSON_Delete(s);
}

static void test_routes(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "GET", "/healthz", NULL, &r),
                        0);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_STRING_EQUAL(r.body, "ok");
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "GET", "/v1/chat/completions", NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 405);
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "POST", "/v1/completions", "{}", &r), 0);
  CU_ASSERT_EQUAL(r.status, 404);
  resp_free(&r);
}

static void test_bad_requests(void) {
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "POST", "/v1/chat/completions", "not json", &r),
      0);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "not a JSON object"));
  resp_free(&r);
  const char *trailing = "{\"messages\":[]} {}";
  CU_ASSERT_EQUAL_FATAL(
      exchange(main_srv.port, "POST", "/v1/chat/completions", trailing, &r), 0);
  CU_ASSERT_EQUAL(r.status, 400);
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(exchange(main_srv.port, "POST", "/v1/chat/completions",
                                 "{\"model\":\"m\"}", &r),
                        0);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "'messages'"));
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock frobnicate=1]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "'frobnicate'"));
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock fail=429,soon]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "'soon'"));
  resp_free(&r);
  CU_ASSERT_EQUAL_FATAL(chat("m", "[[mock status=429 x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 400);
  resp_free(&r);
}

static void test_malformed_http(void) {
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  const char *junk = "THIS IS NOT HTTP\r\n\r\n";
  CU_ASSERT_EQUAL(client_send(&c, junk, strlen(junk)), 0);
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT(client_sees_eof(&c, 5000));
  resp_free(&r);
  client_close(&c);
}

static void test_request_too_large(void) {
  struct client c;
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  /* Announced over the cap: refused before the body is read, while the
   * client is still sending it. */
  const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 9000000\r\n\r\n";
  CU_ASSERT_EQUAL(client_send(&c, head, strlen(head)), 0);
  char *chunk = assay__xmalloc(1 << 20);
  memset(chunk, 'a', 1 << 20);
  CU_ASSERT_EQUAL(client_send(&c, chunk, 1 << 20), 0);
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(client_read(&c, &r), 0);
  CU_ASSERT_EQUAL(r.status, 413);
  resp_free(&r);
  client_close(&c);

  /* Chunked, without a length: refused once the body passes the cap. */
  CU_ASSERT_EQUAL_FATAL(client_open(&c, main_srv.port, 20), 0);
  head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
         "Transfer-Encoding: chunked\r\n\r\n";
  CU_ASSERT_EQUAL(client_send(&c, head, strlen(head)), 0);
  int status = -1;
  for (int i = 0; i < 12 && status < 0; i++) {
    const char *size = "100000\r\n";
    if (client_send(&c, size, strlen(size)) != 0 ||
        client_send(&c, chunk, 1 << 20) != 0 || client_send(&c, "\r\n", 2))
      break;
    struct pollfd p = {c.fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1 && client_read(&c, &r) == 0) {
      status = r.status;
      resp_free(&r);
    }
  }
  if (status < 0 && client_read(&c, &r) == 0) {
    status = r.status;
    resp_free(&r);
  }
  CU_ASSERT_EQUAL(status, 413);
  client_close(&c);
  free(chunk);
}

/* ---- suite: global faults
 * ------------------------------------------------------ */

static void test_global_429(void) {
  struct server s;
  const char *args[] = {"--p429", "1.0", "--retry-after", "1", NULL};
  CU_ASSERT_EQUAL_FATAL(server_start(&s, "p429", args, NULL), 0);
  for (int i = 0; i < 20; i++) {
    struct resp r;
    char *msg = assay__format("request %d", i);
    CU_ASSERT_EQUAL_FATAL(chat_on(s.port, "m", msg, &r), 0);
    CU_ASSERT_EQUAL(r.status, 429);
    char *ra = resp_header(&r, "Retry-After");
    CU_ASSERT_STRING_EQUAL(ra ? ra : "", "1");
    free(ra);
    free(msg);
    resp_free(&r);
  }
  /* Requests with directives are left alone. */
  struct resp r;
  CU_ASSERT_EQUAL_FATAL(chat_on(s.port, "m", "[[mock reply=fine]] x", &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  resp_free(&r);
  cJSON *st = stats_on(s.port);
  CU_ASSERT_EQUAL(json_number(st, "responses.429"), 20);
  cJSON_Delete(st);
  CU_ASSERT_EQUAL(server_stop(&s), 0);
}

static void test_global_latency(void) {
  struct server s;
  const char *args[] = {"--latency-ms", "150", "--jitter-ms", "50", NULL};
  CU_ASSERT_EQUAL_FATAL(server_start(&s, "latency", args, NULL), 0);
  for (int i = 0; i < 3; i++) {
    struct resp r;
    double t0 = now_ms();
    CU_ASSERT_EQUAL_FATAL(chat_on(s.port, "m", "slow", &r), 0);
    CU_ASSERT(now_ms() - t0 >= 150);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
  }
  /* SIGINT stops it as cleanly as SIGTERM. */
  CU_ASSERT_EQUAL(server_signal_stop(&s, SIGINT), 0);
}

/* The statuses of 40 directive-free requests to a fresh server. */
static int fault_sequence(const char *seed, int out[40]) {
  struct server s;
  const char *args[] = {"--p500", "0.5", "--seed", seed, NULL};
  if (server_start(&s, "seeded", args, NULL) != 0)
    return -1;
  int rc = 0;
  for (int i = 0; i < 40 && rc == 0; i++) {
    struct resp r;
    rc = chat_on(s.port, "m", "same text", &r);
    out[i] = r.status;
    resp_free(&r);
  }
  if (server_stop(&s) != 0)
    rc = -1;
  return rc;
}

static void test_seed_reproducible(void) {
  int a[40], b[40], c[40];
  CU_ASSERT_EQUAL_FATAL(fault_sequence("42", a), 0);
  CU_ASSERT_EQUAL_FATAL(fault_sequence("42", b), 0);
  CU_ASSERT_EQUAL_FATAL(fault_sequence("43", c), 0);
  CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(a, c, sizeof a), 0);
  int ok = 0, failed = 0;
  for (int i = 0; i < 40; i++) {
    ok += a[i] == 200;
    failed += a[i] == 500;
  }
  CU_ASSERT_EQUAL(ok + failed, 40);
  CU_ASSERT(ok >= 5 && failed >= 5);
}

static void test_bad_command_line(void) {
  char *bin = test_build_path("mockllm");
  char *cmd = assay__format("'%s' --p429 2 2>/dev/null", bin);
  int status = system(cmd);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  free(cmd);
  cmd = assay__format("'%s' --p429 0.6 --p500 0.6 2>/dev/null", bin);
  status = system(cmd);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  free(cmd);
  free(bin);
}

/* ---- suite: valgrind
 * -------------------------------------------------------------- */

static int have_valgrind(void) {
  /* A sanitizer build's binaries cannot run under valgrind. */
  return !test_sanitized() && system("valgrind --version >/dev/null 2>&1") == 0;
}

/* Runs the server under valgrind, leaves it with every kind of work pending
 * (a hang, a latency timer, a drip, a half-read request) and stops it with
 * SIGTERM: it must exit 0 with no errors and no definite leaks. */
static void test_valgrind_clean(void) {
  if (!have_valgrind()) {
    fprintf(stderr, "\n  no valgrind (or a sanitizer build): "
                    "test_valgrind_clean checks nothing\n");
    return;
  }
  struct server s;
  char *log = assay__format("%s/valgrind.log", tmp_root);
  CU_ASSERT_EQUAL_FATAL(server_start(&s, "valgrind", NULL, log), 0);
  const char *msgs[] = {"echo me",
                        "[[mock oversize=100000]] big",
                        "[[mock fail=429,ok]] again",
                        "[[mock fail=429,ok]] again",
                        "[[mock malformed]] x",
                        "[[mock status=503]][[mock "
                        "retry_after_date=2]] x"};
  for (size_t i = 0; i < assay__array_size(msgs); i++) {
    struct resp r;
    CU_ASSERT_EQUAL(chat_on(s.port, "m", msgs[i], &r), 0);
    resp_free(&r);
  }
  struct resp r;
  CU_ASSERT_EQUAL(chat_on(s.port, "mock-judge", "judge", &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  resp_free(&r);
  CU_ASSERT_EQUAL(exchange(s.port, "GET", "/stats", NULL, &r), 0);
  resp_free(&r);
  CU_ASSERT_EQUAL(exchange(s.port, "POST", "/v1/chat/completions", "{", &r), 0);
  resp_free(&r);
  const char *parts = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                      "\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}]}";
  CU_ASSERT_EQUAL(exchange(s.port, "POST", "/v1/chat/completions", parts, &r),
                  0);
  CU_ASSERT_EQUAL(r.status, 200);
  resp_free(&r);

  /* Pending work at SIGTERM. */
  struct client c[5];
  const char *pending[] = {"[[mock hang]] x", "[[mock latency=60000]] x",
                           "[[mock drip=1000]] x"};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL_FATAL(client_open(&c[i], s.port, 30), 0);
    char *body = chat_body("m", pending[i]);
    char *req = request_text("POST", "/v1/chat/completions", body, NULL);
    CU_ASSERT_EQUAL(client_send(&c[i], req, strlen(req)), 0);
    free(req);
    free(body);
  }
  CU_ASSERT_EQUAL_FATAL(client_open(&c[3], s.port, 30), 0);
  const char *half = "POST /v1/chat/completions HTTP/1.1\r\nContent-Len";
  CU_ASSERT_EQUAL(client_send(&c[3], half, strlen(half)), 0);
  CU_ASSERT_EQUAL_FATAL(client_open(&c[4], s.port, 30), 0);
  const char *junk = "NOT HTTP\r\n\r\n";
  CU_ASSERT_EQUAL(client_send(&c[4], junk, strlen(junk)), 0);
  CU_ASSERT_EQUAL(client_read(&c[4], &r), 0); /* now lingering */
  resp_free(&r);
  /* Make sure the drip has started and everything has been read. */
  CU_ASSERT(client_gets_data(&c[2], 20000));
  double deadline = now_ms() + 20000;
  double in_flight = -1;
  while (now_ms() < deadline) {
    cJSON *st = stats_on(s.port);
    in_flight = json_number(st, "in_flight");
    cJSON_Delete(st);
    if (in_flight == 3)
      break;
    sleep_ms(20);
  }
  CU_ASSERT_EQUAL(in_flight, 3);

  CU_ASSERT_EQUAL(server_stop(&s), 0);
  for (int i = 0; i < 5; i++)
    client_close(&c[i]);
  char *text = test_read_file(log, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "ERROR SUMMARY: 0 errors"));
  CU_ASSERT(strstr(text, "All heap blocks were freed") != NULL ||
            strstr(text, "definitely lost: 0 bytes") != NULL);
  if (strstr(text, "ERROR SUMMARY: 0 errors") == NULL)
    fprintf(stderr, "\n%s\n", text);
  free(text);
  free(log);
}

/* ---- the table
 * ----------------------------------------------------------------- */

static int global_init(void) {
  signal(SIGPIPE, SIG_IGN);
  return ensure_tmp_root();
}

static const struct test_case protocol_cases[] = {
    {"listening line", test_listening_line},
    {"echo, model and usage", test_echo},
    {"content parts", test_content_parts},
    {"reply directive", test_reply},
    {"fail sequence per key", test_fail_sequence},
    {"retry_after", test_retry_after},
    {"retry_after_date", test_retry_after_date},
    {"status and message", test_status_message},
    {"oversize", test_oversize},
    {"malformed", test_malformed},
    {"drip", test_drip},
    {"latency", test_latency},
    {"latency is never early", test_latency_never_early},
    {"hang", test_hang},
    {"mock judge", test_judge},
    {"keep-alive and pipelining", test_keep_alive},
    {"expect 100-continue", test_expect_continue},
    {"stats and reset", test_stats},
    {"routes", test_routes},
    {"bad requests", test_bad_requests},
    {"malformed HTTP", test_malformed_http},
    {"request body too large", test_request_too_large},
    {NULL, NULL}};

static const struct test_case global_cases[] = {
    {"--p429 1.0", test_global_429},
    {"--latency-ms and SIGINT", test_global_latency},
    {"--seed reproducible", test_seed_reproducible},
    {"bad command line", test_bad_command_line},
    {NULL, NULL}};

static const struct test_case valgrind_cases[] = {
    {"valgrind clean at SIGTERM", test_valgrind_clean}, {NULL, NULL}};

static const struct test_suite suites[] = {
    {"protocol", main_init, main_cleanup, protocol_cases},
    {"global", global_init, NULL, global_cases},
    {"valgrind", global_init, NULL, valgrind_cases},
    {NULL, NULL, NULL, NULL}};

static void remove_tree(const char *dir) {
  char *cmd = assay__format("rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "test_mockllm: cannot remove '%s'\n", dir);
  free(cmd);
}

int main(int argc, char **argv) {
  int rc = test_main(argc, argv, suites);
  if (tmp_root != NULL) {
    if (rc == 0)
      remove_tree(tmp_root);
    else
      fprintf(stderr, "test_mockllm: server logs kept in %s\n", tmp_root);
    free(tmp_root);
  }
  return rc;
}
