/*
 * tests/mockllm: the project's own OpenAI-compatible test server.
 *
 * One libuv loop, one TCP listener, HTTP/1.1 keep-alive connections parsed by
 * Debian's http-parser library and JSON bodies read and written with cJSON.
 * POST /v1/chat/completions answers deterministically (an echo of the last
 * user message, or what `[[mock ...]]` directives in that message script),
 * and the command line adds latency, jitter and random-looking but
 * reproducible faults. GET /stats reports what the server saw, so tests can
 * assert on the client's behaviour from the outside (maximum in flight, 429s
 * answered, ...). The protocol is specified in the "mock LLM server" section
 * of the helpers' brief and repeated in `mockllm --help`.
 *
 * Additions to that specification (nothing in it is changed):
 *   --retry-after S   a `Retry-After: S` header on globally injected 429s.
 *   GET /v1/models    lists "mock" and "mock-judge" (some clients probe it).
 *   /stats also has "connections" (open connections now).
 *   A request target in absolute form (`POST http://host/v1/...`), as a
 *   client sends it to a forward proxy, is served as its path and counted in
 *   /stats "proxied": the server stands in for a proxy and the API behind
 *   it, so tests can show a client honours http_proxy. `CONNECT ip:port`
 *   opens a tunnel to that numeric IPv4 address, as a proxy does for
 *   https_proxy, counted in /stats "tunnels".
 * Choices the specification leaves open:
 *   - requests, in_flight and responses count every request except GET /stats,
 *     POST /stats/reset and GET /healthz; a hang stays in flight until its
 *     connection closes. POST /stats/reset zeroes requests and responses and
 *     sets max_in_flight to the current in_flight (0 when idle); it does not
 *     touch fail= script counters or the global fault sequence.
 *   - A missing "model" is answered as model "mock"; "stream": true and a body
 *     that is not exactly one JSON object with a "messages" array get a 400.
 *     A content given as parts counts the concatenation of their "text".
 *     prompt_tokens counts the words of every message, completion_tokens
 *     those of the reply (words: runs of non-blank bytes).
 *   - Caps: a body over 8 MiB gets 413 (a Content-Length over it before the
 *     body is read, a chunked body as soon as it passes it), a request target
 *     over 2 KiB 414, headers over http-parser's 80 KiB 431, anything the
 *     parser refuses 400; each of these closes the connection after the
 *     answer (write side first, then the rest of the input is drained for up
 *     to 2 s so that the client reads the answer, not a reset).
 *     `Expect: 100-continue` is answered. Pipelined requests are answered in
 *     order.
 *   - Directives act in every request, a judge's too: a judge prompt that
 *     quotes text holding `[[mock ...]]` is scripted by it.
 *   - An unknown or malformed directive gets a 400 naming it, so that a typo
 *     in a test fails loudly instead of silently echoing.
 *   - Directive precedence: a fail= entry other than ok, then hang, then
 *     status=, then malformed, then a 200 (reply=, oversize=). latency= and
 *     drip= apply to whatever is sent. Retry-After headers go on any 4xx/5xx.
 *   - retry_after_date=S names the second ceil(now)+S, so a client that waits
 *     until that date waits at least S seconds (and less than S+1).
 *   - oversize=N pads the normal response with a "mock_padding" string to
 *     exactly N bytes (or the unpadded size when that is already larger).
 *   - Latency (--latency-ms plus a jitter drawn uniformly from 0..--jitter-ms,
 *     or latency=) is a lower bound: the answer leaves at least that many
 *     milliseconds after the request was read (on the monotonic clock, to
 *     the nanosecond), and as soon after as the loop's timers allow. A
 *     fail=/status= error is delayed like a 200.
 *   - Global faults: request number k (counted from 0 over chat requests since
 *     start) draws u from a hash of (--seed, k); u < p429 gives 429, then
 *     p500 gives 500, then phang a hang. Jitter is drawn the same way. With
 *     one sequential client the sequence is exactly reproducible.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#ifdef __linux__
#include <sys/timerfd.h>
#include <unistd.h>
#endif

#include <cjson/cJSON.h>
#include <http_parser.h>
#include <uv.h>

#include "util.h"

/* Caps on everything a client feeds us. */
#define MOCK_MAX_BODY (8u << 20) /* request body: over it, 413 */
#define MOCK_MAX_URL 2048        /* request target: over it, 414 */
#define MOCK_MAX_PENDING (MOCK_MAX_BODY + (1u << 20)) /* pipelined input */
#define MOCK_MAX_OVERSIZE (1u << 30)                  /* oversize=N */
#define MOCK_MAX_FAIL_ENTRIES 64        /* entries of one fail= list */
#define MOCK_MAX_SCRIPT_KEYS (1u << 22) /* distinct fail= keys remembered */
#define MOCK_MAX_DELAY_MS 3600000L      /* latency, jitter, drip */
#define MOCK_LINGER_MS 2000             /* drain time before a closing close */
#define MOCK_KEEP_BUF (1u << 20)        /* larger buffers are freed when idle */
#define MOCK_READ_CHUNK 65536

struct mock_options {
  const char *host;
  int port;
  const char *port_file;
  long latency_ms;
  long jitter_ms;
  double p429, p500, phang;
  uint64_t seed;
  const char *retry_after; /* for global 429s; NULL: none */
};

/* Counts of requests to the per-key fail= scripts: FNV-1a 64 of the key to
 * the number of scripted requests seen with it (open addressing). */
struct mock_script_slot {
  uint64_t hash; /* 0: empty */
  uint32_t count;
};

struct mock_conn;
struct mock_tunnel;

struct mock_server {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  struct mock_options opt;
  struct mock_conn *conns; /* open connections, doubly linked */
  int stopping;
  uint64_t chat_seq; /* chat requests since start: global fault draws */
  /* Statistics served by GET /stats. */
  uint64_t requests, in_flight, max_in_flight, connections, proxied, tunnels;
  uint64_t responses[600];
  struct mock_script_slot *scripts;
  size_t scripts_cap, scripts_len;
  /* Delayed answers by due time (a binary heap), woken by one timerfd:
   * libuv's timers count whole milliseconds and would add half of one on
   * average. fd -1: none, the per-connection uv_timer is used. */
  int due_fd;
  uv_poll_t due_poll;
  struct mock_conn **due;
  size_t ndue, due_cap;
  char readbuf[MOCK_READ_CHUNK];
};

static struct mock_server srv;

/* One client connection. The parser is paused while a request is being
 * answered, so responses go out in request order; bytes that arrive in the
 * meantime wait in pend. */
struct mock_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* latency, then drip ticks, then the closing linger */
  uv_write_t wreq;  /* the response (head + body, then drip bytes) */
  uv_write_t creq;  /* "100 Continue" */
  uv_shutdown_t sreq;
  http_parser parser;
  struct mock_conn *prev, *next;
  int handles_open; /* close callbacks still to come before free */
  unsigned closing : 1;
  unsigned busy : 1;      /* a request is being answered (parser paused) */
  unsigned counted : 1;   /* the busy request counts in in_flight */
  unsigned hanging : 1;   /* the busy request will never be answered */
  unsigned lingering : 1; /* answered with close: draining until EOF */
  unsigned keep_alive : 1;
  unsigned expect_continue : 1;
  unsigned url_overflow : 1;
  unsigned header_is_expect : 1;
  unsigned last_was_value : 1;
  int reject; /* 413 found while parsing: answer it and close */
  /* The request being received. */
  char url[MOCK_MAX_URL];
  size_t url_len;
  char hname[16], hval[32];
  size_t hname_len, hval_len;
  char *body;
  size_t body_len, body_cap;
  /* Input that arrived while busy. */
  char *pend;
  size_t pend_off, pend_len, pend_cap;
  /* The response being sent. */
  char head[512];
  size_t head_len;
  char *out;
  size_t out_len, out_cap;
  int status;
  int close_after;
  long drip_ms; /* -1: send the body at once */
  size_t drip_pos;
  struct mock_tunnel *tunnel; /* after a CONNECT: bytes go through it */
  uint64_t read_ns; /* uv_hrtime() when the request was read */
  uint64_t due_ns;  /* when the delayed response may leave */
  size_t due_at;    /* its place in srv.due + 1; 0: not there */
};

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char malformed_body[] =
    "{\"id\": \"chatcmpl-mock\", \"object\": \"chat.completion\", "
    "\"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", "
    "\"content\": \"this reply was cut sh";

