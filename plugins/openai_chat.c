/*
 * openai_chat: an async task that sends each item to an OpenAI-compatible
 * chat completions endpoint (OpenAI, vLLM, llama.cpp's server, Ollama, a
 * LiteLLM proxy, the project's mock server) through the host's HTTP service,
 * and returns {"output": <assistant content>, "model", "finish_reason",
 * "usage"}. The host does retries, timeouts and concurrency; this file only
 * builds requests and reads replies. Options: docs/llm.md.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>
#include <cjson/cJSON.h>

#include "llmlib.h"

#define DEFAULT_MODEL "gpt-4o-mini"
#define DEFAULT_PROMPT "{{input}}"

struct chat {
  const struct assay_host *host;
  struct assay__llm_endpoint ep;
  char *system;     /* NULL: no system message */
  char *prompt;     /* the user message template, or NULL with messages */
  char *field;      /* the prompt's field when it is nothing else, or NULL */
  cJSON *messages;  /* the chat list template, or NULL with prompt */
  cJSON *params;    /* request members besides model and messages */
  int priced;       /* price_in or price_out given */
  double price_in;  /* per million prompt tokens */
  double price_out; /* per million completion tokens */
  /* With prompt, the whole request body is built once: each item only
   * points content (a string reference, whose text cJSON neither copies
   * nor frees) at its rendered prompt. NULL when extra replaced
   * "messages". The body is printed into out, kept between calls (run_async
   * runs on the loop thread only). */
  cJSON *body;
  cJSON *content;
  char *out;
  size_t out_cap;
};

static void chat_fini(void *state) {
  struct chat *c = state;
  if (c == NULL)
    return;
  assay__llm_endpoint_release(&c->ep);
  free(c->system);
  free(c->prompt);
  free(c->field);
  cJSON_Delete(c->messages);
  cJSON_Delete(c->params);
  cJSON_Delete(c->body);
  free(c->out);
  free(c);
}

/* Checks every template of a messages list: an array of objects with a
 * string "role" and a "content" that is a string or an array of parts. */
static char *check_messages(const cJSON *m) {
  if (!cJSON_IsArray(m) || m->child == NULL)
    return assay__llm_xstrdup("option 'messages' must be a non-empty JSON "
                              "array of {\"role\", \"content\"} objects");
  int i = 0;
  for (const cJSON *e = m->child; e != NULL; e = e->next, i++) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsObject(e) || !cJSON_IsString(role) ||
        !(cJSON_IsString(content) || cJSON_IsArray(content)))
      return assay__llm_format("option 'messages': element %d must be an "
                               "object with a string \"role\" and a "
                               "\"content\" string or array",
                               i);
    char *why = NULL;
    if (cJSON_IsString(content) &&
        assay__llm_template_check(content->valuestring, &why) != 0) {
      char *msg =
          assay__llm_format("option 'messages': element %d: %s", i, why);
      free(why);
      return msg;
    }
    for (const cJSON *part = cJSON_IsArray(content) ? content->child : NULL;
         part != NULL; part = part->next) {
      const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(text) &&
          assay__llm_template_check(text->valuestring, &why) != 0) {
        char *msg =
            assay__llm_format("option 'messages': element %d: %s", i, why);
        free(why);
        return msg;
      }
    }
  }
  return NULL;
}

/* A request body: model, messages (list, taken), then the parameters, which
 * replace a member of the same name. */
static cJSON *body_with(const struct chat *c, cJSON *list) {
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "model", c->ep.model);
  cJSON_AddItemToObject(body, "messages", list);
  for (const cJSON *p = c->params->child; p != NULL; p = p->next) {
    cJSON_DeleteItemFromObjectCaseSensitive(body, p->string);
    cJSON_AddItemToObject(body, p->string, cJSON_Duplicate(p, 1));
  }
  return body;
}

/* A new message list: the system message, when there is one. */
static cJSON *messages_start(const struct chat *c) {
  cJSON *list = cJSON_CreateArray();
  if (c->system != NULL) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", c->system);
    cJSON_AddItemToArray(list, s);
  }
  return list;
}

/* The body of every request with prompt; *content is its user message's
 * content, a string reference to "", or NULL when the parameters replaced
 * the messages. */
