/*
 * Plugin loading: the one file that talks to libltdl. Resolves a SPEC (a name
 * on the plugin path, or a path containing '/'; ":COMPONENT" picks one
 * component), checks the descriptor (magic, ABI version, sizes, fields,
 * entry points) and validates options against a component's declaration.
 * Every rejection names the file and, for versions, both versions. Loop
 * thread only: libltdl is not thread-safe. Nothing is unloaded until
 * assay_loader_free().
 */
#ifndef ASSAY_LOADER_H
#define ASSAY_LOADER_H

#include <assay/plugin.h>

/* One loaded plugin file. */
struct assay_module {
  char *path;                     /* as opened (owned) */
  char *name;                     /* plugin name from the descriptor */
  const struct assay_plugin *desc; /* borrowed from the module */
  void *handle;                   /* lt_dlhandle */
  struct assay_module *next;
};

struct assay_loader;

/*
 * Creates a loader searching, in order: the built-in plugin directory (the
 * build tree's plugins/ when the binary runs from it, else the installed
 * one), each directory of $ASSAY_PLUGIN_PATH (':'-separated), then dirs
 * (NULL-terminated, may be NULL). Never the current directory implicitly.
 */
int assay_loader_new(struct assay_loader **l, const char *const *dirs,
                     char **errmsg);

/* Unloads every module. Call only after every instance is finished. */
void assay_loader_free(struct assay_loader *l);

/* The directories searched, NULL-terminated, borrowed. */
const char *const *assay_loader_dirs(const struct assay_loader *l);

/* The built-in plugin and data directories this binary uses. Borrowed. */
const char *assay_loader_builtin_dir(void);
const char *assay_loader_data_dir(void);

/*
 * Loads (once per file) and checks the plugin file named by spec (without
 * any ":COMPONENT"). Returns 0 with *mod borrowed from the loader, or a
 * negative code with *errmsg.
 */
int assay_loader_load(struct assay_loader *l, const char *spec,
                      struct assay_module **mod, char **errmsg);

/*
 * Resolves "SPEC[:COMPONENT]" to a component of kind (enum assay_kind, or 0
 * for any). Without ":COMPONENT" the plugin must have exactly one component
 * of that kind.
 */
int assay_loader_find(struct assay_loader *l, const char *spec, int kind,
                      struct assay_module **mod,
                      const struct assay_component **comp, char **errmsg);

/*
 * Calls cb for every plugin file found in the search directories (each
 * loaded and checked); files that fail to load are reported through cb with
 * mod NULL and the error message. Returns the number of files seen.
 */
int assay_loader_scan(struct assay_loader *l,
                      void (*cb)(void *arg, struct assay_module *mod,
                                 const char *path, const char *err),
                      void *arg);

/*
 * Validates the options given for comp (a JSON object, borrowed; may be NULL)
 * and returns in *config a new object (owned) holding every given option
 * converted to its declared type plus the defaults of the others. Keys in
 * reserved (NULL-terminated; options the host itself handles, like "name")
 * are skipped. An unknown key, a value of the wrong type or a missing
 * required option is an error naming the option, the component and, for
 * unknown keys, the options it does accept.
 */
int assay_options_apply(const struct assay_module *mod,
                        const struct assay_component *comp,
                        const cJSON *given, const char *const *reserved,
                        cJSON **config, char **errmsg);

/* "task" or "metric". */
const char *assay_kind_name(int kind);

#endif
