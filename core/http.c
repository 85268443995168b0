/*
 * The host's HTTP service (see http.h): libcurl's multi interface driven by
 * the caller's libuv loop. curl tells us which sockets to watch (one uv_poll
 * per socket) and when to call it back (one uv_timer); we hand readiness
 * back with curl_multi_socket_action and collect finished transfers with
 * curl_multi_info_read. On top of that sit per-endpoint admission (an
 * adaptive in-flight limit and a FIFO queue), an optional token bucket over
 * all endpoints, the response size cap and the failure policy that the
 * engine applies to every LLM call.
 *
 * One thread owns all of it: the loop thread. User callbacks never run
 * inside a curl callback, so they may start, cancel or close freely.
 *
 * Per-request costs are kept down by reuse: a finished request keeps its
 * curl easy handle (reset, then configured afresh), its timer and its
 * buffers on an idle list for the next one, and a socket's uv_poll lives as
 * long as the connection, not the transfer: curl removes a keep-alive
 * socket from its watch set after every transfer, and re-creating the poll
 * each time cost several epoll_ctl calls and an ioctl per request.
 *
 * Transfers are spread over several multi handles (shards) of at most
 * SHARD_TRANSFERS each, all on the same loop. Each multi handle has its own
 * connection cache, and libcurl 7.x walks a host's whole cache to pick a
 * connection for every new transfer and again when one is removed: with
 * 1,000 connections to one host that was about 25,000 instructions per
 * request, with shards of 64 it is a few hundred.
 */
#include "config.h"

#include "http.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h> /* isfinite, a macro: no libm */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "curlload.h"
#include "deadline.h"
#include "error.h"
#include "util.h"

/* Response headers kept per request; beyond it later headers are dropped. */
#define HEADER_BYTES_MAX (64u << 10)
/* Buffers an idle request keeps for the next one; larger ones are freed. */
#define KEEP_BUF_MAX (64u << 10)
/* Limit changes remembered per endpoint for the summary. */
#define HISTORY_MAX 256
/* A burst of 429s shrinks the limit once per window at least this long. */
#define COOLDOWN_MIN_MS 1000.0
/* Longest server error message quoted, and raw body excerpt when the body
 * is not an error object. */
#define SERVER_MESSAGE_MAX 500
#define BODY_EXCERPT_MAX 200
/* A Retry-After beyond a day is taken as a day: the engine's deadlines
 * bound it anyway, and it keeps the arithmetic far from overflow. */
#define RETRY_AFTER_MAX_S 86400L
/* The token bucket holds at most this many seconds of requests, so that an
 * idle service does not release a burst far above --rps. */
#define RPS_BURST_S 0.05
/* Transfers per multi handle: bounds the connection cache curl scans. */
#define SHARD_TRANSFERS 64
/* Finished requests kept for reuse once the service drains (see
 * assay_http_drain): enough for requests a callback starts at once. */
#define DRAIN_IDLE 16

#define USER_AGENT "assay/" PACKAGE_VERSION

/* An intrusive doubly-linked list: each request is on exactly one list. */
struct link {
  struct link *prev, *next;
};

static void link_init(struct link *l) {
  l->prev = l->next = l;
}

static int list_empty(const struct link *head) {
  return head->next == head;
}

static void list_push(struct link *head, struct link *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}

static void list_remove(struct link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  link_init(l);
}

enum req_state {
  REQ_QUEUED = 1, /* on its endpoint's queue, waiting for a slot or a token */
  REQ_ACTIVE,     /* its easy handle is in the multi handle */
  REQ_DEFERRED    /* finished; its callback runs from the defer timer */
};

struct history {
  double t_ms;
  int limit;
  const char *why; /* static: "429" or "recovered" */
};

/* Everything sent to one scheme://host:port/path shares one limit. */
struct endpoint {
  struct link link; /* in assay_http.endpoints */
  char *key;
  char *url;     /* the last URL that mapped here: spares parsing it again */
  int limit;     /* current in-flight limit, 1..max_inflight */
  int min_limit; /* lowest limit reached, for the summary */
  int inflight;
  struct link queue; /* FIFO of REQ_QUEUED requests */
  size_t queued;
  double cooldown_until_ms; /* no shrink nor growth before this */
  int credit;               /* successes since the last change */
  uint64_t requests;
  struct history history[HISTORY_MAX];
  size_t nhistory;
  uint64_t history_dropped;
};

/* A request, recycled through assay_http.idle: the easy handle, the timer
 * and the buffers outlive it; everything else is reset by req_get. */
struct http_req {
  struct link link; /* endpoint queue, active, deferred or idle list */
  struct assay_http *h;
  struct endpoint *ep;
  struct shard *shard; /* while REQ_ACTIVE */
  uint64_t call;
  int state;
  assay_http_cb cb;
  void *arg;
  CURL *easy;
  int configured; /* easy has the options every request shares */
  /* Kept from one request to the next while they stay the same: curl's
   * header list (the request's headers, then ours), and the URL parsed
   * once (CURLOPT_CURLU), which spares curl parsing and printing it again
   * for every transfer. */
  struct curl_slist *headers;
  size_t nheaders;  /* of the request's own, at the head of headers */
  int headers_body; /* headers were made for a request with a body */
  CURLU *uh;
  char *uh_url; /* what uh holds, or NULL */
  /* The request body sent (CURLOPT_POSTFIELDS, not copied by curl). */
  char *out;
  size_t out_cap;
  struct assay_deadline dl; /* the request's deadline */
  long timeout_ms;
  int permanent; /* a network failure that trying again cannot mend */
  double start_ms;
  size_t body_out;
  /* The response body, NUL-terminated, capped at max_response_bytes. */
  char *body;
  size_t body_len, body_cap;
  int too_large;
  /* Headers of the last response as "name\0value\0" pairs. */
  char *hdrs;
  size_t hdrs_len, hdrs_cap;
  /* A deferred completion's outcome. */
  int cause;
  char *error;
  char errbuf[CURL_ERROR_SIZE];
};

/* A socket curl asked us to watch, found by its number in
 * assay_http.socks. A socket curl opened through on_open_socket is closed
 * through on_close_socket, so its context stays between transfers until
 * then; any other socket's context goes when curl stops watching it,
 * because nothing would tell us when it is closed.
 *
 * Between transfers a kept socket is parked: curl no longer watches it,
 * but its poll stays registered (unreferenced, so that it keeps no loop
 * alive) with the events of the last transfer. The next transfer on the
 * connection nearly always asks for the same events, which then costs no
 * system call at all; stopping and restarting the poll would cost three
 * epoll_ctl calls per request. An idle keep-alive socket only becomes
 * readable when the server closes it or misbehaves: on_poll then stops
 * watching it, and curl finds out when it next checks the connection. */
struct sock_ctx {
  struct assay_http *h;
  uv_poll_t poll;
  curl_socket_t fd;
  int ours;            /* opened by on_open_socket */
  int parked;          /* curl does not watch it now */
  int events;          /* the poll's events while started, else 0 */
  int wanted;          /* the events curl asked for last */
  int fresh;           /* ours, and curl has not asked for any yet */
  struct sock_ctx *probe_next; /* on its shard's probe list (see probe) */
  int probing;
  struct shard *shard; /* whose multi handle watches it; NULL until then */
};

/* One multi handle with its connections, its timer and the transfers in
 * it. A connection stays in the shard that opened it, and so does its
 * socket. Freed in its timer's close callback. */
struct shard {
  struct assay_http *h;
  CURLM *multi;
  uv_timer_t timer; /* curl's one timeout for this multi handle */
  int active;       /* transfers in it, at most SHARD_TRANSFERS */
  int kicked;       /* curl ran outside a callback: messages may wait */
  struct sock_ctx *probe; /* new connections to look at again (see probe) */
};

