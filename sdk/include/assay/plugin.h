/*
 * assay plugin ABI: the one header a task or metric plugin needs.
 *
 * A plugin is a shared object that exports exactly one function, emitted by
 * ASSAY_PLUGIN() below, returning a constant descriptor of the plugin and its
 * components. Everything the plugin calls on the host comes through the
 * struct assay_host table handed to each component's init(); a plugin links
 * against no symbol of the host (it links libcjson itself, and libuv if it
 * uses the loop directly).
 *
 * Ownership, for the whole API:
 *   - Inputs handed to a plugin (config, item inputs, HTTP responses) are
 *     borrowed: valid for the duration of the call, and for an async call
 *     until the plugin completes or fails it. Never free or modify them.
 *   - Results handed to the host (run_sync's return value, complete()'s
 *     result) are taken by the host: do not touch them afterwards.
 *   - Strings the plugin passes to the host are copied by the host.
 *
 * Threading:
 *   - init() and fini() run on the loop thread, before and after all calls.
 *   - run_sync() runs on a worker thread. Unless the component sets
 *     ASSAY_THREAD_SAFE, the host never runs two of its calls at once.
 *   - run_async() runs on the loop thread and must not block. It finishes by
 *     calling complete() or fail() exactly once, now or later, from any
 *     thread.
 *   - Functions of struct assay_host marked "loop thread" may be called only
 *     from the loop thread (inside run_async, init, fini, or a libuv or HTTP
 *     callback); the rest are safe from any thread.
 *
 * Compatibility: the host accepts a plugin whose ABI major equals its own and
 * whose minor is not newer. Structs only grow by appending fields, and each
 * carries its size, so a plugin built against an older minor keeps working.
 */
#ifndef ASSAY_PLUGIN_H
#define ASSAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASSAY_PLUGIN_MAGIC 0x59535341u /* "ASSY" in memory on little-endian */
#define ASSAY_ABI_MAJOR 1
#define ASSAY_ABI_MINOR 0

#if defined(__GNUC__) || defined(__clang__)
#define ASSAY_EXPORT __attribute__((visibility("default")))
#define ASSAY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ASSAY_EXPORT
#define ASSAY_PRINTF(f, a)
#endif

/* What a component is. */
enum assay_kind {
  ASSAY_KIND_TASK = 1,   /* the system under test: item -> output */
  ASSAY_KIND_METRIC = 2  /* a scorer: item fields + output -> score(s) */
};

/*
 * Why a call failed; the value passed to fail(). The host retries
 * ASSAY_FAIL_RETRYABLE and ASSAY_FAIL_TIMEOUT (up to --retries, with
 * exponential backoff and full jitter, never sooner than a given
 * retry-after), and never retries the others.
 */
enum assay_fail_code {
  ASSAY_FAIL_ERROR = 1,     /* permanent failure of this call */
  ASSAY_FAIL_TIMEOUT = 2,   /* the plugin gave up waiting on something */
  ASSAY_FAIL_RETRYABLE = 3, /* transient (rate limit, overload): try again */
  ASSAY_FAIL_BAD_INPUT = 4  /* this item cannot be processed as it stands */
};

/* Option value types. The host checks every --opt against them. */
enum assay_opt_type {
  ASSAY_OPT_STRING = 1,  /* a JSON string (a bare scalar is taken as text) */
  ASSAY_OPT_NUMBER = 2,  /* a finite JSON number */
  ASSAY_OPT_INTEGER = 3, /* a JSON number with no fractional part */
  ASSAY_OPT_BOOLEAN = 4, /* true or false */
  ASSAY_OPT_JSON = 5     /* any JSON value; the plugin checks it in init */
};

/* Option flags. */
#define ASSAY_OPT_REQUIRED 0x1u /* the user must give it; no default */

/*
 * An option a component accepts. Arrays of these end with an entry whose
 * name is NULL. The host fills in defaults, so init() sees every option that
 * has a default or was given, already of the declared type.
 */
