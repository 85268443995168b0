/*
 * The host's HTTP service: libcurl's multi interface driven by the libuv loop
 * (socket callback -> uv_poll, timer callback -> one uv_timer), offered to
 * async plugins through struct assay_host. Connections are reused, HTTP/2 is
 * used when offered over TLS, TLS is verified (against SSL_CERT_FILE and
 * SSL_CERT_DIR when set), proxies come from the environment (http_proxy,
 * https_proxy, no_proxy, as libcurl reads them).
 * Per endpoint (scheme, host, port and path) it keeps an adaptive in-flight
 * limit: a burst of 429s shrinks it multiplicatively, successes grow it
 * additively, never above max_inflight. An optional token bucket caps the
 * request rate. Everything here runs on the loop thread.
 *
 * Redirects are not followed: a 3xx comes back as the response, and
 * assay_http_classify() turns it into a permanent error naming the
 * Location (an API base URL should be given in its final form; following
 * redirects would also resend the Authorization header elsewhere).
 */
#ifndef ASSAY_HTTP_H
#define ASSAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <assay/plugin.h>
#include <uv.h>

#define ASSAY_DEFAULT_MAX_RESPONSE_BYTES (32u << 20)

struct assay_http_config {
  size_t max_response_bytes; /* 0: the default, 32 MiB */
  int max_inflight;          /* ceiling of every endpoint's limit (--concurrency) */
  double rps;                /* requests per second over all endpoints; 0: none */
};

struct assay_http;

/* Creates the service on loop. Returns 0 or a negative code with *errmsg. */
int assay_http_new(struct assay_http **h, uv_loop_t *loop,
                   const struct assay_http_config *cfg, char **errmsg);

/*
 * Grows the process's descriptor table now to hold a socket for each of
 * max_inflight transfers. assay_http_new does it too, but a process with
 * threads pays an RCU grace period (10-15 ms) for every growth of the
 * table: called before any thread starts, it costs nothing. Best effort.
 */
void assay_http_reserve_fds(uv_loop_t *loop, int max_inflight);

/*
 * Starts req, tagged with call (for assay_http_cancel). timeout_ms bounds
 * the whole exchange including time queued behind the endpoint's limit;
 * the tighter of timeout_ms and req->timeout_ms applies, each ignored when
 * not positive (both not positive: no deadline). A body without a
 * Content-Type header is sent as application/json. Returns 0 and later
 * runs cb exactly once on the loop thread, never before returning; or a
 * negative code with *errmsg set (a malformed request, or the service is
 * closing) and cb never runs. req and its strings are copied.
 */
int assay_http_request(struct assay_http *h, uint64_t call,
                       const struct assay_http_request *req, long timeout_ms,
                       assay_http_cb cb, void *arg, char **errmsg);

/*
 * Cancels every request tagged with call (the engine abandoned the call):
 * their callbacks run with ASSAY_HTTP_CANCELLED on a later loop turn,
 * never inside this function. Returns how many were cancelled.
 */
int assay_http_cancel(struct assay_http *h, uint64_t call);

/* A response header's value (case-insensitive), or NULL. */
const char *assay_http_header(const struct assay_http_response *res,
                              const char *name);

/*
 * The host's failure policy for a response that is not a 2xx: fills *code
 * (enum assay_fail_code), *retry_after_ms (-1 when none; Retry-After in
 * seconds or as an HTTP date, a past date giving 0) and *msg (owned:
 * "chat completion: HTTP 401 Unauthorized: <the server's error message>",
 * "chat completion: timed out after 3000 ms"), and returns the retry cause
 * for statistics: "429", "5xx", "timeout", "network", or NULL when not
 * retryable. 429 and 5xx are RETRYABLE, a timeout (and a 408) TIMEOUT, a
 * network error RETRYABLE; other statuses, an oversize body and a
 * cancellation are ERROR. The server's message comes from
 * {"error":{"message"}}, {"error":"..."}, {"message"} or {"detail"}, else
 * the first 200 bytes of the body, as one line.
 */
const char *assay_http_classify(const struct assay_http_response *res,
                                const char *what, int *code,
                                long *retry_after_ms, char **msg);

/*
 * Statistics (owned JSON): requests, started, completed, in_flight,
 * max_in_flight, connections (opened by curl), bytes_in, bytes_out,
 * "responses" by status class (and "429"), "failures" by cause,
 * "retryable" by retry cause, and "endpoints": per endpoint (its key
 * scheme://host:port/path, never the query) its limit, min_limit,
 * in_flight, queued and the history of limit changes
 * [{"t_ms" (since the service started),"limit","why":"429"|"recovered"}],
 * at most 256 entries (history_dropped counts the rest).
 */
cJSON *assay_http_stats(const struct assay_http *h);

/*
 * Tells the service that no new work will come, only what work in flight
 * still asks for (its retries, a metric's request after a task's): from
 * now on it keeps a connection per request in flight or queued (and one
 * spare per multi handle) and 16 finished requests for reuse, closing
 * each other connection when its last request ends rather than all of
 * them at assay_http_close. Requests are served as before; one that finds
 * no connection opens one (a retry after a long backoff may).
 */
void assay_http_drain(struct assay_http *h);

/*
 * Cancels every pending request (their callbacks run with
 * ASSAY_HTTP_CANCELLED before it returns), closes all handles and frees h
 * once they are closed; the loop must run on until then. It may be called
 * from an HTTP callback. h is unusable after the call.
 */
void assay_http_close(struct assay_http *h);

#endif