struct assay_http {
  uv_loop_t *loop;
  struct shard **shards; /* created as the in-flight count needs them */
  int nshards;
  struct shard *freed; /* where a transfer just ended, for the next start */
  uv_timer_t rps_timer;   /* releases queued requests as tokens arrive */
  uv_timer_t defer_timer; /* runs deferred callbacks on a later turn */
  size_t max_response_bytes;
  int max_inflight;
  double rps, tokens, tokens_at_ms, tokens_max;
  double start_ms;
  struct link endpoints, active, deferred;
  struct link idle;        /* finished requests kept for reuse */
  int nidle;               /* at most max_inflight */
  struct sock_ctx **socks; /* by socket number; NULL where none */
  size_t nsocks;
  int closing, torn_down;
  int draining; /* no more new work: keep only what in-flight work needs */
  /* Trusted CAs from SSL_CERT_FILE and SSL_CERT_DIR, as OpenSSL and the
   * Python SDKs take them; NULL for libcurl's own. */
  char *ca_file, *ca_dir;
  int busy;          /* nesting of our uv callbacks on the stack */
  long handles_open; /* uv handles not yet through their close callback */
  struct assay_deadlines deadlines; /* the active requests' */
  /* Statistics. */
  uint64_t requests, started, completed, connections, bytes_in, bytes_out;
  uint64_t by_class[6]; /* [status / 100], 0 for anything else */
  uint64_t status_429;
  uint64_t http2; /* responses that came over HTTP/2 */
  uint64_t failed[5]; /* by enum assay_http_cause */
  uint64_t retryable_429, retryable_5xx, retryable_timeout, retryable_network;
  long max_active, active_now, max_queued, queued_now;
};

static void pump(struct assay_http *h);
static void teardown(struct assay_http *h);
static long retry_after_ms_of(const char *value);

/* ---- handle bookkeeping ------------------------------------------------ */

static void service_free(struct assay_http *h) {
  while (!list_empty(&h->endpoints)) {
    struct endpoint *ep =
        assay__container_of(h->endpoints.next, struct endpoint, link);
    list_remove(&ep->link);
    free(ep->key);
    free(ep->url);
    free(ep);
  }
  free(h->ca_file);
  free(h->ca_dir);
  free(h);
}

static void handle_unref(struct assay_http *h) {
  if (--h->handles_open == 0 && h->torn_down)
    service_free(h);
}

static void on_service_handle_closed(uv_handle_t *handle) {
  handle_unref(handle->data);
}

/* Every entry from the loop into the service goes through busy_enter and
 * busy_exit, so that a close requested from a user callback tears down
 * only once nothing of ours is left on the stack. */
static void busy_enter(struct assay_http *h) {
  h->busy++;
}

static void busy_exit(struct assay_http *h) {
  if (--h->busy == 0 && h->closing && !h->torn_down)
    teardown(h);
}

/* ---- curl <-> libuv ----------------------------------------------------- */

static void on_sock_closed(uv_handle_t *handle) {
  struct sock_ctx *ctx = handle->data;
  struct assay_http *h = ctx->h;
  free(ctx);
  handle_unref(h);
}

static struct sock_ctx *sock_find(const struct assay_http *h,
                                  curl_socket_t fd) {
  return fd >= 0 && (size_t)fd < h->nsocks ? h->socks[fd] : NULL;
}

/* Closes the context of socket fd, if any. It must run while fd still
 * names that socket: uv_close takes the number out of epoll, and a number
 * already reused by another watched descriptor would lose its watch. */
