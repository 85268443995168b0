/*
 * Fuzz targets for the text handling of plugins/llmlib.c, which meets
 * whatever a model or a dataset sends:
 *   judge_reply  the judge-reply parser, the prompt delimiting nonce and the
 *                message quoter; first byte picks the score range
 *   chat_reply   the chat completion parser over an exact-size body
 *   template     the {{field}} template checker, field lister, expander and
 *                renderer; the input is TEMPLATE NUL ITEM-JSON
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "llmlib.h"
#include "util.h"

/* A NUL-terminated copy of the input (stops at an embedded NUL). */
static char *text_of(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  FUZZ_CHECK(s != NULL, "out of memory");
  if (size > 0)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* assay__llm_quote keeps its promises: bounded, one line, never a cut
 * UTF-8 sequence when the input was valid. */
static void check_quote(const char *s, size_t len, size_t max) {
  char *q = assay__llm_quote(s, len, max);
  size_t n = strlen(q);
  FUZZ_CHECK(n <= max + 3, "quote of %zu bytes with max %zu", n, max);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK((unsigned char)q[i] >= 0x20 && q[i] != 0x7f,
               "quote holds control byte 0x%02x", (unsigned char)q[i]);
  if (assay__utf8_valid(s, len, NULL))
    FUZZ_CHECK(assay__utf8_valid(q, n, NULL),
               "quote of valid UTF-8 is not valid UTF-8: '%s'", q);
  free(q);
}

int assay__fuzz_judge_reply(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  static const double maxes[4] = {1, 10, 5, 100};
  double max = maxes[data[0] & 3];
  char *reply = text_of(data + 1, size - 1);

  double score = -1;
  char *reason = (char *)"unset", *err = NULL;
  int rc = assay__llm_judge_parse(reply, max, &score, &reason, &err);
  if (rc == 0) {
    FUZZ_CHECK(err == NULL, "errmsg set on success: %s", err);
    FUZZ_CHECK(isfinite(score) && score >= 0 && score <= max,
               "score %g accepted outside [0, %g]", score, max);
    FUZZ_CHECK(reason == NULL || *reason != '\0', "empty reason not NULL");
    free(reason);
  } else {
    FUZZ_CHECK(rc == ASSAY_EERROR, "judge parse returned %d", rc);
    FUZZ_CHECK(err != NULL && *err != '\0', "judge parse failed silently");
    FUZZ_CHECK(reason == NULL, "reason set on failure");
    free(err);
  }

  /* The delimiting nonce never occurs in the text it delimits. */
  const char *texts[2] = {reply, NULL};
  char nonce[17];
  assay__llm_nonce(texts, 2, nonce);
  FUZZ_CHECK(strlen(nonce) == 16 && strspn(nonce, "0123456789abcdef") == 16,
             "nonce '%s' is not 16 hex digits", nonce);
  FUZZ_CHECK(strcasestr(reply, nonce) == NULL, "nonce %s occurs in the text",
             nonce);
  struct assay__llm_buf b = {0};
  assay__llm_delimit(&b, "answer", nonce, reply);
  char *block = assay__llm_buf_take(&b);
  /* The closing line occurs once, at the end: the text cannot forge it. */
  char closing[40];
  snprintf(closing, sizeof closing, "<<<END ANSWER %s>>>", nonce);
  char *end = strstr(block, closing);
  FUZZ_CHECK(end != NULL && end + strlen(closing) == block + strlen(block),
             "the delimited text closes its own block");
  free(block);

  check_quote(reply, strlen(reply), ASSAY__LLM_QUOTE_MAX);
  check_quote(reply, strlen(reply), data[0] >> 2);
  free(reply);
  return 0;
}

int assay__fuzz_chat_reply(const uint8_t *data, size_t size) {
  /* An exact-size copy: the parser must not read past len. */
  char *body = malloc(size ? size : 1);
  FUZZ_CHECK(body != NULL, "out of memory");
  if (size > 0)
    memcpy(body, data, size);
  struct assay__llm_reply r;
  char *err = NULL;
  int rc = assay__llm_reply_parse(&r, body, size, &err);
  if (rc == 0) {
    FUZZ_CHECK(err == NULL, "errmsg set on success: %s", err);
    FUZZ_CHECK(cJSON_IsObject(r.json) && r.content != NULL,
               "a parsed reply has no object or no content");
    /* Walked member by member: a path lookup would also match a key that
     * is literally "choices.0.message.content". */
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "choices"), 0),
            "message"),
        "content");
    FUZZ_CHECK(cJSON_IsString(c) && c->valuestring == r.content,
               "content is not choices[0].message.content");
    assay__llm_reply_release(&r);
  } else {
    FUZZ_CHECK(rc == ASSAY_EERROR, "reply parse returned %d", rc);
    FUZZ_CHECK(err != NULL && *err != '\0', "reply parse failed silently");
    FUZZ_CHECK(r.json == NULL, "a failed parse kept its JSON");
    free(err);
  }
  free(body);
  return 0;
}

