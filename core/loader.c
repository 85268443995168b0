/*
 * Plugin loading through libltdl (see loader.h). This is the only file that
 * calls lt_*: it finds a plugin file on the search path, opens it, checks the
 * descriptor in the order the docs promise and validates options.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ltdl.h>
#include <uv.h>

#include "error.h"
#include "util.h"

struct assay_loader {
  char **dirs; /* NULL-terminated, owned */
  struct assay_module *modules;
};

/* The smallest descriptor sizes this host accepts: those of ABI 1.0. */
#define PLUGIN_MIN_SIZE ((uint32_t)sizeof(struct assay_plugin))
#define COMPONENT_MIN_SIZE ((uint32_t)sizeof(struct assay_component))

static char builtin_dir[PATH_MAX + 16];
static char data_dir[PATH_MAX + 64];
static uv_once_t dirs_once = UV_ONCE_INIT;

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * The binary finds its built-in plugins beside itself when it runs from the
 * build tree (plugins/echo.la next to the executable), so that it works
 * before `make install`; otherwise it uses the installed directory.
 */
static void find_dirs(void) {
  char exe[PATH_MAX];
  size_t n = sizeof exe;
  snprintf(builtin_dir, sizeof builtin_dir, "%s", ASSAY_PKGLIBDIR);
  snprintf(data_dir, sizeof data_dir, "%s", ASSAY_PKGDATADIR);
  if (uv_exepath(exe, &n) != 0)
    return;
  char *slash = strrchr(exe, '/');
  if (slash == NULL)
    return;
  *slash = '\0';
  /* libtool may put the real binary in .libs/ below the build directory. */
  char probe[PATH_MAX + 32];
  for (int up = 0; up < 2; up++) {
    snprintf(probe, sizeof probe, "%s/plugins/echo.la", exe);
    if (file_exists(probe)) {
      snprintf(builtin_dir, sizeof builtin_dir, "%s/plugins", exe);
      snprintf(data_dir, sizeof data_dir, "%s/plugins/data", ASSAY_ABS_SRCDIR);
      return;
    }
    slash = strrchr(exe, '/');
    if (slash == NULL || strcmp(slash, "/.libs") != 0)
      return;
    *slash = '\0';
  }
}

const char *assay_loader_builtin_dir(void) {
  uv_once(&dirs_once, find_dirs);
  return builtin_dir;
}

const char *assay_loader_data_dir(void) {
  uv_once(&dirs_once, find_dirs);
  return data_dir;
}

const char *assay_kind_name(int kind) {
  return kind == ASSAY_KIND_TASK     ? "task"
         : kind == ASSAY_KIND_METRIC ? "metric"
                                     : "component";
}

static void dirs_push(char ***dirs, size_t *n, const char *d, size_t len) {
  if (len == 0)
    return;
  *dirs = assay__xrealloc(*dirs, (*n + 2) * sizeof **dirs);
  (*dirs)[(*n)++] = assay__xstrndup(d, len);
  (*dirs)[*n] = NULL;
}

int assay_loader_new(struct assay_loader **lp, const char *const *dirs,
                     char **errmsg) {
  /* A directory asked for by name that is not there is a typo to say now,
   * not a plugin "not found" later (ASSAY_PLUGIN_PATH may list absent
   * ones, as PATH does). */
  for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++) {
    struct stat st;
    if (stat(dirs[i], &st) != 0)
      return assay__fail(errmsg, ASSAY_ELOAD, "--plugin-dir '%s': %s", dirs[i],
                         strerror(errno));
    if (!S_ISDIR(st.st_mode))
      return assay__fail(errmsg, ASSAY_ELOAD,
                         "--plugin-dir '%s' is not a directory; give the "
                         "directory the plugin is in, or the plugin's path "
                         "as the SPEC",
                         dirs[i]);
  }
  if (lt_dlinit() != 0)
    return assay__fail(errmsg, ASSAY_ELOAD, "cannot initialise libltdl: %s",
                       lt_dlerror());
  struct assay_loader *l = assay__xcalloc(1, sizeof *l);
  size_t n = 0;
  const char *b = assay_loader_builtin_dir();
  dirs_push(&l->dirs, &n, b, strlen(b));
  const char *env = getenv("ASSAY_PLUGIN_PATH");
  while (env != NULL && *env != '\0') {
    const char *colon = strchr(env, ':');
    size_t len = colon ? (size_t)(colon - env) : strlen(env);
    dirs_push(&l->dirs, &n, env, len);
    env = colon ? colon + 1 : NULL;
  }
  for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++)
    dirs_push(&l->dirs, &n, dirs[i], strlen(dirs[i]));
  if (l->dirs == NULL)
    l->dirs = assay__xcalloc(1, sizeof *l->dirs);
  *lp = l;
  return 0;
}