static void sock_forget(struct assay_http *h, curl_socket_t fd) {
  struct sock_ctx *ctx = sock_find(h, fd);
  if (ctx == NULL)
    return;
  h->socks[fd] = NULL;
  uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

/* A context with an initialised poll for fd, in the table; NULL when libuv
 * refuses the socket. */
static struct sock_ctx *sock_new(struct assay_http *h, curl_socket_t fd,
                                 int ours) {
  if ((size_t)fd >= h->nsocks) {
    size_t n = h->nsocks ? h->nsocks : 64;
    while (n <= (size_t)fd)
      n *= 2;
    h->socks = assay__xrealloc(h->socks, n * sizeof *h->socks);
    memset(h->socks + h->nsocks, 0, (n - h->nsocks) * sizeof *h->socks);
    h->nsocks = n;
  }
  struct sock_ctx *ctx = assay__xcalloc(1, sizeof *ctx);
  ctx->h = h;
  ctx->fd = fd;
  ctx->ours = ours;
  if (uv_poll_init_socket(h->loop, &ctx->poll, fd) != 0) {
    free(ctx);
    return NULL;
  }
  ctx->poll.data = ctx;
  h->handles_open++;
  h->socks[fd] = ctx;
  return ctx;
}

/* curl's socket for a new connection (CURLOPT_OPENSOCKETFUNCTION): made
 * here, as curl would, so that its close is reported to on_close_socket.
 * Close-on-exec keeps it out of the processes plugins spawn. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr) {
  struct assay_http *h = clientp;
  (void)purpose;
  int type = addr->socktype;
#ifdef SOCK_CLOEXEC
  type |= SOCK_CLOEXEC;
#endif
  curl_socket_t fd = socket(addr->family, type, addr->protocol);
  if (fd == CURL_SOCKET_BAD || h->torn_down)
    return fd;
  /* A context left on this number belongs to a socket that is gone; the
   * number is not watched yet, so dropping it now is safe. */
  sock_forget(h, fd);
  struct sock_ctx *ctx = sock_new(h, fd, 1);
  if (ctx == NULL) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  ctx->fresh = 1;
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl keeps it with the connection, so it
 * runs whichever handle (or the multi handle's cleanup) closes it. */
static int on_close_socket(void *clientp, curl_socket_t fd) {
  sock_forget(clientp, fd);
  return close(fd);
}

static void process_done(struct shard *shard);
static void on_poll(uv_poll_t *poll, int status, int events);

/*
 * New connections, looked at again right after the curl call that started
 * them. libcurl 7.x starts a connect and waits for the socket to turn
 * writable; on a near server (loopback, a LAN) the handshake is already
 * done when connect() returns, but the request then waited for a poll
 * turn, which comes after everything else the loop has to do first (at
 * C=1000, the other 999 connects). Asked again now (with no event: curl
 * checks the socket itself), curl sends the request at once; a connect
 * still under way is watched as before. It also spares the watch for
 * writing and its removal: three epoll_ctl calls per connection.
 */
static void probe(struct shard *shard) {
  struct assay_http *h = shard->h;
  while (shard->probe != NULL && !h->closing) {
    struct sock_ctx *ctx = shard->probe;
    shard->probe = ctx->probe_next;
    ctx->probe_next = NULL;
    ctx->probing = 0;
    curl_socket_t fd = ctx->fd;
    int running;
    if (!ctx->parked && ctx->wanted == UV_WRITABLE)
      curl_multi_socket_action(shard->multi, fd, 0, &running);
    /* curl may have closed it meanwhile (its context is then closing). */
    if (sock_find(h, fd) != ctx || ctx->parked || ctx->wanted == ctx->events)
      continue;
    if (uv_poll_start(&ctx->poll, ctx->wanted, on_poll) == 0)
      ctx->events = ctx->wanted;
  }
}

static void on_poll(uv_poll_t *poll, int status, int events) {
  struct sock_ctx *ctx = poll->data;
  struct assay_http *h = ctx->h;
  int flags = 0, running;
  if (ctx->parked) {
    /* Nothing for curl: it is not using the socket. */
    uv_poll_stop(poll);
    ctx->events = 0;
    return;
  }
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  busy_enter(h);
  struct shard *shard = ctx->shard; /* ctx may close in the call */
  curl_multi_socket_action(shard->multi, ctx->fd, flags, &running);
  probe(shard);
  process_done(shard);
  busy_exit(h);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  struct shard *shard = userp;
  struct assay_http *h = shard->h;
  struct sock_ctx *ctx = sock_find(h, fd);
  (void)easy;
  (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    /* curl says so after every transfer, also when the connection stays
     * open for the next one: park our own sockets until they are closed. */
    if (ctx != NULL && ctx->ours) {
      if (!ctx->parked)
        uv_unref((uv_handle_t *)&ctx->poll);
      ctx->parked = 1;
    } else {
      sock_forget(h, fd);
    }
    return 0;
  }
  if (ctx == NULL && (ctx = sock_new(h, fd, 0)) == NULL)
    return -1;
  ctx->shard = shard;
  if (ctx->parked) {
    uv_ref((uv_handle_t *)&ctx->poll);
    ctx->parked = 0;
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  ctx->wanted = events;
  if (ctx->fresh) {
    ctx->fresh = 0;
    if (events == UV_WRITABLE) {
      /* A connect just started: look again once curl returns (probe). */
      ctx->probing = 1;
      ctx->probe_next = shard->probe;
      shard->probe = ctx;
      return 0;
    }
  }
  if (ctx->probing || events == ctx->events)
    return 0;
  if (uv_poll_start(&ctx->poll, events, on_poll) != 0)
    return -1;
  ctx->events = events;
  return 0;
}

static void on_curl_timer(uv_timer_t *timer) {
  struct shard *shard = timer->data;
  struct assay_http *h = shard->h;
  int running;
  busy_enter(h);
  curl_multi_socket_action(shard->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  probe(shard);
  process_done(shard);
  busy_exit(h);
}

/* curl asks each multi handle's one timeout; a zero one fires on the next
 * loop turn, never from inside this callback (curl forbids re-entering
 * socket_action). */
static int on_curl_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  struct shard *shard = userp;
  (void)multi;
  if (timeout_ms < 0)
    uv_timer_stop(&shard->timer);
  else
    uv_timer_start(&shard->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

static void on_shard_closed(uv_handle_t *handle) {
  struct shard *shard = handle->data;
  struct assay_http *h = shard->h;
  free(shard);
  handle_unref(h);
}

/* A new multi handle on the loop, or NULL when curl has no memory. */
static struct shard *shard_new(struct assay_http *h) {
  CURLM *multi = curl_multi_init();
  if (multi == NULL)
    return NULL;
  struct shard *shard = assay__xcalloc(1, sizeof *shard);
  shard->h = h;
  shard->multi = multi;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, shard);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_set);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, shard);
  /* Keep every connection the shard's transfers may need warm for reuse;
   * curl's default cache (4 x transfers) would close and reopen them under
   * churn. */
  long keep =
      h->max_inflight < SHARD_TRANSFERS ? h->max_inflight : SHARD_TRANSFERS;
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, keep > 16 ? keep : 16L);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  uv_timer_init(h->loop, &shard->timer);
  shard->timer.data = shard;
  h->handles_open++;
  h->shards =
      assay__xrealloc(h->shards, (size_t)(h->nshards + 1) * sizeof *h->shards);
  h->shards[h->nshards++] = shard;
  return shard;
}

/* A shard with room for one more transfer, made when all are full. A
 * transfer that ends leaves its connection idle in its own shard, so the
 * next request to start goes there: the one a callback starts as another
 * ends takes that connection. Else the first shard with room: filling
 * shards in order keeps each one's idle connections for the next transfer
 * it takes, and a wave started at once finds them where the last wave
 * left them. (Once the service drains, a shard closes connections as its
 * transfers end: a request sent to another shard with room would find
 * none idle there and connect again while its own connection closes.) */
static struct shard *shard_pick(struct assay_http *h) {
  struct shard *freed = h->freed;
  h->freed = NULL;
  if (freed != NULL && freed->active < SHARD_TRANSFERS)
    return freed;
  for (int i = 0; i < h->nshards; i++)
    if (h->shards[i]->active < SHARD_TRANSFERS)
      return h->shards[i];
  return shard_new(h);
}

/* Once the service drains, a shard keeps no more connections than it has
 * transfers, and requests waiting in the queues (--rps, a limit shrunk by
 * 429s) will start: curl closes the oldest idle one each time a transfer
 * returns its connection to a full cache, so connections that no request
 * will use again close while the last ones are still answered, not all at
 * the end (1,000 of them took 12 ms at exit). One idle connection stays
 * per shard for a request a callback starts right away. */
static void shard_trim(struct shard *shard) {
  struct assay_http *h = shard->h;
  if (h->draining) {
    long keep = (long)shard->active + h->queued_now;
    curl_multi_setopt(shard->multi, CURLMOPT_MAXCONNECTS, keep > 0 ? keep : 1L);
  }
}

void assay_http_drain(struct assay_http *h) {
  if (h == NULL || h->draining || h->closing)
    return;
  h->draining = 1;
  for (int i = 0; i < h->nshards; i++)
    shard_trim(h->shards[i]);
}

/* ---- response capture -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
  struct http_req *req = userp;
  size_t n = size * nmemb;
  size_t cap = req->h->max_response_bytes;
  if (n > cap - req->body_len) {
    /* Returning short makes curl end the transfer with a write error,
     * which transfer_done reports as TOO_LARGE. */
    req->too_large = 1;
    return 0;
  }
  if (req->body_len + n + 1 > req->body_cap) {
    size_t want = req->body_cap ? req->body_cap : 1024;
    while (want < req->body_len + n + 1)
      want *= 2;
    if (want > cap + 1)
      want = cap + 1;
    req->body = assay__xrealloc(req->body, want);
    req->body_cap = want;
  }
  memcpy(req->body + req->body_len, data, n);
  req->body_len += n;
  req->body[req->body_len] = '\0';
  return n;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp) {
  struct http_req *req = userp;
  size_t n = size * nmemb;
  /* A status line starts a new response (1xx, a proxy's CONNECT answer):
   * only the last response's headers are kept. */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    req->hdrs_len = 0;
    return n;
  }
  /* Folded continuation lines are obsolete (RFC 9112) and ignored. */
  if (n == 0 || data[0] == ' ' || data[0] == '\t')
    return n;
  const char *colon = memchr(data, ':', n);
  if (colon == NULL)
    return n;
  const char *name = data, *name_end = colon;
  while (name_end > name && is_space(name_end[-1]))
    name_end--;
  const char *value = colon + 1, *value_end = data + n;
  while (value < value_end && is_space(*value))
    value++;
  while (value_end > value && is_space(value_end[-1]))
    value_end--;
  size_t nl = (size_t)(name_end - name), vl = (size_t)(value_end - value);
  size_t need = nl + 1 + vl + 1;
  if (nl == 0 || need > HEADER_BYTES_MAX - req->hdrs_len)
    return n;
  if (req->hdrs_len + need > req->hdrs_cap) {
    size_t want = req->hdrs_cap ? req->hdrs_cap : 1024;
    while (want < req->hdrs_len + need)
      want *= 2;
    req->hdrs = assay__xrealloc(req->hdrs, want);
    req->hdrs_cap = want;
  }
  char *p = req->hdrs + req->hdrs_len;
  memcpy(p, name, nl);
  p[nl] = '\0';
  memcpy(p + nl + 1, value, vl);
  p[nl + 1 + vl] = '\0';
  req->hdrs_len += need;
  return n;
}

const char *assay_http_header(const struct assay_http_response *res,
                              const char *name) {
  if (res == NULL || res->host_private == NULL || name == NULL)
    return NULL;
  const struct http_req *req = res->host_private;
  size_t off = 0;
  while (off < req->hdrs_len) {
    const char *n = req->hdrs + off;
    const char *v = n + strlen(n) + 1;
    if (strcasecmp(n, name) == 0)
      return v;
    off = (size_t)(v + strlen(v) + 1 - req->hdrs);
  }
  return NULL;
}

/* ---- adaptive concurrency ---------------------------------------------- */

static void history_add(struct assay_http *h, struct endpoint *ep,
                        const char *why) {
  if (ep->limit < ep->min_limit)
    ep->min_limit = ep->limit;
  if (ep->nhistory == HISTORY_MAX) {
    ep->history_dropped++;
    return;
  }
  struct history *e = &ep->history[ep->nhistory++];
  e->t_ms = assay__now_ms() - h->start_ms;
  e->limit = ep->limit;
  e->why = why;
}

/* A 429 halves the limit, once per cooldown window: the requests that were
 * already in flight when the server started refusing answer 429 too, and
 * they describe the same overload. */
static void adapt_429(struct assay_http *h, struct endpoint *ep,
                      long retry_after_ms) {
  double now = assay__now_ms();
  if (now < ep->cooldown_until_ms)
    return;
  double cooldown = COOLDOWN_MIN_MS;
  if (retry_after_ms > cooldown)
    cooldown = (double)retry_after_ms;
  ep->cooldown_until_ms = now + cooldown;
  ep->credit = 0;
  int next = ep->limit / 2 > 1 ? ep->limit / 2 : 1;
  if (next != ep->limit) {
    ep->limit = next;
    history_add(h, ep, "429");
  }
}