/* ---- templates ------------------------------------------------------------ */

struct names {
  char **v;
  size_t n;
  size_t seen; /* fields expand() asked for */
};

static int collect(void *arg, const char *name) {
  struct names *ns = arg;
  ns->v = realloc(ns->v, (ns->n + 1) * sizeof *ns->v);
  FUZZ_CHECK(ns->v != NULL, "out of memory");
  ns->v[ns->n++] = assay__xstrdup(name);
  return 0;
}

/* Expands every field to nothing, checking it is the field listed next. */
static int empty_field(void *arg, const char *name, struct assay__llm_buf *out,
                       char **errmsg) {
  struct names *ns = arg;
  FUZZ_CHECK(ns->seen < ns->n, "expand asked for more fields than listed");
  FUZZ_CHECK(strcmp(ns->v[ns->seen], name) == 0,
             "field %zu: listed as '%s', expanded as '%s'", ns->seen,
             ns->v[ns->seen], name);
  ns->seen++;
  return 0;
}

int assay__fuzz_template(const uint8_t *data, size_t size) {
  char *tmpl = text_of(data, size);
  size_t tlen = strlen(tmpl);
  cJSON *item = NULL;
  if (tlen < size) {
    const char *rest = (const char *)data + tlen + 1;
    size_t rlen = size - tlen - 1;
    item = cJSON_ParseWithLength(rest, rlen);
    if (!cJSON_IsObject(item)) {
      cJSON_Delete(item);
      item = NULL;
    }
  }
  if (item == NULL)
    item = cJSON_Parse("{\"input\":\"q\",\"a\":{\"b\":[1,\"two\",{\"c\":null}]}}");

  char *err = NULL, *out = NULL;
  int valid = assay__llm_template_check(tmpl, &err);
  if (valid != 0) {
    FUZZ_CHECK(valid == ASSAY_EINVAL && err != NULL,
               "template check returned %d", valid);
    free(err);
    err = NULL;
    /* A field before the syntax error may be missing first: either
     * error will do, but it must fail. */
    int rc = assay__llm_template_render(tmpl, item, &out, &err);
    FUZZ_CHECK((rc == ASSAY_EINVAL || rc == ASSAY_EBAD_INPUT) && err != NULL &&
                   out == NULL,
               "render of an invalid template returned %d", rc);
    free(err);
    goto done;
  }
  FUZZ_CHECK(err == NULL, "errmsg set on a valid template");

  struct names ns = {0};
  FUZZ_CHECK(assay__llm_template_fields(tmpl, collect, &ns) == 0,
             "listing the fields of a valid template failed");
  for (size_t i = 0; i < ns.n; i++) {
    const char *nm = ns.v[i];
    size_t n = strlen(nm);
    FUZZ_CHECK(n > 0, "empty field name");
    FUZZ_CHECK(strpbrk(nm, "{}\r\n") == NULL, "field name '%s' holds a brace "
                                               "or line break", nm);
    FUZZ_CHECK(nm[0] != ' ' && nm[0] != '\t' && nm[n - 1] != ' ' &&
                   nm[n - 1] != '\t',
               "field name '%s' is not trimmed", nm);
  }
  FUZZ_CHECK(assay__llm_template_expand(tmpl, empty_field, &ns, &out, &err) == 0,
             "expanding a valid template failed");
  FUZZ_CHECK(ns.seen == ns.n, "expand asked for %zu fields, %zu listed", ns.seen,
             ns.n);
  /* With every field empty, only the text between fields is left, and
   * that cannot hold a field opening. */
  FUZZ_CHECK(strstr(out, "{{") == NULL, "expanded text holds '{{': %s", out);
  if (ns.n == 0)
    FUZZ_CHECK(strcmp(out, tmpl) == 0, "a template without fields changed");
  free(out);
  out = NULL;

  int missing = 0;
  for (size_t i = 0; i < ns.n; i++)
    missing |= assay__llm_json_path(item, ns.v[i]) == NULL;
  int rc = assay__llm_template_render(tmpl, item, &out, &err);
  if (missing) {
    FUZZ_CHECK(rc == ASSAY_EBAD_INPUT && err != NULL && out == NULL,
               "render with a missing field returned %d", rc);
    free(err);
  } else {
    FUZZ_CHECK(rc == 0 && out != NULL && err == NULL,
               "render with every field present returned %d", rc);
  }
  for (size_t i = 0; i < ns.n; i++)
    free(ns.v[i]);
  free(ns.v);
done:
  free(out);
  cJSON_Delete(item);
  free(tmpl);
  return 0;
}