static void conn_close(struct mock_conn *c);
static void conn_drain(struct mock_conn *c);
static void conn_send(struct mock_conn *c);

/* ---- small helpers ---------------------------------------------------- */

static uint32_t fnv1a32(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static uint64_t fnv1a64(const char *s, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* The splitmix64 finaliser: a bijective mix, so distinct inputs give
 * independent-looking outputs. */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* A uniform draw in [0, 1) from the seed, the request number and which
 * stream (faults or jitter) it is for: reproducible run to run. */
static double mock_draw(uint64_t seq, uint64_t stream) {
  uint64_t x = mix64(mix64(srv.opt.seed) ^ mix64(seq * 2 + stream));
  return (double)(x >> 11) * 0x1p-53;
}

static size_t count_words(const char *s, size_t n) {
  size_t words = 0;
  int in_word = 0;
  for (size_t i = 0; i < n; i++) {
    int space = s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                s[i] == '\f' || s[i] == '\v';
    if (!space && !in_word)
      words++;
    in_word = !space;
  }
  return words;
}

/* Parses a decimal integer of exactly n bytes within [min, max]. */
static int parse_long(const char *s, size_t n, long min, long max, long *out) {
  if (n == 0 || n > 19)
    return -1;
  char tmp[24];
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *end;
  errno = 0;
  long v = strtol(tmp, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

static void buf_reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return;
  size_t n = *cap ? *cap : 4096;
  while (n < need)
    n *= 2;
  *buf = assay__xrealloc(*buf, n);
  *cap = n;
}

static void buf_append(char **buf, size_t *len, size_t *cap, const char *data,
                       size_t n) {
  buf_reserve(buf, cap, *len + n);
  memcpy(*buf + *len, data, n);
  *len += n;
}

static const char *reason_phrase(int status) {
  const char *r = http_status_str((enum http_status)status);
  return (r == NULL || r[0] == '<') ? "Status" : r;
}

/* ---- fail= script counters --------------------------------------------- */

/* Returns the number of earlier scripted requests with this key and counts
 * this one; -1 when the table is full. */
static long script_next(const char *key, size_t n) {
  uint64_t h = fnv1a64(key, n) ^ n;
  if (h == 0)
    h = 1;
  if ((srv.scripts_len + 1) * 2 > srv.scripts_cap) {
    if (srv.scripts_cap >= MOCK_MAX_SCRIPT_KEYS * 2)
      return -1;
    size_t cap = srv.scripts_cap ? srv.scripts_cap * 2 : 1024;
    struct mock_script_slot *t = assay__xcalloc(cap, sizeof *t);
    for (size_t i = 0; i < srv.scripts_cap; i++) {
      if (srv.scripts[i].hash == 0)
        continue;
      size_t j = srv.scripts[i].hash & (cap - 1);
      while (t[j].hash != 0)
        j = (j + 1) & (cap - 1);
      t[j] = srv.scripts[i];
    }
    free(srv.scripts);
    srv.scripts = t;
    srv.scripts_cap = cap;
  }
  size_t j = h & (srv.scripts_cap - 1);
  while (srv.scripts[j].hash != 0 && srv.scripts[j].hash != h)
    j = (j + 1) & (srv.scripts_cap - 1);
  if (srv.scripts[j].hash == 0) {
    srv.scripts[j].hash = h;
    srv.scripts_len++;
  }
  return srv.scripts[j].count++;
}

/* ---- directives --------------------------------------------------------- */

/* A directive's value borrowed from the message text. */
struct mock_value {
  const char *s;
  size_t n;
  int set;
};

struct mock_directives {
  int count;
  struct mock_value reply, fail, key, retry_after, retry_after_date, status,
      message, latency, oversize, drip;
  int malformed, hang;
};

/* Finds every `[[mock NAME]]` / `[[mock NAME=VALUE]]` in text. Returns 0, or
 * -1 with a message in err (owned) naming the bad directive. */
static int directives_parse(const char *text, size_t n,
                            struct mock_directives *d, char **err) {
  static const char open[] = "[[mock ";
  const size_t open_len = sizeof open - 1;
  memset(d, 0, sizeof *d);
  size_t i = 0;
  while (i + open_len <= n) {
    const char *p = memchr(text + i, '[', n - i);
    if (p == NULL)
      break;
    i = (size_t)(p - text);
    if (i + open_len > n || memcmp(p, open, open_len) != 0) {
      i++;
      continue;
    }
    size_t start = i + open_len, end = start;
    while (end + 1 < n && !(text[end] == ']' && text[end + 1] == ']'))
      end++;
    if (end + 1 >= n) {
      *err = assay__format("unterminated mock directive at byte %zu: "
                           "close it with ']]'",
                           i);
      return -1;
    }
    const char *name = text + start;
    const char *eq = memchr(name, '=', end - start);
    size_t name_len = eq ? (size_t)(eq - name) : end - start;
    struct mock_value v = {eq ? eq + 1 : NULL,
                           eq ? (size_t)(text + end - eq - 1) : 0, 1};
    struct mock_value *slot = NULL;
    int *flag = NULL;
#define MOCK_IS(lit)                                                           \
  (name_len == sizeof(lit) - 1 && memcmp(name, lit, name_len) == 0)
    if (MOCK_IS("reply"))
      slot = &d->reply;
    else if (MOCK_IS("fail"))
      slot = &d->fail;
    else if (MOCK_IS("key"))
      slot = &d->key;
    else if (MOCK_IS("retry_after"))
      slot = &d->retry_after;
    else if (MOCK_IS("retry_after_date"))
      slot = &d->retry_after_date;
    else if (MOCK_IS("status"))
      slot = &d->status;
    else if (MOCK_IS("message"))
      slot = &d->message;
    else if (MOCK_IS("latency"))
      slot = &d->latency;
    else if (MOCK_IS("oversize"))
      slot = &d->oversize;
    else if (MOCK_IS("drip"))
      slot = &d->drip;
    else if (MOCK_IS("malformed"))
      flag = &d->malformed;
    else if (MOCK_IS("hang"))
      flag = &d->hang;
#undef MOCK_IS
    if (slot == NULL && flag == NULL) {
      *err = assay__format("unknown mock directive '%.*s': use reply, fail, "
                           "key, retry_after, retry_after_date, status, "
                           "message, latency, oversize, drip, malformed or "
                           "hang",
                           (int)(name_len > 64 ? 64 : name_len), name);
      return -1;
    }
    if (slot != NULL && eq == NULL) {
      *err = assay__format("mock directive '%.*s' needs a value: "
                           "[[mock %.*s=VALUE]]",
                           (int)name_len, name, (int)name_len, name);
      return -1;
    }
    if (flag != NULL && eq != NULL) {
      *err = assay__format("mock directive '%.*s' takes no value",
                           (int)name_len, name);
      return -1;
    }
    if (slot != NULL)
      *slot = v;
    else
      *flag = 1;
    d->count++;
    i = end + 2;
  }
  return 0;
}

/* One entry of a fail= list: 0 ok, 1 hang, 2 malformed, else a status. */
enum { FAIL_OK = 0, FAIL_HANG = 1, FAIL_MALFORMED = 2 };

static int fail_entry_parse(const char *s, size_t n, int *out) {
  long v;
  if (n == 2 && memcmp(s, "ok", 2) == 0)
    *out = FAIL_OK;
  else if (n == 4 && memcmp(s, "hang", 4) == 0)
    *out = FAIL_HANG;
  else if (n == 9 && memcmp(s, "malformed", 9) == 0)
    *out = FAIL_MALFORMED;
  else if (parse_long(s, n, 400, 599, &v) == 0)
    *out = (int)v;
  else
    return -1;
  return 0;
}

/* Parses the whole list (so that a bad entry fails on the first request) and
 * returns entry `index` (FAIL_OK past the end). */
static int fail_list_entry(const struct mock_value *v, long index, int *out,
                           char **err) {
  size_t i = 0, count = 0;
  *out = FAIL_OK;
  while (i <= v->n) {
    const char *comma = memchr(v->s + i, ',', v->n - i);
    size_t end = comma ? (size_t)(comma - v->s) : v->n;
    int e;
    if (fail_entry_parse(v->s + i, end - i, &e) != 0) {
      *err = assay__format("bad entry '%.*s' in mock directive fail: use ok, "
                           "hang, malformed or a status 400-599",
                           (int)(end - i > 64 ? 64 : end - i), v->s + i);
      return -1;
    }
    if (++count > MOCK_MAX_FAIL_ENTRIES) {
      *err = assay__format("mock directive fail has more than %d entries",
                           MOCK_MAX_FAIL_ENTRIES);
      return -1;
    }
    if ((long)count - 1 == index)
      *out = e;
    if (comma == NULL)
      break;
    i = end + 1;
  }
  return 0;
}

/* ---- responses ------------------------------------------------------------
 */

/* Takes the printed JSON of root as the response body. */
static void conn_set_json(struct mock_conn *c, const cJSON *root) {
  if (c->out_cap > 0 &&
      cJSON_PrintPreallocated((cJSON *)root, c->out, (int)c->out_cap, 0)) {
    c->out_len = strlen(c->out);
    return;
  }
  char *s = cJSON_PrintUnformatted(root);
  if (s == NULL) {
    fprintf(stderr, "mockllm: out of memory printing a response\n");
    abort();
  }
  free(c->out);
  c->out = s;
  c->out_len = strlen(s);
  c->out_cap = c->out_len + 1;
  /* Give the next small response a preallocated buffer with some room. */
  if (c->out_cap < 4096) {
    c->out = assay__xrealloc(c->out, 4096);
    c->out_cap = 4096;
  }
}

static void conn_set_body(struct mock_conn *c, const char *s, size_t n) {
  c->out_len = 0;
  buf_append(&c->out, &c->out_len, &c->out_cap, s, n);
}

/* The decimal digits of v at the end of buf[24]; returns where they start. */
static char *format_u64(uint64_t v, char buf[24]) {
  char *p = buf + 24;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return p;
}

/* Appends n bytes to the head, dropping what would not fit. */
static void head_add(struct mock_conn *c, const char *s, size_t n) {
  size_t room = sizeof c->head - 1 - c->head_len;
  if (n > room)
    n = room;
  memcpy(c->head + c->head_len, s, n);
  c->head_len += n;
}

static void head_adds(struct mock_conn *c, const char *s) {
  head_add(c, s, strlen(s));
}

static void head_addu(struct mock_conn *c, uint64_t v) {
  char buf[24];
  char *p = format_u64(v, buf);
  head_add(c, p, (size_t)(buf + 24 - p));
}

/*
 * Prepares the head of a response whose body is in c->out. extra holds whole
 * header lines ("Retry-After: 3\r\n") or is NULL. Pieces are copied, not
 * printed: this runs for every answer.
 */
static void conn_prepare(struct mock_conn *c, int status,
                         const char *content_type, const char *extra) {
  c->status = status;
  if (!c->keep_alive)
    c->close_after = 1;
  c->head_len = 0;
  head_adds(c, "HTTP/1.1 ");
  head_addu(c, (uint64_t)status);
  head_adds(c, " ");
  head_adds(c, reason_phrase(status));
  head_adds(c, "\r\nContent-Type: ");
  head_adds(c, content_type);
  head_adds(c, "\r\nContent-Length: ");
  head_addu(c, c->out_len);
  head_adds(c, "\r\n");
  if (extra != NULL)
    head_adds(c, extra);
  if (c->close_after)
    head_adds(c, "Connection: close\r\n");
  head_adds(c, "\r\n");
}

static void conn_prepare_error(struct mock_conn *c, int status,
                               const char *type, const char *message,
                               const char *extra) {
  cJSON *root = cJSON_CreateObject();
  cJSON *err = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(err, "message", message);
  cJSON_AddStringToObject(err, "type", type);
  cJSON_AddNumberToObject(err, "code", status);
  conn_set_json(c, root);
  cJSON_Delete(root);
  conn_prepare(c, status, "application/json", extra);
}

static void on_conn_timer(uv_timer_t *t);
static void on_latency_timer(uv_timer_t *t);

/* Arms the latency timer for what is left until c->due_ns, or sends now.
 * The loop clock counts whole milliseconds and may lag real time, so a
 * timer can fire up to a millisecond early: on_latency_timer then comes
 * back here for the remainder, rounded up. Arming for the remainder rather
 * than one more millisecond keeps the answer from being late as well. */
static void conn_send_when_due(struct mock_conn *c) {
  uint64_t now = uv_hrtime();
  if (now >= c->due_ns) {
    conn_send(c);
    return;
  }
  uint64_t left_ms = (c->due_ns - now + 999999) / 1000000;
  uv_timer_start(&c->timer, on_latency_timer, left_ms, 0);
}

static void on_latency_timer(uv_timer_t *t) {
  conn_send_when_due(assay__container_of(t, struct mock_conn, timer));
}

/* ---- the heap of delayed answers ---- */

static void due_set(size_t i, struct mock_conn *c) {
  srv.due[i] = c;
  c->due_at = i + 1;
}

static void due_up(size_t i) {
  struct mock_conn *c = srv.due[i];
  while (i > 0 && srv.due[(i - 1) / 2]->due_ns > c->due_ns) {
    due_set(i, srv.due[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  due_set(i, c);
}

static void due_down(size_t i) {
  struct mock_conn *c = srv.due[i];
  for (;;) {
    size_t k = 2 * i + 1;
    if (k >= srv.ndue)
      break;
    if (k + 1 < srv.ndue && srv.due[k + 1]->due_ns < srv.due[k]->due_ns)
      k++;
    if (srv.due[k]->due_ns >= c->due_ns)
      break;
    due_set(i, srv.due[k]);
    i = k;
  }
  due_set(i, c);
}

/* Arms the timerfd for the earliest due answer (absolute, on the clock of
 * uv_hrtime), or disarms it. */
static void due_arm(void) {
#ifdef __linux__
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (srv.ndue > 0) {
    /* Rounded up to a tenth of a millisecond, so that answers due close
     * together leave on one wakeup. */
    uint64_t t = (srv.due[0]->due_ns + 99999) / 100000 * 100000;
    its.it_value.tv_sec = (time_t)(t / 1000000000u);
    its.it_value.tv_nsec = (long)(t % 1000000000u);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
      its.it_value.tv_nsec = 1;
  }
  timerfd_settime(srv.due_fd, TFD_TIMER_ABSTIME, &its, NULL);
#endif
}

static void due_remove(struct mock_conn *c) {
  if (c->due_at == 0)
    return;
  size_t i = c->due_at - 1;
  c->due_at = 0;
  struct mock_conn *last = srv.due[--srv.ndue];
  if (i < srv.ndue) {
    due_set(i, last);
    due_up(i);
    due_down(last->due_at - 1);
  }
  if (i == 0)
    due_arm();
}

static void due_add(struct mock_conn *c) {
  if (srv.ndue == srv.due_cap) {
    srv.due_cap = srv.due_cap ? srv.due_cap * 2 : 256;
    srv.due = assay__xrealloc(srv.due, srv.due_cap * sizeof *srv.due);
  }
  srv.due[srv.ndue++] = c;
  due_up(srv.ndue - 1);
  if (srv.due[0] == c)
    due_arm();
}

static void on_due(uv_poll_t *p, int status, int events) {
  (void)p;
  (void)status;
  (void)events;
#ifdef __linux__
  uint64_t expirations;
  if (read(srv.due_fd, &expirations, sizeof expirations) < 0) {
    /* EAGAIN: a re-arm raced the wakeup; the heap decides below. */
  }
#endif
  uint64_t now = uv_hrtime();
  while (srv.ndue > 0 && srv.due[0]->due_ns <= now) {
    struct mock_conn *c = srv.due[0];
    c->due_at = 0;
    struct mock_conn *last = srv.due[--srv.ndue];
    if (srv.ndue > 0) {
      due_set(0, last);
      due_down(0);
    }
    conn_send(c);
  }
  due_arm();
}

/* Sends the prepared response delay_ms after the request was read (0:
 * now), never sooner. */
static void conn_send_after(struct mock_conn *c, long delay_ms) {
  if (delay_ms <= 0) {
    conn_send(c);
    return;
  }
  c->due_ns = c->read_ns + (uint64_t)delay_ms * 1000000u;
  if (srv.due_fd >= 0 && uv_hrtime() < c->due_ns) {
    due_add(c);
    return;
  }
  conn_send_when_due(c);
}

static void conn_idle(struct mock_conn *c);

static void on_linger_timer(uv_timer_t *t) {
  conn_close(assay__container_of(t, struct mock_conn, timer));
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the linger timer or EOF closes the connection */
}

/* The response is on the wire: count it done, then read the next request or
 * start a graceful close. */
static void conn_finish(struct mock_conn *c) {
  if (c->counted) {
    srv.in_flight--;
    c->counted = 0;
  }
  if (c->close_after) {
    /* Half-close and keep reading until EOF, so that a client still sending
     * a body it should not have (413) reads our answer instead of a reset. */
    c->lingering = 1;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
      conn_close(c);
      return;
    }
    uv_timer_start(&c->timer, on_linger_timer, MOCK_LINGER_MS, 0);
    return;
  }
  conn_idle(c);
}

static void on_write(uv_write_t *req, int status) {
  struct mock_conn *c = assay__container_of(req, struct mock_conn, wreq);
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->drip_ms >= 0 && c->drip_pos < c->out_len) {
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)c->drip_ms, 0);
    return;
  }
  conn_finish(c);
}

static void conn_send(struct mock_conn *c) {
  uv_buf_t bufs[2];
  unsigned n = 0;
  if (c->head_len > 0) {
    bufs[n++] = uv_buf_init(c->head, (unsigned)c->head_len);
    c->head_len = 0;
    if (c->status >= 0 && c->status < 600 && c->counted)
      srv.responses[c->status]++;
    if (c->drip_ms < 0 && c->out_len > 0)
      bufs[n++] = uv_buf_init(c->out, (unsigned)c->out_len);
  } else {
    /* A drip tick: the next byte of the body. */
    bufs[n++] = uv_buf_init(c->out + c->drip_pos, 1);
    c->drip_pos++;
  }
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, on_write) != 0)
    conn_close(c);
}