/* Additive increase: about one more slot per `limit` successes, none while
 * cooling down, never above the ceiling. */
static void adapt_success(struct assay_http *h, struct endpoint *ep) {
  if (ep->limit >= h->max_inflight)
    return;
  if (assay__now_ms() < ep->cooldown_until_ms)
    return;
  if (++ep->credit >= ep->limit) {
    ep->credit = 0;
    ep->limit++;
    history_add(h, ep, "recovered");
  }
}

/* ---- completion -------------------------------------------------------- */

/* Frees req with everything it holds. */
static void req_destroy(struct http_req *req) {
  /* A reset handle would install and restore a SIGPIPE handler around its
   * cleanup. */
  curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_cleanup(req->easy);
  curl_slist_free_all(req->headers);
  curl_url_cleanup(req->uh);
  free(req->uh_url);
  free(req->out);
  free(req->body);
  free(req->hdrs);
  free(req->error);
  req->easy = NULL;
  req->headers = NULL;
  req->uh = NULL;
  req->uh_url = req->out = NULL;
  req->body = req->hdrs = req->error = NULL;
  free(req);
}

/* Ends a request that is off every list with its timer stopped: kept idle
 * for the next request while the service runs and fewer than max_inflight
 * are idle, else freed. The easy handle keeps its options: easy_setup sets
 * every one that differs between requests (resetting and setting all of
 * them again cost about 6,000 instructions per request). Connections live
 * in the multi handle either way. */
static void req_release(struct http_req *req) {
  struct assay_http *h = req->h;
  if (h->closing ||
      h->nidle >= (h->draining ? DRAIN_IDLE : h->max_inflight)) {
    req_destroy(req);
    return;
  }
  if (req->out_cap > KEEP_BUF_MAX) {
    free(req->out);
    req->out = NULL;
    req->out_cap = 0;
  }
  free(req->error);
  req->error = NULL;
  req->permanent = 0;
  if (req->body_cap > KEEP_BUF_MAX) {
    free(req->body);
    req->body = NULL;
    req->body_cap = 0;
  }
  if (req->hdrs_cap > KEEP_BUF_MAX) {
    free(req->hdrs);
    req->hdrs = NULL;
    req->hdrs_cap = 0;
  }
  list_push(&h->idle, &req->link);
  h->nidle++;
}

/* An idle request reset for a new one, or a new request; NULL when curl
 * has no memory for a handle. */
static struct http_req *req_get(struct assay_http *h) {
  struct http_req *req;
  if (!list_empty(&h->idle)) {
    req = assay__container_of(h->idle.next, struct http_req, link);
    list_remove(&req->link);
    h->nidle--;
    req->ep = NULL;
    req->call = 0;
    req->state = 0;
    req->cb = NULL;
    req->arg = NULL;
    req->timeout_ms = 0;
    req->start_ms = 0;
    req->body_out = 0;
    req->body_len = 0;
    if (req->body != NULL)
      req->body[0] = '\0'; /* an empty response reads "" */
    req->too_large = 0;
    req->hdrs_len = 0;
    req->cause = 0;
    req->errbuf[0] = '\0';
    return req;
  }
  req = assay__xcalloc(1, sizeof *req);
  req->h = h;
  link_init(&req->link);
  req->easy = curl_easy_init();
  if (req->easy == NULL) {
    free(req);
    return NULL;
  }
  return req;
}

/* Runs the callback once with the outcome and releases the request. error
 * is taken. req must already be off every list. */
static void req_finish(struct http_req *req, int cause, long status,
                       char *error) {
  struct assay_http *h = req->h;
  assay_deadline_remove(&h->deadlines, &req->dl);
  h->completed++;
  if (cause == ASSAY_HTTP_OK) {
    long cls = status / 100;
    h->by_class[cls >= 1 && cls <= 5 ? cls : 0]++;
    if (status == 429)
      h->status_429++, h->retryable_429++;
    else if (cls == 5)
      h->retryable_5xx++;
    h->bytes_in += req->body_len;
  } else {
    h->failed[cause]++;
    if (cause == ASSAY_HTTP_TIMEOUT)
      h->retryable_timeout++;
    else if (cause == ASSAY_HTTP_NETWORK)
      h->retryable_network++;
  }
  struct assay_http_response res = {
      .cause = cause,
      .status = cause == ASSAY_HTTP_OK ? status : 0,
      .body = cause == ASSAY_HTTP_OK && req->body ? req->body : "",
      .body_len = cause == ASSAY_HTTP_OK ? req->body_len : 0,
      .error = cause == ASSAY_HTTP_OK ? NULL : (error ? error : "failed"),
      .elapsed_ms = assay__now_ms() - req->start_ms,
      .host_private = req,
  };
  req->error = error;
  req->cb(&res, req->arg);
  req_release(req);
}

/* Takes an active request out of curl, keeping its connection count. */
static void req_detach(struct http_req *req) {
  struct assay_http *h = req->h;
  long conns = 0;
  if (curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK)
    h->connections += (uint64_t)conns;
  curl_multi_remove_handle(req->shard->multi, req->easy);
  req->shard->active--;
  shard_trim(req->shard);
  h->freed = req->shard;
  req->shard = NULL;
  list_remove(&req->link);
  req->ep->inflight--;
  h->active_now--;
}

static void transfer_done(struct http_req *req, CURLcode rc) {
  struct assay_http *h = req->h;
  req_detach(req);
  if (rc == CURLE_OK) {
    long status = 0, version = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    if (assay__curl_has_http2() &&
        curl_easy_getinfo(req->easy, CURLINFO_HTTP_VERSION, &version) ==
            CURLE_OK &&
        version == CURL_HTTP_VERSION_2_0)
      h->http2++;
    if (status == 429) {
      struct assay_http_response probe = {.host_private = req};
      adapt_429(h, req->ep,
                retry_after_ms_of(assay_http_header(&probe, "Retry-After")));
    } else if (status >= 200 && status < 300) {
      adapt_success(h, req->ep);
    }
    req_finish(req, ASSAY_HTTP_OK, status, NULL);
  } else if (req->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    req_finish(req, ASSAY_HTTP_TOO_LARGE, 0,
               assay__format("response body over the %zu-byte limit "
                             "(--max-response-bytes)",
                             h->max_response_bytes));
  } else {
    const char *why = req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc);
    /* A certificate that does not verify, or a URL curl cannot use, fails
     * the same way every time: not worth a retry. */
    req->permanent =
        rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
        rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_UNSUPPORTED_PROTOCOL ||
        rc == CURLE_URL_MALFORMAT;
    if (rc == CURLE_OPERATION_TIMEDOUT)
      req_finish(req, ASSAY_HTTP_TIMEOUT, 0,
                 assay__format("timed out: %s", why));
    else
      req_finish(req, ASSAY_HTTP_NETWORK, 0,
                 assay__format("network error on '%s': %s%s", req->ep->key, why,
                               /* most often an https:// URL for a server
                                * that speaks plain HTTP (a local one) */
                               rc == CURLE_SSL_CONNECT_ERROR
                                   ? " (the TLS handshake failed: if the "
                                     "server speaks plain HTTP, use http://)"
                                   : ""));
  }
  pump(h);
}

