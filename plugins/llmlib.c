/*
 * llmlib: templates, the OpenAI-compatible endpoint and chat requests, the
 * chat response parser and the judge machinery shared by the LLM plugins.
 * See llmlib.h for the API and docs/llm.md for what users see.
 */
#include "llmlib.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonwords.h"

/* ---- small helpers ------------------------------------------------------ */

static void oom(void) {
  fputs("assay: out of memory in an LLM plugin\n", stderr);
  abort();
}

void *assay__llm_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom();
  return p;
}

void *assay__llm_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    oom();
  return q;
}

char *assay__llm_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = assay__llm_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

static char *llm_vformat(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return assay__llm_xstrdup("(message formatting failed)");
  char *s = assay__llm_xmalloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *assay__llm_format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = llm_vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* Sets *errmsg (when not NULL) and returns err. */
static int llm_fail(char **errmsg, int err, const char *fmt, ...)
    ASSAY_PRINTF(3, 4);
static int llm_fail(char **errmsg, int err, const char *fmt, ...) {
  if (errmsg != NULL) {
    va_list ap;
    va_start(ap, fmt);
    *errmsg = llm_vformat(fmt, ap);
    va_end(ap);
  }
  return err;
}

void assay__llm_buf_add(struct assay__llm_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->data = assay__llm_xrealloc(b->data, cap);
    b->cap = cap;
  }
  if (n > 0)
    memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void assay__llm_buf_adds(struct assay__llm_buf *b, const char *s) {
  assay__llm_buf_add(b, s, strlen(s));
}

char *assay__llm_buf_take(struct assay__llm_buf *b) {
  char *s = b->data ? b->data : assay__llm_xstrdup("");
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void assay__llm_buf_release(struct assay__llm_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *assay__llm_quote(const char *s, size_t len, size_t max) {
  /* Leading white space says nothing; skip it so the quote shows text. */
  while (len > 0 && isspace((unsigned char)*s)) {
    s++;
    len--;
  }
  size_t n = len;
  int cut = 0;
  if (n > max) {
    n = max;
    /* Back up to the start of a UTF-8 sequence (not a continuation byte). */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
    cut = 1;
  }
  char *q = assay__llm_xmalloc(n + 4);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    q[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
  }
  if (cut)
    memcpy(q + n, "...", 4);
  else
    q[n] = '\0';
  return q;
}

static int all_digits(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

const cJSON *assay__llm_json_path(const cJSON *root, const char *path) {
  if (root == NULL || path == NULL)
    return NULL;
  /* A key that itself holds dots (a CSV header "a.b") wins over a path. */
  if (cJSON_IsObject(root)) {
    const cJSON *whole = cJSON_GetObjectItemCaseSensitive(root, path);
    if (whole != NULL)
      return whole;
  }
  const cJSON *cur = root;
  const char *p = path;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n == 0)
      return NULL;
    const cJSON *next = NULL;
    if (cJSON_IsArray(cur) && all_digits(p, n)) {
      if (n > 9)
        return NULL;
      next = cJSON_GetArrayItem(cur, atoi(p));
    } else if (cJSON_IsObject(cur)) {
      for (const cJSON *c = cur->child; c != NULL; c = c->next)
        if (c->string != NULL && strlen(c->string) == n &&
            memcmp(c->string, p, n) == 0) {
          next = c;
          break;
        }
    }
    if (next == NULL)
      return NULL;
    cur = next;
    if (dot == NULL)
      return cur;
    p = dot + 1;
  }
}

char *assay__llm_value_text(const cJSON *v) {
  if (cJSON_IsString(v))
    return assay__llm_xstrdup(v->valuestring);
  char *s = cJSON_PrintUnformatted(v);
  if (s == NULL)
    oom();
  /* cJSON allocates with malloc (the default hooks); hand out our copy so
   * every string here is freed the same way. */
  char *d = assay__llm_xstrdup(s);
  cJSON_free(s);
  return d;
}

/* ---- templates ------------------------------------------------------------
 */

/* One field of a template: the name span, trimmed, and the end of "}}". */
struct tmpl_field {
  const char *name;
  size_t name_len;
  const char *end;
};

/*
 * Finds the field that opens at open ("{{"). Returns 0, or ASSAY_EINVAL
 * with *errmsg quoting tmpl.
 */
static int tmpl_field_at(const char *tmpl, const char *open,
                         struct tmpl_field *f, char **errmsg) {
  const char *close = strstr(open + 2, "}}");
  const char *why = NULL;
  const char *name = open + 2;
  const char *name_end = close;
  if (close == NULL) {
    why = "unterminated '{{'";
  } else {
    while (name < name_end && (*name == ' ' || *name == '\t'))
      name++;
    while (name_end > name && (name_end[-1] == ' ' || name_end[-1] == '\t'))
      name_end--;
    if (name == name_end)
      why = "empty field name in '{{}}'";
    for (const char *c = name; why == NULL && c < name_end; c++)
      if (*c == '{' || *c == '}' || *c == '\n' || *c == '\r')
        why = "unterminated '{{'";
  }
  if (why != NULL) {
    char *q = assay__llm_quote(tmpl, strlen(tmpl), 80);
    int err = llm_fail(errmsg, ASSAY_EINVAL,
                       "%s at offset %zu in template '%s'; write fields as "
                       "{{name}} (a name holds no brace or line break)",
                       why, (size_t)(open - tmpl), q);
    free(q);
    return err;
  }
  f->name = name;
  f->name_len = (size_t)(name_end - name);
  f->end = close + 2;
  return 0;
}

int assay__llm_template_check(const char *tmpl, char **errmsg) {
  const char *p = tmpl;
  const char *open;
  while ((open = strstr(p, "{{")) != NULL) {
    struct tmpl_field f;
    int err = tmpl_field_at(tmpl, open, &f, errmsg);
    if (err != 0)
      return err;
    p = f.end;
  }
  return 0;
}

char *assay__llm_template_single(const char *tmpl) {
  struct tmpl_field f;
  if (strncmp(tmpl, "{{", 2) != 0 || tmpl_field_at(tmpl, tmpl, &f, NULL) != 0 ||
      *f.end != '\0')
    return NULL;
  char *name = assay__llm_xmalloc(f.name_len + 1);
  memcpy(name, f.name, f.name_len);
  name[f.name_len] = '\0';
  return name;
}

int assay__llm_template_fields(const char *tmpl,
                               int (*fn)(void *arg, const char *name),
                               void *arg) {
  const char *p = tmpl;
  const char *open;
  while ((open = strstr(p, "{{")) != NULL) {
    struct tmpl_field f;
    if (tmpl_field_at(tmpl, open, &f, NULL) != 0)
      return ASSAY_EINVAL;
    char *name = assay__llm_xmalloc(f.name_len + 1);
    memcpy(name, f.name, f.name_len);
    name[f.name_len] = '\0';
    int rc = fn(arg, name);
    free(name);
    if (rc != 0)
      return rc;
    p = f.end;
  }
  return 0;
}

int assay__llm_template_expand(const char *tmpl, assay__llm_field_fn fn,
                               void *arg, char **out, char **errmsg) {
  struct assay__llm_buf b = {0};
  const char *p = tmpl;
  const char *open;
  while ((open = strstr(p, "{{")) != NULL) {
    struct tmpl_field f;
    int err = tmpl_field_at(tmpl, open, &f, errmsg);
    if (err != 0) {
      assay__llm_buf_release(&b);
      return err;
    }
    assay__llm_buf_add(&b, p, (size_t)(open - p));
    char *name = assay__llm_xmalloc(f.name_len + 1);
    memcpy(name, f.name, f.name_len);
    name[f.name_len] = '\0';
    err = fn(arg, name, &b, errmsg);
    free(name);
    if (err != 0) {
      assay__llm_buf_release(&b);
      return err;
    }
    p = f.end;
  }
  assay__llm_buf_adds(&b, p);
  *out = assay__llm_buf_take(&b);
  return 0;
}

struct render_ctx {
  const char *tmpl;
  const cJSON *item;
};

/* "a, b, c" (12 at most, then "..."): the fields a template could have
 * used instead, for the message about one the item lacks. Owned. */
static int render_field(void *arg, const char *name, struct assay__llm_buf *out,
                        char **errmsg) {
  struct render_ctx *ctx = arg;
  const cJSON *v = assay__llm_json_path(ctx->item, name);
  if (v == NULL) {
    char *q = assay__llm_quote(ctx->tmpl, strlen(ctx->tmpl), 80);
    char *have = assay_json_keys(ctx->item, "no fields");
    int err = llm_fail(errmsg, ASSAY_EBAD_INPUT,
                       "the item has no field '%s' used by template '%s' "
                       "(its fields: %s); add it to the dataset or change the "
                       "template",
                       name, q, have ? have : "?");
    free(have);
    free(q);
    return err;
  }
  char *text = assay__llm_value_text(v);
  assay__llm_buf_adds(out, text);
  free(text);
  return 0;
}

int assay__llm_template_render(const char *tmpl, const cJSON *item, char **out,
                               char **errmsg) {
  struct render_ctx ctx = {tmpl, item};
  return assay__llm_template_expand(tmpl, render_field, &ctx, out, errmsg);
}

/* ---- endpoint --------------------------------------------------------------
 */

int assay__llm_is_openai_url(const char *url) {
  const char *h = url;
  if (strncmp(h, "https://", 8) == 0)
    h += 8;
  else if (strncmp(h, "http://", 7) == 0)
    h += 7;
  size_t n = strcspn(h, ":/?#");
  static const char openai[] = "api.openai.com";
  return n == sizeof openai - 1 && strncasecmp(h, openai, n) == 0;
}

char *assay__llm_chat_url(const char *base) {
  static const char suffix[] = "/chat/completions";
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/')
    n--;
  size_t sn = sizeof suffix - 1;
  if (n >= sn && memcmp(base + n - sn, suffix, sn) == 0)
    sn = 0;
  char *url = assay__llm_xmalloc(n + sn + 1);
  memcpy(url, base, n);
  memcpy(url + n, suffix, sn);
  url[n + sn] = '\0';
  return url;
}

/* Whether s is usable in a header: no control characters but tab. */
static int header_safe(const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c; c++)
    if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
      return 0;
  return 1;
}

/* An HTTP token (a header name). */
static int header_name_ok(const char *s) {
  if (*s == '\0')
    return 0;
  for (const unsigned char *c = (const unsigned char *)s; *c; c++)
    if (!isalnum(*c) && strchr("!#$%&'*+-.^_`|~", *c) == NULL)
      return 0;
  return 1;
}

static void ep_push(struct assay__llm_endpoint *ep, char *header) {
  ep->headers =
      assay__llm_xrealloc(ep->headers, (ep->n_headers + 2) * sizeof(char *));
  ep->headers[ep->n_headers++] = header;
  ep->headers[ep->n_headers] = NULL;
}

/* Overwrites secret bytes in a way the compiler may not drop. */
static void wipe(char *s) {
  volatile char *v = s;
  while (*v)
    *v++ = '\0';
}

void assay__llm_endpoint_release(struct assay__llm_endpoint *ep) {
  for (size_t i = 0; i < ep->n_headers; i++) {
    wipe(ep->headers[i]);
    free(ep->headers[i]);
  }
  free(ep->headers);
  free(ep->url);
  free(ep->model);
  memset(ep, 0, sizeof *ep);
}

int assay__llm_endpoint_init(struct assay__llm_endpoint *ep,
                             const cJSON *config, const struct assay_host *host,
                             const char *default_model, const char *who,
                             char **errmsg) {
  int err = 0;
  memset(ep, 0, sizeof *ep);
  ep->host = host;

  const char *base = host->opt_string(config, "base_url", NULL);
  const char *base_from = "option base_url";
  if (base == NULL || *base == '\0') {
    base = getenv("OPENAI_BASE_URL");
    base_from = "$OPENAI_BASE_URL";
  }
  if (base == NULL || *base == '\0') {
    base = ASSAY__LLM_OPENAI_URL;
    base_from = "the default base_url";
  }
  if ((strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) ||
      !header_safe(base) || strchr(base, ' ') != NULL) {
    err = llm_fail(errmsg, ASSAY_ECONFIG,
                   "%s: %s '%s' is not an http:// or https:// URL; give one "
                   "like https://api.openai.com/v1",
                   who, base_from, base);
    goto fail;
  }
  ep->url = assay__llm_chat_url(base);

  const char *model = host->opt_string(config, "model", default_model);
  if (model == NULL || *model == '\0') {
    err = llm_fail(errmsg, ASSAY_ECONFIG,
                   "%s: option 'model' is empty; give the model name the "
                   "server expects (--opt model=NAME)",
                   who);
    goto fail;
  }
  ep->model = assay__llm_xstrdup(model);

  ep_push(ep, assay__llm_xstrdup("Content-Type: application/json"));
  int user_auth = 0;
  const cJSON *headers = cJSON_GetObjectItemCaseSensitive(config, "headers");
  if (headers != NULL && !cJSON_IsNull(headers)) {
    if (!cJSON_IsObject(headers)) {
      err = llm_fail(errmsg, ASSAY_ECONFIG,
                     "%s: option 'headers' must be a JSON object of strings, "
                     "like {\"X-Team\": \"eval\"}",
                     who);
      goto fail;
    }
    for (const cJSON *h = headers->child; h != NULL; h = h->next) {
      if (!header_name_ok(h->string)) {
        err = llm_fail(errmsg, ASSAY_ECONFIG,
                       "%s: option 'headers': '%s' is not a valid header name",
                       who, h->string);
        goto fail;
      }
      if (!cJSON_IsString(h) && !cJSON_IsNumber(h)) {
        err = llm_fail(errmsg, ASSAY_ECONFIG,
                       "%s: option 'headers': the value of '%s' must be a "
                       "string",
                       who, h->string);
        goto fail;
      }
      char *value = assay__llm_value_text(h);
      if (!header_safe(value)) {
        free(value);
        err = llm_fail(errmsg, ASSAY_ECONFIG,
                       "%s: option 'headers': the value of '%s' holds a "
                       "control character or line break",
                       who, h->string);
        goto fail;
      }
      if (strcasecmp(h->string, "Content-Type") == 0) {
        free(ep->headers[0]);
        ep->headers[0] = assay__llm_format("Content-Type: %s", value);
      } else {
        if (strcasecmp(h->string, "Authorization") == 0)
          user_auth = 1;
        ep_push(ep, assay__llm_format("%s: %s", h->string, value));
      }
      wipe(value);
      free(value);
    }
  }

  const char *key_env =
      host->opt_string(config, "api_key_env", "OPENAI_API_KEY");
  const char *key =
      (key_env != NULL && *key_env != '\0') ? getenv(key_env) : NULL;
  if (user_auth) {
    /* The user's own Authorization header wins; the key is not needed. */
  } else if (key != NULL && *key != '\0') {
    if (!header_safe(key)) {
      /* Never quote the key itself. */
      err = llm_fail(errmsg, ASSAY_ECONFIG,
                     "%s: the API key in $%s holds a control character or "
                     "line break; fix the variable",
                     who, key_env);
      goto fail;
    }
    ep_push(ep, assay__llm_format("Authorization: Bearer %s", key));
  } else if (assay__llm_is_openai_url(ep->url)) {
    err = llm_fail(errmsg, ASSAY_ECONFIG,
                   "%s: no API key for %s: the environment variable '%s' is "
                   "not set; export it, set api_key_env to the variable that "
                   "holds the key, or point base_url at another server",
                   who, ASSAY__LLM_OPENAI_URL,
                   key_env && *key_env ? key_env : "(api_key_env is empty)");
    goto fail;
  }
  return 0;
fail:
  assay__llm_endpoint_release(ep);
  return err;
}

/* ---- chat responses --------------------------------------------------------
 */

/* Parses exactly len bytes as one JSON value: cJSON stops after the first
 * value, so anything but white space after it makes the text invalid. */
static cJSON *parse_exact(const char *text, size_t len) {
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (v == NULL)
    return NULL;
  for (const char *p = end; p != NULL && p < text + len; p++)
    if (!isspace((unsigned char)*p)) {
      cJSON_Delete(v);
      return NULL;
    }
  return v;
}

void assay__llm_reply_release(struct assay__llm_reply *r) {
  cJSON_Delete(r->json);
  memset(r, 0, sizeof *r);
}

static int reply_fail(char **errmsg, const char *why, const char *body,
                      size_t len) {
  char *q = assay__llm_quote(body, len, ASSAY__LLM_QUOTE_MAX);
  int err = llm_fail(errmsg, ASSAY_EERROR, "chat completion: %s: '%s'", why, q);
  free(q);
  return err;
}

/* Why a 2xx body is not the JSON object of a completion, for the error. */
static const char *not_json_why(const char *body, size_t len) {
  size_t i = 0;
  while (i < len && isspace((unsigned char)body[i]))
    i++;
  if (i == len)
    return "the response is empty, not a JSON object";
  if (body[i] == '<')
    return "the response is an HTML page, not JSON (from a proxy, or a "
           "base_url that is not the API's?)";
  cJSON *v = cJSON_ParseWithLengthOpts(body, len, NULL, 0);
  if (v != NULL) {
    int obj = cJSON_IsObject(v);
    cJSON_Delete(v);
    return obj ? "the response has more after its JSON object"
               : "the response is JSON but not an object";
  }
  /* Invalid: say "cut short" when a string or bracket is still open at the
   * end, as in a body a proxy or a dropped stream truncated. */
  int depth = 0, in_str = 0;
  for (; i < len; i++) {
    char ch = body[i];
    if (in_str) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '{' || ch == '[') {
      depth++;
    } else if (ch == '}' || ch == ']') {
      depth--;
    }
  }
  return in_str || depth > 0 ? "the response ends inside its JSON (cut short?)"
                             : "the response is not valid JSON";
}