static void on_conn_timer(uv_timer_t *t) {
  struct mock_conn *c = assay__container_of(t, struct mock_conn, timer);
  conn_send(c);
}

/* ---- request handlers ---------------------------------------------------- */

/* The text of a message's content: a string, or the concatenated "text" of
 * content parts. Sets *owned when the result had to be built. */
static const char *content_text(const cJSON *msg, size_t *len, char **owned) {
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  *owned = NULL;
  *len = 0;
  if (cJSON_IsString(content)) {
    *len = strlen(content->valuestring);
    return content->valuestring;
  }
  if (!cJSON_IsArray(content))
    return "";
  char *buf = NULL;
  size_t n = 0, cap = 0;
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (cJSON_IsString(text))
      buf_append(&buf, &n, &cap, text->valuestring, strlen(text->valuestring));
  }
  if (buf == NULL)
    return "";
  buf_append(&buf, &n, &cap, "", 1);
  *owned = buf;
  *len = n - 1;
  return buf;
}

/* The Retry-After header line for an error, from directives or the command
 * line, into line[96] (empty when none). */
static void retry_after_line(const struct mock_directives *d, int global,
                             char line[96]) {
  line[0] = '\0';
  if (d->retry_after.set) {
    snprintf(line, 96, "Retry-After: %.*s\r\n", (int)d->retry_after.n,
             d->retry_after.s);
  } else if (d->retry_after_date.set) {
    long s = 0;
    parse_long(d->retry_after_date.s, d->retry_after_date.n, -86400L * 365,
               86400L * 365, &s);
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    time_t when = (time_t)now.tv_sec + (now.tv_usec > 0 ? 1 : 0) + s;
    struct tm tm;
    char date[64];
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(line, 96, "Retry-After: %s\r\n", date);
  } else if (global && srv.opt.retry_after != NULL) {
    snprintf(line, 96, "Retry-After: %s\r\n", srv.opt.retry_after);
  }
}