static cJSON *body_new(const struct chat *c, cJSON **content) {
  cJSON *list = messages_start(c);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddStringToObject(u, "role", "user");
  cJSON *text = cJSON_CreateStringReference("");
  cJSON_AddItemToObject(u, "content", text);
  cJSON_AddItemToArray(list, u);
  *content = cJSON_GetObjectItemCaseSensitive(c->params, "messages") == NULL
                 ? text
                 : NULL;
  return body_with(c, list);
}

static int chat_init(const cJSON *config, const struct assay_host *host,
                     void **state, char **errmsg) {
  struct chat *c = assay__llm_xmalloc(sizeof *c);
  memset(c, 0, sizeof *c);
  c->host = host;
  char *msg = NULL;
  if (assay__llm_endpoint_init(&c->ep, config, host, DEFAULT_MODEL,
                               "openai_chat", &msg) != 0)
    goto fail;

  const char *system = host->opt_string(config, "system", NULL);
  if (system != NULL && *system != '\0')
    c->system = assay__llm_xstrdup(system);

  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(config, "prompt");
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(config, "messages");
  if (prompt != NULL && messages != NULL) {
    msg = assay__llm_xstrdup("openai_chat: give either option 'prompt' or "
                             "option 'messages', not both");
    goto fail;
  }
  char *why = NULL;
  if (messages != NULL) {
    why = check_messages(messages);
    if (why == NULL)
      c->messages = cJSON_Duplicate(messages, 1);
  } else {
    const char *p = host->opt_string(config, "prompt", DEFAULT_PROMPT);
    c->prompt = assay__llm_xstrdup(p);
    if (assay__llm_template_check(c->prompt, &why) != 0) {
      char *m = assay__llm_format("option 'prompt': %s", why);
      free(why);
      why = m;
    }
  }
  if (why != NULL) {
    msg = assay__llm_format("openai_chat: %s", why);
    free(why);
    goto fail;
  }

  c->params = cJSON_CreateObject();
  static const char *const passthrough[] = {"temperature", "max_tokens", "seed",
                                            NULL};
  for (const char *const *n = passthrough; *n != NULL; n++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, *n);
    if (cJSON_IsNumber(v))
      cJSON_AddNumberToObject(c->params, *n, v->valuedouble);
  }
  const cJSON *rf = cJSON_GetObjectItemCaseSensitive(config, "response_format");
  if (rf != NULL && !cJSON_IsNull(rf)) {
    /* A bare type name is the common case: "json_object". */
    if (cJSON_IsString(rf)) {
      cJSON *o = cJSON_AddObjectToObject(c->params, "response_format");
      cJSON_AddStringToObject(o, "type", rf->valuestring);
    } else if (cJSON_IsObject(rf)) {
      cJSON_AddItemToObject(c->params, "response_format",
                            cJSON_Duplicate(rf, 1));
    } else {
      msg = assay__llm_xstrdup("openai_chat: option 'response_format' must be "
                               "an object like {\"type\": \"json_object\"} or "
                               "a type name");
      goto fail;
    }
  }
  const cJSON *extra = cJSON_GetObjectItemCaseSensitive(config, "extra");
  if (extra != NULL && !cJSON_IsNull(extra)) {
    if (!cJSON_IsObject(extra)) {
      msg = assay__llm_xstrdup("openai_chat: option 'extra' must be a JSON "
                               "object of request members, like "
                               "{\"top_p\": 0.9}");
      goto fail;
    }
    /* extra comes last and wins: it is the escape hatch for anything the
     * named options do not cover. */
    for (const cJSON *e = extra->child; e != NULL; e = e->next) {
      cJSON_DeleteItemFromObjectCaseSensitive(c->params, e->string);
      cJSON_AddItemToObject(c->params, e->string, cJSON_Duplicate(e, 1));
    }
  }

  if (c->prompt != NULL) {
    c->field = assay__llm_template_single(c->prompt);
    c->body = body_new(c, &c->content);
  }

  const cJSON *pin = cJSON_GetObjectItemCaseSensitive(config, "price_in");
  const cJSON *pout = cJSON_GetObjectItemCaseSensitive(config, "price_out");
  c->priced = cJSON_IsNumber(pin) || cJSON_IsNumber(pout);
  c->price_in = cJSON_IsNumber(pin) ? pin->valuedouble : 0;
  c->price_out = cJSON_IsNumber(pout) ? pout->valuedouble : 0;
  if (c->price_in < 0 || c->price_out < 0) {
    msg = assay__llm_xstrdup("openai_chat: price_in and price_out must not be "
                             "negative (they are per million tokens)");
    goto fail;
  }
  *state = c;
  return 0;