struct assay_option {
  const char *name;
  int type;                 /* enum assay_opt_type */
  const char *default_json; /* default as JSON text ("0.5", "\"x\""), or NULL */
  const char *help;         /* one line, shown by `assay plugins` */
  unsigned flags;           /* ASSAY_OPT_* */
};

/* Input flags. */
#define ASSAY_INPUT_OPTIONAL 0x1u /* a missing key is not an error */

/*
 * An input key a metric reads from its input object. The host checks that
 * every required key is present before calling the metric, and otherwise
 * records a failed score naming the key and suggesting --map. Arrays end with
 * an entry whose name is NULL.
 */
struct assay_input {
  const char *name;
  unsigned flags; /* ASSAY_INPUT_* */
  const char *help;
};

/*
 * One call of a component, as a handle. It is an opaque number, not a
 * pointer: it stays safe to pass to complete() or fail() at any time, even
 * after the host has given up on the call (a timeout) or after it was already
 * completed. The host drops and counts such late or second completions.
 */
typedef uint64_t assay_call;

struct assay_host;

/*
 * Prepares one instance of a component. config is an object holding every
 * declared option that was given or has a default (borrowed, valid until
 * fini). On success store the instance state in *state and return 0. On
 * failure return non-zero and set *errmsg to a message made with
 * host->format() or host->alloc(); the host frees it and exits with status 2
 * before any work starts. host stays valid until fini returns. May be NULL.
 */
typedef int (*assay_init_fn)(const cJSON *config, const struct assay_host *host,
                             void **state, char **errmsg);

/* Releases an instance; runs once, on the loop thread, after all its calls
 * ended or were abandoned. An async component must close here any libuv
 * handle it still has open. May be NULL. */
typedef void (*assay_fini_fn)(void *state);

/*
 * Sync entry: runs on a worker thread. Returns the result (taken by the
 * host), or NULL after calling host->fail(call, ...). Returning NULL without
 * failing is recorded as an error ("returned nothing").
 *
 * A task's result: a JSON object is the output as is; any other value v
 * becomes {"output": v}. A metric's result: a number; {"value": x,
 * "reason": "..."}; or an array of {"name", "value", "reason"} for several
 * scores. Values must be finite.
 */
typedef cJSON *(*assay_run_sync_fn)(void *state, const cJSON *input,
                                    assay_call call);

/*
 * Async entry: runs on the loop thread and must not block. Returns 0 after
 * arranging for complete() or fail() to be called exactly once (it may
 * happen before run_async returns, and from any thread). A non-zero return
 * means the call failed at once and will never complete; call host->fail()
 * first to give the reason.
 */
typedef int (*assay_run_async_fn)(void *state, const cJSON *input,
                                  assay_call call);

/* Component flags. */
#define ASSAY_THREAD_SAFE 0x1u /* run_sync may run on several threads at once */
/* run_sync never blocks (no I/O, no locks held long, no sleeping) and
 * returns within microseconds whatever the input: the host may call it on
 * its loop thread instead of a worker, sparing the hand-off, which costs
 * more than such a call. Such a call is not held to --timeout; calls that
 * take milliseconds (a third over 2 ms, or one over 100 ms) send the
 * component to the workers for the rest of the run. A hint: a host that
 * does not know it runs the calls on its workers, so it needs no newer
 * ABI version. */
#define ASSAY_QUICK 0x2u

struct assay_component {
  uint32_t size;           /* sizeof(struct assay_component) */
  int kind;                /* enum assay_kind */
  const char *name;        /* [a-z0-9_]+, unique within the plugin */
  const char *description; /* one line */
  const struct assay_option *options; /* NULL or ends with {NULL} */
  const struct assay_input *inputs;   /* metrics: keys read; ends with {NULL} */
  unsigned flags;                     /* ASSAY_THREAD_SAFE, ... */
  assay_init_fn init;                 /* may be NULL */
  assay_fini_fn fini;                 /* may be NULL */
  assay_run_sync_fn run_sync;         /* at least one of run_sync ... */
  assay_run_async_fn run_async;       /* ... and run_async; async preferred */
  void *reserved[8];                  /* zero */
};

