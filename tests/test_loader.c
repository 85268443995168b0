/*
 * Loader tests: real fixture plugins (tests/fixtures/, built as libtool
 * modules) loaded through the real libltdl loader. Every rejection of the
 * "Loading" list is checked for the message a user reads: it names the file
 * and, for versions, both versions. Then component selection, options, and
 * the plugin search path.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"
#include "loader.h"
#include "runner.h"
#include "util.h"

/* Owned path of a fixture module in the build tree. */
static char *fixture(const char *name) {
  char *rel = assay__format("fixtures/%s.la", name);
  char *p = test_build_path(rel);
  free(rel);
  return p;
}

static char *fixture_dir(void) {
  return test_build_path("fixtures");
}

/* CU_ASSERT with the message shown when a substring is missing. */
#define ASSERT_HAS(msg, sub)                                                   \
  do {                                                                         \
    const char *m_ = (msg);                                                    \
    int ok_ = m_ != NULL && strstr(m_, (sub)) != NULL;                         \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  message %s%s%s lacks \"%s\"\n", m_ ? "\"" : "",     \
              m_ ? m_ : "(null)", m_ ? "\"" : "", (sub));                      \
    CU_ASSERT(ok_);                                                            \
  } while (0)

static struct assay_loader *loader_with(const char *const *dirs) {
  struct assay_loader *l = NULL;
  char *err = NULL;
  int rc = assay_loader_new(&l, dirs, &err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  free(err);
  return l;
}

/* Resolves spec (a fixture name, "name:component", or an absolute path when
 * it holds '/') as kind and returns the error message (owned), asserting
 * that it failed. *code gets the return code when code is not NULL. */
static char *find_error(const char *spec, int kind, int *code) {
  char *full = strchr(spec, '/') ? assay__xstrdup(spec) : NULL;
  if (full == NULL) {
    const char *colon = strchr(spec, ':');
    char *name = colon ? assay__xstrndup(spec, (size_t)(colon - spec))
                       : assay__xstrdup(spec);
    char *path = fixture(name);
    full = assay__format("%s%s", path, colon ? colon : "");
    free(path);
    free(name);
  }
  struct assay_loader *l = loader_with(NULL);
  struct assay_module *mod = NULL;
  const struct assay_component *comp = NULL;
  char *err = NULL;
  int rc = assay_loader_find(l, full, kind, &mod, &comp, &err);
  CU_ASSERT(rc < 0);
  CU_ASSERT_PTR_NOT_NULL(err);
  if (code != NULL)
    *code = rc;
  assay_loader_free(l);
  free(full);
  return err;
}

/* Resolves a fixture spec that must load; returns the component. */
static const struct assay_component *find_ok(struct assay_loader *l,
                                             const char *spec, int kind,
                                             struct assay_module **mod) {
  const char *colon = strchr(spec, ':');
  char *name = colon ? assay__xstrndup(spec, (size_t)(colon - spec))
                     : assay__xstrdup(spec);
  char *path = fixture(name);
  char *full = assay__format("%s%s", path, colon ? colon : "");
  const struct assay_component *comp = NULL;
  struct assay_module *m = NULL;
  char *err = NULL;
  int rc = assay_loader_find(l, full, kind, &m, &comp, &err);
  if (rc != 0)
    fprintf(stderr, "\n  %s: %s\n", full, err ? err : "(no message)");
  CU_ASSERT_EQUAL(rc, 0);
  free(err);
  free(full);
  free(path);
  free(name);
  if (mod != NULL)
    *mod = m;
  return rc == 0 ? comp : NULL;
}

/* Version text as the message words it ("ABI 2.0", "host is 1.0"): the
 * bare numbers could match elsewhere, e.g. in a path like assay-0.1.0/. */
static void version(char buf[32], const char *lead, unsigned major,
                    unsigned minor) {
  snprintf(buf, 32, "%s %u.%u", lead, major, minor);
}

/* ---- rejections, in the documented order ----------------------------------
 */

static void test_not_found(void) {
  int code = 0;
  char *err = find_error("fx_does_not_exist", ASSAY_KIND_TASK, &code);
  ASSERT_HAS(err, "fx_does_not_exist");
  CU_ASSERT_EQUAL(code, ASSAY_ENOENT);
  free(err);
}

static void test_not_loadable(void) {
  /* A file with a plugin's name that is not a shared object: the message
   * must carry libltdl's reason, not just "cannot load". */
  char dir[] = "/tmp/assay-loader-XXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  char *path = assay__format("%s/garbage.so", dir);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("this is not an ELF file\n", f);
  fclose(f);
  int code = 0;
  char *err = find_error(path, ASSAY_KIND_TASK, &code);
  ASSERT_HAS(err, path);
  CU_ASSERT_EQUAL(code, ASSAY_ELOAD);
  /* libltdl's reason follows the file name. */
  const char *after = err ? strstr(err, path) : NULL;
  CU_ASSERT(after != NULL && strlen(after + strlen(path)) > 3);
  free(err);
  unlink(path);
  rmdir(dir);
  free(path);
}

static void test_no_describe_symbol(void) {
  int code = 0;
  char *err = find_error("fx_nosym", ASSAY_KIND_TASK, &code);
  ASSERT_HAS(err, "fx_nosym");
  ASSERT_HAS(err, ASSAY_DESCRIBE_SYMBOL);
  CU_ASSERT_EQUAL(code, ASSAY_ELOAD);
  free(err);
}

static void test_bad_magic(void) {
  int code = 0;
  char *err = find_error("fx_badmagic", ASSAY_KIND_TASK, &code);
  ASSERT_HAS(err, "fx_badmagic");
  ASSERT_HAS(err, "magic");
  CU_ASSERT_EQUAL(code, ASSAY_ELOAD);
  free(err);
}

static void test_newer_major(void) {
  char plugin[32], host[32];
  version(plugin, "ABI", ASSAY_ABI_MAJOR + 1, 0);
  version(host, "host is", ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR);
  int code = 0;
  char *err = find_error("fx_newmajor", ASSAY_KIND_TASK, &code);
  ASSERT_HAS(err, "fx_newmajor");
  ASSERT_HAS(err, plugin);
  ASSERT_HAS(err, host);
  CU_ASSERT_EQUAL(code, ASSAY_ELOAD);
  /* The plugin's version comes first: "built for ABI 2.0, this host is 1.0". */
  if (err != NULL && strstr(err, plugin) && strstr(err, host))
    CU_ASSERT(strstr(err, plugin) < strstr(err, host));
  free(err);
}

static void test_newer_minor(void) {
  char plugin[32], host[32];
  version(plugin, "ABI", ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR + 1);
  version(host, "host is", ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR);
  char *err = find_error("fx_newminor", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_newminor");
  ASSERT_HAS(err, plugin);
  ASSERT_HAS(err, host);
  free(err);
}

static void test_struct_too_small(void) {
  char *err = find_error("fx_small", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_small");
  ASSERT_HAS(err, "8 bytes");
  free(err);
}

static void test_missing_field(void) {
  char *err = find_error("fx_noname", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_noname");
  ASSERT_HAS(err, "name");
  free(err);
}

static void test_no_such_component(void) {
  char *err = find_error("fx_metrics:nosuch", ASSAY_KIND_METRIC, NULL);
  ASSERT_HAS(err, "fx_metrics");
  ASSERT_HAS(err, "'nosuch'");
  /* It lists what the plugin does have. */
  ASSERT_HAS(err, "const");
  ASSERT_HAS(err, "async_sleep");
  free(err);
}

static void test_wrong_kind(void) {
  /* A metric asked for as --task, by name and without one. */
  char *err = find_error("fx_metrics:const", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_metrics");
  ASSERT_HAS(err, "'const'");
  ASSERT_HAS(err, "metric");
  ASSERT_HAS(err, "task");
  free(err);
  err = find_error("fx_metrics", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_metrics");
  ASSERT_HAS(err, "no task component");
  free(err);
  err = find_error("fx_sync", ASSAY_KIND_METRIC, NULL);
  ASSERT_HAS(err, "fx_sync");
  ASSERT_HAS(err, "no metric component");
  free(err);
}

static void test_no_entry_point(void) {
  char *err = find_error("fx_noentry", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_noentry");
  ASSERT_HAS(err, "run_sync");
  ASSERT_HAS(err, "run_async");
  free(err);
}

static void test_init_fails(void) {
  /* init runs when the engine adds the component; its message reaches the
   * user whole, with the spec it came from. */
  struct assay_engine_opts o;
  assay_engine_opts_init(&o);
  struct assay_engine *e = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(assay_engine_new(&e, &o, &err), 0);
  struct assay_loader *l = loader_with(NULL);
  char *spec = fixture("fx_initfail");
  int rc = assay_engine_add(e, l, ASSAY_KIND_TASK, spec, NULL, NULL, &err);
  CU_ASSERT(rc < 0);
  ASSERT_HAS(err, "cannot open model file '/nonexistent/model.bin'");
  ASSERT_HAS(err, "fx_initfail");
  free(err);
  free(spec);
  CU_ASSERT_EQUAL(assay_engine_free(e), 0);
  assay_loader_free(l);
}

static void test_invalid_spec(void) {
  char *err = find_error("fx_sync:", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_sync");
  free(err);
}

/* ---- component selection --------------------------------------------------
 */

static void test_path_spec(void) {
  struct assay_loader *l = loader_with(NULL);
  struct assay_module *mod = NULL;
  const struct assay_component *c =
      find_ok(l, "fx_sync", ASSAY_KIND_TASK, &mod);
  CU_ASSERT(c != NULL && strcmp(c->name, "sync") == 0);
  CU_ASSERT(mod != NULL && strcmp(mod->name, "fx_sync") == 0);
  CU_ASSERT(mod != NULL && mod->desc != NULL &&
            strcmp(mod->desc->version, "1.0") == 0);
  /* Kind 0 accepts the single component whatever its kind. */
  c = find_ok(l, "fx_sync", 0, NULL);
  CU_ASSERT(c != NULL && c->kind == ASSAY_KIND_TASK);
  assay_loader_free(l);

  /* A path without the extension finds NAME.la. */
  l = loader_with(NULL);
  char *path = test_build_path("fixtures/fx_async");
  struct assay_module *m = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL(assay_loader_load(l, path, &m, &err), 0);
  CU_ASSERT(m != NULL && strcmp(m->name, "fx_async") == 0);
  free(err);
  free(path);
  assay_loader_free(l);
}

static void test_component_selection(void) {
  struct assay_loader *l = loader_with(NULL);
  struct assay_module *m1 = NULL, *m2 = NULL;
  const struct assay_component *c =
      find_ok(l, "fx_metrics:pick", ASSAY_KIND_METRIC, &m1);
  CU_ASSERT(c != NULL && strcmp(c->name, "pick") == 0);
  c = find_ok(l, "fx_metrics:async_sleep", ASSAY_KIND_METRIC, &m2);
  CU_ASSERT(c != NULL && strcmp(c->name, "async_sleep") == 0 &&
            c->run_async != NULL);
  /* One file is loaded once, however many of its components are used. */
  CU_ASSERT_PTR_EQUAL(m1, m2);
  c = find_ok(l, "fx_unsafe:safe", ASSAY_KIND_TASK, NULL);
  CU_ASSERT(c != NULL && strcmp(c->name, "safe") == 0 &&
            (c->flags & ASSAY_THREAD_SAFE));
  c = find_ok(l, "fx_unsafe:unsafe", ASSAY_KIND_TASK, NULL);
  CU_ASSERT(c != NULL && strcmp(c->name, "unsafe") == 0 &&
            !(c->flags & ASSAY_THREAD_SAFE));
  assay_loader_free(l);
}

static void test_ambiguous(void) {
  char *err = find_error("fx_metrics", ASSAY_KIND_METRIC, NULL);
  ASSERT_HAS(err, "fx_metrics");
  ASSERT_HAS(err, ":COMPONENT");
  free(err);
  err = find_error("fx_unsafe", ASSAY_KIND_TASK, NULL);
  ASSERT_HAS(err, "fx_unsafe");
  ASSERT_HAS(err, ":COMPONENT");
  free(err);
}

/* ---- options --------------------------------------------------------------
 */

/* Applies opts (JSON text) to fx_opts:opts; returns rc, *config or *err. */
static int apply(const char *opts, const char *const *reserved, cJSON **config,
                 char **err) {
  struct assay_loader *l = loader_with(NULL);
  struct assay_module *mod = NULL;
  const struct assay_component *c =
      find_ok(l, "fx_opts", ASSAY_KIND_TASK, &mod);
  cJSON *given = cJSON_Parse(opts);
  CU_ASSERT_PTR_NOT_NULL(given);
  *config = NULL;
  *err = NULL;
  int rc = c ? assay_options_apply(mod, c, given, reserved, config, err) : -1;
  cJSON_Delete(given);
  assay_loader_free(l);
  return rc;
}

static void test_unknown_option(void) {
  cJSON *config;
  char *err;
  CU_ASSERT(apply("{\"key\":\"k\",\"bogus\":1}", NULL, &config, &err) < 0);
  CU_ASSERT_PTR_NULL(config);
  ASSERT_HAS(err, "'bogus'");
  ASSERT_HAS(err, "opts");
  /* The message lists every option the component accepts. */
  static const char *const names[] = {"key",   "text", "ratio",
                                      "count", "flag", "blob"};
  for (size_t i = 0; i < assay__array_size(names); i++)
    ASSERT_HAS(err, names[i]);
  free(err);
}

static void test_option_wrong_type(void) {
  static const struct {
    const char *opts, *name;
  } cases[] = {
      {"{\"key\":\"k\",\"count\":1.5}", "'count'"},
      {"{\"key\":\"k\",\"ratio\":\"high\"}", "'ratio'"},
      {"{\"key\":\"k\",\"flag\":\"yes\"}", "'flag'"},
      {"{\"key\":\"k\",\"flag\":1}", "'flag'"},
      {"{\"key\":[1,2]}", "'key'"},
  };
  for (size_t i = 0; i < assay__array_size(cases); i++) {
    cJSON *config;
    char *err;
    CU_ASSERT(apply(cases[i].opts, NULL, &config, &err) < 0);
    CU_ASSERT_PTR_NULL(config);
    ASSERT_HAS(err, cases[i].name);
    free(err);
    cJSON_Delete(config);
  }
}

static void test_option_required(void) {
  cJSON *config;
  char *err;
  CU_ASSERT(apply("{\"text\":\"t\"}", NULL, &config, &err) < 0);
  CU_ASSERT_PTR_NULL(config);
  ASSERT_HAS(err, "'key'");
  ASSERT_HAS(err, "--opt");
  free(err);
  cJSON_Delete(config);
}

static void test_option_defaults(void) {
  cJSON *config;
  char *err;
  static const char *const reserved[] = {"name", NULL};
  int rc = apply("{\"key\":\"k\",\"count\":7,\"name\":\"renamed\"}", reserved,
                 &config, &err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  free(err);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, "key");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "k") == 0);
  v = cJSON_GetObjectItemCaseSensitive(config, "count");
  CU_ASSERT(cJSON_IsNumber(v) && v->valuedouble == 7);
  /* Defaults of what was not given, already of the declared type. */
  v = cJSON_GetObjectItemCaseSensitive(config, "text");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "hello") == 0);
  v = cJSON_GetObjectItemCaseSensitive(config, "ratio");
  CU_ASSERT(cJSON_IsNumber(v) && v->valuedouble == 0.5);
  v = cJSON_GetObjectItemCaseSensitive(config, "flag");
  CU_ASSERT(cJSON_IsFalse(v));
  /* No default and not given: absent. Reserved keys are the host's. */
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(config, "blob"));
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(config, "name"));
  cJSON_Delete(config);

  /* A string option given a bare scalar takes its text (--opt key=42). */
  rc = apply("{\"key\":42,\"blob\":{\"a\":[1]}}", NULL, &config, &err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  free(err);
  v = cJSON_GetObjectItemCaseSensitive(config, "key");
  CU_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, "42") == 0);
  v = cJSON_GetObjectItemCaseSensitive(config, "blob");
  CU_ASSERT(cJSON_IsObject(v));
  cJSON_Delete(config);
}

static void test_option_via_engine(void) {
  /* The engine validates --opt before init: a missing required option
   * stops assay_engine_add with the option's name. */
  struct assay_engine_opts o;
  assay_engine_opts_init(&o);
  struct assay_engine *e = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(assay_engine_new(&e, &o, &err), 0);
  struct assay_loader *l = loader_with(NULL);
  char *spec = fixture("fx_opts");
  int rc = assay_engine_add(e, l, ASSAY_KIND_TASK, spec, NULL, NULL, &err);
  CU_ASSERT(rc < 0);
  ASSERT_HAS(err, "'key'");
  free(err);
  err = NULL;
  cJSON *opts = cJSON_Parse("{\"key\":\"k\",\"nope\":true}");
  rc = assay_engine_add(e, l, ASSAY_KIND_TASK, spec, opts, NULL, &err);
  CU_ASSERT(rc < 0);
  ASSERT_HAS(err, "'nope'");
  free(err);
  cJSON_Delete(opts);
  free(spec);
  CU_ASSERT_EQUAL(assay_engine_free(e), 0);
  assay_loader_free(l);
}

/* ---- the search path ------------------------------------------------------
 */

static void test_plugin_dir(void) {
  char *dir = fixture_dir();
  /* A --plugin-dir not there, or not a directory, is refused by name. */
  struct assay_loader *l = NULL;
  char *err = NULL;
  const char *missing[] = {dir, "/nonexistent/assay-plugins", NULL};
  CU_ASSERT_EQUAL(assay_loader_new(&l, missing, &err), ASSAY_ELOAD);
  CU_ASSERT(l == NULL);
  ASSERT_HAS(err, "--plugin-dir '/nonexistent/assay-plugins': No such file");
  free(err);
  err = NULL;
  const char *file[] = {"/dev/null", NULL};
  CU_ASSERT_EQUAL(assay_loader_new(&l, file, &err), ASSAY_ELOAD);
  ASSERT_HAS(err, "--plugin-dir '/dev/null' is not a directory");
  free(err);
  err = NULL;
  const char *dirs[] = {"/", dir, NULL};
  l = loader_with(dirs);
  struct assay_module *m = NULL;
  int rc = assay_loader_load(l, "fx_sync", &m, &err);
  if (rc != 0)
    fprintf(stderr, "\n  %s\n", err ? err : "");
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT(m != NULL && strncmp(m->path, dir, strlen(dir)) == 0);
  free(err);
  assay_loader_free(l);
  free(dir);
}

static void test_plugin_path_env(void) {
  char *dir = fixture_dir();
  char *env = assay__format("/nonexistent/a:%s", dir);
  setenv("ASSAY_PLUGIN_PATH", env, 1);
  const char *dirs[] = {"/", NULL};
  struct assay_loader *l = loader_with(dirs);
  unsetenv("ASSAY_PLUGIN_PATH");
  struct assay_module *m = NULL;
  char *err = NULL;
  int rc = assay_loader_load(l, "fx_async", &m, &err);
  if (rc != 0)
    fprintf(stderr, "\n  %s\n", err ? err : "");
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT(m != NULL && strncmp(m->path, dir, strlen(dir)) == 0);
  free(err);
  /* Order: built-in dir, then $ASSAY_PLUGIN_PATH, then --plugin-dir. */
  const char *const *d = assay_loader_dirs(l);
  int ia = -1, ifx = -1, ib = -1;
  for (int i = 0; d[i] != NULL; i++) {
    if (strcmp(d[i], "/nonexistent/a") == 0)
      ia = i;
    if (strcmp(d[i], dir) == 0)
      ifx = i;
    if (strcmp(d[i], "/") == 0)
      ib = i;
  }
  CU_ASSERT(ia >= 1 && ifx == ia + 1 && ib == ifx + 1);
  CU_ASSERT(strcmp(d[0], assay_loader_builtin_dir()) == 0);
  assay_loader_free(l);
  free(env);
  free(dir);
}

static void test_cwd_not_searched(void) {
  char old[PATH_MAX];
  CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(old, sizeof old));
  char *dir = fixture_dir();
  CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
  unsetenv("ASSAY_PLUGIN_PATH");
  struct assay_loader *l = loader_with(NULL);
  struct assay_module *m = NULL;
  char *err = NULL;
  /* fx_sync.la is right here, yet a bare name is not looked up here. */
  int rc = assay_loader_load(l, "fx_sync", &m, &err);
  CU_ASSERT_EQUAL(rc, ASSAY_ENOENT);
  ASSERT_HAS(err, "'fx_sync'");
  ASSERT_HAS(err, "--plugin-dir");
  free(err);
  err = NULL;
  /* An explicit relative path is a path spec and does load. */
  rc = assay_loader_load(l, "./fx_sync.la", &m, &err);
  CU_ASSERT_EQUAL(rc, 0);
  free(err);
  assay_loader_free(l);
  CU_ASSERT_EQUAL(chdir(old), 0);
  free(dir);
}