fail:
  chat_fini(c);
  *errmsg = host->format("%s", msg ? msg : "openai_chat: init failed");
  free(msg);
  return ASSAY_ECONFIG;
}

/* Renders the string templates of one message (a copy, modified). */
static int render_message(cJSON *m, const cJSON *item, char **errmsg) {
  cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
  if (cJSON_IsString(content)) {
    char *text = NULL;
    int err =
        assay__llm_template_render(content->valuestring, item, &text, errmsg);
    if (err != 0)
      return err;
    cJSON_ReplaceItemInObjectCaseSensitive(m, "content",
                                           cJSON_CreateString(text));
    free(text);
    return 0;
  }
  for (cJSON *part = cJSON_IsArray(content) ? content->child : NULL;
       part != NULL; part = part->next) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (!cJSON_IsString(t))
      continue;
    char *text = NULL;
    int err = assay__llm_template_render(t->valuestring, item, &text, errmsg);
    if (err != 0)
      return err;
    cJSON_ReplaceItemInObjectCaseSensitive(part, "text",
                                           cJSON_CreateString(text));
    free(text);
  }
  return 0;
}

/* The messages for one item from the messages template (owned). */
static int build_messages(const struct chat *c, const cJSON *item, cJSON **out,
                          char **errmsg) {
  cJSON *list = messages_start(c);
  for (const cJSON *m = c->messages->child; m != NULL; m = m->next) {
    cJSON *copy = cJSON_Duplicate(m, 1);
    cJSON_AddItemToArray(list, copy);
    int err = render_message(copy, item, errmsg);
    if (err != 0) {
      cJSON_Delete(list);
      return err;
    }
  }
  *out = list;
  return 0;
}

/* Prints body into c->out, grown as needed; returns 0 or -1. */
static int print_body(struct chat *c, cJSON *body) {
  if (c->out == NULL) {
    c->out_cap = 4096;
    c->out = assay__llm_xmalloc(c->out_cap);
  }
  /* cJSON wants a few bytes more than it prints; a failed try means the
   * buffer was too small. */
  while (!cJSON_PrintPreallocated(body, c->out, (int)c->out_cap, 0)) {
    if (c->out_cap > (size_t)INT_MAX / 2)
      return -1;
    c->out_cap *= 2;
    free(c->out);
    c->out = assay__llm_xmalloc(c->out_cap);
  }
  return 0;
}