struct assay_plugin {
  uint32_t magic;     /* ASSAY_PLUGIN_MAGIC */
  uint16_t abi_major; /* ASSAY_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor; /* ASSAY_ABI_MINOR the plugin was built with */
  uint32_t size;      /* sizeof(struct assay_plugin) */
  const char *name;
  const char *version;
  const char *description;
  const struct assay_component *const *components; /* ends with NULL */
  void *reserved[8];                               /* zero */
};

/* ---- HTTP, served by the host on its loop (libcurl multi) ---------------- */

/* Why an HTTP exchange ended without a usable response. */
enum assay_http_cause {
  ASSAY_HTTP_OK = 0,        /* a response arrived; see status */
  ASSAY_HTTP_NETWORK = 1,   /* could not connect, reset, TLS failure, ... */
  ASSAY_HTTP_TIMEOUT = 2,   /* no complete response within the timeout */
  ASSAY_HTTP_TOO_LARGE = 3, /* body over --max-response-bytes */
  ASSAY_HTTP_CANCELLED = 4  /* the host abandoned the call (its timeout) */
};

struct assay_http_request {
  uint32_t size;            /* sizeof(struct assay_http_request) */
  const char *method;       /* NULL: POST when there is a body, else GET */
  const char *url;          /* absolute http:// or https:// URL */
  const char *const *headers; /* NULL or "Name: value" strings, NULL-ended */
  const char *body;         /* NULL or body_len bytes, copied by the host */
  size_t body_len;
  long timeout_ms;          /* 0: the call's remaining attempt time */
  void *reserved[4];
};

/* Borrowed by the callback for its duration only. */
struct assay_http_response {
  int cause;            /* enum assay_http_cause */
  long status;          /* HTTP status, 0 unless cause is ASSAY_HTTP_OK */
  const char *body;     /* NUL-terminated (never NULL), body_len bytes */
  size_t body_len;
  const char *error;    /* cause != OK: what went wrong, else NULL */
  double elapsed_ms;
  const void *host_private; /* for host->http_header() */
};

/* Runs on the loop thread exactly once per accepted request. */
typedef void (*assay_http_cb)(const struct assay_http_response *res, void *arg);

/*
 * What the host tells a plugin about the call it is running. Fill size with
 * sizeof(struct assay_call_info) before asking: the host fills only the
 * fields that fit.
 */
struct assay_call_info {
  uint32_t size;
  int64_t index;   /* the item's 0-based position in the dataset */
  int trial;       /* the trial number, 0 unless --trials */
  int attempt;     /* 1 for the first attempt, 2 for the first retry, ... */
  long timeout_ms; /* time this attempt had when it started */
};

/* Log levels. */
enum assay_log_level {
  ASSAY_LOG_ERROR = 0,
  ASSAY_LOG_WARN = 1,
  ASSAY_LOG_INFO = 2,
  ASSAY_LOG_DEBUG = 3
};

/*
 * The host API. Each component instance gets its own table; keep the pointer
 * passed to init() and use it until fini().
 */
struct assay_host {
  uint32_t size;      /* sizeof(struct assay_host) on the host side */
  uint16_t abi_major; /* the host's ABI version */
  uint16_t abi_minor;

  /* Ends a call with a result (taken; NULL counts as "returned nothing").
   * Any thread. Only the first completion or failure of a call counts. */
  void (*complete)(assay_call call, cJSON *result);

  /* Ends a call with a failure. code is enum assay_fail_code; retry_after_ms
   * >= 0 asks the host to wait at least that long before retrying (-1: no
   * preference). The message is formatted like printf and copied. Any
   * thread. Inside run_sync, fail then return NULL. */
  void (*fail)(assay_call call, int code, long retry_after_ms, const char *fmt,
               ...) ASSAY_PRINTF(4, 5);