static void process_done(struct shard *shard) {
  struct assay_http *h = shard->h;
  CURLMsg *msg;
  int left;
  /* A callback may close the service; then stop: close has already
   * finished every request. */
  while (!h->closing && (msg = curl_multi_info_read(shard->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode rc = msg->data.result;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    transfer_done((struct http_req *)priv, rc);
  }
}

static void on_defer(uv_timer_t *timer) {
  struct assay_http *h = timer->data;
  busy_enter(h);
  while (!h->closing && !list_empty(&h->deferred)) {
    struct http_req *req =
        assay__container_of(h->deferred.next, struct http_req, link);
    list_remove(&req->link);
    char *error = req->error;
    req->error = NULL;
    req_finish(req, req->cause, 0, error);
  }
  for (int i = 0; i < h->nshards && !h->closing; i++) {
    struct shard *shard = h->shards[i];
    if (shard->kicked) {
      shard->kicked = 0;
      process_done(shard);
    }
  }
  busy_exit(h);
}

/* Completes req on a later loop turn, so that no callback runs inside the
 * call that caused it. error is taken. */
static void req_defer(struct http_req *req, int cause, char *error) {
  struct assay_http *h = req->h;
  req->state = REQ_DEFERRED;
  req->cause = cause;
  free(req->error);
  req->error = error;
  list_push(&h->deferred, &req->link);
  uv_timer_start(&h->defer_timer, on_defer, 0, 0);
}

static void req_timed_out(struct http_req *req) {
  struct assay_http *h = req->h;
  if (req->state == REQ_QUEUED) {
    list_remove(&req->link);
    req->ep->queued--;
    h->queued_now--;
    req_finish(req, ASSAY_HTTP_TIMEOUT, 0,
               assay__format("timed out after %ld ms (queued behind the "
                             "in-flight limit of %d for '%s')",
                             req->timeout_ms, req->ep->limit, req->ep->key));
  } else if (req->state == REQ_ACTIVE) {
    req_detach(req);
    req_finish(req, ASSAY_HTTP_TIMEOUT, 0,
               assay__format("timed out after %ld ms", req->timeout_ms));
    pump(h);
  }
}

/* Requests whose deadline passed (see deadline.h). */
static void on_deadlines(struct assay_deadlines *q, uint64_t now) {
  struct assay_http *h = assay__container_of(q, struct assay_http, deadlines);
  busy_enter(h);
  struct assay_deadline *d;
  while (!h->closing && (d = assay_deadline_due(q, now)) != NULL)
    req_timed_out(assay__container_of(d, struct http_req, dl));
  busy_exit(h);
}

/* ---- admission --------------------------------------------------------- */

/* Lets curl start what was just added to shard now, rather than from its
 * timer on the next loop turn: the request leaves while the caller is
 * still busy with others. Transfers that this ends are collected from the
 * defer timer, so that no callback runs inside the caller. */
static void shard_kick(struct shard *shard) {
  struct assay_http *h = shard->h;
  int running;
  curl_multi_socket_action(shard->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  probe(shard);
  if (!shard->kicked) {
    shard->kicked = 1;
    uv_timer_start(&h->defer_timer, on_defer, 0, 0);
  }
}

static void req_start(struct http_req *req) {
  struct assay_http *h = req->h;
  req->state = REQ_ACTIVE;
  req->ep->inflight++;
  list_push(&h->active, &req->link);
  h->started++;
  if (++h->active_now > h->max_active)
    h->max_active = h->active_now;
  struct shard *shard = shard_pick(h);
  CURLMcode mc = shard ? curl_multi_add_handle(shard->multi, req->easy)
                       : CURLM_OUT_OF_MEMORY;
  if (mc != CURLM_OK) {
    list_remove(&req->link);
    req->ep->inflight--;
    h->active_now--;
    req_defer(req, ASSAY_HTTP_NETWORK,
              assay__format("cannot start the request to '%s': %s",
                            req->ep->key, curl_multi_strerror(mc)));
    return;
  }
  req->shard = shard;
  shard->active++;
  shard_trim(shard);
  shard_kick(shard);
}

static void on_rps_timer(uv_timer_t *timer) {
  struct assay_http *h = timer->data;
  busy_enter(h);
  pump(h);
  busy_exit(h);
}

static void tokens_refill(struct assay_http *h) {
  double now = assay__now_ms();
  h->tokens += (now - h->tokens_at_ms) / 1000.0 * h->rps;
  if (h->tokens > h->tokens_max)
    h->tokens = h->tokens_max;
  h->tokens_at_ms = now;
}

/* Starts queued requests while their endpoint has a free slot and the
 * bucket a token; endpoints take turns, one request each per round, so
 * that a busy endpoint does not starve the others of tokens. */
static void pump(struct assay_http *h) {
  if (h->closing)
    return;
  if (h->rps > 0)
    tokens_refill(h);
  int progress = 1;
  while (progress) {
    progress = 0;
    for (struct link *l = h->endpoints.next; l != &h->endpoints; l = l->next) {
      struct endpoint *ep = assay__container_of(l, struct endpoint, link);
      if (ep->queued == 0 || ep->inflight >= ep->limit)
        continue;
      if (h->rps > 0) {
        if (h->tokens < 1.0) {
          double wait = (1.0 - h->tokens) / h->rps * 1000.0;
          uv_timer_start(&h->rps_timer, on_rps_timer,
                         (uint64_t)(wait > 1.0 ? wait + 0.999 : 1.0), 0);
          return;
        }
        h->tokens -= 1.0;
      }
      struct http_req *req =
          assay__container_of(ep->queue.next, struct http_req, link);
      list_remove(&req->link);
      ep->queued--;
      h->queued_now--;
      req_start(req);
      progress = 1;
    }
  }
}

/* ---- requests ---------------------------------------------------------- */

static struct endpoint *endpoint_get(struct assay_http *h, const char *key) {
  for (struct link *l = h->endpoints.next; l != &h->endpoints; l = l->next) {
    struct endpoint *ep = assay__container_of(l, struct endpoint, link);
    if (strcmp(ep->key, key) == 0)
      return ep;
  }
  struct endpoint *ep = assay__xcalloc(1, sizeof *ep);
  ep->key = assay__xstrdup(key);
  ep->limit = ep->min_limit = h->max_inflight;
  link_init(&ep->queue);
  list_push(&h->endpoints, &ep->link);
  return ep;
}

/* The endpoint url was last seen going to, or NULL. The key is a function
 * of the URL string, so an exact match spares parsing it again. */
static struct endpoint *endpoint_of_url(struct assay_http *h, const char *url) {
  for (struct link *l = h->endpoints.next; l != &h->endpoints; l = l->next) {
    struct endpoint *ep = assay__container_of(l, struct endpoint, link);
    if (ep->url != NULL && strcmp(ep->url, url) == 0)
      return ep;
  }
  return NULL;
}

/* The endpoint key of url: scheme://host:port/path, without user info or
 * query (where some APIs put keys), so it is safe to show. */
static int endpoint_key(const char *url, char **key, char **errmsg) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
  int rc = 0;
  if (u == NULL)
    return assay__fail(errmsg, ASSAY_ENOMEM, "cannot parse a URL: no memory");
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK) {
    rc = assay__fail(errmsg, ASSAY_EINVAL,
                     "invalid URL '%.200s': %s (give an absolute http:// or "
                     "https:// URL)",
                     url, curl_url_strerror(uc));
    goto out;
  }
  if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    rc = assay__fail(errmsg, ASSAY_EINVAL,
                     "unsupported URL scheme '%s' in '%.200s': only http "
                     "and https are served",
                     scheme ? scheme : "", url);
    goto out;
  }
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    rc =
        assay__fail(errmsg, ASSAY_EINVAL, "invalid URL '%.200s': no host", url);
    goto out;
  }
  *key = assay__format("%s://%s:%s%s", scheme, host, port, path);
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(path);
  curl_url_cleanup(u);
  return rc;
}

static int header_named(const char *header, const char *name) {
  size_t n = strlen(name);
  return strncasecmp(header, name, n) == 0 && header[n] == ':';
}

/* Whether req->headers were made from the same headers as r's. */
static int headers_match(const struct http_req *req,
                         const struct assay_http_request *r) {
  if (req->headers == NULL || req->headers_body != (r->body != NULL))
    return 0;
  const struct curl_slist *l = req->headers;
  size_t n = 0;
  for (const char *const *p = r->headers; p != NULL && *p != NULL; p++) {
    if (n++ == req->nheaders || strcmp(l->data, *p) != 0)
      return 0;
    l = l->next;
  }
  return n == req->nheaders;
}

/* Makes req->headers from r's headers and ours; returns 0 or a negative
 * code, with req->headers NULL. */