int assay__llm_reply_parse(struct assay__llm_reply *r, const char *body,
                           size_t len, char **errmsg) {
  memset(r, 0, sizeof *r);
  cJSON *json = parse_exact(body, len);
  if (json == NULL || !cJSON_IsObject(json)) {
    cJSON_Delete(json);
    return reply_fail(errmsg, not_json_why(body, len), body, len);
  }
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(json, "choices");
  const cJSON *first = cJSON_IsArray(choices) ? choices->child : NULL;
  if (first == NULL) {
    /* Some proxies answer 200 with an error object. */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(json, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    int err = reply_fail(errmsg,
                         cJSON_IsString(m) ? "the response is an error, not a "
                                             "completion"
                                           : "the response has no choices",
                         body, len);
    cJSON_Delete(json);
    return err;
  }
  cJSON *msg = cJSON_GetObjectItemCaseSensitive(first, "message");
  cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (!cJSON_IsString(content)) {
    const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    int err = reply_fail(errmsg,
                         cJSON_IsString(refusal)
                             ? "the model refused (message.refusal set, no "
                               "content)"
                             : "choices[0].message.content is not a string",
                         body, len);
    cJSON_Delete(json);
    return err;
  }
  r->json = json;
  r->message = msg;
  r->content_item = content;
  r->content = content->valuestring;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(json, "model");
  r->model = cJSON_IsString(model) ? model->valuestring : NULL;
  const cJSON *fr = cJSON_GetObjectItemCaseSensitive(first, "finish_reason");
  r->finish_reason = cJSON_IsString(fr) ? fr->valuestring : NULL;
  cJSON *usage = cJSON_GetObjectItemCaseSensitive(json, "usage");
  r->usage = cJSON_IsObject(usage) ? usage : NULL;
  return 0;
}

/* One request in flight: found again in the HTTP callback. */
struct llm_send {
  const struct assay__llm_endpoint *ep;
  assay_call call;
  assay__llm_reply_fn done;
  void *arg;
};

static void chat_on_response(const struct assay_http_response *res, void *arg) {
  struct llm_send *s = arg;
  const struct assay_host *host = s->ep->host;
  if (res->cause == ASSAY_HTTP_CANCELLED) {
    /* The host abandoned the call already (its timeout, or shutdown):
     * nobody waits for a completion. */
  } else if (res->cause != ASSAY_HTTP_OK || res->status < 200 ||
             res->status > 299) {
    host->http_fail(s->call, res, "chat completion");
  } else {
    struct assay__llm_reply reply;
    char *err = NULL;
    if (assay__llm_reply_parse(&reply, res->body, res->body_len, &err) != 0) {
      host->fail(s->call, ASSAY_FAIL_ERROR, -1, "%s", err);
      free(err);
    } else {
      s->done(s->arg, s->call, &reply);
      assay__llm_reply_release(&reply);
    }
  }
  free(s);
}

int assay__llm_chat_send(const struct assay__llm_endpoint *ep, assay_call call,
                         const char *body, assay__llm_reply_fn done,
                         void *arg) {
  const struct assay_host *host = ep->host;
  struct llm_send *s = assay__llm_xmalloc(sizeof *s);
  s->ep = ep;
  s->call = call;
  s->done = done;
  s->arg = arg;
  struct assay_http_request req;
  memset(&req, 0, sizeof req);
  req.size = sizeof req;
  req.method = "POST";
  req.url = ep->url;
  req.headers = (const char *const *)ep->headers;
  req.body = body;
  req.body_len = strlen(body);
  req.timeout_ms = 0;
  char *err = NULL;
  if (host->http_request(call, &req, chat_on_response, s, &err) != 0) {
    host->fail(call, ASSAY_FAIL_ERROR, -1, "chat completion: %s",
               err ? err : "the request could not be started");
    if (err != NULL)
      host->dealloc(err);
    free(s);
    return ASSAY_EERROR;
  }
  return 0;
}

/* ---- judges: delimiting
 * ------------------------------------------------------ */

static uint64_t fnv1a64(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* Case-insensitive search of an ASCII needle in a haystack. */
static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = hay; *p; p++) {
    if (tolower((unsigned char)*p) != tolower((unsigned char)needle[0]))
      continue;
    if (strncasecmp(p, needle, n) == 0)
      return 1;
  }
  return 0;
}