/* Validates the directives' values before anything is counted. */
static int directives_check(const struct mock_directives *d, char **err) {
  long v;
  const char *bad = NULL;
  const struct mock_value *bv = NULL;
  if (d->status.set &&
      (parse_long(d->status.s, d->status.n, 200, 599, &v) != 0 || v == 204 ||
       v == 304))
    bad = "status", bv = &d->status;
  else if (d->latency.set && parse_long(d->latency.s, d->latency.n, 0,
                                        MOCK_MAX_DELAY_MS, &v) != 0)
    bad = "latency", bv = &d->latency;
  else if (d->drip.set &&
           parse_long(d->drip.s, d->drip.n, 0, MOCK_MAX_DELAY_MS, &v) != 0)
    bad = "drip", bv = &d->drip;
  else if (d->oversize.set && parse_long(d->oversize.s, d->oversize.n, 0,
                                         MOCK_MAX_OVERSIZE, &v) != 0)
    bad = "oversize", bv = &d->oversize;
  else if (d->retry_after_date.set &&
           parse_long(d->retry_after_date.s, d->retry_after_date.n,
                      -86400L * 365, 86400L * 365, &v) != 0)
    bad = "retry_after_date", bv = &d->retry_after_date;
  else if (d->retry_after.set &&
           (d->retry_after.n > 60 ||
            memchr(d->retry_after.s, '\r', d->retry_after.n) ||
            memchr(d->retry_after.s, '\n', d->retry_after.n)))
    bad = "retry_after", bv = &d->retry_after;
  if (bad != NULL) {
    *err = assay__format("bad value '%.*s' for mock directive %s",
                         (int)(bv->n > 64 ? 64 : bv->n), bv->s, bad);
    return -1;
  }
  int e;
  if (d->fail.set && fail_list_entry(&d->fail, -1, &e, err) != 0)
    return -1;
  return 0;
}

static void out_add(struct mock_conn *c, const char *s, size_t n) {
  buf_append(&c->out, &c->out_len, &c->out_cap, s, n);
}

static void out_adds(struct mock_conn *c, const char *s) {
  out_add(c, s, strlen(s));
}

static void out_addu(struct mock_conn *c, uint64_t v) {
  char buf[24];
  char *p = format_u64(v, buf);
  out_add(c, p, (size_t)(buf + 24 - p));
}

/* Appends s as a JSON string, escaped by cJSON itself. */
static void out_add_json_string(struct mock_conn *c, const char *s) {
  cJSON item;
  memset(&item, 0, sizeof item);
  item.type = cJSON_String | cJSON_IsReference;
  item.valuestring = (char *)s;
  /* cJSON needs a few bytes beyond what it prints; a failed try means too
   * little room. */
  buf_reserve(&c->out, &c->out_cap, c->out_len + strlen(s) + 64);
  for (;;) {
    size_t room = c->out_cap - c->out_len;
    if (room > INT_MAX)
      room = INT_MAX;
    if (cJSON_PrintPreallocated(&item, c->out + c->out_len, (int)room, 0))
      break;
    buf_reserve(&c->out, &c->out_cap, c->out_cap * 2);
  }
  c->out_len += strlen(c->out + c->out_len);
}