static int headers_build(struct http_req *req,
                         const struct assay_http_request *r, char **errmsg) {
  if (req->headers != NULL) {
    curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(req->headers);
    req->headers = NULL;
  }
  struct curl_slist *list = NULL, *next;
  size_t n = 0;
  int has_type = 0, has_expect = 0;
  for (const char *const *p = r->headers; p != NULL && *p != NULL; p++) {
    const char *colon = strchr(*p, ':');
    if (colon == NULL || colon == *p || strpbrk(*p, "\r\n") != NULL) {
      curl_slist_free_all(list);
      return assay__fail(errmsg, ASSAY_EINVAL,
                         "invalid request header '%.60s': give \"Name: "
                         "value\" on one line",
                         *p);
    }
    has_type |= header_named(*p, "content-type");
    has_expect |= header_named(*p, "expect");
    if ((next = curl_slist_append(list, *p)) == NULL)
      goto oom;
    list = next;
    n++;
  }
  /* LLM APIs take JSON; curl would otherwise announce a form. */
  if (r->body != NULL && !has_type) {
    if ((next = curl_slist_append(list, "Content-Type: application/json")) ==
        NULL)
      goto oom;
    list = next;
  }
  /* curl waits up to a second for "100 Continue" on large bodies, which
   * many API servers never send. */
  if (!has_expect) {
    if ((next = curl_slist_append(list, "Expect:")) == NULL)
      goto oom;
    list = next;
  }
  req->headers = list;
  req->nheaders = n;
  req->headers_body = r->body != NULL;
  return 0;
oom:
  curl_slist_free_all(list);
  return assay__fail(errmsg, ASSAY_ENOMEM, "out of memory");
}

/* url parsed into req->uh (kept while the URL stays the same), or NULL
 * when curl cannot parse it: curl then parses CURLOPT_URL itself and says
 * what is wrong. */
static CURLU *url_handle(struct http_req *req, const char *url) {
  if (req->uh_url != NULL && strcmp(req->uh_url, url) == 0)
    return req->uh;
  free(req->uh_url);
  req->uh_url = NULL;
  if (req->uh == NULL && (req->uh = curl_url()) == NULL)
    return NULL;
  /* The flags curl's own parse of CURLOPT_URL uses. */
  if (curl_url_set(req->uh, CURLUPART_URL, url,
                   CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return NULL;
  req->uh_url = assay__xstrdup(url);
  return req->uh;
}

/* Configures req->easy for req; returns 0 or a negative code. */
static int easy_setup(struct http_req *req, const struct assay_http_request *r,
                      char **errmsg) {
  struct assay_http *h = req->h;
  CURL *e = req->easy;
  if (!headers_match(req, r)) {
    int rc = headers_build(req, r, errmsg);
    if (rc != 0)
      return rc;
  }
  CURLU *uh = url_handle(req, r->url);

  const char *method = r->method ? r->method : r->body ? "POST" : "GET";
  int is_https = strncasecmp(r->url, "https:", 6) == 0;
  CURLcode c = CURLE_OK;
#define SET(opt, val)                                                          \
  do {                                                                         \
    if (c == CURLE_OK)                                                         \
      c = curl_easy_setopt(e, opt, val);                                       \
  } while (0)
  if (!req->configured) {
    /* What every request of the service shares, once per handle. */
    SET(CURLOPT_PRIVATE, req);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* Without nghttp2, asking for HTTP/2 over TLS fails every request with
     * "Unsupported protocol". */
    if (assay__curl_has_http2())
      SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file != NULL)
      SET(CURLOPT_CAINFO, h->ca_file);
    if (h->ca_dir != NULL)
      SET(CURLOPT_CAPATH, h->ca_dir);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_USERAGENT, USER_AGENT);
    SET(CURLOPT_ERRORBUFFER, req->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, req);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, req);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, h);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, h);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_response_bytes);
    req->configured = c == CURLE_OK;
  }
  /* Both: curl 7.x takes the string as the transfer's URL and the handle
   * for its parts; later versions print the URL from the handle. */
  SET(CURLOPT_URL, r->url);
  SET(CURLOPT_CURLU, uh);
  /* Waiting for a connection that may multiplex only pays over TLS, where
   * HTTP/2 is negotiated; over cleartext it would serialise connects. */
  SET(CURLOPT_PIPEWAIT, is_https ? 1L : 0L);
  SET(CURLOPT_HTTPHEADER, req->headers);
  /* The method and body, every one set: the handle still holds the last
   * request's. HTTPGET also stops a previous body from being sent. */
  if (r->body == NULL && strcmp(method, "POST") != 0) {
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") != 0 ? method : NULL);
  } else {
    if (r->body != NULL) {
      /* Our own copy, in a buffer kept for the next request. */
      if (r->body_len >= req->out_cap) {
        free(req->out);
        req->out_cap = r->body_len + 1 > 1024 ? r->body_len + 1 : 1024;
        req->out = assay__xmalloc(req->out_cap);
      }
      memcpy(req->out, r->body, r->body_len);
      SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
      SET(CURLOPT_POSTFIELDS, req->out);
      req->body_out = r->body_len;
    } else {
      SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
      SET(CURLOPT_POSTFIELDS, "");
    }
    SET(CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") != 0 ? method : NULL);
  }
#undef SET
  if (c != CURLE_OK)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "cannot set up the request to "
                       "'%s': %s",
                       req->ep->key, curl_easy_strerror(c));
  return 0;
}

int assay_http_request(struct assay_http *h, uint64_t call,
                       const struct assay_http_request *r, long timeout_ms,
                       assay_http_cb cb, void *arg, char **errmsg) {
  if (h == NULL || r == NULL || cb == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL, "http request: missing argument");
  if (h->closing)
    return assay__fail(errmsg, ASSAY_EINTERRUPTED,
                       "http request: the service is shutting down");
  if (r->size < offsetof(struct assay_http_request, reserved))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "http request: struct size %u is too small (set size "
                       "to sizeof(struct assay_http_request))",
                       (unsigned)r->size);
  if (r->url == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL, "http request: no URL");
  if (r->method != NULL &&
      (r->method[0] == '\0' || strpbrk(r->method, " \t\r\n") != NULL))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "http request: invalid method '%.40s'", r->method);

  struct endpoint *ep = endpoint_of_url(h, r->url);
  if (ep == NULL) {
    char *key = NULL;
    int rc = endpoint_key(r->url, &key, errmsg);
    if (rc != 0)
      return rc;
    ep = endpoint_get(h, key);
    free(key);
    free(ep->url);
    ep->url = assay__xstrdup(r->url);
  }
  struct http_req *req = req_get(h);
  if (req == NULL)
    return assay__fail(errmsg, ASSAY_ENOMEM,
                       "http request: cannot create a curl handle");
  req->call = call;
  req->cb = cb;
  req->arg = arg;
  req->ep = ep;
  int rc = easy_setup(req, r, errmsg);
  if (rc != 0) {
    req_release(req);
    return rc;
  }

  /* The tighter of the two deadlines, each ignored when not positive. */
  long t = timeout_ms;
  if (r->timeout_ms > 0 && (t <= 0 || r->timeout_ms < t))
    t = r->timeout_ms;
  req->timeout_ms = t > 0 ? t : 0;
  req->start_ms = assay__now_ms();
  if (req->timeout_ms > 0) {
    /* The loop's clock may be stale after a long callback, and it counts
     * whole milliseconds: refresh it and add one so that the deadline is
     * never shorter than asked. */
    uv_update_time(h->loop);
    assay_deadline_add(&h->deadlines, &req->dl,
                       uv_now(h->loop) + (uint64_t)req->timeout_ms + 1);
  }

  h->requests++;
  h->bytes_out += req->body_out;
  req->ep->requests++;
  req->state = REQ_QUEUED;
  list_push(&req->ep->queue, &req->link);
  req->ep->queued++;
  h->queued_now++;
  pump(h);
  if (h->queued_now > h->max_queued)
    h->max_queued = h->queued_now;
  return 0;
}

int assay_http_cancel(struct assay_http *h, uint64_t call) {
  if (h == NULL || h->closing)
    return 0;
  int n = 0;
  struct link *l = h->active.next;
  while (l != &h->active) {
    struct http_req *req = assay__container_of(l, struct http_req, link);
    l = l->next;
    if (req->call != call)
      continue;
    req_detach(req);
    req_defer(req, ASSAY_HTTP_CANCELLED,
              assay__xstrdup("cancelled: the call was abandoned"));
    n++;
  }
  for (struct link *e = h->endpoints.next; e != &h->endpoints; e = e->next) {
    struct endpoint *ep = assay__container_of(e, struct endpoint, link);
    l = ep->queue.next;
    while (l != &ep->queue) {
      struct http_req *req = assay__container_of(l, struct http_req, link);
      l = l->next;
      if (req->call != call)
        continue;
      list_remove(&req->link);
      ep->queued--;
      h->queued_now--;
      req_defer(req, ASSAY_HTTP_CANCELLED,
                assay__xstrdup("cancelled: the call was abandoned"));
      n++;
    }
  }
  if (n > 0)
    pump(h);
  return n;
}