void assay_loader_free(struct assay_loader *l) {
  if (l == NULL)
    return;
  struct assay_module *m = l->modules;
  while (m != NULL) {
    struct assay_module *next = m->next;
    lt_dlclose((lt_dlhandle)m->handle);
    free(m->path);
    free(m->name);
    free(m);
    m = next;
  }
  for (size_t i = 0; l->dirs[i] != NULL; i++)
    free(l->dirs[i]);
  free(l->dirs);
  free(l);
  lt_dlexit();
}

const char *const *assay_loader_dirs(const struct assay_loader *l) {
  return (const char *const *)l->dirs;
}

/* Finds a plugin file for a bare name: NAME.la, then NAME.so, in each
 * directory in order. Returns an owned path or NULL. */
static char *search_path(struct assay_loader *l, const char *name) {
  static const char *const exts[] = {".la", ".so"};
  for (size_t i = 0; l->dirs[i] != NULL; i++) {
    for (size_t e = 0; e < assay__array_size(exts); e++) {
      char *p = assay__format("%s/%s%s", l->dirs[i], name, exts[e]);
      if (file_exists(p))
        return p;
      free(p);
    }
  }
  return NULL;
}

static int check_component(const char *path, const struct assay_component *c,
                           char **errmsg) {
  if (c->size < COMPONENT_MIN_SIZE)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': a component struct is %u "
                       "bytes, smaller than the %u this host needs; rebuild "
                       "the plugin against <assay/plugin.h>",
                       path, (unsigned)c->size, (unsigned)COMPONENT_MIN_SIZE);
  if (c->name == NULL || *c->name == '\0')
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': a component has no name",
                       path);
  if (c->kind != ASSAY_KIND_TASK && c->kind != ASSAY_KIND_METRIC)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': component '%s' has unknown "
                       "kind %d (expected task or metric)",
                       path, c->name, c->kind);
  return 0;
}

/* The checks of a descriptor, in the documented order. */
static int check_descriptor(const char *path, const struct assay_plugin *d,
                            char **errmsg) {
  if (d == NULL)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': its describe function "
                       "returned NULL",
                       path);
  if (d->magic != ASSAY_PLUGIN_MAGIC)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': bad magic 0x%08x (expected "
                       "0x%08x): not an assay plugin, or a corrupt one",
                       path, (unsigned)d->magic, ASSAY_PLUGIN_MAGIC);
  if (d->abi_major != ASSAY_ABI_MAJOR || d->abi_minor > ASSAY_ABI_MINOR)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': built for ABI %u.%u, this "
                       "host is %u.%u; %s",
                       path, d->abi_major, d->abi_minor, ASSAY_ABI_MAJOR,
                       ASSAY_ABI_MINOR,
                       d->abi_major != ASSAY_ABI_MAJOR
                           ? "rebuild the plugin against this host's SDK"
                           : "upgrade assay or rebuild the plugin against "
                             "this host's SDK");
  if (d->size < PLUGIN_MIN_SIZE)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': descriptor is %u bytes, "
                       "smaller than the %u of ABI %u.0; rebuild the plugin",
                       path, (unsigned)d->size, (unsigned)PLUGIN_MIN_SIZE,
                       ASSAY_ABI_MAJOR);
  const char *missing = d->name == NULL || *d->name == '\0' ? "name"
                        : d->version == NULL               ? "version"
                        : d->components == NULL || d->components[0] == NULL
                            ? "components"
                            : NULL;
  if (missing != NULL)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot load plugin '%s': descriptor has no %s", path,
                       missing);
  for (size_t i = 0; d->components[i] != NULL; i++) {
    int rc = check_component(path, d->components[i], errmsg);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int la_is_module(const char *path);

/* The plugin on the path whose name is nearest a missing one, when it is
 * near enough to be a slip ("equal" for "equals", "regex" for
 * "regex_match"), or NULL. Owned. */
static char *nearest_plugin(const struct assay_loader *l, const char *name) {
  size_t n = strlen(name), best = n < 6 ? 1 : 2;
  char *found = NULL, *prefixed = NULL;
  for (size_t i = 0; l->dirs[i] != NULL; i++) {
    DIR *dir = opendir(l->dirs[i]);
    if (dir == NULL)
      continue;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
      size_t len = strlen(de->d_name);
      int la = len > 3 && strcmp(de->d_name + len - 3, ".la") == 0;
      if (!la && (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0))
        continue;
      size_t d = assay__edit_distance(name, n, de->d_name, len - 3);
      int prefix =
          prefixed == NULL && n >= 3 && strncmp(de->d_name, name, n) == 0;
      if ((d > best || (found != NULL && d == best)) && !prefix)
        continue;
      if (la) { /* not libtool's helper libraries */
        char *p = assay__format("%s/%s", l->dirs[i], de->d_name);
        int module = la_is_module(p);
        free(p);
        if (!module)
          continue;
      }
      if (d <= best && (found == NULL || d < best)) {
        free(found);
        found = assay__xstrndup(de->d_name, len - 3);
        best = d;
      } else {
        prefixed = assay__xstrndup(de->d_name, len - 3);
      }
    }
    closedir(dir);
  }
  if (found == NULL)
    return prefixed;
  free(prefixed);
  return found;
}