void assay__llm_nonce_pick(uint64_t seed, const char *const *texts, size_t n,
                           char out[17]) {
  uint64_t h = seed;
  for (;;) {
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    size_t i = 0;
    while (i < n && (texts[i] == NULL || !contains_nocase(texts[i], out)))
      i++;
    if (i == n)
      return;
    /* A text holds this candidate: step to an unrelated one. */
    h = fnv1a64(h ^ 0x9e3779b97f4a7c15ULL, out, 16);
  }
}

void assay__llm_nonce(const char *const *texts, size_t n, char out[17]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    if (texts[i] != NULL)
      h = fnv1a64(h, texts[i], strlen(texts[i]));
    h = fnv1a64(h, "\xff", 1); /* a separator no UTF-8 text holds */
  }
  assay__llm_nonce_pick(h, texts, n, out);
}

void assay__llm_delimit(struct assay__llm_buf *out, const char *name,
                        const char *nonce, const char *text) {
  struct assay__llm_buf tag = {0};
  for (const char *c = name; *c; c++) {
    char u = (char)toupper((unsigned char)*c);
    assay__llm_buf_add(&tag, &u, 1);
  }
  assay__llm_buf_adds(out, "<<<BEGIN ");
  assay__llm_buf_adds(out, tag.data);
  assay__llm_buf_adds(out, " ");
  assay__llm_buf_adds(out, nonce);
  assay__llm_buf_adds(out, ">>>\n");
  assay__llm_buf_adds(out, text);
  size_t n = strlen(text);
  if (n == 0 || text[n - 1] != '\n')
    assay__llm_buf_adds(out, "\n");
  assay__llm_buf_adds(out, "<<<END ");
  assay__llm_buf_adds(out, tag.data);
  assay__llm_buf_adds(out, " ");
  assay__llm_buf_adds(out, nonce);
  assay__llm_buf_adds(out, ">>>");
  assay__llm_buf_release(&tag);
}