/*
 * The body of a chat completion, byte for byte what cJSON prints for the
 * object {id, object, created, model, choices: [{index, message: {role,
 * content}, finish_reason}], usage: {prompt_tokens, completion_tokens,
 * total_tokens}[, mock_padding]}: the layout is fixed, cJSON escapes the
 * strings, and every number is a whole number below 1e15, which cJSON's
 * "%1.15g" prints as its plain digits. Building and printing the tree was
 * 40% of the server's CPU per request, most of it in that printf and the
 * sscanf that checks it.
 */
static void chat_reply_200(struct mock_conn *c, uint64_t seq, const char *model,
                           const char *content, size_t content_len,
                           size_t prompt_tokens, long oversize) {
  size_t completion_tokens = count_words(content, content_len);
  time_t now = time(NULL);
  c->out_len = 0;
  out_adds(c, "{\"id\":\"chatcmpl-mock-");
  out_addu(c, seq);
  out_adds(c, "\",\"object\":\"chat.completion\",\"created\":");
  out_addu(c, now > 0 ? (uint64_t)now : 0);
  out_adds(c, ",\"model\":");
  out_add_json_string(c, model);
  out_adds(c, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
              "\"assistant\",\"content\":");
  out_add_json_string(c, content);
  out_adds(c, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":");
  out_addu(c, prompt_tokens);
  out_adds(c, ",\"completion_tokens\":");
  out_addu(c, completion_tokens);
  out_adds(c, ",\"total_tokens\":");
  out_addu(c, prompt_tokens + completion_tokens);
  out_adds(c, "}");
  if (oversize > 0) {
    /* Padded so that the whole body is oversize bytes when it can be. */
    static const char pad_open[] = ",\"mock_padding\":\"";
    size_t plain = c->out_len + (sizeof pad_open - 1) + 2;
    size_t n = (size_t)oversize > plain ? (size_t)oversize - plain : 0;
    out_adds(c, pad_open);
    buf_reserve(&c->out, &c->out_cap, c->out_len + n + 3);
    memset(c->out + c->out_len, 'x', n);
    c->out_len += n;
    out_adds(c, "\"}");
  } else {
    out_adds(c, "}");
  }
}

static void handle_chat(struct mock_conn *c) {
  uint64_t seq = srv.chat_seq++;
  char *err = NULL, *owned = NULL;
  long latency = srv.opt.latency_ms;
  if (srv.opt.jitter_ms > 0)
    latency += (long)(mock_draw(seq, 1) * (double)(srv.opt.jitter_ms + 1));
  /* The whole body must be one JSON value: cJSON checks that through a
   * terminating NUL counted in the length. */
  buf_reserve(&c->body, &c->body_cap, c->body_len + 1);
  c->body[c->body_len] = '\0';
  cJSON *req = cJSON_ParseWithLengthOpts(c->body, c->body_len + 1, NULL, 1);
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
  if (req == NULL || !cJSON_IsObject(req)) {
    conn_prepare_error(c, 400, "invalid_request_error",
                       "request body is not a JSON object: send "
                       "{\"model\": ..., \"messages\": [...]}",
                       NULL);
    goto send;
  }
  if (!cJSON_IsArray(messages)) {
    conn_prepare_error(c, 400, "invalid_request_error",
                       "'messages' must be an array of chat messages", NULL);
    goto send;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"))) {
    conn_prepare_error(c, 400, "invalid_request_error",
                       "'stream' is not supported by the mock server", NULL);
    goto send;
  }
  const char *model_name = cJSON_IsString(model) ? model->valuestring : "mock";

  /* Words of every message for prompt_tokens; the last user message. */
  const char *last = "";
  size_t last_len = 0, prompt_tokens = 0;
  const cJSON *msg;
  cJSON_ArrayForEach(msg, messages) {
    size_t n;
    char *o;
    const char *t = content_text(msg, &n, &o);
    prompt_tokens += count_words(t, n);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
    if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
      free(owned);
      owned = o;
      last = t;
      last_len = n;
    } else {
      free(o);
    }
  }

  struct mock_directives d;
  if (directives_parse(last, last_len, &d, &err) != 0 ||
      directives_check(&d, &err) != 0) {
    conn_prepare_error(c, 400, "invalid_request_error", err, NULL);
    goto send;
  }

  if (d.latency.set)
    parse_long(d.latency.s, d.latency.n, 0, MOCK_MAX_DELAY_MS, &latency);
  if (d.drip.set)
    parse_long(d.drip.s, d.drip.n, 0, MOCK_MAX_DELAY_MS, &c->drip_ms);

  /* What to answer: a scripted failure, a directive, a global fault or a
   * 200. */
  int fail = FAIL_OK, status = 0, global = 0;
  if (d.fail.set) {
    const char *key = d.key.set ? d.key.s : last;
    size_t key_len = d.key.set ? d.key.n : last_len;
    long index = script_next(key, key_len);
    if (index < 0) {
      conn_prepare_error(c, 503, "mock_error",
                         "the mock server's fail= key table is full: restart "
                         "it",
                         NULL);
      goto send;
    }
    fail_list_entry(&d.fail, index, &fail, &err);
  }
  if (fail == FAIL_HANG || (fail == FAIL_OK && d.hang)) {
    c->hanging = 1;
    goto done;
  }
  if (fail >= 400) {
    status = fail;
  } else if (fail == FAIL_OK && d.status.set) {
    long v;
    parse_long(d.status.s, d.status.n, 200, 599, &v);
    status = (int)v;
  } else if (fail == FAIL_OK && d.count == 0) {
    double u = mock_draw(seq, 0);
    if (u < srv.opt.p429) {
      status = 429;
    } else if (u < srv.opt.p429 + srv.opt.p500) {
      status = 500;
    } else if (u < srv.opt.p429 + srv.opt.p500 + srv.opt.phang) {
      c->hanging = 1;
      goto done;
    }
    global = status != 0;
  }

  if (status != 0) {
    char line[96];
    char *message = d.message.set ? assay__xstrndup(d.message.s, d.message.n)
                                  : assay__format("mock error %d", status);
    retry_after_line(&d, global && status == 429, line);
    conn_prepare_error(c, status, "mock_error", message,
                       (status >= 400 && line[0]) ? line : NULL);
    free(message);
  } else if (fail == FAIL_MALFORMED || d.malformed) {
    conn_set_body(c, malformed_body, sizeof malformed_body - 1);
    conn_prepare(c, 200, "application/json", NULL);
  } else {
    long oversize = 0;
    if (d.oversize.set)
      parse_long(d.oversize.s, d.oversize.n, 0, MOCK_MAX_OVERSIZE, &oversize);
    char judge[64], *reply = NULL;
    const char *content = last;
    size_t content_len = last_len;
    if (d.reply.set) {
      reply = assay__xstrndup(d.reply.s, d.reply.n);
      content = reply;
      content_len = d.reply.n;
    } else if (strcmp(model_name, "mock-judge") == 0) {
      int score = (int)(fnv1a32(last, last_len) % 11);
      int n = snprintf(judge, sizeof judge,
                       "{\"score\": %d.%d, \"reason\": \"mock judge\"}",
                       score / 10, score % 10);
      content = judge;
      content_len = (size_t)n;
    }
    /* cJSON strings end at a NUL: an echoed text is already NUL-terminated,
     * a reply= value was copied above. */
    chat_reply_200(c, seq, model_name, content, content_len, prompt_tokens,
                   oversize);
    free(reply);
    conn_prepare(c, 200, "application/json", NULL);
  }
send:
  conn_send_after(c, latency);
done:
  free(err);
  free(owned);
  cJSON_Delete(req);
}