int assay_loader_load(struct assay_loader *l, const char *spec,
                      struct assay_module **modp, char **errmsg) {
  char *path;
  if (strchr(spec, '/') != NULL) {
    path = assay__xstrdup(spec);
    if (!file_exists(path)) {
      /* A path without extension may name NAME.la or NAME.so. */
      char *la = assay__format("%s.la", spec), *so = assay__format("%s.so", spec);
      char *found = file_exists(la) ? la : file_exists(so) ? so : NULL;
      if (found == NULL) {
        struct stat st;
        int rc =
            stat(path, &st) == 0
                ? assay__fail(errmsg, ASSAY_ENOENT,
                              "cannot load plugin '%s': it is %s; give "
                              "a plugin's .so or .la file",
                              spec,
                              S_ISDIR(st.st_mode) ? "a directory"
                                                  : "no regular file")
                : assay__fail(errmsg, ASSAY_ENOENT,
                              "cannot load plugin '%s': no such file", spec);
        free(la), free(so), free(path);
        return rc;
      }
      free(path);
      path = assay__xstrdup(found);
      free(la), free(so);
    }
  } else {
    path = search_path(l, spec);
    if (path == NULL) {
      char *where = assay__xstrdup("");
      for (size_t i = 0; l->dirs[i] != NULL; i++) {
        char *w = assay__format("%s%s'%s'", where, i ? ", " : "", l->dirs[i]);
        free(where);
        where = w;
      }
      char *near = nearest_plugin(l, spec);
      char *hint = near ? assay__format("did you mean '%s'? Else ", near)
                        : assay__xstrdup("");
      int rc = assay__fail(errmsg, ASSAY_ENOENT,
                           "cannot find plugin '%s' in the plugin path (%s); "
                           "%sgive a path like ./%s.so, or add its directory "
                           "with --plugin-dir or ASSAY_PLUGIN_PATH; "
                           "`assay plugins` lists what is found",
                           spec, where, hint, spec);
      free(hint);
      free(near);
      free(where);
      return rc;
    }
  }

  char real[PATH_MAX];
  const char *key = realpath(path, real) ? real : path;
  for (struct assay_module *m = l->modules; m != NULL; m = m->next) {
    char mreal[PATH_MAX];
    if (strcmp(realpath(m->path, mreal) ? mreal : m->path, key) == 0) {
      free(path);
      *modp = m;
      return 0;
    }
  }

  lt_dlhandle h = lt_dlopen(path);
  if (h == NULL) {
    const char *why = lt_dlerror();
    char *detail = NULL;
    size_t plen = strlen(path);
    /* libltdl reports most failures as "file not found", even for a file
     * that exists but is not a loadable object. Only to explain why, ask
     * the system loader, whose message names the real cause ("invalid ELF
     * header", a missing library). */
    if (plen < 3 || strcmp(path + plen - 3, ".la") != 0) {
      void *probe = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
      if (probe == NULL) {
        const char *d = dlerror();
        size_t n = strlen(path);
        /* glibc starts its message with the path, which we print already. */
        if (d != NULL && strncmp(d, path, n) == 0 && d[n] == ':' && d[n + 1] == ' ')
          d += n + 2;
        detail = assay__xstrdup(d ? d : "unknown error");
      }
      else
        dlclose(probe);
    }
    int rc = assay__fail(errmsg, ASSAY_ELOAD,
                         "cannot load plugin '%s': %s", path,
                         detail ? detail : why ? why : "unknown error");
    free(detail);
    free(path);
    return rc;
  }
  typedef const struct assay_plugin *(*describe_fn)(void);
  describe_fn fn;
  *(void **)&fn = lt_dlsym(h, ASSAY_DESCRIBE_SYMBOL);
  if (fn == NULL) {
    const lt_dlinfo *info = lt_dlgetinfo(h);
    int rc = assay__fail(
        errmsg, ASSAY_ELOAD,
        "cannot load plugin '%s': no describe function (looked for "
        "'%s_LTX_%s' and '%s'); a plugin defines it with "
        "ASSAY_PLUGIN(<file base name>, descriptor)",
        path, info && info->name ? info->name : "<module>",
        ASSAY_DESCRIBE_SYMBOL, ASSAY_DESCRIBE_SYMBOL);
    lt_dlclose(h);
    free(path);
    return rc;
  }
  const struct assay_plugin *d = fn();
  int rc = check_descriptor(path, d, errmsg);
  if (rc != 0) {
    lt_dlclose(h);
    free(path);
    return rc;
  }
  struct assay_module *m = assay__xcalloc(1, sizeof *m);
  m->path = path;
  m->name = assay__xstrdup(d->name);
  m->desc = d;
  m->handle = h;
  m->next = l->modules;
  l->modules = m;
  *modp = m;
  return 0;
}