/* What assay_loader_scan reported, by base name. */
struct scan_seen {
  int files, good_sync, bad_magic_reported, init_fail_loaded;
};

static void scan_cb(void *arg, struct assay_module *mod, const char *path,
                    const char *err) {
  struct scan_seen *s = arg;
  s->files++;
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (strcmp(base, "fx_sync.la") == 0 && mod != NULL)
    s->good_sync++;
  if (strcmp(base, "fx_badmagic.la") == 0 && mod == NULL && err != NULL &&
      strstr(err, "fx_badmagic") != NULL)
    s->bad_magic_reported++;
  /* init is not run by a scan, so a plugin whose init fails still lists. */
  if (strcmp(base, "fx_initfail.la") == 0 && mod != NULL)
    s->init_fail_loaded++;
}

static void test_scan(void) {
  char *dir = fixture_dir();
  const char *dirs[] = {dir, NULL};
  struct assay_loader *l = loader_with(dirs);
  struct scan_seen s = {0, 0, 0, 0};
  int n = assay_loader_scan(l, scan_cb, &s);
  CU_ASSERT_EQUAL(n, s.files);
  CU_ASSERT(s.files >= 20);
  CU_ASSERT_EQUAL(s.good_sync, 1);
  CU_ASSERT_EQUAL(s.bad_magic_reported, 1);
  CU_ASSERT_EQUAL(s.init_fail_loaded, 1);
  assay_loader_free(l);
  free(dir);
}

