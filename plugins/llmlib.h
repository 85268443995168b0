/*
 * llmlib: the code shared by the LLM plugins (the openai_chat task and the
 * LLM-as-judge metrics), linked into each of them as a convenience library:
 *   - the {{field}} template renderer,
 *   - the OpenAI-compatible endpoint (URL, model, key, headers) and the chat
 *     request sender built on the host's HTTP service,
 *   - the chat completion response parser,
 *   - the judge: prompt file loading, delimiting of untrusted text, reply
 *     parsing, and the run_async shared by every judge metric.
 *
 * Plugins get nothing from the host at link time, so this library uses only
 * libc and cJSON; everything else goes through struct assay_host.
 *
 * Ownership, for the whole API: arguments are borrowed; strings and JSON
 * returned through pointers are owned by the caller (free with free() and
 * cJSON_Delete()); *errmsg is set only on failure, owned, free with free().
 * Functions return 0 or a negative ASSAY_E* code (core/error.h).
 * Small allocations abort the process on exhaustion, like the host's.
 */
#ifndef ASSAY_LLMLIB_H
#define ASSAY_LLMLIB_H

#include <stddef.h>
#include <stdint.h>

#include <assay/plugin.h>
#include <cjson/cJSON.h>

#include "error.h"

/* How much of a reply or body a message quotes. */
#define ASSAY__LLM_QUOTE_MAX 120
/* A judge prompt file larger than this is refused. */
#define ASSAY__LLM_MAX_PROMPT_BYTES (1u << 20)
/* The public OpenAI API, the default endpoint. */
#define ASSAY__LLM_OPENAI_URL "https://api.openai.com/v1"

/* ---- small helpers ------------------------------------------------------ */

void *assay__llm_xmalloc(size_t n);
void *assay__llm_xrealloc(void *p, size_t n);
char *assay__llm_xstrdup(const char *s);
char *assay__llm_format(const char *fmt, ...) ASSAY_PRINTF(1, 2);

/* A growable NUL-terminated string. Zero-initialise, then add. */
struct assay__llm_buf {
  char *data; /* NULL until the first add */
  size_t len;
  size_t cap;
};
void assay__llm_buf_add(struct assay__llm_buf *b, const char *s, size_t n);
void assay__llm_buf_adds(struct assay__llm_buf *b, const char *s);
/* Returns the text (owned, "" when nothing was added) and empties b. */
char *assay__llm_buf_take(struct assay__llm_buf *b);
void assay__llm_buf_release(struct assay__llm_buf *b);

/*
 * The start of s (len bytes) for a message: at most max bytes, never
 * cutting a UTF-8 sequence, on one line (control characters become
 * spaces), with "..." when cut. Owned.
 */
char *assay__llm_quote(const char *s, size_t len, size_t max);

/* A dotted path ("a.b", "answers.0.text") in root: object keys, and array
 * indices for all-digit segments. Returns the node borrowed, or NULL. */
const cJSON *assay__llm_json_path(const cJSON *root, const char *path);

/* A JSON value as prompt text: a string as is, anything else as compact
 * JSON. Owned. */
char *assay__llm_value_text(const cJSON *v);

/* ---- templates ------------------------------------------------------------
 */

/*
 * Template syntax: "{{name}}" is replaced by a value; spaces inside the
 * braces are ignored; everything else is copied as is. "{{" always opens a
 * field: a "{{" without a closing "}}", or an empty name, or a name holding
 * '{', '}' or a line break, is a syntax error.
 */

/* Checks the syntax of tmpl; ASSAY_EINVAL with *errmsg naming the offset
 * and quoting the template. */
int assay__llm_template_check(const char *tmpl, char **errmsg);

/* Appends the value of field name to out, or returns a negative code with
 * *errmsg set. */
typedef int (*assay__llm_field_fn)(void *arg, const char *name,
                                   struct assay__llm_buf *out, char **errmsg);

/* Expands tmpl, asking fn for every field. *out is owned. */
int assay__llm_template_expand(const char *tmpl, assay__llm_field_fn fn,
                               void *arg, char **out, char **errmsg);

/* The field name when tmpl is one field and nothing else ("{{input}}"),
 * owned; else NULL. */
char *assay__llm_template_single(const char *tmpl);

/* Calls fn(arg, name) for each field name of tmpl (which must be valid),
 * stopping at the first non-zero return, which it returns. */
int assay__llm_template_fields(const char *tmpl,
                               int (*fn)(void *arg, const char *name),
                               void *arg);