int assay_loader_find(struct assay_loader *l, const char *spec, int kind,
                      struct assay_module **modp,
                      const struct assay_component **compp, char **errmsg) {
  /* "SPEC:COMPONENT": the component part is what follows the last ':' when
   * it holds no '/', so that paths with colons still work. */
  const char *colon = strrchr(spec, ':');
  char *file = colon && !strchr(colon, '/') ? assay__xstrndup(spec, (size_t)(colon - spec))
                                            : assay__xstrdup(spec);
  const char *want = colon && !strchr(colon, '/') ? colon + 1 : NULL;
  if (*file == '\0' || (want != NULL && *want == '\0')) {
    free(file);
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "invalid plugin spec '%s': expected NAME, PATH, "
                       "NAME:COMPONENT or PATH:COMPONENT",
                       spec);
  }
  struct assay_module *m;
  int rc = assay_loader_load(l, file, &m, errmsg);
  free(file);
  if (rc != 0)
    return rc;

  const struct assay_component *found = NULL;
  const struct assay_component *const *cs = m->desc->components;
  if (want != NULL) {
    for (size_t i = 0; cs[i] != NULL; i++)
      if (strcmp(cs[i]->name, want) == 0)
        found = cs[i];
    if (found == NULL) {
      char *names = assay__xstrdup("");
      for (size_t i = 0; cs[i] != NULL; i++) {
        char *w = assay__format("%s%s%s (%s)", names, i ? ", " : "",
                                cs[i]->name, assay_kind_name(cs[i]->kind));
        free(names);
        names = w;
      }
      rc = assay__fail(errmsg, ASSAY_ENOENT,
                       "plugin '%s' has no component '%s'; it has: %s",
                       m->path, want, names);
      free(names);
      return rc;
    }
    if (kind != 0 && found->kind != kind)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "component '%s' of plugin '%s' is a %s, not a %s",
                         found->name, m->path, assay_kind_name(found->kind),
                         assay_kind_name(kind));
  } else {
    size_t n = 0, total = 0;
    for (size_t i = 0; cs[i] != NULL; i++, total++)
      if (kind == 0 || cs[i]->kind == kind)
        found = cs[i], n++;
    if (n == 0)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "plugin '%s' has no %s component (it has %zu %s); "
                         "use it as --%s",
                         m->path, assay_kind_name(kind), total,
                         total == 1 ? "component" : "components",
                         kind == ASSAY_KIND_TASK ? "metric" : "task");
    if (n > 1)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "plugin '%s' has %zu %s components; pick one with "
                         "'%s:COMPONENT' (`assay plugins %s` lists them)",
                         m->path, n, assay_kind_name(kind), spec, spec);
  }
  if (found->run_sync == NULL && found->run_async == NULL)
    return assay__fail(errmsg, ASSAY_ELOAD,
                       "cannot use component '%s' of plugin '%s': it has "
                       "neither run_sync nor run_async",
                       found->name, m->path);
  *modp = m;
  *compp = found;
  return 0;
}