static void handle_stats(struct mock_conn *c) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "requests", (double)srv.requests);
  cJSON_AddNumberToObject(root, "in_flight", (double)srv.in_flight);
  cJSON_AddNumberToObject(root, "max_in_flight", (double)srv.max_in_flight);
  cJSON *responses = cJSON_AddObjectToObject(root, "responses");
  for (int i = 0; i < 600; i++) {
    if (srv.responses[i] == 0)
      continue;
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    cJSON_AddNumberToObject(responses, key, (double)srv.responses[i]);
  }
  cJSON_AddNumberToObject(root, "connections", (double)srv.connections);
  cJSON_AddNumberToObject(root, "proxied", (double)srv.proxied);
  cJSON_AddNumberToObject(root, "tunnels", (double)srv.tunnels);
  conn_set_json(c, root);
  cJSON_Delete(root);
  conn_prepare(c, 200, "application/json", NULL);
}

static void handle_models(struct mock_conn *c) {
  static const char body[] =
      "{\"object\":\"list\",\"data\":["
      "{\"id\":\"mock\",\"object\":\"model\",\"owned_by\":\"assay\"},"
      "{\"id\":\"mock-judge\",\"object\":\"model\",\"owned_by\":\"assay\"}]}";
  conn_set_body(c, body, sizeof body - 1);
  conn_prepare(c, 200, "application/json", NULL);
}

/* The request counts in the statistics from now until it is answered. */
static void conn_count(struct mock_conn *c) {
  srv.requests++;
  srv.in_flight++;
  if (srv.in_flight > srv.max_in_flight)
    srv.max_in_flight = srv.in_flight;
  c->counted = 1;
}

static int path_is(const char *path, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(path, lit, n) == 0;
}

/* ---- CONNECT tunnels ---------------------------------------------------
 * The client's connection (parser paused for good) and one to the target;
 * what either side sends is copied to the other, and when either ends,
 * both close. */
struct mock_tunnel {
  uv_tcp_t up;
  uv_connect_t creq;
  struct mock_conn *c; /* NULL once the client side closed */
  int closing;
};

struct mock_wbuf {
  uv_write_t req;
  char data[];
};

static void on_tunnel_write(uv_write_t *req, int status) {
  (void)status;
  free(req->data);
}

/* Writes a copy of data to stream; the shared read buffer is reused. */
static void tunnel_write(uv_stream_t *to, const char *data, size_t len) {
  struct mock_wbuf *w = assay__xmalloc(sizeof *w + len);
  memcpy(w->data, data, len);
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, to, &b, 1, on_tunnel_write) != 0)
    free(w);
}

static void on_tunnel_closed(uv_handle_t *h) {
  free(h->data);
}

static void tunnel_close(struct mock_tunnel *t) {
  struct mock_conn *c = t->c;
  t->c = NULL;
  if (c != NULL) {
    c->tunnel = NULL;
    conn_close(c);
  }
  if (!t->closing) {
    t->closing = 1;
    uv_close((uv_handle_t *)&t->up, on_tunnel_closed);
  }
}

static void on_tunnel_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct mock_tunnel *t = s->data;
  if (nread < 0 || t->c == NULL) {
    tunnel_close(t);
    return;
  }
  if (nread > 0)
    tunnel_write((uv_stream_t *)&t->c->tcp, buf->base, (size_t)nread);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_tunnel_connected(uv_connect_t *req, int status) {
  struct mock_tunnel *t = req->data;
  if (t->c == NULL) {
    tunnel_close(t);
    return;
  }
  if (status != 0) {
    static const char bad[] =
        "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n";
    tunnel_write((uv_stream_t *)&t->c->tcp, bad, sizeof bad - 1);
    tunnel_close(t);
    return;
  }
  static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
  tunnel_write((uv_stream_t *)&t->c->tcp, ok, sizeof ok - 1);
  srv.tunnels++;
  if (uv_read_start((uv_stream_t *)&t->up, on_alloc, on_tunnel_read) != 0)
    tunnel_close(t);
}

static void tunnel_open(struct mock_conn *c) {
  char host[64];
  const char *colon = strrchr(c->url, ':');
  size_t n = colon ? (size_t)(colon - c->url) : 0;
  struct sockaddr_in addr;
  if (colon == NULL || n == 0 || n >= sizeof host) {
    c->close_after = 1;
    conn_prepare_error(c, 400, "invalid_request_error",
                       "CONNECT needs ip:port", NULL);
    conn_send(c);
    return;
  }
  memcpy(host, c->url, n);
  host[n] = '\0';
  if (uv_ip4_addr(host, atoi(colon + 1), &addr) != 0) {
    c->close_after = 1;
    conn_prepare_error(c, 400, "invalid_request_error",
                       "CONNECT takes a numeric IPv4 address", NULL);
    conn_send(c);
    return;
  }
  struct mock_tunnel *t = assay__xcalloc(1, sizeof *t);
  uv_tcp_init(&srv.loop, &t->up);
  t->up.data = t;
  t->creq.data = t;
  t->c = c;
  c->tunnel = t;
  if (uv_tcp_connect(&t->creq, &t->up, (const struct sockaddr *)&addr,
                     on_tunnel_connected) != 0)
    tunnel_close(t);
}

/* Routes a complete request; the parser stays paused until it is answered. */
static void conn_handle(struct mock_conn *c) {
  c->busy = 1;
  c->drip_ms = -1;
  c->drip_pos = 0;
  const char *path = c->url;
  if (strncmp(path, "http://", 7) == 0) {
    /* Absolute form: what a client sends to a proxy. */
    const char *slash = strchr(path + 7, '/');
    path = slash != NULL ? slash : "/";
    srv.proxied++;
  }
  size_t n = strcspn(path, "?#");
  enum http_method m = (enum http_method)c->parser.method;
  if (m == HTTP_CONNECT && !c->url_overflow) {
    tunnel_open(c);
    return;
  }
  if (c->url_overflow) {
    conn_count(c);
    c->close_after = 1;
    conn_prepare_error(c, 414, "invalid_request_error",
                       "request target too long", NULL);
  } else if (path_is(path, n, "/healthz") && m == HTTP_GET) {
    conn_set_body(c, "ok", 2);
    conn_prepare(c, 200, "text/plain", NULL);
  } else if (path_is(path, n, "/stats") && m == HTTP_GET) {
    handle_stats(c);
  } else if (path_is(path, n, "/stats/reset") && m == HTTP_POST) {
    srv.requests = 0;
    srv.proxied = 0;
    srv.tunnels = 0;
    srv.max_in_flight = srv.in_flight;
    memset(srv.responses, 0, sizeof srv.responses);
    handle_stats(c);
  } else if (path_is(path, n, "/v1/chat/completions") && m == HTTP_POST) {
    conn_count(c);
    handle_chat(c);
    return;
  } else if (path_is(path, n, "/v1/models") && m == HTTP_GET) {
    conn_count(c);
    handle_models(c);
  } else {
    conn_count(c);
    int known = path_is(path, n, "/healthz") || path_is(path, n, "/stats") ||
                path_is(path, n, "/stats/reset") ||
                path_is(path, n, "/v1/chat/completions") ||
                path_is(path, n, "/v1/models");
    char *msg = assay__format("no route for '%s %.*s'%s", http_method_str(m),
                              (int)(n > 200 ? 200 : n), path,
                              known ? ": wrong method" : "");
    conn_prepare_error(c, known ? 405 : 404, "invalid_request_error", msg,
                       NULL);
    free(msg);
  }
  conn_send(c);
}

/* ---- the HTTP parser's callbacks ----------------------------------------- */