/* ---- judges: reply parsing ------------------------------------------------
 */

static int judge_fail(char **errmsg, const char *why, const char *reply) {
  char *q = assay__llm_quote(reply, strlen(reply), ASSAY__LLM_QUOTE_MAX);
  int err = llm_fail(errmsg, ASSAY_EERROR, "judge reply %s: '%s'", why, q);
  free(q);
  return err;
}

int assay__llm_judge_parse(const char *reply, double max, double *score,
                           char **reason, char **errmsg) {
  *reason = NULL;
  const char *p = reply;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '\0')
    return llm_fail(errmsg, ASSAY_EERROR,
                    "judge reply is empty: expected a JSON object like "
                    "{\"score\": ..., \"reason\": \"...\"}");

  cJSON *obj = parse_exact(reply, strlen(reply));
  if (!cJSON_IsObject(obj)) {
    cJSON_Delete(obj);
    obj = NULL;
    const char *first = strchr(reply, '{');
    const char *last = strrchr(reply, '}');
    if (first != NULL && last != NULL && last > first) {
      obj = parse_exact(first, (size_t)(last - first) + 1);
      if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        obj = NULL;
      }
    }
  }
  if (obj == NULL)
    return judge_fail(errmsg, "holds no JSON object", reply);

  int err = 0;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "score");
  if (s == NULL)
    s = cJSON_GetObjectItem(obj, "score"); /* "Score" is close enough */
  if (s == NULL) {
    err = judge_fail(errmsg, "has no \"score\"", reply);
  } else if (!cJSON_IsNumber(s)) {
    err = judge_fail(errmsg, "has a \"score\" that is not a number", reply);
  } else if (!isfinite(s->valuedouble)) {
    err = judge_fail(errmsg, "has a \"score\" that is not a finite number",
                     reply);
  } else if (s->valuedouble < 0 || s->valuedouble > max) {
    char why[96];
    snprintf(why, sizeof why, "has \"score\" %g, outside the range 0 to %g",
             s->valuedouble, max);
    err = judge_fail(errmsg, why, reply);
  } else {
    *score = s->valuedouble;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "reason");
    if (r == NULL || cJSON_IsNull(r))
      *reason = NULL;
    else if (cJSON_IsString(r))
      *reason = r->valuestring[0] ? assay__llm_xstrdup(r->valuestring) : NULL;
    else
      *reason = assay__llm_value_text(r);
  }
  cJSON_Delete(obj);
  return err;
}