static double usage_number(const cJSON *usage, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void chat_on_reply(void *arg, assay_call call,
                          struct assay__llm_reply *reply) {
  struct chat *c = arg;
  cJSON *out = cJSON_CreateObject();
  /* The reply's own nodes move into the output: no copies. */
  cJSON_AddItemToObject(
      out, "output",
      cJSON_DetachItemViaPointer(reply->message, reply->content_item));
  reply->content_item = NULL;
  cJSON_AddStringToObject(out, "model",
                          reply->model ? reply->model : c->ep.model);
  if (reply->finish_reason != NULL)
    cJSON_AddStringToObject(out, "finish_reason", reply->finish_reason);
  else
    cJSON_AddNullToObject(out, "finish_reason");
  if (reply->usage != NULL) {
    cJSON *usage = cJSON_DetachItemViaPointer(reply->json, reply->usage);
    reply->usage = NULL;
    if (c->priced) {
      double cost =
          usage_number(usage, "prompt_tokens") * c->price_in / 1e6 +
          usage_number(usage, "completion_tokens") * c->price_out / 1e6;
      cJSON_DeleteItemFromObjectCaseSensitive(usage, "cost");
      cJSON_AddNumberToObject(usage, "cost", cost);
    }
    cJSON_AddItemToObject(out, "usage", usage);
  } else {
    cJSON_AddNullToObject(out, "usage");
  }
  c->host->complete(call, out);
}

static int chat_run(void *state, const cJSON *input, assay_call call) {
  struct chat *c = state;
  char *err = NULL, *owned = NULL;
  int rc = 0;
  if (c->prompt != NULL) {
    /* A prompt that is one string field is that string, as it is. */
    const cJSON *v = c->field ? assay__llm_json_path(input, c->field) : NULL;
    const char *text = cJSON_IsString(v) ? v->valuestring : NULL;
    if (text == NULL) {
      rc = assay__llm_template_render(c->prompt, input, &owned, &err);
      text = owned;
    }
    if (rc == 0) {
      if (c->content != NULL)
        c->content->valuestring = (char *)text;
      rc = print_body(c, c->body);
      if (c->content != NULL)
        c->content->valuestring = (char *)"";
    }
    free(owned);
  } else {
    cJSON *messages = NULL;
    rc = build_messages(c, input, &messages, &err);
    if (rc == 0) {
      cJSON *body = body_with(c, messages);
      rc = print_body(c, body);
      cJSON_Delete(body);
    }
  }
  if (err != NULL) {
    c->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "%s", err);
    free(err);
    return ASSAY_EBAD_INPUT;
  }
  if (rc != 0) {
    c->host->fail(call, ASSAY_FAIL_ERROR, -1,
                  "openai_chat: cannot build the request (out of memory)");
    return ASSAY_ENOMEM;
  }
  return assay__llm_chat_send(&c->ep, call, c->out, chat_on_reply, c);
}

static const struct assay_option chat_options[] = {
    {"base_url", ASSAY_OPT_STRING, NULL,
     "endpoint base URL (default: $OPENAI_BASE_URL, else "
     "https://api.openai.com/v1)",
     0},
    {"model", ASSAY_OPT_STRING, "\"" DEFAULT_MODEL "\"", "model name", 0},
    {"api_key_env", ASSAY_OPT_STRING, "\"OPENAI_API_KEY\"",
     "name of the environment variable holding the API key", 0},
    {"system", ASSAY_OPT_STRING, NULL, "system message (sent as is)", 0},
    {"prompt", ASSAY_OPT_STRING, NULL,
     "user message template with {{field}} from the item (default "
     "\"{{input}}\")",
     0},
    {"messages", ASSAY_OPT_JSON, NULL,
     "chat list [{\"role\",\"content\"}] whose contents are templates "
     "(instead of prompt)",
     0},
    {"temperature", ASSAY_OPT_NUMBER, NULL, "sampling temperature", 0},
    {"max_tokens", ASSAY_OPT_INTEGER, NULL, "cap on completion tokens", 0},
    {"seed", ASSAY_OPT_INTEGER, NULL, "sampling seed", 0},
    {"response_format", ASSAY_OPT_JSON, NULL,
     "{\"type\": \"json_object\"} or a JSON schema format, or a type name", 0},
    {"extra", ASSAY_OPT_JSON, NULL,
     "object merged into the request body last (e.g. {\"top_p\": 0.9})", 0},
    {"headers", ASSAY_OPT_JSON, NULL,
     "object of extra HTTP headers {\"Name\": \"value\"}", 0},
    {"price_in", ASSAY_OPT_NUMBER, NULL,
     "price per million prompt tokens: adds usage.cost", 0},
    {"price_out", ASSAY_OPT_NUMBER, NULL,
     "price per million completion tokens: adds usage.cost", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component chat_component = {
    ASSAY_COMPONENT_SIZE,
    ASSAY_KIND_TASK,
    "openai_chat",
    "call an OpenAI-compatible chat completions endpoint",
    chat_options,
    NULL,
    0,
    chat_init,
    chat_fini,
    NULL,
    chat_run,
    {0}};

static const struct assay_component *const chat_components[] = {&chat_component,
                                                                NULL};

static const struct assay_plugin chat_plugin = {
    ASSAY_PLUGIN_HEADER, "openai_chat",
    PACKAGE_VERSION,     "OpenAI-compatible chat completions task",
    chat_components,     {0}};

ASSAY_PLUGIN(openai_chat, chat_plugin)