static int on_message_begin(http_parser *p) {
  struct mock_conn *c = p->data;
  c->url_len = 0;
  c->url[0] = '\0';
  c->url_overflow = 0;
  c->body_len = 0;
  c->hname_len = c->hval_len = 0;
  c->last_was_value = 0;
  c->header_is_expect = 0;
  c->expect_continue = 0;
  c->reject = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  struct mock_conn *c = p->data;
  if (c->url_len + len >= sizeof c->url) {
    c->url_overflow = 1;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  c->url[c->url_len] = '\0';
  return 0;
}

/* Only Expect matters to us; names and values longer than the small buffers
 * are not ones we look for, so they are marked and ignored. */
static void header_done(struct mock_conn *c) {
  if (c->header_is_expect && c->hval_len == 12 &&
      strncasecmp(c->hval, "100-continue", 12) == 0)
    c->expect_continue = 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct mock_conn *c = p->data;
  if (c->last_was_value) {
    header_done(c);
    c->hname_len = c->hval_len = 0;
    c->last_was_value = 0;
  }
  if (c->hname_len + len <= sizeof c->hname) {
    memcpy(c->hname + c->hname_len, at, len);
    c->hname_len += len;
  } else {
    c->hname_len = sizeof c->hname + 1;
  }
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct mock_conn *c = p->data;
  if (!c->last_was_value) {
    c->header_is_expect =
        c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0;
    c->hval_len = 0;
    c->last_was_value = 1;
  }
  if (c->hval_len + len <= sizeof c->hval) {
    memcpy(c->hval + c->hval_len, at, len);
    c->hval_len += len;
  } else {
    c->hval_len = sizeof c->hval + 1;
  }
  return 0;
}

static void on_continue_written(uv_write_t *req, int status) {
  struct mock_conn *c = assay__container_of(req, struct mock_conn, creq);
  if (status < 0 && !c->closing)
    conn_close(c);
}

static int on_headers_complete(http_parser *p) {
  struct mock_conn *c = p->data;
  if (c->last_was_value)
    header_done(c);
  /* No Content-Length leaves content_length at ULLONG_MAX. */
  if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
      p->content_length > MOCK_MAX_BODY) {
    c->reject = 413;
    http_parser_pause(p, 1);
    return 0;
  }
  if (c->expect_continue && !c->closing &&
      ((p->flags & F_CHUNKED) ||
       (p->content_length != ULLONG_MAX && p->content_length > 0))) {
    uv_buf_t b = uv_buf_init((char *)continue_line, sizeof continue_line - 1);
    if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1,
                 on_continue_written) != 0)
      return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct mock_conn *c = p->data;
  if (c->body_len + len > MOCK_MAX_BODY) {
    c->reject = 413;
    http_parser_pause(p, 1);
    return 0;
  }
  buf_append(&c->body, &c->body_len, &c->body_cap, at, len);
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct mock_conn *c = p->data;
  c->keep_alive = http_should_keep_alive(p) != 0;
  c->read_ns = uv_hrtime();
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ------------------------------------------------------------
 */

/* Answers a request the parser refused (or a 413) and closes afterwards. */
static void conn_refuse(struct mock_conn *c, int status, const char *why) {
  c->busy = 1;
  c->drip_ms = -1;
  c->drip_pos = 0;
  c->close_after = 1;
  conn_count(c);
  conn_prepare_error(c, status, "invalid_request_error", why, NULL);
  conn_send(c);
}

/* Parses len bytes; returns how many were consumed (all of them when the
 * connection is being closed after an error). */
static size_t conn_execute(struct mock_conn *c, const char *data, size_t len) {
  size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_PAUSED) {
    if (c->reject != 0) {
      char msg[128];
      snprintf(msg, sizeof msg,
               "request body over %u bytes: send a smaller request",
               MOCK_MAX_BODY);
      conn_refuse(c, 413, msg);
      return len;
    }
    conn_handle(c);
    return n;
  }
  if (e != HPE_OK) {
    char *msg =
        assay__format("malformed HTTP request: %s", http_errno_description(e));
    conn_refuse(c, e == HPE_HEADER_OVERFLOW ? 431 : 400, msg);
    free(msg);
    return len;
  }
  return n;
}

static int conn_pend(struct mock_conn *c, const char *data, size_t len) {
  if (c->pend_off > 0) {
    memmove(c->pend, c->pend + c->pend_off, c->pend_len - c->pend_off);
    c->pend_len -= c->pend_off;
    c->pend_off = 0;
  }
  if (c->pend_len + len > MOCK_MAX_PENDING)
    return -1;
  buf_append(&c->pend, &c->pend_len, &c->pend_cap, data, len);
  return 0;
}