/* ---- judges: prompts
 * ---------------------------------------------------------- */

static int read_file_capped(const char *path, size_t cap, char **text,
                            char **errmsg) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return llm_fail(errmsg, ASSAY_EIO, "cannot open judge prompt '%s': %s",
                    path, strerror(errno));
  struct assay__llm_buf b = {0};
  char chunk[8192];
  size_t n;
  int err = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > cap) {
      err = llm_fail(errmsg, ASSAY_EIO,
                     "judge prompt '%s' is over the limit of %zu bytes", path,
                     cap);
      break;
    }
    assay__llm_buf_add(&b, chunk, n);
  }
  if (err == 0 && ferror(f))
    err = llm_fail(errmsg, ASSAY_EIO, "cannot read judge prompt '%s': %s", path,
                   strerror(errno));
  fclose(f);
  if (err == 0 && (b.len == 0 || memchr(b.data, '\0', b.len) != NULL))
    err = llm_fail(errmsg, ASSAY_EIO,
                   "judge prompt '%s' is empty or not a text file", path);
  if (err != 0) {
    assay__llm_buf_release(&b);
    return err;
  }
  *text = assay__llm_buf_take(&b);
  return 0;
}

int assay__llm_prompt_load(const cJSON *config, const struct assay_host *host,
                           const char *metric, char **text, char **path,
                           char **errmsg) {
  const char *given = host->opt_string(config, "prompt_file", NULL);
  char *p;
  if (given != NULL && *given != '\0')
    p = assay__llm_xstrdup(given);
  else
    p = assay__llm_format("%s/prompts/%s.txt",
                          host->datadir ? host->datadir : ".", metric);
  char *t = NULL;
  int err = read_file_capped(p, ASSAY__LLM_MAX_PROMPT_BYTES, &t, errmsg);
  if (err == 0) {
    char *why = NULL;
    if (assay__llm_template_check(t, &why) != 0) {
      err = llm_fail(errmsg, ASSAY_ECONFIG, "judge prompt '%s': %s", p, why);
      free(why);
      free(t);
    }
  } else if (given == NULL && errmsg != NULL) {
    char *more = assay__llm_format(
        "%s; reinstall assay or give the option prompt_file", *errmsg);
    free(*errmsg);
    *errmsg = more;
  }
  if (err != 0) {
    free(p);
    return err;
  }
  *text = t;
  *path = p;
  return 0;
}