/* ---- the service ------------------------------------------------------- */

/* Linux grows the descriptor table by doublings as sockets are opened, and
 * in a process with threads every growth waits for an RCU grace period
 * inside the socket() call that needed it: 10-15 ms each on a small VM,
 * three or four times while the first 1,000 connections open. Growing it
 * once, to its final size, costs one wait, or none before any thread
 * exists. A table that is big enough already (64 descriptors at first) is
 * left alone. */
void assay_http_reserve_fds(uv_loop_t *loop, int max_inflight) {
  struct rlimit rl;
  int base = uv_backend_fd(loop);
  /* A socket per transfer, and a few to spare for connections that close
   * and reopen. */
  long n = (long)max_inflight + 16;
  if (base < 0 || (long)base + n < 64 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  long want = (long)base + n;
  if (rl.rlim_cur != RLIM_INFINITY && want >= (long)rl.rlim_cur)
    want = (long)rl.rlim_cur - 1;
  if (want > INT_MAX)
    want = INT_MAX;
  if (want <= base)
    return;
  int fd = fcntl(base, F_DUPFD_CLOEXEC, (int)want);
  if (fd >= 0)
    close(fd);
}

int assay_http_new(struct assay_http **out, uv_loop_t *loop,
                   const struct assay_http_config *cfg, char **errmsg) {
  *out = NULL;
  if (loop == NULL || cfg == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL, "http service: missing argument");
  if (cfg->max_inflight < 1)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "http service: the concurrency must be at least 1, "
                       "not %d",
                       cfg->max_inflight);
  if (!(cfg->rps >= 0) || !isfinite(cfg->rps))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "http service: --rps must be a positive number, not "
                       "%g",
                       cfg->rps);
  int lrc = assay__curl_load(errmsg);
  if (lrc != 0)
    return lrc;

  struct assay_http *h = assay__xcalloc(1, sizeof *h);
  h->loop = loop;
  h->max_response_bytes = cfg->max_response_bytes
                              ? cfg->max_response_bytes
                              : ASSAY_DEFAULT_MAX_RESPONSE_BYTES;
  /* The cap is also a curl_off_t and a size_t sum below SIZE_MAX. */
  if (h->max_response_bytes > ((size_t)1 << 40))
    h->max_response_bytes = (size_t)1 << 40;
  h->max_inflight = cfg->max_inflight;
  h->rps = cfg->rps;
  h->tokens = 1.0;
  h->tokens_max = h->rps * RPS_BURST_S > 1.0 ? h->rps * RPS_BURST_S : 1.0;
  h->start_ms = h->tokens_at_ms = assay__now_ms();
  const char *ca = getenv("SSL_CERT_FILE");
  if (ca != NULL && *ca != '\0')
    h->ca_file = assay__xstrdup(ca);
  ca = getenv("SSL_CERT_DIR");
  if (ca != NULL && *ca != '\0')
    h->ca_dir = assay__xstrdup(ca);
  link_init(&h->endpoints);
  link_init(&h->active);
  link_init(&h->deferred);
  link_init(&h->idle);

  assay_http_reserve_fds(loop, h->max_inflight);
  /* The first multi handle now, so that a curl that cannot make one fails
   * here rather than on every request. */
  if (shard_new(h) == NULL) {
    service_free(h);
    return assay__fail(errmsg, ASSAY_ENOMEM,
                       "cannot create a curl multi handle");
  }
  uv_timer_init(loop, &h->rps_timer);
  uv_timer_init(loop, &h->defer_timer);
  assay_deadlines_init(&h->deadlines, loop, on_deadlines);
  h->rps_timer.data = h->defer_timer.data = h->deadlines.timer.data = h;
  h->handles_open += 3;
  *out = h;
  return 0;
}

static void teardown(struct assay_http *h) {
  h->torn_down = 1;
  while (!list_empty(&h->idle)) {
    struct http_req *req =
        assay__container_of(h->idle.next, struct http_req, link);
    list_remove(&req->link);
    h->nidle--;
    req_destroy(req);
  }
  /* Closing its connections, curl reports their sockets removed and
   * closed; the loop below closes what it left. */
  for (int i = 0; i < h->nshards; i++) {
    curl_multi_cleanup(h->shards[i]->multi);
    h->shards[i]->multi = NULL;
  }
  for (size_t fd = 0; fd < h->nsocks; fd++)
    sock_forget(h, (curl_socket_t)fd);
  free(h->socks);
  h->socks = NULL;
  h->nsocks = 0;
  for (int i = 0; i < h->nshards; i++)
    uv_close((uv_handle_t *)&h->shards[i]->timer, on_shard_closed);
  free(h->shards);
  h->shards = NULL;
  h->nshards = 0;
  h->freed = NULL;
  uv_close((uv_handle_t *)&h->rps_timer, on_service_handle_closed);
  uv_close((uv_handle_t *)&h->defer_timer, on_service_handle_closed);
  uv_close((uv_handle_t *)&h->deadlines.timer, on_service_handle_closed);
}

void assay_http_close(struct assay_http *h) {
  if (h == NULL || h->closing)
    return;
  h->closing = 1;
  /* Every request ends now with CANCELLED (already finished deferred ones
   * with their own outcome). Callbacks cannot add requests any more. */
  while (!list_empty(&h->active)) {
    struct http_req *req =
        assay__container_of(h->active.next, struct http_req, link);
    req_detach(req);
    req_finish(req, ASSAY_HTTP_CANCELLED, 0,
               assay__xstrdup("cancelled: the HTTP service was closed"));
  }
  for (struct link *e = h->endpoints.next; e != &h->endpoints; e = e->next) {
    struct endpoint *ep = assay__container_of(e, struct endpoint, link);
    while (!list_empty(&ep->queue)) {
      struct http_req *req =
          assay__container_of(ep->queue.next, struct http_req, link);
      list_remove(&req->link);
      ep->queued--;
      h->queued_now--;
      req_finish(req, ASSAY_HTTP_CANCELLED, 0,
                 assay__xstrdup("cancelled: the HTTP service was closed"));
    }
  }
  while (!list_empty(&h->deferred)) {
    struct http_req *req =
        assay__container_of(h->deferred.next, struct http_req, link);
    list_remove(&req->link);
    char *error = req->error;
    req->error = NULL;
    req_finish(req, req->cause, 0, error);
  }
  if (h->busy == 0)
    teardown(h);
}

/* ---- statistics -------------------------------------------------------- */