  /* Writes a line to the host's log, tagged with the component. Any thread. */
  void (*log)(const struct assay_host *host, int level, const char *fmt, ...)
      ASSAY_PRINTF(3, 4);

  /* Memory the host may free (for init's *errmsg) and that you free with
   * dealloc(). format() returns an owned printf-formatted string. Any
   * thread. */
  void *(*alloc)(size_t size);
  void (*dealloc)(void *ptr);
  char *(*format)(const char *fmt, ...) ASSAY_PRINTF(1, 2);

  /* Option readers for the config object given to init: the value of a
   * declared option, or def when it is absent. Any thread. The returned
   * string is borrowed from config. */
  const char *(*opt_string)(const cJSON *config, const char *name,
                            const char *def);
  double (*opt_number)(const cJSON *config, const char *name, double def);
  int (*opt_bool)(const cJSON *config, const char *name, int def);

  /* The libuv loop (a uv_loop_t *). Loop thread only. An async plugin may
   * start its own handles on it and must close them by fini(). */
  struct uv_loop_s *loop;

  /*
   * Starts an HTTP request on behalf of call. Loop thread only. Returns 0
   * and later runs cb exactly once on the loop thread; or returns non-zero,
   * sets *errmsg (owned, free with dealloc) and never runs cb. The host
   * applies connection reuse, the response size cap, per-endpoint adaptive
   * concurrency and --rps, and cancels the request when the call is
   * abandoned (cb then sees ASSAY_HTTP_CANCELLED).
   */
  int (*http_request)(assay_call call, const struct assay_http_request *req,
                      assay_http_cb cb, void *arg, char **errmsg);

  /* A response header's value (case-insensitive name), or NULL. Borrowed
   * like the response. Loop thread only. */
  const char *(*http_header)(const struct assay_http_response *res,
                             const char *name);

  /*
   * Fails call from a response that is not a success, with the host's
   * policy: 429 and 5xx retryable (honouring Retry-After in seconds or as an
   * HTTP date), network errors and timeouts retryable, other statuses
   * permanent with the server's error message. what names the request in
   * the message ("chat completion"). Loop thread only.
   */
  void (*http_fail)(assay_call call, const struct assay_http_response *res,
                    const char *what);

  /* Directory of the data files installed with the plugins (judge
   * prompts): "<datadir>/assay" once installed, the source tree's
   * plugins/data in a build tree. Borrowed, valid for the process. */
  const char *datadir;

  /* Fills *info for call. Only valid while run_sync or run_async of that
   * call runs, on the thread running it; returns non-zero otherwise. */
  int (*call_info)(assay_call call, struct assay_call_info *info);

  void *reserved[16];
};

/*
 * Emits the plugin's one exported function. module must be the file's base
 * name without extension (libtool's rule for module symbols), so that both
 * dlopen()ed and libtool-preloaded plugins resolve.
 *
 *   static const struct assay_plugin desc = { ... };
 *   ASSAY_PLUGIN(mymetric, desc)
 */
#define ASSAY_DESCRIBE_SYMBOL "assay_plugin_describe"
#define ASSAY_PLUGIN(module, descriptor)                                       \
  ASSAY_EXPORT const struct assay_plugin *module##_LTX_assay_plugin_describe( \
      void);                                                                   \
  ASSAY_EXPORT const struct assay_plugin *module##_LTX_assay_plugin_describe( \
      void) {                                                                  \
    return &(descriptor);                                                      \
  }

/* Initialisers for the versioned header fields. */
#define ASSAY_PLUGIN_HEADER                                                    \
  ASSAY_PLUGIN_MAGIC, ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR,                        \
      (uint32_t)sizeof(struct assay_plugin)
#define ASSAY_COMPONENT_SIZE ((uint32_t)sizeof(struct assay_component))

#ifdef __cplusplus
}
#endif
#endif /* ASSAY_PLUGIN_H */