/* ---- judges: the metric
 * --------------------------------------------------------- */

struct llm_judge {
  const struct assay__llm_judge_spec *spec;
  const struct assay_host *host;
  struct assay__llm_endpoint ep;
  char *prompt;
  char *prompt_path;
  cJSON *params;  /* request members besides model and messages */
  cJSON *options; /* option field name -> text */
};

static int name_in(const char *const *list, const char *name) {
  for (; list != NULL && *list != NULL; list++)
    if (strcmp(*list, name) == 0)
      return 1;
  return 0;
}

struct field_check {
  const struct assay__llm_judge_spec *spec;
  const char *bad;
  char *bad_copy;
};

static int check_field(void *arg, const char *name) {
  struct field_check *fc = arg;
  if (name_in(fc->spec->fields, name) || name_in(fc->spec->option_fields, name))
    return 0;
  fc->bad_copy = assay__llm_xstrdup(name);
  return 1;
}

static char *join_names(const struct assay__llm_judge_spec *spec) {
  struct assay__llm_buf b = {0};
  const char *const *lists[2] = {spec->fields, spec->option_fields};
  for (int l = 0; l < 2; l++)
    for (const char *const *n = lists[l]; n != NULL && *n != NULL; n++) {
      if (b.len > 0)
        assay__llm_buf_adds(&b, ", ");
      assay__llm_buf_adds(&b, *n);
    }
  return assay__llm_buf_take(&b);
}