/*
 * Renders tmpl against item: each field is a dotted path into item; a
 * string value goes in as is, any other value as compact JSON. A missing
 * field is ASSAY_EBAD_INPUT with *errmsg naming the field and quoting the
 * template.
 */
int assay__llm_template_render(const char *tmpl, const cJSON *item, char **out,
                               char **errmsg);

/* ---- endpoint and chat requests ---------------------------------------- */

/*
 * An OpenAI-compatible endpoint, from the options base_url, model,
 * api_key_env and headers. The API key lives only in the Authorization
 * header kept here, is wiped on release, and is never printed.
 */
struct assay__llm_endpoint {
  const struct assay_host *host;
  char *url; /* base_url + "/chat/completions" */
  char *model;
  char **headers; /* "Name: value", NULL-ended, for host->http_request */
  size_t n_headers;
};

/*
 * Reads the endpoint options from config (see docs/llm.md): base_url
 * (default $OPENAI_BASE_URL, else the public OpenAI API), model (default
 * default_model), api_key_env (default OPENAI_API_KEY; the variable is read
 * now; when it is unset or empty, no Authorization is sent, which is an
 * error only for the public OpenAI API), headers (an object of strings).
 * who names the component in messages. ASSAY_ECONFIG on a bad option.
 */
int assay__llm_endpoint_init(struct assay__llm_endpoint *ep,
                             const cJSON *config, const struct assay_host *host,
                             const char *default_model, const char *who,
                             char **errmsg);
void assay__llm_endpoint_release(struct assay__llm_endpoint *ep);

/* Whether url points at the public OpenAI API (host api.openai.com). */
int assay__llm_is_openai_url(const char *url);

/* Joins a base URL and "/chat/completions" (kept when base already ends
 * with it). Owned. */
char *assay__llm_chat_url(const char *base);

/*
 * A parsed chat completion. json owns the whole body; the other fields are
 * borrowed from it (model, finish_reason and usage may be NULL). A
 * reply_fn may detach content_item from message, and usage from json, to
 * keep them.
 */
struct assay__llm_reply {
  cJSON *json;
  const char *content;
  const char *model;
  const char *finish_reason;
  cJSON *usage;
  cJSON *message;      /* choices[0].message */
  cJSON *content_item; /* its "content", the string content */
};

/*
 * Parses a 2xx body as a chat completion: valid JSON, a non-empty
 * "choices" array whose first element has message.content as a string.
 * Otherwise ASSAY_EERROR with *errmsg saying what is wrong and quoting the
 * start of the body.
 */
int assay__llm_reply_parse(struct assay__llm_reply *r, const char *body,
                           size_t len, char **errmsg);
void assay__llm_reply_release(struct assay__llm_reply *r);

/* Called on the loop thread with a parsed reply (borrowed, released after
 * the call); must complete or fail call. */
typedef void (*assay__llm_reply_fn)(void *arg, assay_call call,
                                    struct assay__llm_reply *reply);

/*
 * Posts body (a chat request, copied) to ep for call. Later either fails
 * call (a non-2xx status or a transport failure, through host->http_fail
 * with the host's retry policy; a 2xx that is not a chat completion, with
 * ASSAY_FAIL_ERROR) or runs done with the reply. Returns 0, or fails call
 * itself and returns a negative code (run_async then returns non-zero).
 */
int assay__llm_chat_send(const struct assay__llm_endpoint *ep, assay_call call,
                         const char *body, assay__llm_reply_fn done, void *arg);

/* ---- judges ---------------------------------------------------------------
 */

/*
 * Delimiting. Text from the dataset or the task goes into a judge prompt
 * between a line "<<<BEGIN NAME ID>>>" and a line "<<<END NAME ID>>>", where
 * ID is a 16-hex-digit nonce derived from the inserted texts and chosen so
 * that none of them contains it (case-insensitively). Without the ID, text
 * cannot forge the closing line, so it cannot end its block or add
 * instructions outside it. Derived from the content, the prompt (and so a
 * judge's answer at temperature 0) is reproducible.
 */

/* The nonce for texts: starts from seed and moves on until no text
 * contains it. out receives 16 hex digits and a NUL. */
void assay__llm_nonce_pick(uint64_t seed, const char *const *texts, size_t n,
                           char out[17]);
/* The nonce for texts, seeded from their FNV-1a 64-bit hash. */
void assay__llm_nonce(const char *const *texts, size_t n, char out[17]);
/* Appends one delimited block of text named name (upper-cased). */
void assay__llm_delimit(struct assay__llm_buf *out, const char *name,
                        const char *nonce, const char *text);