/* Whether a .la file describes a loadable module: libtool convenience and
 * static libraries have an empty dlname. */
static int la_is_module(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  char line[512];
  int module = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "dlname='", 8) == 0) {
      module = line[8] != '\'';
      break;
    }
  fclose(f);
  return module;
}

int assay_loader_scan(struct assay_loader *l,
                      void (*cb)(void *arg, struct assay_module *mod,
                                 const char *path, const char *err),
                      void *arg) {
  int seen = 0;
  char **names = NULL; /* base names already listed: the first dir wins */
  size_t nnames = 0;
  for (size_t i = 0; l->dirs[i] != NULL; i++) {
    DIR *dir = opendir(l->dirs[i]);
    if (dir == NULL)
      continue;
    char **files = NULL;
    size_t nfiles = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
      size_t len = strlen(de->d_name);
      int la = len > 3 && strcmp(de->d_name + len - 3, ".la") == 0;
      int so = len > 3 && strcmp(de->d_name + len - 3, ".so") == 0;
      if (!la && !so)
        continue;
      if (la) {
        char *lapath = assay__format("%s/%s", l->dirs[i], de->d_name);
        int ok = la_is_module(lapath);
        free(lapath);
        if (!ok)
          continue;
      }
      /* A .so with a .la beside it is the same plugin. */
      if (so) {
        char *lapath = assay__format("%s/%.*s.la", l->dirs[i], (int)(len - 3),
                                     de->d_name);
        int dup = file_exists(lapath);
        free(lapath);
        if (dup)
          continue;
      }
      files = assay__xrealloc(files, (nfiles + 1) * sizeof *files);
      files[nfiles++] = assay__xstrdup(de->d_name);
    }
    closedir(dir);
    if (nfiles > 0)
      qsort(files, nfiles, sizeof *files, assay__cmp_str);
    for (size_t f = 0; f < nfiles; f++) {
      size_t blen = strlen(files[f]) - 3;
      int shadowed = 0;
      for (size_t k = 0; k < nnames; k++)
        if (strlen(names[k]) == blen && strncmp(names[k], files[f], blen) == 0)
          shadowed = 1;
      if (!shadowed) {
        names = assay__xrealloc(names, (nnames + 1) * sizeof *names);
        names[nnames++] = assay__xstrndup(files[f], blen);
        char *path = assay__format("%s/%s", l->dirs[i], files[f]);
        struct assay_module *m = NULL;
        char *err = NULL;
        if (assay_loader_load(l, path, &m, &err) != 0)
          m = NULL;
        cb(arg, m, path, err);
        free(err);
        free(path);
        seen++;
      }
      free(files[f]);
    }
    free(files);
  }
  for (size_t k = 0; k < nnames; k++)
    free(names[k]);
  free(names);
  return seen;
}

static const char *type_name(int type) {
  switch (type) {
  case ASSAY_OPT_STRING:
    return "a string";
  case ASSAY_OPT_NUMBER:
    return "a number";
  case ASSAY_OPT_INTEGER:
    return "an integer";
  case ASSAY_OPT_BOOLEAN:
    return "true or false";
  default:
    return "a JSON value";
  }
}