void assay__llm_judge_fini(void *state) {
  struct llm_judge *j = state;
  if (j == NULL)
    return;
  assay__llm_endpoint_release(&j->ep);
  free(j->prompt);
  free(j->prompt_path);
  cJSON_Delete(j->params);
  cJSON_Delete(j->options);
  free(j);
}

/* Hands a message made here to the host, which frees init's errmsg. */
static char *host_msg(const struct assay_host *host, char *msg) {
  char *m = host->format("%s", msg ? msg : "initialisation failed");
  free(msg);
  return m;
}

int assay__llm_judge_init(const struct assay__llm_judge_spec *spec,
                          const cJSON *config, const struct assay_host *host,
                          void **state, char **errmsg) {
  struct llm_judge *j = assay__llm_xmalloc(sizeof *j);
  memset(j, 0, sizeof *j);
  j->spec = spec;
  j->host = host;
  char *msg = NULL;
  int err = assay__llm_endpoint_init(&j->ep, config, host, "gpt-4o-mini",
                                     spec->metric, &msg);
  if (err != 0)
    goto fail;
  err = assay__llm_prompt_load(config, host, spec->metric, &j->prompt,
                               &j->prompt_path, &msg);
  if (err != 0) {
    char *m = assay__llm_format("%s: %s", spec->metric, msg);
    free(msg);
    msg = m;
    goto fail;
  }
  struct field_check fc = {spec, NULL, NULL};
  if (assay__llm_template_fields(j->prompt, check_field, &fc) != 0) {
    char *names = join_names(spec);
    msg = assay__llm_format("%s: judge prompt '%s' uses the field '{{%s}}', "
                            "which this metric does not fill (it fills: %s)",
                            spec->metric, j->prompt_path, fc.bad_copy, names);
    free(names);
    free(fc.bad_copy);
    err = ASSAY_ECONFIG;
    goto fail;
  }

  j->options = cJSON_CreateObject();
  for (const char *const *n = spec->option_fields; n != NULL && *n != NULL;
       n++) {
    const char *v = host->opt_string(config, *n, NULL);
    if (v == NULL || *v == '\0') {
      msg = assay__llm_format("%s: option '%s' is required and must not be "
                              "empty (--opt %s=TEXT)",
                              spec->metric, *n, *n);
      err = ASSAY_ECONFIG;
      goto fail;
    }
    cJSON_AddStringToObject(j->options, *n, v);
  }

  j->params = cJSON_CreateObject();
  cJSON_AddNumberToObject(j->params, "temperature",
                          host->opt_number(config, "temperature", 0));
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(config, "max_tokens");
  if (cJSON_IsNumber(mt)) {
    if (mt->valuedouble < 1) {
      msg = assay__llm_format("%s: option 'max_tokens' must be at least 1",
                              spec->metric);
      err = ASSAY_ECONFIG;
      goto fail;
    }
    cJSON_AddNumberToObject(j->params, "max_tokens", mt->valuedouble);
  }
  if (host->opt_bool(config, "response_format_json", 0)) {
    cJSON *rf = cJSON_AddObjectToObject(j->params, "response_format");
    cJSON_AddStringToObject(rf, "type", "json_object");
  }
  *state = j;
  return 0;
fail:
  assay__llm_judge_fini(j);
  *errmsg = host_msg(host, msg);
  return err ? err : ASSAY_ECONFIG;
}