/*
 * Parses a judge's reply: the whole reply as a JSON object; else the span
 * from its first '{' to its last '}' (a fenced code block, prose around).
 * The object's "score" must be a finite JSON number in [0, max]. Its
 * "reason" may be missing, null or empty (*reason NULL); a non-string
 * reason is kept as compact JSON. Otherwise ASSAY_EERROR with *errmsg
 * saying why and quoting the start of the reply. *reason is owned.
 */
int assay__llm_judge_parse(const char *reply, double max, double *score,
                           char **reason, char **errmsg);

/*
 * Reads a prompt file: the option prompt_file when given, else
 * "<host->datadir>/prompts/<metric>.txt". Capped at
 * ASSAY__LLM_MAX_PROMPT_BYTES; must be valid template syntax. *text and
 * *path are owned.
 */
int assay__llm_prompt_load(const cJSON *config, const struct assay_host *host,
                           const char *metric, char **text, char **path,
                           char **errmsg);

/* What distinguishes one judge metric from another. */
struct assay__llm_judge_spec {
  const char *metric;        /* component name and prompt file base name */
  double max;                /* the judge's score range is [0, max] */
  const char *const *fields; /* prompt fields taken from the input and
                                delimited, NULL-ended */
  const char *const *option_fields; /* prompt fields taken from required
                                       string options, as is; NULL-ended */
};

/* The options every judge accepts; each judge's table starts with these. */
#define ASSAY__LLM_JUDGE_OPTIONS                                               \
  {"base_url", ASSAY_OPT_STRING, NULL,                                         \
   "judge endpoint (default: $OPENAI_BASE_URL, else "                          \
   "https://api.openai.com/v1)",                                               \
   0},                                                                         \
      {"model", ASSAY_OPT_STRING, "\"gpt-4o-mini\"", "judge model", 0},        \
      {"api_key_env", ASSAY_OPT_STRING, "\"OPENAI_API_KEY\"",                  \
       "name of the environment variable holding the API key", 0},             \
      {"temperature", ASSAY_OPT_NUMBER, "0", "sampling temperature", 0},       \
      {"headers", ASSAY_OPT_JSON, NULL,                                        \
       "object of extra HTTP headers {\"Name\": \"value\"}", 0},               \
      {"response_format_json", ASSAY_OPT_BOOLEAN, "false",                     \
       "ask for JSON mode (response_format json_object)", 0},                  \
      {"prompt_file", ASSAY_OPT_STRING, NULL,                                  \
       "judge prompt template (default: the installed one)", 0},               \
  {                                                                            \
    "max_tokens", ASSAY_OPT_INTEGER, NULL, "cap on the judge's reply tokens",  \
        0                                                                      \
  }

/* The component entry points shared by every judge. init takes the spec;
 * each judge module wraps it in its own assay_init_fn. */
int assay__llm_judge_init(const struct assay__llm_judge_spec *spec,
                          const cJSON *config, const struct assay_host *host,
                          void **state, char **errmsg);
void assay__llm_judge_fini(void *state);
int assay__llm_judge_run(void *state, const cJSON *input, assay_call call);

/* Renders the judge prompt for input (borrowed) with an initialised judge;
 * exposed for tests. *prompt is owned. */
int assay__llm_judge_prompt(void *state, const cJSON *input, char **prompt,
                            char **errmsg);

/* Declares a judge metric module in one line: its spec, init wrapper,
 * component and descriptor. */
#define ASSAY__LLM_JUDGE_MODULE(module, spec, options, inputs, description)    \
  static int module##_init(const cJSON *config, const struct assay_host *host, \
                           void **state, char **errmsg) {                      \
    return assay__llm_judge_init(&(spec), config, host, state, errmsg);        \
  }                                                                            \
  static const struct assay_component module##_component = {                   \
      ASSAY_COMPONENT_SIZE,                                                    \
      ASSAY_KIND_METRIC,                                                       \
      #module,                                                                 \
      description,                                                             \
      options,                                                                 \
      inputs,                                                                  \
      0,                                                                       \
      module##_init,                                                           \
      assay__llm_judge_fini,                                                   \
      NULL,                                                                    \
      assay__llm_judge_run,                                                    \
      {0}};                                                                    \
  static const struct assay_component *const module##_components[] = {         \
      &module##_component, NULL};                                              \
  static const struct assay_plugin module##_plugin = {                         \
      ASSAY_PLUGIN_HEADER, #module, PACKAGE_VERSION, description,              \
      module##_components, {0}};                                               \
  ASSAY_PLUGIN(module, module##_plugin)

#endif