static int suite_init(void) {
  unsetenv("ASSAY_PLUGIN_PATH");
  return 0;
}

static const struct test_case rejection_cases[] = {
    {"not found", test_not_found},
    {"not loadable", test_not_loadable},
    {"no describe symbol", test_no_describe_symbol},
    {"bad magic", test_bad_magic},
    {"newer ABI major", test_newer_major},
    {"newer ABI minor", test_newer_minor},
    {"struct too small", test_struct_too_small},
    {"missing required field", test_missing_field},
    {"no such component", test_no_such_component},
    {"component of the wrong kind", test_wrong_kind},
    {"no entry point", test_no_entry_point},
    {"init fails", test_init_fails},
    {"invalid spec", test_invalid_spec},
    {NULL, NULL},
};

static const struct test_case select_cases[] = {
    {"path spec", test_path_spec},
    {"SPEC:COMPONENT", test_component_selection},
    {"ambiguous without :COMPONENT", test_ambiguous},
    {NULL, NULL},
};

static const struct test_case option_cases[] = {
    {"unknown option", test_unknown_option},
    {"wrong type", test_option_wrong_type},
    {"required option missing", test_option_required},
    {"defaults filled", test_option_defaults},
    {"checked by the engine", test_option_via_engine},
    {NULL, NULL},
};

static const struct test_case path_cases[] = {
    {"--plugin-dir", test_plugin_dir},
    {"ASSAY_PLUGIN_PATH", test_plugin_path_env},
    {"current directory never searched", test_cwd_not_searched},
    {"scan", test_scan},
    {NULL, NULL},
};

static const struct test_suite suites[] = {
    {"rejections", suite_init, NULL, rejection_cases},
    {"selection", suite_init, NULL, select_cases},
    {"options", suite_init, NULL, option_cases},
    {"search path", suite_init, NULL, path_cases},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv) {
  return test_main(argc, argv, suites);
}