/* Whether v is a non-empty array of strings (a list of passages). */
static int string_list(const cJSON *v) {
  if (!cJSON_IsArray(v) || v->child == NULL)
    return 0;
  for (const cJSON *e = v->child; e != NULL; e = e->next)
    if (!cJSON_IsString(e))
      return 0;
  return 1;
}

struct judge_render {
  struct llm_judge *j;
  const cJSON *input;
  char nonce[17];
};

static int judge_field(void *arg, const char *name, struct assay__llm_buf *out,
                       char **errmsg) {
  struct judge_render *r = arg;
  if (name_in(r->j->spec->option_fields, name)) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->j->options, name);
    assay__llm_buf_adds(out, cJSON_IsString(v) ? v->valuestring : "");
    return 0;
  }
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->input, name);
  if (v == NULL || cJSON_IsNull(v) || (cJSON_IsArray(v) && v->child == NULL)) {
    /* Our own words, not data: safe outside any block. */
    assay__llm_buf_adds(out, "(none given)");
  } else if (string_list(v)) {
    int i = 1;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
      char label[96];
      snprintf(label, sizeof label, "%s %d", name, i);
      if (i > 1)
        assay__llm_buf_adds(out, "\n");
      assay__llm_delimit(out, label, r->nonce, e->valuestring);
    }
  } else {
    char *text = assay__llm_value_text(v);
    assay__llm_delimit(out, name, r->nonce, text);
    free(text);
  }
  (void)errmsg;
  return 0;
}

int assay__llm_judge_prompt(void *state, const cJSON *input, char **prompt,
                            char **errmsg) {
  struct llm_judge *j = state;
  struct judge_render r = {j, input, {0}};
  /* Every text that goes into a block decides the nonce, and none may
   * hold it. */
  size_t n = 0, cap = 8;
  char **texts = assay__llm_xmalloc(cap * sizeof *texts);
  memset(texts, 0, cap * sizeof *texts);
  for (const char *const *f = j->spec->fields; f != NULL && *f != NULL; f++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, *f);
    if (v == NULL || cJSON_IsNull(v))
      continue;
    const cJSON *e = string_list(v) ? v->child : v;
    for (; e != NULL; e = (e == v) ? NULL : e->next) {
      if (n == cap) {
        cap *= 2;
        texts = assay__llm_xrealloc(texts, cap * sizeof *texts);
      }
      texts[n++] = assay__llm_value_text(e);
    }
  }
  assay__llm_nonce((const char *const *)texts, n, r.nonce);
  for (size_t i = 0; i < n; i++)
    free(texts[i]);
  free(texts);
  return assay__llm_template_expand(j->prompt, judge_field, &r, prompt, errmsg);
}

static void judge_on_reply(void *arg, assay_call call,
                           struct assay__llm_reply *reply) {
  struct llm_judge *j = arg;
  double score = 0;
  char *reason = NULL, *err = NULL;
  if (assay__llm_judge_parse(reply->content, j->spec->max, &score, &reason,
                             &err) != 0) {
    j->host->fail(call, ASSAY_FAIL_ERROR, -1, "%s", err);
    free(err);
    return;
  }
  cJSON *res = cJSON_CreateObject();
  cJSON_AddNumberToObject(res, "value", score / j->spec->max);
  if (reason != NULL)
    cJSON_AddStringToObject(res, "reason", reason);
  else
    cJSON_AddNullToObject(res, "reason");
  free(reason);
  j->host->complete(call, res);
}

int assay__llm_judge_run(void *state, const cJSON *input, assay_call call) {
  struct llm_judge *j = state;
  char *prompt = NULL, *err = NULL;
  if (assay__llm_judge_prompt(j, input, &prompt, &err) != 0) {
    j->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "%s", err);
    free(err);
    return ASSAY_EBAD_INPUT;
  }
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "model", j->ep.model);
  cJSON *messages = cJSON_AddArrayToObject(body, "messages");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "user");
  cJSON_AddStringToObject(m, "content", prompt);
  cJSON_AddItemToArray(messages, m);
  free(prompt);
  for (const cJSON *p = j->params->child; p != NULL; p = p->next)
    cJSON_AddItemToObject(body, p->string, cJSON_Duplicate(p, 1));
  char *text = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (text == NULL) {
    j->host->fail(call, ASSAY_FAIL_ERROR, -1,
                  "%s: cannot build the judge request (out of memory)",
                  j->spec->metric);
    return ASSAY_ENOMEM;
  }
  int rc = assay__llm_chat_send(&j->ep, call, text, judge_on_reply, j);
  cJSON_free(text);
  return rc;
}