cJSON *assay_http_stats(const struct assay_http *h) {
  cJSON *o = cJSON_CreateObject();
  if (h == NULL)
    return o;
  cJSON_AddNumberToObject(o, "requests", (double)h->requests);
  cJSON_AddNumberToObject(o, "started", (double)h->started);
  cJSON_AddNumberToObject(o, "completed", (double)h->completed);
  cJSON_AddNumberToObject(o, "in_flight", (double)h->active_now);
  cJSON_AddNumberToObject(o, "queued", (double)h->queued_now);
  cJSON_AddNumberToObject(o, "max_in_flight", (double)h->max_active);
  cJSON_AddNumberToObject(o, "max_queued", (double)h->max_queued);
  cJSON_AddNumberToObject(o, "connections", (double)h->connections);
  cJSON_AddNumberToObject(o, "bytes_in", (double)h->bytes_in);
  cJSON_AddNumberToObject(o, "bytes_out", (double)h->bytes_out);
  cJSON_AddNumberToObject(o, "concurrency", h->max_inflight);
  if (h->rps > 0)
    cJSON_AddNumberToObject(o, "rps", h->rps);
  else
    cJSON_AddNullToObject(o, "rps");

  static const char *const classes[] = {"other", "1xx", "2xx",
                                        "3xx",   "4xx", "5xx"};
  cJSON *resp = cJSON_AddObjectToObject(o, "responses");
  for (size_t i = 0; i < assay__array_size(classes); i++)
    cJSON_AddNumberToObject(resp, classes[i], (double)h->by_class[i]);
  cJSON_AddNumberToObject(resp, "429", (double)h->status_429);
  cJSON_AddNumberToObject(resp, "http2", (double)h->http2);

  cJSON *fail = cJSON_AddObjectToObject(o, "failures");
  cJSON_AddNumberToObject(fail, "network", (double)h->failed[1]);
  cJSON_AddNumberToObject(fail, "timeout", (double)h->failed[2]);
  cJSON_AddNumberToObject(fail, "too_large", (double)h->failed[3]);
  cJSON_AddNumberToObject(fail, "cancelled", (double)h->failed[4]);

  cJSON *retry = cJSON_AddObjectToObject(o, "retryable");
  cJSON_AddNumberToObject(retry, "429", (double)h->retryable_429);
  cJSON_AddNumberToObject(retry, "5xx", (double)h->retryable_5xx);
  cJSON_AddNumberToObject(retry, "timeout", (double)h->retryable_timeout);
  cJSON_AddNumberToObject(retry, "network", (double)h->retryable_network);

  cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
  for (const struct link *l = h->endpoints.next; l != &h->endpoints;
       l = l->next) {
    const struct endpoint *ep =
        assay__container_of(l, const struct endpoint, link);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "endpoint", ep->key);
    cJSON_AddNumberToObject(e, "requests", (double)ep->requests);
    cJSON_AddNumberToObject(e, "limit", ep->limit);
    cJSON_AddNumberToObject(e, "min_limit", ep->min_limit);
    cJSON_AddNumberToObject(e, "in_flight", ep->inflight);
    cJSON_AddNumberToObject(e, "queued", (double)ep->queued);
    cJSON *hist = cJSON_AddArrayToObject(e, "history");
    for (size_t i = 0; i < ep->nhistory; i++) {
      cJSON *x = cJSON_CreateObject();
      cJSON_AddNumberToObject(x, "t_ms",
                              (double)(long long)(ep->history[i].t_ms + 0.5));
      cJSON_AddNumberToObject(x, "limit", ep->history[i].limit);
      cJSON_AddStringToObject(x, "why", ep->history[i].why);
      cJSON_AddItemToArray(hist, x);
    }
    cJSON_AddNumberToObject(e, "history_dropped", (double)ep->history_dropped);
    cJSON_AddItemToArray(eps, e);
  }
  return o;
}

/* ---- failure policy ---------------------------------------------------- */

static long retry_after_ms_of(const char *v) {
  if (v == NULL)
    return -1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (*v >= '0' && *v <= '9') {
    char *end;
    long s = strtol(v, &end, 10);
    while (*end == ' ' || *end == '\t')
      end++;
    if (*end != '\0')
      return -1;
    if (s > RETRY_AFTER_MAX_S)
      s = RETRY_AFTER_MAX_S;
    return s * 1000;
  }
  time_t t = curl_getdate(v, NULL);
  if (t == (time_t)-1)
    return -1;
  double ms = ((double)t - assay__wall_time()) * 1000.0;
  if (ms <= 0)
    return 0;
  if (ms > RETRY_AFTER_MAX_S * 1000.0)
    ms = RETRY_AFTER_MAX_S * 1000.0;
  long whole = (long)ms; /* round up: never sooner than asked */
  return whole < ms ? whole + 1 : whole;
}

static const struct {
  long status;
  const char *phrase;
} reason_phrases[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *reason_phrase(long status) {
  for (size_t i = 0; i < assay__array_size(reason_phrases); i++)
    if (reason_phrases[i].status == status)
      return reason_phrases[i].phrase;
  return NULL;
}

/* s[0..len) as one owned line of valid UTF-8: control characters become
 * spaces, runs of spaces collapse, invalid bytes become '?'. At most max
 * bytes of s are read, and a character cut there is dropped. */
static char *sanitize_line(const char *s, size_t len, size_t max) {
  if (len > max)
    len = max;
  char *out = assay__xmalloc(len + 4);
  size_t o = 0, i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      char ch = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
      if (!(ch == ' ' && (o == 0 || out[o - 1] == ' ')))
        out[o++] = ch;
      i++;
      continue;
    }
    size_t n = (c & 0xe0) == 0xc0   ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 1;
    if (n > 1 && i + n <= len && assay__utf8_valid(s + i, n, NULL)) {
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
    } else if (n > 1 && i + n > len) {
      break; /* a character cut by the cap */
    } else {
      out[o++] = '?';
      i++;
    }
  }
  while (o > 0 && out[o - 1] == ' ')
    o--;
  out[o] = '\0';
  return out;
}

/* The server's own words from an error body: OpenAI's
 * {"error":{"message"}}, {"error":"..."} (Ollama, llama.cpp), {"message"},
 * {"detail":"..."} (FastAPI servers such as vLLM), else the start of the
 * body. Owned; "" when the body is empty. */
static char *server_message(const char *body, size_t len) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  const char *m = NULL;
  if (cJSON_IsObject(root)) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (cJSON_IsString(msg))
      m = msg->valuestring;
    else if (cJSON_IsString(err))
      m = err->valuestring;
    else if (cJSON_IsString(
                 msg = cJSON_GetObjectItemCaseSensitive(root, "message")))
      m = msg->valuestring;
    else if (cJSON_IsString(
                 msg = cJSON_GetObjectItemCaseSensitive(root, "detail")))
      m = msg->valuestring;
  }
  char *out = m ? sanitize_line(m, strlen(m), SERVER_MESSAGE_MAX)
                : sanitize_line(body, len, BODY_EXCERPT_MAX);
  cJSON_Delete(root);
  return out;
}

const char *assay_http_classify(const struct assay_http_response *res,
                                const char *what, int *code,
                                long *retry_after_ms, char **msg) {
  if (what == NULL)
    what = "request";
  *retry_after_ms = -1;
  if (res->cause != ASSAY_HTTP_OK) {
    const char *err = res->error ? res->error : "failed";
    *msg = assay__format("%s: %s", what, err);
    switch (res->cause) {
    case ASSAY_HTTP_TIMEOUT:
      *code = ASSAY_FAIL_TIMEOUT;
      return "timeout";
    case ASSAY_HTTP_NETWORK: {
      const struct http_req *req = res->host_private;
      if (req != NULL && req->permanent) {
        *code = ASSAY_FAIL_ERROR;
        return NULL;
      }
      *code = ASSAY_FAIL_RETRYABLE;
      return "network";
    }
    default: /* TOO_LARGE, CANCELLED: trying again cannot help */
      *code = ASSAY_FAIL_ERROR;
      return NULL;
    }
  }

  long st = res->status;
  const char *phrase = reason_phrase(st);
  char *server = server_message(res->body ? res->body : "", res->body_len);
  char *head = phrase ? assay__format("%s: HTTP %ld %s", what, st, phrase)
                      : assay__format("%s: HTTP %ld", what, st);
  /* A wrong path (a base URL without its /v1, say) answers 404 or 405:
   * the message names the endpoint (the URL without user info or query,
   * where some APIs put keys), so the user sees the path that is wrong. */
  const struct http_req *sent = res->host_private;
  if ((st == 404 || st == 405) && sent != NULL && sent->ep != NULL) {
    char *with = assay__format("%s from '%.300s'", head, sent->ep->key);
    free(head);
    head = with;
  }
  const char *cause = NULL;
  *code = ASSAY_FAIL_ERROR;
  if (st == 429 || (st >= 500 && st <= 599)) {
    *code = ASSAY_FAIL_RETRYABLE;
    *retry_after_ms = retry_after_ms_of(assay_http_header(res, "Retry-After"));
    cause = st == 429 ? "429" : "5xx";
  } else if (st == 408) {
    /* The server gave up waiting for the request: a timeout by another
     * name, and safe to send again. */
    *code = ASSAY_FAIL_TIMEOUT;
    cause = "timeout";
  }
  if (st >= 300 && st < 400) {
    const char *loc = assay_http_header(res, "Location");
    *msg = assay__format("%s: redirects are not followed (Location: %.200s); "
                         "give the final URL",
                         head, loc ? loc : "none");
  } else if (server[0] != '\0') {
    *msg = assay__format("%s: %s", head, server);
  } else {
    *msg = head;
    head = NULL;
  }
  free(head);
  free(server);
  return cause;
}