static void conn_drain(struct mock_conn *c) {
  while (!c->busy && !c->closing && !c->lingering &&
         c->pend_off < c->pend_len) {
    size_t n =
        conn_execute(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
    c->pend_off += n;
    if (n == 0 && !c->busy)
      break;
  }
  if (c->pend_off >= c->pend_len) {
    c->pend_off = c->pend_len = 0;
    if (c->pend_cap > MOCK_KEEP_BUF) {
      free(c->pend);
      c->pend = NULL;
      c->pend_cap = 0;
    }
  }
}

static void conn_input(struct mock_conn *c, const char *data, size_t len) {
  if (c->busy || c->pend_off < c->pend_len) {
    if (conn_pend(c, data, len) != 0) {
      conn_close(c);
      return;
    }
    conn_drain(c);
    return;
  }
  size_t n = conn_execute(c, data, len);
  if (n < len && !c->closing && !c->lingering &&
      conn_pend(c, data + n, len - n) != 0)
    conn_close(c);
}

/* Ready for the next request on this connection. */
static void conn_idle(struct mock_conn *c) {
  c->busy = 0;
  c->hanging = 0;
  c->close_after = 0;
  c->drip_ms = -1;
  c->drip_pos = 0;
  if (c->body_cap > MOCK_KEEP_BUF) {
    free(c->body);
    c->body = NULL;
    c->body_cap = 0;
  }
  if (c->out_cap > MOCK_KEEP_BUF) {
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
  http_parser_pause(&c->parser, 0);
  conn_drain(c);
}

static void on_conn_closed(uv_handle_t *h) {
  struct mock_conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  free(c->body);
  free(c->pend);
  free(c->out);
  free(c);
}

static void conn_close(struct mock_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (c->tunnel != NULL)
    tunnel_close(c->tunnel);
  if (c->counted) {
    srv.in_flight--;
    c->counted = 0;
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    srv.conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv.connections--;
  due_remove(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  /* One buffer for every connection: a read is parsed (and whatever must
   * outlive it copied) before the next read is made. */
  *buf = uv_buf_init(srv.readbuf, sizeof srv.readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct mock_conn *c = assay__container_of(s, struct mock_conn, tcp);
  if (nread < 0) {
    conn_close(c); /* EOF or error: a hang ends here too */
    return;
  }
  if (nread == 0 || c->closing || c->lingering)
    return;
  if (c->tunnel != NULL) {
    if (!c->tunnel->closing)
      tunnel_write((uv_stream_t *)&c->tunnel->up, buf->base, (size_t)nread);
    return;
  }
  conn_input(c, buf->base, (size_t)nread);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "mockllm: cannot accept a connection: %s\n",
            uv_strerror(status));
    return;
  }
  struct mock_conn *c = assay__xcalloc(1, sizeof *c);
  uv_tcp_init(&srv.loop, &c->tcp);
  uv_timer_init(&srv.loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->drip_ms = -1;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->next = srv.conns;
  if (srv.conns)
    srv.conns->prev = c;
  srv.conns = c;
  srv.connections++;
  int err = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (err == 0) {
    uv_tcp_nodelay(&c->tcp, 1); /* drip bytes must not be coalesced */
    err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  if (err != 0) {
    fprintf(stderr, "mockllm: cannot accept a connection: %s\n",
            uv_strerror(err));
    conn_close(c);
  }
}

/* ---- start and stop -------------------------------------------------------
 */

static void on_plain_closed(uv_handle_t *h) {
  (void)h;
}

static void server_stop(void) {
  if (srv.stopping)
    return;
  srv.stopping = 1;
  if (srv.due_fd >= 0)
    uv_close((uv_handle_t *)&srv.due_poll, on_plain_closed);
  uv_close((uv_handle_t *)&srv.listener, on_plain_closed);
  uv_close((uv_handle_t *)&srv.sigint, on_plain_closed);
  uv_close((uv_handle_t *)&srv.sigterm, on_plain_closed);
  while (srv.conns != NULL)
    conn_close(srv.conns);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  server_stop();
}

static void usage(FILE *f) {
  fputs(
      "Usage: mockllm [OPTION]...\n"
      "An OpenAI-compatible test server for assay's tests.\n"
      "\n"
      "  --host ADDR          listen address (127.0.0.1)\n"
      "  --port N             port; 0 picks a free one (0)\n"
      "  --port-file FILE     write the port there once listening\n"
      "  --latency-ms N       delay every chat answer by N ms (0)\n"
      "  --jitter-ms N        add 0..N ms, drawn from the seed (0)\n"
      "  --p429 F --p500 F --phang F\n"
      "                       share of directive-free chat requests answered\n"
      "                       429, 500 or never (0)\n"
      "  --seed N             seed of those draws (0)\n"
      "  --retry-after S      Retry-After on those 429s (none)\n"
      "\n"
      "POST /v1/chat/completions echoes the last user message; directives in\n"
      "it, [[mock NAME]] or [[mock NAME=VALUE]], script the answer: reply=,\n"
      "fail=429,500,ok (per key=), retry_after=, retry_after_date=, status=,\n"
      "message=, latency=, oversize=, drip=, malformed, hang. Model\n"
      "mock-judge answers {\"score\": S, \"reason\": \"mock judge\"}.\n"
      "GET /stats, POST /stats/reset, GET /healthz, GET /v1/models.\n"
      "A target in absolute form (http://host/path, as sent to a proxy) is\n"
      "served as its path and counted in /stats \"proxied\"; CONNECT ip:port\n"
      "opens a tunnel there (/stats \"tunnels\").\n",
      f);
}

static int opt_long(const char *name, const char *s, long min, long max,
                    long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
    fprintf(stderr,
            "mockllm: bad value '%s' for --%s: expected an integer "
            "from %ld to %ld\n",
            s, name, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int opt_prob(const char *name, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= 1)) {
    fprintf(stderr,
            "mockllm: bad value '%s' for --%s: expected a number "
            "from 0 to 1\n",
            s, name);
    return -1;
  }
  *out = v;
  return 0;
}

/* Returns 0 to run, 1 to exit successfully (--help), -1 on a usage error. */
static int parse_args(int argc, char **argv, struct mock_options *o) {
  static const struct option longopts[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"port-file", required_argument, NULL, 'f'},
      {"latency-ms", required_argument, NULL, 'l'},
      {"jitter-ms", required_argument, NULL, 'j'},
      {"p429", required_argument, NULL, '4'},
      {"p500", required_argument, NULL, '5'},
      {"phang", required_argument, NULL, 'g'},
      {"seed", required_argument, NULL, 's'},
      {"retry-after", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  o->host = "127.0.0.1";
  int ch;
  long v;
  char *end;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'H':
      o->host = optarg;
      break;
    case 'p':
      if (opt_long("port", optarg, 0, 65535, &v) != 0)
        return -1;
      o->port = (int)v;
      break;
    case 'f':
      o->port_file = optarg;
      break;
    case 'l':
      if (opt_long("latency-ms", optarg, 0, MOCK_MAX_DELAY_MS,
                   &o->latency_ms) != 0)
        return -1;
      break;
    case 'j':
      if (opt_long("jitter-ms", optarg, 0, MOCK_MAX_DELAY_MS, &o->jitter_ms) !=
          0)
        return -1;
      break;
    case '4':
      if (opt_prob("p429", optarg, &o->p429) != 0)
        return -1;
      break;
    case '5':
      if (opt_prob("p500", optarg, &o->p500) != 0)
        return -1;
      break;
    case 'g':
      if (opt_prob("phang", optarg, &o->phang) != 0)
        return -1;
      break;
    case 's':
      errno = 0;
      o->seed = strtoull(optarg, &end, 10);
      if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
        fprintf(stderr,
                "mockllm: bad value '%s' for --seed: expected an "
                "unsigned integer\n",
                optarg);
        return -1;
      }
      break;
    case 'r':
      if (opt_long("retry-after", optarg, 0, 86400L * 365, &v) != 0)
        return -1;
      o->retry_after = optarg;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      fputs("Try 'mockllm --help'.\n", stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr,
            "mockllm: unexpected argument '%s'\n"
            "Try 'mockllm --help'.\n",
            argv[optind]);
    return -1;
  }
  if (o->p429 + o->p500 + o->phang > 1.0 + 1e-9) {
    fprintf(stderr, "mockllm: --p429, --p500 and --phang add up to more "
                    "than 1\n");
    return -1;
  }
  return 0;
}

/* Thousands of client connections need thousands of descriptors. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
    return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && rl.rlim_max > (1u << 20)) {
    rl.rlim_cur = 1u << 20;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Written to a temporary name and renamed, so that a reader polling for the
 * file never sees it half written. */
static int write_port_file(const char *path, int port) {
  char *tmp = assay__format("%s.tmp%ld", path, (long)uv_os_getpid());
  FILE *f = fopen(tmp, "w");
  int ok = f != NULL && fprintf(f, "%d\n", port) > 0;
  if (f != NULL && fclose(f) != 0)
    ok = 0;
  if (ok && rename(tmp, path) != 0)
    ok = 0;
  if (!ok) {
    fprintf(stderr, "mockllm: cannot write port file '%s': %s\n", path,
            strerror(errno));
    remove(tmp);
  }
  free(tmp);
  return ok ? 0 : -1;
}

static int server_listen(void) {
  struct sockaddr_storage addr;
  int v6 = strchr(srv.opt.host, ':') != NULL;
  int err =
      v6 ? uv_ip6_addr(srv.opt.host, srv.opt.port, (struct sockaddr_in6 *)&addr)
         : uv_ip4_addr(srv.opt.host, srv.opt.port, (struct sockaddr_in *)&addr);
  if (err != 0) {
    fprintf(stderr, "mockllm: bad --host '%s': %s\n", srv.opt.host,
            uv_strerror(err));
    return -1;
  }
  err = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
  if (err == 0)
    err = uv_listen((uv_stream_t *)&srv.listener, 4096, on_connection);
  if (err != 0) {
    fprintf(stderr, "mockllm: cannot listen on %s port %d: %s\n", srv.opt.host,
            srv.opt.port, uv_strerror(err));
    return -1;
  }
  int len = sizeof addr;
  err = uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&addr, &len);
  if (err != 0) {
    fprintf(stderr, "mockllm: cannot read the listening port: %s\n",
            uv_strerror(err));
    return -1;
  }
  int port = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                      : ((struct sockaddr_in *)&addr)->sin_port);
  if (srv.opt.port_file != NULL && write_port_file(srv.opt.port_file, port))
    return -1;
  printf(v6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n", srv.opt.host,
         port);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv, &srv.opt);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  /* A client that goes away mid-write must not kill the server. */
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  int err = uv_loop_init(&srv.loop);
  if (err != 0) {
    fprintf(stderr, "mockllm: cannot start the event loop: %s\n",
            uv_strerror(err));
    return 1;
  }
  uv_tcp_init(&srv.loop, &srv.listener);
  uv_signal_init(&srv.loop, &srv.sigint);
  uv_signal_init(&srv.loop, &srv.sigterm);
  srv.due_fd = -1;
#ifdef __linux__
  /* The clock of uv_hrtime. */
  srv.due_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (srv.due_fd >= 0 &&
      (uv_poll_init(&srv.loop, &srv.due_poll, srv.due_fd) != 0 ||
       uv_poll_start(&srv.due_poll, UV_READABLE, on_due) != 0)) {
    close(srv.due_fd);
    srv.due_fd = -1;
  }
  if (srv.due_fd >= 0)
    uv_unref((uv_handle_t *)&srv.due_poll);
#endif
  rc = 0;
  if (server_listen() != 0) {
    rc = 1;
    server_stop();
  } else {
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
  }
  uv_run(&srv.loop, UV_RUN_DEFAULT);
  free(srv.scripts);
  free(srv.due);
#ifdef __linux__
  if (srv.due_fd >= 0)
    close(srv.due_fd);
#endif
  err = uv_loop_close(&srv.loop);
  if (err != 0) {
    fprintf(stderr, "mockllm: handles left open at exit: %s\n",
            uv_strerror(err));
    return 1;
  }
  return rc;
}