/* Converts v to the declared type; returns an owned value or NULL. */
static cJSON *coerce(const cJSON *v, int type) {
  switch (type) {
  case ASSAY_OPT_STRING:
    if (cJSON_IsString(v))
      return cJSON_Duplicate(v, 1);
    /* --opt reference=42 parses as a number; the user meant the text. */
    if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
      char *s = assay__json_print(v);
      cJSON *r = cJSON_CreateString(s);
      free(s);
      return r;
    }
    return NULL;
  case ASSAY_OPT_NUMBER:
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? cJSON_Duplicate(v, 1)
                                                         : NULL;
  case ASSAY_OPT_INTEGER:
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
                   v->valuedouble == floor(v->valuedouble) &&
                   fabs(v->valuedouble) < 9007199254740992.0
               ? cJSON_Duplicate(v, 1)
               : NULL;
  case ASSAY_OPT_BOOLEAN:
    return cJSON_IsBool(v) ? cJSON_Duplicate(v, 1) : NULL;
  default:
    return cJSON_Duplicate(v, 1);
  }
}

static int is_reserved(const char *key, const char *const *reserved) {
  for (size_t i = 0; reserved != NULL && reserved[i] != NULL; i++)
    if (strcmp(key, reserved[i]) == 0)
      return 1;
  return 0;
}

int assay_options_apply(const struct assay_module *mod,
                        const struct assay_component *comp,
                        const cJSON *given, const char *const *reserved,
                        cJSON **configp, char **errmsg) {
  static const struct assay_option none[] = {{NULL, 0, NULL, NULL, 0}};
  const struct assay_option *opts = comp->options ? comp->options : none;
  const char *kind = assay_kind_name(comp->kind);
  cJSON *config = cJSON_CreateObject();
  int rc = 0;

  const cJSON *v;
  cJSON_ArrayForEach(v, given) {
    if (is_reserved(v->string, reserved))
      continue;
    const struct assay_option *o = opts;
    while (o->name != NULL && strcmp(o->name, v->string) != 0)
      o++;
    if (o->name == NULL) {
      char *names = assay__xstrdup("");
      for (const struct assay_option *a = opts; a->name != NULL; a++) {
        char *w = assay__format("%s%s%s", names, *names ? ", " : "", a->name);
        free(names);
        names = w;
      }
      for (size_t i = 0; reserved != NULL && reserved[i] != NULL; i++) {
        char *w = assay__format("%s%s%s", names, *names ? ", " : "",
                                reserved[i]);
        free(names);
        names = w;
      }
      rc = assay__fail(errmsg, ASSAY_ECONFIG,
                       "unknown option '%s' for %s '%s' (plugin '%s'); it "
                       "accepts: %s",
                       v->string, kind, comp->name, mod->path,
                       *names ? names : "no options");
      free(names);
      goto fail;
    }
    cJSON *c = coerce(v, o->type);
    if (c == NULL) {
      char *text = assay__json_print(v);
      rc = assay__fail(errmsg, ASSAY_ECONFIG,
                       "option '%s' of %s '%s' must be %s, got %s", o->name,
                       kind, comp->name, type_name(o->type), text);
      free(text);
      goto fail;
    }
    cJSON_AddItemToObject(config, o->name, c);
  }

  for (const struct assay_option *o = opts; o->name != NULL; o++) {
    if (cJSON_GetObjectItemCaseSensitive(config, o->name) != NULL)
      continue;
    if (o->default_json != NULL) {
      cJSON *d = cJSON_Parse(o->default_json);
      cJSON *c = d ? coerce(d, o->type) : NULL;
      cJSON_Delete(d);
      if (c == NULL) {
        rc = assay__fail(errmsg, ASSAY_ELOAD,
                         "plugin '%s' declares option '%s' of %s '%s' with "
                         "default %s, which is not %s; fix the plugin",
                         mod->path, o->name, kind, comp->name, o->default_json,
                         type_name(o->type));
        goto fail;
      }
      cJSON_AddItemToObject(config, o->name, c);
    } else if (o->flags & ASSAY_OPT_REQUIRED) {
      rc = assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s '%s' needs option '%s' (%s): give it with --opt "
                       "%s=VALUE after --%s",
                       kind, comp->name, o->name,
                       o->help ? o->help : type_name(o->type), o->name, kind);
      goto fail;
    }
  }
  *configp = config;
  return 0;
fail:
  cJSON_Delete(config);
  return rc;
}
