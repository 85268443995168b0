/*
 * The assay command line: `assay run`, `assay plugins`, help and version.
 * Parses arguments into a run configuration, loads everything before any
 * work starts (a failure exits 2 with nothing written), runs the engine,
 * streams records to the output file and writes the summary.
 */
#include <config.h>

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "dataset.h"
#include "engine.h"
#include "gate.h"
#include "error.h"
#include "files.h"
#include "jsonw.h"
#include "loader.h"
#include "summary.h"
#include "util.h"

#define EXIT_FAILURES 1
#define EXIT_INTERRUPTED 130


struct spec {
  int kind;
  char *spec;
  cJSON *opts; /* --opt values */
  cJSON *map;  /* --map values */
};

struct run_config {
  const char *cmd; /* "run" or "rescore" */
  int rescore;
  const char *dataset;
  int format;
  struct spec *specs;
  int nspecs;
  cJSON *global_map; /* --map before any --metric */
  const char *output;
  const char *summary;
  const char *name;
  int overwrite;
  int resume;
  int quiet;
  int progress; /* --progress: plain lines even when stderr is no terminal */
  const char **plugin_dirs; /* NULL-terminated */
  int ndirs;
  size_t max_item_bytes;
  size_t max_record_bytes;
  struct assay_engine_opts eng;
  struct assay_selection sel;
  char **ids;             /* --ids, owned */
  size_t nids;
  const char *ids_spec;   /* as given, for the summary */
  const char *run_file;   /* the -c FILE that named the dataset, or NULL */
  const char *run_file_dataset; /* ... the argument it made for it */
  const char *shard_spec;
  struct assay_threshold *pass; /* --pass, owned */
  size_t npass;
  struct assay_fail_under *under; /* --fail-under, owned */
  size_t nunder;
  const char *junit;
};

static const char *prog = "assay";

int assay_cli_unknown_option(const char *cmd, const char *help,
                             const char *opt) {
  size_t n = strcspn(opt, "="), bestd = n < 8 ? 1 : 2, bestlen = 0;
  const char *best = NULL;
  for (const char *p = help; opt[1] == '-' && (p = strstr(p, "--")) != NULL;) {
    size_t len = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
    size_t d = len > 2 ? assay__edit_distance(opt, n, p, len) : SIZE_MAX;
    if (d <= bestd && (best == NULL || d < bestd)) {
      best = p;
      bestlen = len;
      bestd = d;
    }
    p += len;
  }
  if (best != NULL)
    return assay_cli_usage_error(cmd,
                                 "unknown option '%s' (did you mean "
                                 "'%.*s'?)",
                                 opt, (int)bestlen, best);
  return assay_cli_usage_error(cmd, "unknown option '%s'", opt);
}

int assay_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = assay__vformat(fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s\nTry '%s%s%s --help'.\n", prog, msg, prog,
          cmd ? " " : "", cmd ? cmd : "");
  free(msg);
  return EXIT_USAGE;
}

static const char main_help[] =
    "usage: assay <command> [options]\n"
    "\n"
    "Evaluates a system (a task plugin) over a dataset with metric plugins.\n"
    "\n"
    "commands:\n"
    "  run       run a task and metrics over a dataset\n"
    "  plugins   list the plugins found, or describe given ones\n"
    "  report    write a self-contained HTML report of results\n"
    "  compare   compare two results files item by item\n"
    "  merge     merge shard results into one file in dataset order\n"
    "  rescore   run metrics again on stored outputs\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help\n"
    "  --version      show the version and plugin ABI\n"
    "\n"
    "'assay help <command>' or 'assay <command> --help' describes a command;\n"
    "'man assay' has it all.\n";

static const char run_help[] =
    "usage: assay run --dataset FILE [--task SPEC [--opt K=V]...]\n"
    "                 [--metric SPEC [--opt K=V]... [--map KEY=FIELD]...]...\n"
    "                 [options]\n"
    "\n"
    "Runs every dataset item through the task (if any) and the metrics and\n"
    "writes one JSON record per item, in dataset order, plus a summary.\n"
    "\n"
    "what to run:\n"
    "  -c, --config FILE     options from a run file (JSON), or from a\n"
    "                        summary to repeat its run; the command line\n"
    "                        overrides them\n"
    "  --dataset FILE        JSONL (default), .json array, .csv, or - (stdin)\n"
    "  --format FMT          jsonl, json or csv (default: from the extension)\n"
    "  --task SPEC           the system under test; without it, each item is\n"
    "                        its own output (scoring mode)\n"
    "  --metric SPEC         a scorer (repeatable)\n"
    "  --opt KEY=VALUE       option of the preceding --task/--metric; VALUE is\n"
    "                        JSON when it parses, else a string; a metric's\n"
    "                        'name' option renames its score\n"
    "  --map KEY=FIELD       metric input KEY taken from FIELD (a dotted path,\n"
    "                        e.g. answers.0) for the preceding --metric, or for\n"
    "                        all metrics when given before any --metric\n"
    "  --limit N             run the first N items only\n"
    "  --trials K            run every item K times (records per trial)\n"
    "  --offset N            skip the first N items\n"
    "  --ids ID,ID,...       run only these item ids (or @FILE: one per line)\n"
    "  --shuffle SEED        run items in a pseudo-random order fixed by SEED\n"
    "                        (with --limit: a random sample)\n"
    "  --shard I/N           run the items whose index % N is I; auto/N takes I\n"
    "                        from JOB_COMPLETION_INDEX (Kubernetes) or\n"
    "                        SLURM_ARRAY_TASK_ID (Slurm; 'auto' alone also\n"
    "                        takes N from SLURM_ARRAY_TASK_COUNT)\n"
    "\n"
    "where results go:\n"
    "  -o, --output FILE     records (default: assay-runs/NAME-TIMESTAMP.jsonl)\n"
    "  --summary FILE        summary JSON (default: beside the output; - for\n"
    "                        standard output, the final summary only)\n"
    "  --overwrite           replace an existing output file\n"
    "  --resume              go on from the records already in --output:\n"
    "                        drop a torn last line, skip finished items,\n"
    "                        append the rest\n"
    "  --name NAME           run name (default: the dataset's base name)\n"
    "  -q, --quiet           print no summary table and no progress\n"
    "  --progress            print a progress line every 5 s even when stderr\n"
    "                        is not a terminal (on a terminal: one live line)\n"
    "\n"
    "CI gates:\n"
    "  --pass SCORE>=X       a record passes when SCORE meets X (also >, <=,\n"
    "                        <, ==); repeatable; a failing record exits 1\n"
    "  --fail-under SCORE=X  exit 1 when the mean of SCORE is below X\n"
    "  --junit FILE          write a JUnit XML report, one case per record\n"
    "\n"
    "how it runs:\n"
    "  --concurrency N       items in flight (default 64)\n"
    "  --threads N           worker threads for sync calls (default: CPUs)\n"
    "  --timeout MS          per call attempt (default 60000)\n"
    "  --retries N           retries of retryable failures (default 3)\n"
    "  --item-timeout MS     deadline for a whole item (default: none)\n"
    "  --max-item-bytes N    largest dataset item (default 16777216)\n"
    "  --max-response-bytes N  largest HTTP response body (default 33554432)\n"
    "  --max-record-bytes N  largest result record; a larger one (a huge\n"
    "                        plugin output) becomes an error record\n"
    "                        (default 67108864)\n"
    "  --rps R               HTTP requests per second at most (default: no cap)\n"
    "  --grace MS            after Ctrl-C/SIGTERM, time in-flight items get to\n"
    "                        finish (default 10000); a second signal exits now\n"
    "  --plugin-dir DIR      also search DIR for plugins (repeatable)\n"
    "\n"
    "SPEC is a plugin name on the plugin path (built-in plugins, then\n"
    "$ASSAY_PLUGIN_PATH, then --plugin-dir), or a path containing '/'; add\n"
    ":COMPONENT to pick one component of a plugin.\n"
    "\n"
    "exit status: 0 all items and scores fine, 1 some failed, 2 usage,\n"
    "configuration or load error (nothing run), 130 interrupted.\n";

static const char rescore_help[] =
    "usage: assay rescore RESULTS.jsonl --metric SPEC [--opt K=V]...\n"
    "                     [--map KEY=FIELD]... [options]\n"
    "\n"
    "Runs metrics again on the outputs stored in a records file, without\n"
    "calling the task: each new record keeps the old one's index, id, trial,\n"
    "input, output, error, attempts and task time, with new scores. Records\n"
    "whose task failed are kept as they were.\n"
    "\n"
    "  -o, --output FILE     new records (default: RESULTS.rescored.jsonl)\n"
    "  --metric, --opt, --map, --summary, --overwrite, --resume, --name,\n"
    "  --concurrency, --threads, --timeout, --retries, --limit, --offset,\n"
    "  --ids, --plugin-dir, -q, --progress: as for 'assay run'.\n";

static const char plugins_help[] =
    "usage: assay plugins [--plugin-dir DIR]... [--json] [SPEC...]\n"
    "\n"
    "Without SPEC, lists every plugin on the plugin path with its components.\n"
    "With SPECs, describes those plugins: components, sync/async, inputs and\n"
    "options with their types and defaults.\n"
    "\n"
    "  --plugin-dir DIR   also search DIR (repeatable)\n"
    "  --json             print JSON instead of text\n";

/* ---- argument helpers ------------------------------------------------------------ */

/* Matches argv[*i] against a long option (and an optional short one),
 * taking its value from "--opt=value" or the next argument. Returns 1 when
 * matched (with *val set for options that take one), 0 when not, -1 on a
 * missing value. */
static int take(int argc, char **argv, int *i, const char *lng,
                const char *shrt, int has_val, const char **val) {
  const char *a = argv[*i];
  size_t n = strlen(lng);
  if (shrt != NULL && strcmp(a, shrt) == 0) {
    /* fallthrough to value handling */
  } else if (strncmp(a, lng, n) == 0 && (a[n] == '\0' || a[n] == '=')) {
    if (a[n] == '=') {
      if (!has_val)
        return -1;
      *val = a + n + 1;
      return 1;
    }
  } else {
    return 0;
  }
  if (!has_val)
    return 1;
  if (*i + 1 >= argc)
    return -1;
  *val = argv[++*i];
  return 1;
}

static int parse_long(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v == 0 || s[0] == '-')
    return -1;
  *out = (size_t)v;
  return 0;
}

/* "KEY=VALUE" into a new member of obj: VALUE as JSON when it parses. */
static int add_kv(cJSON *obj, const char *kv, int json_value) {
  const char *eq = strchr(kv, '=');
  if (eq == NULL || eq == kv)
    return -1;
  char *key = assay__xstrndup(kv, (size_t)(eq - kv));
  const char *text = eq + 1;
  cJSON *v = NULL;
  if (json_value) {
    const char *end = NULL;
    v = cJSON_ParseWithOpts(text, &end, 1);
  }
  if (v == NULL)
    v = cJSON_CreateString(text);
  if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL)
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
  else
    cJSON_AddItemToObject(obj, key, v);
  free(key);
  return 0;
}

/* --ids ID,ID,... or --ids @FILE (one id per line). */
static int parse_ids(struct run_config *c, const char *v) {
  char *text = NULL;
  if (v[0] == '@') {
    FILE *f = fopen(v + 1, "r");
    if (f == NULL) {
      assay_cli_usage_error("run", "--ids: cannot read '%s': %s", v + 1,
                            strerror(errno));
      return -1;
    }
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
      free(text);
      text = assay__xstrdup("");
    }
  } else {
    text = assay__xstrdup(v);
  }
  const char *seps = v[0] == '@' ? "\r\n" : ",";
  char *save = NULL;
  for (char *tok = strtok_r(text, seps, &save); tok != NULL;
       tok = strtok_r(NULL, seps, &save)) {
    while (*tok == ' ' || *tok == '\t')
      tok++;
    size_t len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
      tok[--len] = '\0';
    if (len == 0)
      continue;
    c->ids = assay__xrealloc(c->ids, (c->nids + 2) * sizeof *c->ids);
    c->ids[c->nids++] = assay__xstrdup(tok);
    c->ids[c->nids] = NULL;
  }
  free(text);
  if (c->nids == 0) {
    assay_cli_usage_error("run",
                          *v == '@' ? "--ids %s names no ids (the file is "
                                      "empty; one id per line)"
                                    : "--ids '%s' names no ids; give them as "
                                      "ID,ID,... or @FILE",
                          v);
    return -1;
  }
  c->ids_spec = v;
  return 0;
}

/* The value of a scheduler's environment variable as a whole number. */
static int env_long(const char *name, long *out) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' && parse_long(v, 0, INT_MAX, out) == 0 ? 0 : -1;
}

/* --shard I/N, auto/N or auto. */
static int parse_shard(const char *v, int *index, int *count) {
  long i = -1, n = -1;
  const char *slash = strchr(v, '/');
  size_t head = slash ? (size_t)(slash - v) : strlen(v);
  int is_auto = head == 4 && strncmp(v, "auto", 4) == 0;
  if (slash != NULL && parse_long(slash + 1, 1, INT_MAX, &n) != 0) {
    assay_cli_usage_error("run",
                          "--shard %s: the count after '/' must be a whole "
                          "number of at least 1",
                          v);
    return -1;
  }
  if (is_auto) {
    long min = 0;
    if (env_long("JOB_COMPLETION_INDEX", &i) == 0) {
      /* A Kubernetes Indexed Job: indexes 0..completions-1. */
    } else if (env_long("SLURM_ARRAY_TASK_ID", &i) == 0) {
      /* A Slurm job array may start anywhere (--array=1-8). */
      if (env_long("SLURM_ARRAY_TASK_MIN", &min) == 0)
        i -= min;
      if (n < 0 && env_long("SLURM_ARRAY_TASK_COUNT", &n) != 0) {
        assay_cli_usage_error(
            "run", "--shard auto: SLURM_ARRAY_TASK_COUNT is not set; "
                   "give the count as --shard auto/N");
        return -1;
      }
    } else {
      assay_cli_usage_error("run",
                            "--shard %s: neither JOB_COMPLETION_INDEX "
                            "(Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID "
                            "(Slurm job array) is set; give --shard I/N",
                            v);
      return -1;
    }
    if (n < 0) {
      assay_cli_usage_error("run",
                            "--shard auto needs the shard count here: --shard "
                            "auto/N");
      return -1;
    }
  } else {
    char *text = assay__xstrndup(v, head);
    int bad = slash == NULL || parse_long(text, 0, INT_MAX, &i) != 0;
    free(text);
    if (bad) {
      assay_cli_usage_error("run",
                            "--shard expects I/N, auto/N or auto, got '%s'", v);
      return -1;
    }
  }
  if (i < 0 || i >= n) {
    assay_cli_usage_error(
        "run", "--shard %s: the shard index must be within 0..%ld", v, n - 1);
    return -1;
  }
  *index = (int)i;
  *count = (int)n;
  return 0;
}

/* Arguments made from a run file, owned. */
struct argvec {
  char **v;
  int n;
};

static void argvec_push(struct argvec *a, char *owned) {
  a->v = assay__xrealloc(a->v, (size_t)(a->n + 2) * sizeof *a->v);
  a->v[a->n++] = owned;
  a->v[a->n] = NULL;
}

static void argvec_free(struct argvec *a) {
  for (int i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
}

static void push_opts(struct argvec *a, const char *flag, const cJSON *obj,
                      int json) {
  const cJSON *o;
  cJSON_ArrayForEach(o, obj) {
    argvec_push(a, assay__xstrdup(flag));
    if (json) {
      char *v = assay__json_print(o);
      argvec_push(a, assay__format("%s=%s", o->string, v));
      free(v);
    } else {
      argvec_push(a, assay__format("%s=%s", o->string,
                                   cJSON_IsString(o) ? o->valuestring : ""));
    }
  }
}

/* Whether argv holds the option (as "--x" or "--x=..."). */
static int has_option(int argc, char **argv, const char *opt) {
  size_t n = strlen(opt);
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], opt, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
      return 1;
  return 0;
}

/* Checks a run file's task (metric < 0) or metric entry: an object with
 * a "spec" string, and "options" (and for a metric "map") objects if
 * given, nothing else. 0, or the usage error's status. */
static int check_component(const char *cmd, const char *path, int metric,
                           const cJSON *c) {
  char what[32];
  if (metric < 0)
    snprintf(what, sizeof what, "the task");
  else
    snprintf(what, sizeof what, "metric %d", metric + 1);
  if (!cJSON_IsObject(c) ||
      !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "spec")))
    return assay_cli_usage_error(
        cmd,
        "run file '%s': %s needs a \"spec\" (an object like "
        "{\"spec\": \"%s\"})",
        path, what, metric < 0 ? "echo" : "equals");
  const cJSON *k;
  cJSON_ArrayForEach(k, c) {
    int is_map = metric >= 0 && strcmp(k->string, "map") == 0;
    if (strcmp(k->string, "spec") == 0)
      continue;
    if (strcmp(k->string, "options") != 0 && !is_map)
      return assay_cli_usage_error(
          cmd, "run file '%s': %s has an unknown key \"%s\" (it takes %s)",
          path, what, k->string,
          metric < 0 ? "\"spec\" and \"options\""
                     : "\"spec\", \"options\" and \"map\"");
    if (!cJSON_IsObject(k))
      return assay_cli_usage_error(
          cmd, "run file '%s': %s: \"%s\" must be an object", path, what,
          k->string);
  }
  return 0;
}

/*
 * -c FILE: a run file (every option of `assay run` as JSON, in the shape of
 * a summary's "config"), or a summary, whose config repeats its run. It
 * becomes arguments placed before the command line's, so those override
 * it; a --task or --metric on the command line replaces the file's task or
 * metrics. A summary's output paths are its run's, so they are dropped.
 */
/* A run file or summary is small; anything larger is not one. */
#define RUN_FILE_MAX_BYTES ((size_t)16 << 20)

static int run_file_args(const char *cmd, const char *path, int argc,
                         char **argv, struct argvec *out,
                         const char **dataset_arg) {
  char *err = NULL;
  cJSON *root = assay__read_json_file(path, RUN_FILE_MAX_BYTES, &err);
  if (root == NULL) {
    int rc = assay_cli_usage_error(cmd, "run file '%s': %s", path, err);
    free(err);
    return rc;
  }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return assay_cli_usage_error(cmd,
                                 "run file '%s' is not a JSON object (it "
                                 "takes {\"dataset\": ..., \"task\": ..., "
                                 "\"metrics\": [...], ...})",
                                 path);
  }
  const cJSON *conf = root;
  int from_summary = cJSON_HasObjectItem(root, "format_version");
  if (from_summary) {
    conf = cJSON_GetObjectItemCaseSensitive(root, "config");
    if (!cJSON_IsObject(conf)) {
      cJSON_Delete(root);
      return assay_cli_usage_error(
          cmd, "summary '%s' holds no \"config\" to repeat", path);
    }
  }
  static const struct {
    const char *key, *flag;
  } scalars[] = {{"dataset", "--dataset"},
                 {"format", "--format"},
                 {"name", "--name"},
                 {"output", "--output"},
                 {"summary", "--summary"},
                 {"concurrency", "--concurrency"},
                 {"threads", "--threads"},
                 {"timeout_ms", "--timeout"},
                 {"retries", "--retries"},
                 {"item_timeout_ms", "--item-timeout"},
                 {"limit", "--limit"},
                 {"max_item_bytes", "--max-item-bytes"},
                 {"max_response_bytes", "--max-response-bytes"},
                 {"max_record_bytes", "--max-record-bytes"},
                 {"rps", "--rps"},
                 {"grace_ms", "--grace"},
                 {"trials", "--trials"},
                 {"offset", "--offset"},
                 {"ids", "--ids"},
                 {"shuffle", "--shuffle"},
                 {"shard", "--shard"}};
  int rc = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, conf) {
    const char *k = m->string;
    size_t i = 0;
    while (i < assay__array_size(scalars) && strcmp(scalars[i].key, k) != 0)
      i++;
    if (i < assay__array_size(scalars)) {
      if (from_summary && (strcmp(k, "output") == 0 || strcmp(k, "summary") == 0))
        continue;
      /* Zero means "none" for these in a summary's config. */
      int zero_none = strcmp(k, "limit") == 0 || strcmp(k, "rps") == 0 ||
                      strcmp(k, "item_timeout_ms") == 0 ||
                      strcmp(k, "offset") == 0;
      if (cJSON_IsNumber(m)) {
        if (zero_none && m->valuedouble == 0)
          continue;
        argvec_push(out, assay__xstrdup(scalars[i].flag));
        argvec_push(out, assay__json_print(m));
      } else if (cJSON_IsString(m)) {
        if (strcmp(k, "format") == 0 && strcmp(m->valuestring, "auto") == 0)
          continue;
        argvec_push(out, assay__xstrdup(scalars[i].flag));
        argvec_push(out, assay__xstrdup(m->valuestring));
        if (strcmp(k, "dataset") == 0)
          *dataset_arg = out->v[out->n - 1];
      } else if (!cJSON_IsNull(m)) {
        rc =
            assay_cli_usage_error(cmd,
                                  "run file '%s': \"%s\" must be a number or a "
                                  "string",
                                  path, k);
        break;
      }
    } else if (strcmp(k, "task") == 0 || strcmp(k, "metrics") == 0 ||
               strcmp(k, "map") == 0) {
      /* Handled below, in the order the command line needs. */
    } else {
      const char *keys[assay__array_size(scalars) + 3] = {"task", "metrics",
                                                          "map"};
      for (size_t j = 0; j < assay__array_size(scalars); j++)
        keys[3 + j] = scalars[j].key;
      const char *near = assay__nearest(k, keys, assay__array_size(keys));
      if (near != NULL)
        rc = assay_cli_usage_error(
            cmd, "run file '%s': unknown key \"%s\" (did you mean \"%s\"?)",
            path, k, near);
      else
        rc = assay_cli_usage_error(
            cmd,
            "run file '%s': unknown key \"%s\"; docs/running.md lists "
            "the keys a run file takes",
            path, k);
      break;
    }
  }
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(conf, "map");
  const cJSON *task = cJSON_GetObjectItemCaseSensitive(conf, "task");
  const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(conf, "metrics");
  if (rc == 0 && ((map && !cJSON_IsObject(map)) ||
                  (task && !cJSON_IsObject(task) && !cJSON_IsNull(task)) ||
                  (metrics && !cJSON_IsArray(metrics))))
    rc = assay_cli_usage_error(cmd,
                               "run file '%s': \"task\" must be an object, "
                               "\"metrics\" an array and \"map\" an object",
                               path);
  if (rc == 0)
    push_opts(out, "--map", map, 0);
  if (rc == 0 && cJSON_IsObject(task) && !has_option(argc, argv, "--task")) {
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(task, "spec");
    rc = check_component(cmd, path, -1, task);
    if (rc == 0) {
      argvec_push(out, assay__xstrdup("--task"));
      argvec_push(out, assay__xstrdup(spec->valuestring));
      push_opts(out, "--opt", cJSON_GetObjectItemCaseSensitive(task, "options"),
                1);
    }
  }
  if (rc == 0 && metrics && !has_option(argc, argv, "--metric")) {
    const cJSON *mt;
    int nm = 0;
    cJSON_ArrayForEach(mt, metrics) {
      const cJSON *spec = cJSON_GetObjectItemCaseSensitive(mt, "spec");
      if ((rc = check_component(cmd, path, nm++, mt)) != 0)
        break;
      argvec_push(out, assay__xstrdup("--metric"));
      argvec_push(out, assay__xstrdup(spec->valuestring));
      push_opts(out, "--opt", cJSON_GetObjectItemCaseSensitive(mt, "options"),
                1);
      push_opts(out, "--map", cJSON_GetObjectItemCaseSensitive(mt, "map"), 0);
    }
  }
  cJSON_Delete(root);
  return rc;
}

static void config_free(struct run_config *c) {
  for (size_t i = 0; i < c->npass; i++)
    assay_threshold_release(&c->pass[i]);
  free(c->pass);
  for (size_t i = 0; i < c->nunder; i++)
    assay_fail_under_release(&c->under[i]);
  free(c->under);
  for (size_t i = 0; i < c->nids; i++)
    free(c->ids[i]);
  free(c->ids);
  for (int i = 0; i < c->nspecs; i++) {
    cJSON_Delete(c->specs[i].opts);
    cJSON_Delete(c->specs[i].map);
  }
  free(c->specs);
  cJSON_Delete(c->global_map);
  free(c->plugin_dirs);
}

static void dirs_add(const char ***dirs, int *n, const char *d) {
  *dirs = assay__xrealloc(*dirs, (size_t)(*n + 2) * sizeof **dirs);
  (*dirs)[(*n)++] = d;
  (*dirs)[*n] = NULL;
}

#define NEED_VALUE()                                                           \
  do {                                                                         \
    if (r < 0)                                                                 \
      return assay_cli_usage_error("run", "option '%s' needs a value",         \
                                   argv[i]);                                   \
  } while (0)

static int parse_run(int argc, char **argv, struct run_config *c) {
  assay_engine_opts_init(&c->eng);
  c->max_item_bytes = ASSAY_DEFAULT_MAX_ITEM_BYTES;
  c->max_record_bytes = (size_t)64 << 20;
  c->global_map = cJSON_CreateObject();
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    const char *a = argv[i];
    int r;
    long n;
    if ((r = take(argc, argv, &i, "--help", "-h", 0, &v)) != 0) {
      fputs(c->rescore ? rescore_help : run_help, stdout);
      return -1;
    } else if (c->rescore && (strcmp(a, "--dataset") == 0 ||
                              strncmp(a, "--dataset=", 10) == 0 ||
                              strcmp(a, "--task") == 0 ||
                              strncmp(a, "--task=", 7) == 0 ||
                              strcmp(a, "--trials") == 0 ||
                              strncmp(a, "--trials=", 9) == 0)) {
      return assay_cli_usage_error(
          c->cmd,
          "%s is not for rescore: it scores the outputs "
          "stored in RESULTS.jsonl, given as its first "
          "argument",
          a);
    } else if ((r = take(argc, argv, &i, "--dataset", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      c->dataset = v;
    } else if ((r = take(argc, argv, &i, "--format", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (strcmp(v, "jsonl") == 0)
        c->format = ASSAY_DATASET_JSONL;
      else if (strcmp(v, "json") == 0)
        c->format = ASSAY_DATASET_JSON;
      else if (strcmp(v, "csv") == 0)
        c->format = ASSAY_DATASET_CSV;
      else
        return assay_cli_usage_error(
            c->cmd, "--format must be jsonl, json or csv, not '%s'", v);
    } else if ((r = take(argc, argv, &i, "--task", NULL, 1, &v)) != 0 ||
               (r = take(argc, argv, &i, "--metric", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      int kind = strncmp(a, "--task", 6) == 0 ? ASSAY_KIND_TASK : ASSAY_KIND_METRIC;
      if (*v == '\0')
        return assay_cli_usage_error(c->cmd, "%s needs a plugin SPEC", a);
      c->specs = assay__xrealloc(c->specs, (size_t)(c->nspecs + 1) * sizeof *c->specs);
      c->specs[c->nspecs++] = (struct spec){kind, (char *)v, cJSON_CreateObject(),
                                            cJSON_CreateObject()};
    } else if ((r = take(argc, argv, &i, "--opt", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (c->nspecs == 0)
        return assay_cli_usage_error(
            c->cmd,
            "--opt %s must follow the --task or --metric "
            "it configures",
            v);
      if (add_kv(c->specs[c->nspecs - 1].opts, v, 1) != 0)
        return assay_cli_usage_error(c->cmd,
                                     "--opt expects KEY=VALUE, got '%s'", v);
    } else if ((r = take(argc, argv, &i, "--map", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      struct spec *last = NULL;
      for (int k = c->nspecs - 1; k >= 0 && last == NULL; k--)
        if (c->specs[k].kind == ASSAY_KIND_METRIC)
          last = &c->specs[k];
      if (strchr(v, '=') == NULL || v[0] == '=' || v[strlen(v) - 1] == '=')
        return assay_cli_usage_error(c->cmd,
                                     "--map expects KEY=FIELD, got '%s'", v);
      add_kv(last ? last->map : c->global_map, v, 0);
    } else if ((r = take(argc, argv, &i, "--output", "-o", 1, &v)) != 0) {
      NEED_VALUE();
      c->output = v;
    } else if ((r = take(argc, argv, &i, "--summary", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      c->summary = v;
    } else if ((r = take(argc, argv, &i, "--name", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (*v == '\0' || strchr(v, '/') != NULL)
        return assay_cli_usage_error(
            c->cmd, "--name must be non-empty and contain no '/'");
      c->name = v;
    } else if ((r = take(argc, argv, &i, "--overwrite", NULL, 0, &v)) != 0) {
      if (r < 0)
        return assay_cli_usage_error(c->cmd, "--overwrite takes no value");
      c->overwrite = 1;
    } else if ((r = take(argc, argv, &i, "--progress", NULL, 0, &v)) != 0) {
      if (r < 0)
        return assay_cli_usage_error(c->cmd, "--progress takes no value");
      c->progress = 1;
    } else if ((r = take(argc, argv, &i, "--resume", NULL, 0, &v)) != 0) {
      if (r < 0)
        return assay_cli_usage_error(c->cmd, "--resume takes no value");
      c->resume = 1;
    } else if ((r = take(argc, argv, &i, "--grace", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 0, LONG_MAX / 2, &n) != 0)
        return assay_cli_usage_error(
            c->cmd, "--grace expects milliseconds, got '%s'", v);
      c->eng.grace_ms = n;
    } else if ((r = take(argc, argv, &i, "--quiet", "-q", 0, &v)) != 0) {
      if (r < 0)
        return assay_cli_usage_error(c->cmd, "--quiet takes no value");
      c->quiet = 1;
    } else if ((r = take(argc, argv, &i, "--plugin-dir", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      dirs_add(&c->plugin_dirs, &c->ndirs, v);
    } else if ((r = take(argc, argv, &i, "--concurrency", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 1, 1 << 20, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--concurrency expects a whole number from 1 "
            "to 1048576, got '%s'",
            v);
      c->eng.concurrency = (int)n;
    } else if ((r = take(argc, argv, &i, "--threads", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 1, 1024, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--threads expects a whole number from 1 to "
            "1024, got '%s'",
            v);
      c->eng.threads = (int)n;
    } else if ((r = take(argc, argv, &i, "--timeout", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 1, LONG_MAX / 2, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--timeout expects milliseconds (at least 1), "
            "got '%s'",
            v);
      c->eng.timeout_ms = n;
    } else if ((r = take(argc, argv, &i, "--retries", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 0, 100, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--retries expects a whole number from 0 to "
            "100, got '%s'",
            v);
      c->eng.retries = (int)n;
    } else if ((r = take(argc, argv, &i, "--item-timeout", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 0, LONG_MAX / 2, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--item-timeout expects milliseconds (0 for "
            "none), got '%s'",
            v);
      c->eng.item_timeout_ms = n;
    } else if ((r = take(argc, argv, &i, "--trials", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 1, 1000000, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--trials expects a whole number from 1 to "
            "1000000, got '%s'",
            v);
      c->eng.trials = (int)n;
    } else if ((r = take(argc, argv, &i, "--offset", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 0, LONG_MAX, &n) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--offset expects a whole number of items, "
            "got '%s'",
            v);
      c->sel.offset = n;
    } else if ((r = take(argc, argv, &i, "--ids", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_ids(c, v) != 0)
        return EXIT_USAGE;
    } else if ((r = take(argc, argv, &i, "--shuffle", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      char *end;
      errno = 0;
      unsigned long long seed = strtoull(v, &end, 10);
      if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
        return assay_cli_usage_error(
            c->cmd,
            "--shuffle expects a seed (a whole number), "
            "got '%s'",
            v);
      c->sel.shuffle = 1;
      c->sel.seed = seed;
    } else if ((r = take(argc, argv, &i, "--shard", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_shard(v, &c->sel.shard_index, &c->sel.shard_count) != 0)
        return EXIT_USAGE;
      c->shard_spec = v;
    } else if ((r = take(argc, argv, &i, "--pass", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      char *perr = NULL;
      c->pass = assay__xrealloc(c->pass, (c->npass + 1) * sizeof *c->pass);
      if (assay_threshold_parse(v, &c->pass[c->npass], &perr) != 0) {
        assay_cli_usage_error(c->cmd, "%s", perr);
        free(perr);
        return EXIT_USAGE;
      }
      c->npass++;
    } else if ((r = take(argc, argv, &i, "--fail-under", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      char *perr = NULL;
      c->under = assay__xrealloc(c->under, (c->nunder + 1) * sizeof *c->under);
      if (assay_fail_under_parse(v, &c->under[c->nunder], &perr) != 0) {
        assay_cli_usage_error(c->cmd, "%s", perr);
        free(perr);
        return EXIT_USAGE;
      }
      c->nunder++;
    } else if ((r = take(argc, argv, &i, "--junit", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (strcmp(v, "-") == 0)
        return assay_cli_usage_error(c->cmd,
                                     "--junit needs a file (it is written "
                                     "whole at the end), not -");
      c->junit = v;
    } else if ((r = take(argc, argv, &i, "--limit", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_long(v, 1, LONG_MAX, &n) != 0)
        return assay_cli_usage_error(c->cmd,
                                     "--limit expects a whole number of items "
                                     "(at least 1), got '%s'",
                                     v);
      c->eng.limit = n;
    } else if ((r = take(argc, argv, &i, "--max-item-bytes", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      if (parse_size(v, &c->max_item_bytes) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--max-item-bytes expects a byte count, got "
            "'%s'",
            v);
    } else if ((r = take(argc, argv, &i, "--max-record-bytes", NULL, 1, &v)) !=
               0) {
      NEED_VALUE();
      if (parse_size(v, &c->max_record_bytes) != 0 || c->max_record_bytes < 256)
        return assay_cli_usage_error(
            c->cmd,
            "--max-record-bytes expects a byte count of "
            "at least 256, got '%s'",
            v);
    } else if ((r = take(argc, argv, &i, "--max-response-bytes", NULL, 1, &v)) !=
               0) {
      NEED_VALUE();
      if (parse_size(v, &c->eng.max_response_bytes) != 0)
        return assay_cli_usage_error(
            c->cmd,
            "--max-response-bytes expects a byte count, "
            "got '%s'",
            v);
    } else if ((r = take(argc, argv, &i, "--rps", NULL, 1, &v)) != 0) {
      NEED_VALUE();
      char *end;
      double d = strtod(v, &end);
      if (end == v || *end != '\0' || !isfinite(d) || d <= 0)
        return assay_cli_usage_error(
            c->cmd, "--rps expects a positive number, got '%s'", v);
      c->eng.rps = d;
    } else if (a[0] == '-' && a[1] != '\0') {
      return assay_cli_unknown_option(c->cmd, run_help, a);
    } else if (c->rescore && c->dataset == NULL) {
      c->dataset = a;
    } else {
      return assay_cli_usage_error(c->cmd, "unexpected argument '%s'", a);
    }
  }
  if (c->dataset == NULL)
    return assay_cli_usage_error(c->cmd, c->rescore
                                             ? "give the records to rescore: "
                                               "assay rescore RESULTS.jsonl "
                                               "--metric ..."
                                             : "--dataset FILE is required");
  if (c->rescore) {
    c->format = ASSAY_DATASET_JSONL;
    c->eng.rescore = 1;
  }
  int ntasks = 0, nmetrics = 0;
  for (int i = 0; i < c->nspecs; i++)
    c->specs[i].kind == ASSAY_KIND_TASK ? ntasks++ : nmetrics++;
  if (ntasks > 1)
    return assay_cli_usage_error(c->cmd, "only one --task per run");
  if (ntasks == 0 && nmetrics == 0)
    return assay_cli_usage_error(
        c->cmd, c->rescore ? "nothing to run: give at least one "
                             "--metric"
                           : "nothing to run: give a --task, a "
                             "--metric, or both");
  if (c->resume && c->overwrite)
    return assay_cli_usage_error(c->cmd,
                                 "--resume and --overwrite exclude each other");
  if (c->resume && (c->output == NULL || strcmp(c->output, "-") == 0))
    return assay_cli_usage_error(
        c->cmd, "--resume needs the --output file to go on from");
  return 0;
}

/* ---- output --------------------------------------------------------------------- */

struct sink {
  int fd;
  const char *path;
  struct assay__buf out; /* records not yet written: whole lines */
  struct assay_summary *summary;
  int write_errno;
  int64_t records; /* written by this run */
  struct assay_junit *junit;
  const struct assay_threshold *pass;
  size_t npass;
  const struct assay_fail_under *under;
  size_t nunder;
  int gates_checked; /* the gates' score names, against a first record */
  size_t max_record; /* --max-record-bytes */
  long oversize;     /* records replaced for being over it */
};

/* A gate's score that the first scored record lacks is most often a
 * misspelt name, which fails the gate only when the run is over and paid
 * for: warn at once, while Ctrl-C (and --resume later) can still help. A
 * metric may name its scores at run time, so this is a warning. */
static void check_gate_names(struct sink *s, const cJSON *record) {
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(record, "error");
  const cJSON *scores = cJSON_GetObjectItemCaseSensitive(record, "scores");
  if ((err != NULL && !cJSON_IsNull(err)) || !cJSON_IsObject(scores) ||
      scores->child == NULL)
    return; /* a failed item says nothing of the names */
  s->gates_checked = 1;
  size_t n = s->npass + s->nunder;
  for (size_t i = 0; i < n; i++) {
    const char *name =
        i < s->npass ? s->pass[i].score : s->under[i - s->npass].score;
    int told = cJSON_GetObjectItemCaseSensitive(scores, name) != NULL;
    for (size_t k = 0; k < i && !told; k++)
      told = strcmp(name, k < s->npass ? s->pass[k].score
                                       : s->under[k - s->npass].score) == 0;
    if (told)
      continue;
    char *have = assay__json_keys(scores, "no scores");
    fprintf(stderr,
            "%s: warning: %s: the first record has no score '%s' (it has: "
            "%s); if the name is misspelt, the gate fails when the run "
            "ends (Ctrl-C stops it; --resume goes on from there)\n",
            prog, i < s->npass ? "--pass" : "--fail-under", name, have);
    free(have);
  }
}

/* The progress display: a live line on a terminal, or with --progress a
 * plain line every few seconds. Runs on the loop thread from the engine's
 * tick, so it reads the sink's summary without locks. */
struct progress {
  struct sink *sink;
  int tty;
  int64_t total;   /* results expected in all, -1 when unknown */
  int64_t resumed; /* results already there */
  double t0, last_print;
  int width;
  int drawn;
};

static void fmt_duration(char *buf, size_t n, double s) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_tick(void *arg, const struct assay_engine *e) {
  struct progress *p = arg;
  double now = assay__now_ms();
  if (!p->tty && now - p->last_print < 5000)
    return;
  p->last_print = now;
  int64_t done = p->resumed + p->sink->records;
  double secs = (now - p->t0) / 1000;
  double rate = secs > 0 ? (double)p->sink->records / secs : 0;
  char line[512], eta[32] = "";
  int n;
  if (p->total >= 0) {
    double pct = p->total > 0 ? 100.0 * (double)done / (double)p->total : 100;
    if (rate > 0 && p->total > done)
      fmt_duration(eta, sizeof eta, (double)(p->total - done) / rate);
    n = snprintf(line, sizeof line, "%lld/%lld %.0f%% %.1f/s%s%s",
                 (long long)done, (long long)p->total, pct, rate,
                 *eta ? " ETA " : "", eta);
  } else {
    n = snprintf(line, sizeof line, "%lld done %.1f/s", (long long)done, rate);
  }
  cJSON *sum = assay_summary_json(p->sink->summary, NULL);
  const cJSON *sc;
  cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(sum, "scores")) {
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(sc, "mean");
    if (n < (int)sizeof line - 1 && cJSON_IsNumber(mean))
      n += snprintf(line + n, sizeof line - (size_t)n, " | %s %.3f", sc->string,
                    mean->valuedouble);
  }
  cJSON_Delete(sum);
  const struct assay_engine_stats *st = assay_engine_stats(e);
  if (n < (int)sizeof line - 1)
    n += snprintf(line + n, sizeof line - (size_t)n,
                  " | %lld running, %ld error%s, %ld retr%s",
                  (long long)assay_engine_running(e),
                  st->items_failed + st->scores_failed,
                  st->items_failed + st->scores_failed == 1 ? "" : "s",
                  st->retries, st->retries == 1 ? "y" : "ies");
  if (p->tty) {
    /* One line, cut to the terminal, redrawn in place. */
    int w = p->width > 1 ? p->width - 1 : 79;
    fprintf(stderr, "\r\033[K%.*s", w, line);
    p->drawn = 1;
  } else {
    fprintf(stderr, "progress: %s\n", line);
  }
  fflush(stderr);
}

/* Writes s as one word for a POSIX shell: as it is when that is safe,
 * else in single quotes. */
static void put_shell_word(FILE *f, const char *s) {
  if (*s != '\0' &&
      strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789_-+=.,/:@%") == strlen(s)) {
    fputs(s, f);
    return;
  }
  fputc('\'', f);
  for (; *s; s++)
    if (*s == '\'')
      fputs("'\\''", f);
    else
      fputc(*s, f);
  fputc('\'', f);
}

/* After a run that read its dataset to the end: warns, even with -q, of a
 * dataset with no items, of --ids that no item has and of an --offset past
 * the last item, which would otherwise just make a short or empty run. */
static void selection_warnings(const struct run_config *c,
                               const struct assay_dataset *ds,
                               const cJSON *summary) {
  int64_t nitems;
  const char **unseen;
  int ended = assay_dataset_selection_end(ds, &nitems, &unseen);
  if (!ended) {
    /* No selection (or one cut short by --limit): the records count. */
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(summary, "counts");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, "items");
    nitems = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : -1;
  }
  if (nitems == 0)
    fprintf(stderr, "%s: warning: %s '%s' holds no %s: nothing was run\n", prog,
            c->rescore ? "records file" : "dataset", assay_dataset_name(ds),
            c->rescore ? "records" : "items");
  if (!ended || nitems == 0) {
    free(unseen);
    return;
  }
  if (c->sel.offset > 0 && c->sel.offset >= nitems)
    fprintf(stderr,
            "%s: warning: --offset %lld skips all of the %lld item%s of '%s'\n",
            prog, (long long)c->sel.offset, (long long)nitems,
            nitems == 1 ? "" : "s", assay_dataset_name(ds));
  size_t n = 0;
  while (unseen[n] != NULL)
    n++;
  if (n > 0) {
    /* Listed in the order given (unseen is sorted), each once. */
    unsigned char *told = assay__xcalloc(n, 1);
    fprintf(stderr, "%s: warning: --ids: %zu id%s %s not in '%s':", prog, n,
            n == 1 ? "" : "s", n == 1 ? "is" : "are", assay_dataset_name(ds));
    size_t shown = 0;
    for (size_t i = 0; c->ids[i] != NULL && shown < 10; i++) {
      const char **hit =
          bsearch(&c->ids[i], unseen, n, sizeof *unseen, assay__cmp_str);
      if (hit != NULL && !told[hit - unseen]) {
        told[hit - unseen] = 1;
        fprintf(stderr, "%s %s", shown++ ? "," : "", *hit);
      }
    }
    fprintf(stderr, "%s\n", n > shown ? ", ..." : "");
    free(told);
  }
  free(unseen);
}

/* Whether metric comp declares an input named key. */
static int reads_input(const struct assay_component *comp, const char *key) {
  for (const struct assay_input *in = comp->inputs; in && in->name; in++)
    if (strcmp(in->name, key) == 0)
      return 1;
  return 0;
}

/* Refuses a --map KEY no metric reads, before any call is paid for: each
 * item's score would fail on the input the KEY was meant for. A metric's
 * own --map is checked against its inputs, one before any --metric
 * against all metrics'. */
static int check_map_keys(const struct run_config *c,
                          struct assay_loader *loader, char **err) {
  const struct assay_component **comps =
      assay__xcalloc((size_t)c->nspecs + 1, sizeof *comps);
  int rc = 0;
  for (int i = 0; i < c->nspecs; i++) {
    struct assay_module *mod;
    if (c->specs[i].kind == ASSAY_KIND_METRIC)
      assay_loader_find(loader, c->specs[i].spec, ASSAY_KIND_METRIC, &mod,
                        &comps[i], NULL);
  }
  for (int i = -1; i < c->nspecs && rc == 0; i++) {
    const cJSON *map = i < 0 ? c->global_map : c->specs[i].map;
    if (i >= 0 && comps[i] == NULL)
      continue;
    const cJSON *m;
    cJSON_ArrayForEach(m, map) {
      int read = 0;
      for (int k = i < 0 ? 0 : i; k < (i < 0 ? c->nspecs : i + 1) && !read; k++)
        read = comps[k] != NULL && reads_input(comps[k], m->string);
      if (read)
        continue;
      /* What could have been meant: the inputs there are, each once. */
      cJSON *seen = cJSON_CreateObject();
      for (int k = i < 0 ? 0 : i; k < (i < 0 ? c->nspecs : i + 1); k++)
        for (const struct assay_input *in = comps[k] ? comps[k]->inputs : NULL;
             in && in->name; in++)
          cJSON_AddNullToObject(seen, in->name);
      char *names = assay__json_keys(seen, "none declared");
      cJSON_Delete(seen);
      *err = i < 0 ? assay__format("--map %s=%s (before any --metric): no "
                                   "metric reads '%s' (they read: %s)",
                                   m->string, m->valuestring, m->string, names)
                   : assay__format("--map %s=%s: metric '%s' reads no '%s' "
                                   "(its inputs: %s)",
                                   m->string, m->valuestring, c->specs[i].spec,
                                   m->string, names);
      free(names);
      rc = -1;
      break;
    }
  }
  free(comps);
  return rc;
}

/* rescore: refuses a file whose first line is no result record, most
 * often a dataset given where its records were meant. (Standard input is
 * read once, so it is only checked line by line.) */
static int check_records_file(const struct run_config *c, char **err) {
  if (strcmp(c->dataset, "-") == 0)
    return 0;
  struct assay_dataset *ds = NULL;
  if (assay_dataset_open(&ds, c->dataset, ASSAY_DATASET_JSONL,
                         c->max_item_bytes, NULL) != 0)
    return 0; /* the reader proper says why */
  struct assay_dataset_item it;
  int rc = 0;
  if (assay_dataset_next(ds, &it, NULL) == 1) {
    if (it.json != NULL && !assay__is_record(it.json)) {
      *err = assay__format(
          "'%s' is not a records file of 'assay run': line %zu has no "
          "index, input and output; rescore scores the outputs stored in "
          "one (to score a dataset's own fields, use 'assay run --dataset "
          "%s --metric ...')",
          c->dataset, it.line, c->dataset);
      rc = -1;
    }
    assay_dataset_item_clear(&it);
  }
  assay_dataset_free(ds);
  return rc;
}

/* Refuses, before anything is written, files that would overwrite the
 * dataset (truncated by --overwrite before it is read) or one another. */
static int check_paths(const struct run_config *c, const char *output,
                       const char *summary, char **err) {
  if (summary != NULL && strcmp(summary, "-") == 0) {
    if (output == NULL) {
      *err = assay__xstrdup("-o - and --summary - would both write to "
                            "standard output: give one of them a file");
      return -1;
    }
    if (c->resume) {
      *err = assay__xstrdup("--resume checks the records against their "
                            "summary file: give --summary a file, not -");
      return -1;
    }
    summary = NULL; /* standard output: no file to compare */
  } else if (summary != NULL && c->resume && assay__is_stream(summary)) {
    *err = assay__format("--resume checks the records against their summary "
                         "file: give --summary a file, not the device or "
                         "pipe '%s'",
                         summary);
    return -1;
  }
  const char *const path[3] = {output, summary, c->junit};
  static const char *const flag[3] = {"--output", "--summary", "--junit"};
  for (int i = 0; i < 3; i++) {
    if (path[i] == NULL)
      continue;
    static const char *const example[3] = {
        "results.jsonl", "results.summary.json", "results.xml"};
    if ((*err = assay__dir_for_file(flag[i], path[i], example[i])) != NULL)
      return -1;
    if (strcmp(c->dataset, "-") != 0 && assay__same_file(path[i], c->dataset)) {
      *err = assay__format("%s '%s' is the %s this run reads; write it to "
                           "another file",
                           flag[i], path[i],
                           c->rescore ? "records file" : "dataset");
      return -1;
    }
    for (int k = 0; k < i; k++)
      if (path[k] != NULL && assay__same_file(path[i], path[k])) {
        *err = assay__format("%s '%s' is the same file as %s '%s': give "
                             "each its own file",
                             flag[i], path[i], flag[k], path[k]);
        return -1;
      }
  }
  return 0;
}

/* The results a run will hand out, when that is cheap to know. */
static int64_t expected_results(const struct run_config *c) {
  if (c->nids > 0 || c->sel.shuffle)
    return c->eng.limit > 0 ? c->eng.limit * c->eng.trials : -1;
  int64_t n = assay_dataset_count(c->dataset, c->format);
  if (n < 0)
    return -1;
  n = n > c->sel.offset ? n - c->sel.offset : 0;
  if (c->sel.shard_count > 0) {
    /* Indexes offset..offset+n-1 with i % count == index. */
    int64_t lo = c->sel.offset, hi = c->sel.offset + n, k = c->sel.shard_count;
    int64_t first = lo + ((c->sel.shard_index - lo % k) % k + k) % k;
    n = first < hi ? (hi - 1 - first) / k + 1 : 0;
  }
  if (c->eng.limit > 0 && n > c->eng.limit)
    n = c->eng.limit;
  return n * c->eng.trials;
}

/* Appends record as one line to the sink's buffer (on_flush writes the
 * lines); 0, or -1 when it cannot be printed. */
static int print_record(struct sink *s, const cJSON *record) {
  if (assay__json_write(&s->out, record) != 0)
    return -1;
  assay__buf_add(&s->out, "\n", 1);
  return 0;
}

/*
 * The record that stands for one over --max-record-bytes (a plugin's huge
 * output, most often): the same item with its output and scores dropped and
 * an error saying why, so no line is ever truncated into invalid JSON.
 */
static cJSON *oversize_record(const cJSON *record, size_t size, size_t max) {
  cJSON *r = cJSON_CreateObject();
  static const char *const keep[] = {"index", "id", "trial"};
  for (size_t i = 0; i < assay__array_size(keep); i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, keep[i]);
    cJSON_AddItemToObject(r, keep[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  }
  cJSON_AddNullToObject(r, "input");
  cJSON_AddNullToObject(r, "output");
  cJSON_AddObjectToObject(r, "scores");
  cJSON *err = cJSON_AddObjectToObject(r, "error");
  cJSON_AddStringToObject(err, "code", "bad_output");
  char *msg = assay__format("the record is %zu bytes, over the limit of %zu "
                            "(--max-record-bytes); its input, output and "
                            "scores were dropped",
                            size, max);
  cJSON_AddStringToObject(err, "message", msg);
  free(msg);
  static const char *const nums[] = {"attempts", "task_ms", "metrics_ms"};
  for (size_t i = 0; i < assay__array_size(nums); i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, nums[i]);
    cJSON_AddItemToObject(r, nums[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNumber(0));
  }
  return r;
}

static int on_record(void *arg, const cJSON *record, const char *line,
                     size_t len) {
  struct sink *s = arg;
  size_t start = s->out.len;
  cJSON *replaced = NULL;
  if (line != NULL) {
    assay__buf_add(&s->out, line, len);
    assay__buf_add(&s->out, "\n", 1);
  }
  if ((line == NULL && print_record(s, record) != 0) ||
      s->out.len - start - 1 > s->max_record) {
    size_t size = s->out.len > start ? s->out.len - start - 1 : (size_t)INT_MAX;
    s->out.len = start;
    replaced = oversize_record(record, size, s->max_record);
    record = replaced;
    s->oversize++;
    if (print_record(s, record) != 0) {
      cJSON_Delete(replaced);
      s->write_errno = EFBIG;
      return -1;
    }
  }
  assay_summary_add(s->summary, record);
  if (!s->gates_checked && s->npass + s->nunder > 0)
    check_gate_names(s, record);
  if (s->junit != NULL)
    assay_junit_add(s->junit, record, s->pass, s->npass);
  s->records++;
  cJSON_Delete(replaced);
  return 0;
}

/* Writes the records that became final together, in one write() when the
 * kernel takes it whole: a crash after it loses none of them, and a record
 * is never split across writes by us. */
static int on_flush(void *arg) {
  struct sink *s = arg;
  if (s->out.len == 0)
    return 0;
  if (assay__write_all(s->fd, s->out.p, s->out.len) != 0) {
    s->write_errno = errno;
    return -1;
  }
  s->out.len = 0;
  return 0;
}

static const char *libc_allocator(void) {
  return "the C library's malloc";
}

const char *(*assay_cli_allocator)(void) = libc_allocator;

static char *default_name(const char *dataset) {
  if (strcmp(dataset, "-") == 0)
    return assay__xstrdup("stdin");
  const char *base = strrchr(dataset, '/');
  base = base ? base + 1 : dataset;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return assay__xstrndup(base, n);
}

static cJSON *config_json(const struct run_config *c, const char *output,
                          const char *summary, const char *name) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "dataset", c->dataset);
  static const char *const fmts[] = {"auto", "jsonl", "json", "csv"};
  cJSON_AddStringToObject(j, "format", fmts[c->format]);
  cJSON_AddStringToObject(j, "name", name);
  cJSON_AddStringToObject(j, "output", output);
  if (summary)
    cJSON_AddStringToObject(j, "summary", summary);
  cJSON *task = NULL;
  cJSON *metrics = cJSON_CreateArray();
  for (int i = 0; i < c->nspecs; i++) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "spec", c->specs[i].spec);
    cJSON_AddItemToObject(s, "options", cJSON_Duplicate(c->specs[i].opts, 1));
    if (c->specs[i].kind == ASSAY_KIND_TASK) {
      task = s;
    } else {
      cJSON_AddItemToObject(s, "map", cJSON_Duplicate(c->specs[i].map, 1));
      cJSON_AddItemToArray(metrics, s);
    }
  }
  cJSON_AddItemToObject(j, "task", task ? task : cJSON_CreateNull());
  cJSON_AddItemToObject(j, "metrics", metrics);
  cJSON_AddItemToObject(j, "map", cJSON_Duplicate(c->global_map, 1));
  cJSON_AddNumberToObject(j, "concurrency", c->eng.concurrency);
  cJSON_AddNumberToObject(j, "threads", c->eng.threads);
  cJSON_AddNumberToObject(j, "timeout_ms", (double)c->eng.timeout_ms);
  cJSON_AddNumberToObject(j, "retries", c->eng.retries);
  cJSON_AddNumberToObject(j, "item_timeout_ms", (double)c->eng.item_timeout_ms);
  cJSON_AddNumberToObject(j, "limit", (double)c->eng.limit);
  cJSON_AddNumberToObject(j, "trials", c->eng.trials);
  cJSON_AddNumberToObject(j, "offset", (double)c->sel.offset);
  if (c->ids_spec)
    cJSON_AddStringToObject(j, "ids", c->ids_spec);
  if (c->sel.shuffle)
    cJSON_AddNumberToObject(j, "shuffle", (double)c->sel.seed);
  if (c->sel.shard_count > 0) {
    char shard[64];
    snprintf(shard, sizeof shard, "%d/%d", c->sel.shard_index,
             c->sel.shard_count);
    cJSON_AddStringToObject(j, "shard", shard);
  }
  cJSON_AddNumberToObject(j, "max_item_bytes", (double)c->max_item_bytes);
  cJSON_AddNumberToObject(j, "max_response_bytes",
                          (double)c->eng.max_response_bytes);
  cJSON_AddNumberToObject(j, "max_record_bytes", (double)c->max_record_bytes);
  cJSON_AddNumberToObject(j, "rps", c->eng.rps);
  cJSON_AddNumberToObject(j, "grace_ms", (double)c->eng.grace_ms);
  if (c->npass > 0) {
    cJSON *a = cJSON_AddArrayToObject(j, "pass");
    for (size_t i = 0; i < c->npass; i++) {
      char *t = assay__format("%s%s%.17g", c->pass[i].score,
                              assay_threshold_op_text(c->pass[i].op),
                              c->pass[i].value);
      cJSON_AddItemToArray(a, cJSON_CreateString(t));
      free(t);
    }
  }
  if (c->nunder > 0) {
    cJSON *a = cJSON_AddArrayToObject(j, "fail_under");
    for (size_t i = 0; i < c->nunder; i++) {
      char *t = assay__format("%s=%.17g", c->under[i].score, c->under[i].value);
      cJSON_AddItemToArray(a, cJSON_CreateString(t));
      free(t);
    }
  }
  if (c->junit != NULL)
    cJSON_AddStringToObject(j, "junit", c->junit);
  return j;
}

/*
 * What makes records comparable: the task and metrics with their options and
 * maps (not how the run is executed: concurrency, timeouts, paths). Stored in
 * the summary as a 64-bit FNV-1a hash of its canonical JSON.
 */
static char *fingerprint(const cJSON *config) {
  cJSON *f = cJSON_CreateObject();
  static const char *const keys[] = {"task", "metrics", "map", "trials"};
  for (size_t i = 0; i < assay__array_size(keys); i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, keys[i]);
    if (v != NULL)
      cJSON_AddItemToObject(f, keys[i], cJSON_Duplicate(v, 1));
  }
  char *text = assay__json_print(f);
  cJSON_Delete(f);
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  free(text);
  return assay__format("%016llx", (unsigned long long)h);
}

/* The records already in an output file being resumed. */
struct resume {
  const char *path;
  struct sink *sink;
  FILE *f;            /* reads the records again while the engine skips */
  int64_t count;      /* complete records */
  off_t keep;         /* bytes of complete lines; a torn tail is cut */
  struct assay_summary *summary;
  char *line;
  size_t cap;
};

/*
 * First pass over the file: counts complete, parseable records in index
 * order and finds where a torn last line starts. A record that does not
 * parse elsewhere than at the end means the file is not ours to append to.
 */
static int resume_scan(struct resume *rs, int fd, char **errmsg) {
  FILE *f = fdopen(dup(fd), "r");
  if (f == NULL)
    return assay__fail(errmsg, ASSAY_EIO, "cannot read '%s': %s", rs->path,
                       strerror(errno));
  ssize_t n;
  off_t pos = 0;
  int rc = 0;
  while ((n = getline(&rs->line, &rs->cap, f)) > 0) {
    if (rs->line[n - 1] != '\n')
      break; /* torn: the crash happened mid-write */
    cJSON *r = cJSON_ParseWithLength(rs->line, (size_t)n);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(r, "index");
    int ok = cJSON_IsObject(r) && cJSON_IsNumber(idx);
    cJSON_Delete(r);
    if (!ok) {
      rc = assay__fail(errmsg, ASSAY_ECONFIG,
                       "cannot resume: line %lld of '%s' is not a record; "
                       "give another --output, or --overwrite to start again",
                       (long long)rs->count + 1, rs->path);
      break;
    }
    rs->count++;
    pos += n;
  }
  rs->keep = pos;
  fclose(f);
  return rc;
}

/* The engine skips item `index`: it must be the input of record `index`. */
static int resume_check(void *arg, int64_t index, int trial, const cJSON *item,
                        char **errmsg) {
  struct resume *rs = arg;
  ssize_t n = getline(&rs->line, &rs->cap, rs->f);
  cJSON *r = n > 0 ? cJSON_ParseWithLength(rs->line, (size_t)n) : NULL;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(r, "input");
  const cJSON *ri = cJSON_GetObjectItemCaseSensitive(r, "index");
  const cJSON *rt = cJSON_GetObjectItemCaseSensitive(r, "trial");
  /* A record over --max-record-bytes kept no input to compare. */
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(r, "error"), "code");
  int dropped = cJSON_IsNull(input) && cJSON_IsString(code) &&
                strcmp(code->valuestring, "bad_output") == 0;
  int same = r != NULL && cJSON_IsNumber(ri) && ri->valuedouble == (double)index &&
             (rt == NULL || (cJSON_IsNumber(rt) && rt->valuedouble == trial)) &&
             (item == NULL ? cJSON_IsNull(input)
                           : dropped || cJSON_Compare(item, input, 1));
  if (same) {
    assay_summary_add(rs->summary, r);
    if (rs->sink->junit != NULL)
      assay_junit_add(rs->sink->junit, r, rs->sink->pass, rs->sink->npass);
  }
  cJSON_Delete(r);
  if (!same)
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "cannot resume: record %lld of '%s' was made from "
                       "another item than item %lld of this dataset; resume "
                       "with the dataset it was written for, or use "
                       "--overwrite",
                       (long long)index, rs->path, (long long)index);
  return 0;
}

static int summary_write(const char *path, const cJSON *sum, char **errmsg) {
  char *text = cJSON_Print(sum);
  int rc = assay__write_file_atomic(path, text, errmsg);
  free(text);
  return rc;
}

static struct assay_engine *volatile running_engine;
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
  if (signals_seen++ > 0)
    _exit(EXIT_INTERRUPTED);
  struct assay_engine *e = running_engine;
  if (e != NULL)
    assay_engine_stop(e);
  (void)sig;
}

static int cmd_run(int argc, char **argv, int rescore) {
  struct run_config c = {0};
  c.cmd = rescore ? "rescore" : "run";
  c.rescore = rescore;
  /* -c FILE / --config FILE: the file's options come first. */
  struct argvec all = {0};
  int rc = 0;
  for (int i = 0; i < argc && rc == 0; i++) {
    const char *v = NULL;
    int r = take(argc, argv, &i, "--config", "-c", 1, &v);
    if (r < 0)
      rc =
          assay_cli_usage_error(c.cmd, "option '%s' needs a run file", argv[i]);
    else if (r > 0) {
      const char *dataset_arg = NULL;
      rc = run_file_args(c.cmd, v, argc, argv, &all, &dataset_arg);
      if (dataset_arg != NULL) {
        c.run_file = v;
        c.run_file_dataset = dataset_arg;
      }
    }
  }
  for (int i = 0; i < argc && rc == 0; i++) {
    const char *v = NULL;
    int r = take(argc, argv, &i, "--config", "-c", 1, &v);
    if (r == 0)
      argvec_push(&all, assay__xstrdup(argv[i]));
  }
  if (rc == 0)
    rc = parse_run(all.n, all.v, &c);
  if (rc != 0) {
    config_free(&c);
    argvec_free(&all);
    return rc < 0 ? EXIT_OK : rc;
  }
  int status = EXIT_USAGE;
  char *err = NULL;
  char *name = c.name ? assay__xstrdup(c.name) : default_name(c.dataset);
  char *output = NULL, *summary_path = NULL;
  struct assay_dataset *ds = NULL;
  struct assay_loader *loader = NULL;
  struct assay_engine *engine = NULL;
  struct sink sink = {.fd = -1};
  struct resume rs = {0};
  double started = assay__wall_time();

  int orc =
      assay_dataset_open(&ds, c.dataset, c.format, c.max_item_bytes, &err);
  if (orc != 0) {
    int why = errno;
    if (c.rescore && orc != ASSAY_EBAD_INPUT) { /* a records file */
      free(err);
      err = assay__format("cannot read records file '%s': %s", c.dataset,
                          strerror(why));
    }
    if (why == ENOENT && c.dataset == c.run_file_dataset &&
        c.dataset[0] != '/') {
      char *more = assay__format("%s (the path is from '%s'; paths there are "
                                 "relative to the current directory, not to "
                                 "the file)",
                                 err, c.run_file);
      free(err);
      err = more;
    }
    goto fail;
  }
  if (c.rescore && check_records_file(&c, &err) != 0)
    goto fail;
  c.sel.ids = (const char *const *)c.ids;
  if (assay_dataset_select(ds, &c.sel, &err) != 0)
    goto fail;
  if (assay_loader_new(&loader, c.plugin_dirs, &err) != 0)
    goto fail;
  /* on_record reads of a record what a light one has (the summary, the
   * gates, an oversize record's stand-in), except for the JUnit report,
   * which shows each score's reason. */
  c.eng.light_records = c.junit == NULL;
  if (assay_engine_new(&engine, &c.eng, &err) != 0)
    goto fail;
  for (int i = 0; i < c.nspecs; i++) {
    struct spec *s = &c.specs[i];
    cJSON *map = NULL;
    if (s->kind == ASSAY_KIND_METRIC) {
      /* Global maps first; the metric's own override them. */
      map = cJSON_Duplicate(c.global_map, 1);
      const cJSON *m;
      cJSON_ArrayForEach(m, s->map) {
        cJSON_DeleteItemFromObjectCaseSensitive(map, m->string);
        cJSON_AddItemToObject(map, m->string, cJSON_Duplicate(m, 1));
      }
    }
    rc = assay_engine_add(engine, loader, s->kind, s->spec, s->opts, map, &err);
    cJSON_Delete(map);
    if (rc != 0)
      goto fail;
  }
  if (check_map_keys(&c, loader, &err) != 0)
    goto fail;

  if (c.output != NULL) {
    output = assay__xstrdup(c.output);
  } else if (c.rescore) {
    size_t n = strlen(c.dataset);
    if (n > 6 && strcmp(c.dataset + n - 6, ".jsonl") == 0)
      n -= 6;
    output = assay__format("%.*s.rescored.jsonl", (int)n, c.dataset);
  } else {
    char ts[32];
    assay__timestamp_compact(started, ts);
    if (assay__mkdir_p("assay-runs") != 0) {
      err = assay__format("cannot create directory 'assay-runs': %s",
                          strerror(errno));
      goto fail;
    }
    output = assay__format("assay-runs/%s-%s.jsonl", name, ts);
  }
  int to_stdout = strcmp(output, "-") == 0;
  /* -o /dev/null, a FIFO, a device: written in place, and like standard
   * output, no file to make, truncate, resume or put a summary beside. */
  int stream = !to_stdout && assay__is_stream(output);
  if (stream && c.resume) {
    err = assay__format("--resume needs a records file to go on from; '%s' "
                        "is a device or pipe",
                        output);
    goto fail;
  }
  /* -o results/run1.jsonl: make results/ as the default path would. */
  if (!to_stdout && !stream && assay__mkdir_parent(output, &err) != 0)
    goto fail;
  if (c.summary != NULL)
    summary_path = assay__xstrdup(c.summary);
  else if (!to_stdout && !stream)
    summary_path = assay__summary_path(output);
  if (check_paths(&c, to_stdout ? NULL : output, summary_path, &err) != 0)
    goto fail;
  /* --summary and --junit in new directories too, as -o. */
  if (summary_path != NULL && strcmp(summary_path, "-") != 0 &&
      assay__mkdir_parent(summary_path, &err) != 0)
    goto fail;
  if (c.junit != NULL && assay__mkdir_parent(c.junit, &err) != 0)
    goto fail;

  rs.path = output;
  if (to_stdout) {
    sink.fd = STDOUT_FILENO;
  } else if (stream) {
    sink.fd = open(output, O_WRONLY | O_CLOEXEC);
    if (sink.fd < 0) {
      err =
          assay__format("cannot open output '%s': %s", output, strerror(errno));
      goto fail;
    }
  } else if (c.resume) {
    sink.fd = open(output, O_RDWR | O_CREAT | O_CLOEXEC, ASSAY_OUTPUT_MODE);
    if (sink.fd < 0) {
      err = assay__format("cannot open output file '%s': %s", output,
                          strerror(errno));
      goto fail;
    }
    if (resume_scan(&rs, sink.fd, &err) != 0)
      goto fail;
    if (rs.count > 0 && summary_path != NULL) {
      /* The summary, written when the earlier run started, says what it
       * ran; refuse to mix records of two configurations. */
      char *text = NULL;
      FILE *sf = fopen(summary_path, "r");
      if (sf != NULL) {
        size_t cap = 0;
        ssize_t n = getdelim(&text, &cap, '\0', sf);
        fclose(sf);
        cJSON *old = n > 0 ? cJSON_Parse(text) : NULL;
        const cJSON *ofp = cJSON_GetObjectItemCaseSensitive(old, "fingerprint");
        cJSON *cj = config_json(&c, output, summary_path, name);
        char *fp = fingerprint(cj);
        cJSON_Delete(cj);
        int has_fp = cJSON_IsString(ofp);
        int differs = has_fp && strcmp(ofp->valuestring, fp) != 0;
        cJSON_Delete(old);
        free(fp);
        if (differs) {
          free(text);
          err = assay__format("cannot resume '%s': it was written with another "
                              "task, metrics or options (see its summary '%s'); "
                              "run with those, or use --overwrite",
                              output, summary_path);
          goto fail;
        }
        if (!has_fp)
          fprintf(stderr,
                  "%s: warning: the summary '%s' has no fingerprint: the "
                  "records of '%s' cannot be checked against this run's task, "
                  "metrics and options\n",
                  prog, summary_path, output);
      } else {
        fprintf(stderr,
                "%s: warning: no summary '%s' (%s): the records of '%s' cannot "
                "be checked against this run's task, metrics and options; "
                "give the earlier run's with --summary FILE\n",
                prog, summary_path, strerror(errno), output);
      }
      free(text);
    }
    if (ftruncate(sink.fd, rs.keep) != 0 || lseek(sink.fd, 0, SEEK_END) < 0) {
      err = assay__format("cannot cut the torn last line of '%s': %s", output,
                          strerror(errno));
      goto fail;
    }
    rs.f = fopen(output, "r");
    if (rs.f == NULL) {
      err = assay__format("cannot read '%s': %s", output, strerror(errno));
      goto fail;
    }
  } else {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (c.overwrite ? O_TRUNC : O_EXCL);
    sink.fd = open(output, flags, ASSAY_OUTPUT_MODE);
    if (sink.fd < 0) {
      err = errno == EEXIST
                ? assay__format("output file '%s' already exists; use "
                                "--overwrite to replace it or choose another "
                                "--output",
                                output)
                : assay__format("cannot create output file '%s': %s", output,
                                strerror(errno));
      goto fail;
    }
  }
  sink.path = output;
  sink.max_record = c.max_record_bytes;
  sink.summary = assay_summary_new();
  if (c.npass > 0)
    assay_summary_set_thresholds(sink.summary, c.pass, c.npass);
  sink.pass = c.pass;
  sink.npass = c.npass;
  sink.under = c.under;
  sink.nunder = c.nunder;
  if (c.junit != NULL) {
    sink.junit = assay_junit_open(c.junit, name, &err);
    if (sink.junit == NULL)
      goto fail;
  }
  rs.summary = sink.summary;
  rs.sink = &sink;
  if (rs.count > 0)
    assay_engine_skip(engine, rs.count, resume_check, &rs);

  cJSON *config = config_json(&c, output, summary_path, name);
  char *fp = fingerprint(config);
  /* A summary from the start, so that even a killed run leaves one saying
   * what it ran (resume checks it). A resumed run keeps the earlier one
   * until it has checked the records it goes on from. */
  int summary_stdout = summary_path != NULL && strcmp(summary_path, "-") == 0;
  /* Standard output, a FIFO or a device gets the final summary only: a
   * reader of a FIFO takes one. */
  int summary_once = summary_stdout ||
                     (summary_path != NULL && assay__is_stream(summary_path));
  if (summary_path != NULL && rs.count == 0 && !summary_once) {
    cJSON *run0 = cJSON_CreateObject();
    char iso0[32];
    assay__iso8601(started, iso0);
    cJSON_AddStringToObject(run0, "name", name);
    cJSON_AddStringToObject(run0, "started", iso0);
    cJSON_AddStringToObject(run0, "status", "running");
    cJSON_AddStringToObject(run0, "fingerprint", fp);
    cJSON_AddItemToObject(run0, "config", cJSON_Duplicate(config, 1));
    cJSON_AddItemToObject(run0, "plugins", assay_engine_plugins_json(engine));
    cJSON *sum0 = assay_summary_json(NULL, run0);
    cJSON_Delete(run0);
    int wrc = summary_write(summary_path, sum0, &err);
    cJSON_Delete(sum0);
    if (wrc != 0) {
      cJSON_Delete(config);
      free(fp);
      goto fail;
    }
  }

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  running_engine = engine;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  struct progress pd = {.sink = &sink, .resumed = rs.count};
  pd.tty = isatty(STDERR_FILENO);
  if (!c.quiet && (pd.tty || c.progress)) {
    pd.total = expected_results(&c);
    struct winsize ws;
    pd.width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 80;
    pd.t0 = pd.last_print = assay__now_ms();
    assay_engine_set_tick(engine, pd.tty ? 100 : 1000, on_tick, &pd);
  }

  assay_engine_set_flush(engine, on_flush);
  double t0 = assay__now_ms();
  rc = assay_engine_run(engine, ds, on_record, &sink, &err);
  if (pd.drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  double wall_ms = assay__now_ms() - t0;
  running_engine = NULL;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);

  /* Resume refused: the records are not this dataset's. Nothing ran and
   * the earlier summary stays as it was. */
  int refused = rc == ASSAY_ECONFIG;
  const char *run_status = rc == 0                    ? "completed"
                           : rc == ASSAY_EINTERRUPTED ? "interrupted"
                                                      : "failed";
  if (rc != 0 && rc != ASSAY_EINTERRUPTED) {
    if (sink.write_errno != 0) {
      free(err);
      err = to_stdout ? assay__format("cannot write to standard output: %s",
                                      strerror(sink.write_errno))
                      : assay__format("cannot write to '%s': %s", output,
                                      strerror(sink.write_errno));
    }
    fprintf(stderr, "%s: error: %s\n", prog, err ? err : "run failed");
  }
  free(err);
  err = NULL;

  cJSON *run = cJSON_CreateObject();
  cJSON_AddStringToObject(run, "name", name);
  char iso[32];
  assay__iso8601(started, iso);
  cJSON_AddStringToObject(run, "started", iso);
  cJSON_AddNumberToObject(run, "wall_ms", round(wall_ms * 1000) / 1000);
  cJSON_AddStringToObject(run, "status", run_status);
  cJSON_AddStringToObject(run, "assay_version", PACKAGE_VERSION);
  cJSON_AddStringToObject(run, "fingerprint", fp);
  free(fp);
  if (rs.count > 0)
    cJSON_AddNumberToObject(run, "resumed_from", (double)rs.count);
  cJSON_AddItemToObject(run, "config", config);
  cJSON_AddItemToObject(run, "plugins", assay_engine_plugins_json(engine));
  cJSON_AddItemToObject(run, "engine", assay_engine_counters_json(engine));
  cJSON *sum = assay_summary_json(sink.summary, run);
  cJSON_Delete(run);
  int summary_ok = summary_path != NULL && !refused;
  if (summary_ok && summary_write(summary_path, sum, &err) != 0) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    free(err);
    err = NULL;
    rc = rc ? rc : ASSAY_EIO;
    summary_ok = 0;
  }
  if (!c.quiet) {
    assay_summary_print(sum, stderr);
    if (!to_stdout)
      fprintf(stderr, "records: %s\n", output);
    if (summary_path)
      fprintf(stderr, "summary: %s\n",
              summary_stdout ? "standard output" : summary_path);
  }
  /* How to go on, even with -q: the summary holds the run's options. */
  if (rc == ASSAY_EINTERRUPTED && summary_ok && !summary_once && !to_stdout &&
      !stream && !c.rescore && strcmp(c.dataset, "-") != 0) {
    fprintf(stderr, "%s: interrupted; to finish the run: %s run -c ", prog,
            prog);
    put_shell_word(stderr, summary_path);
    fputs(" -o ", stderr);
    put_shell_word(stderr, output);
    fputs(" --resume\n", stderr);
  }

  /* Gates: checked on the final summary, reported even with -q. */
  int gates_failed = 0;
  if (c.nunder > 0) {
    char *report = NULL;
    if (assay_fail_under_check(sum, c.under, c.nunder, &report) > 0) {
      fprintf(stderr, "%s", report);
      gates_failed = 1;
    }
    free(report);
  }
  const cJSON *ft = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(sum, "counts"), "failed_thresholds");
  if (cJSON_IsNumber(ft) && ft->valuedouble > 0) {
    fprintf(stderr, "%s: %.0f record%s failed a --pass threshold\n", prog,
            ft->valuedouble, ft->valuedouble == 1 ? "" : "s");
    gates_failed = 1;
    /* Most often a misspelt score: say which names no record has. */
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(sum, "scores");
    for (size_t i = 0; i < c.npass; i++) {
      int told =
          cJSON_GetObjectItemCaseSensitive(scores, c.pass[i].score) != NULL;
      for (size_t k = 0; k < i && !told; k++)
        told = strcmp(c.pass[k].score, c.pass[i].score) == 0;
      if (told)
        continue;
      char *names = assay__score_names(sum);
      fprintf(stderr,
              "%s: --pass: no record has a score '%s' (check the score "
              "name: %s)\n",
              prog, c.pass[i].score, names);
      free(names);
    }
  }
  if (sink.junit != NULL) {
    struct assay_junit *j = sink.junit;
    sink.junit = NULL;
    if (assay_junit_close(j, &err) != 0) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      free(err);
      err = NULL;
      gates_failed = 1;
    }
  }

  if (rc == 0)
    selection_warnings(&c, ds, sum);
  if (sink.oversize > 0)
    fprintf(stderr,
            "%s: %ld record%s over --max-record-bytes %zu became error "
            "records\n",
            prog, sink.oversize, sink.oversize == 1 ? "" : "s",
            c.max_record_bytes);
  /* Failures count over the whole results file, resumed records included,
   * as the summary does. */
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(sum, "counts");
  const cJSON *nfailed = cJSON_GetObjectItemCaseSensitive(counts, "failed");
  const cJSON *nscores = cJSON_GetObjectItemCaseSensitive(counts, "score_failures");
  int failures = (cJSON_IsNumber(nfailed) && nfailed->valuedouble > 0) ||
                 (cJSON_IsNumber(nscores) && nscores->valuedouble > 0);
  if (refused)
    status = EXIT_USAGE;
  else if (rc == ASSAY_EINTERRUPTED)
    status = EXIT_INTERRUPTED;
  else if (rc != 0 || failures || gates_failed || sink.oversize > 0)
    status = EXIT_FAILURES;
  else
    status = EXIT_OK;
  cJSON_Delete(sum);

  if (!to_stdout && close(sink.fd) != 0) {
    fprintf(stderr, "%s: error: cannot write to '%s': %s\n", prog, output,
            strerror(errno));
    status = EXIT_FAILURES;
  }
  sink.fd = -1;
  int busy = assay_engine_busy_workers(engine);
  if (busy > 0) {
    /* A sync call still running past its timeout cannot be interrupted;
     * every result is written, so leave without waiting for it. */
    fprintf(stderr,
            "%s: warning: %d sync call%s still running past %s timeout; "
            "exiting without waiting\n",
            prog, busy, busy == 1 ? " is" : "s are", busy == 1 ? "its" : "their");
    fflush(stderr);
    free(output);
    free(summary_path);
    free(name);
    _exit(status);
  }
  goto done;

fail:
  fprintf(stderr, "%s: %s\n", prog, err ? err : "failed");
  status = EXIT_USAGE;
done:
  free(err);
  if (sink.junit != NULL)
    assay_junit_abort(sink.junit);
  if (rs.f != NULL)
    fclose(rs.f);
  free(rs.line);
  if (sink.fd >= 0 && sink.fd != STDOUT_FILENO)
    close(sink.fd);
  free(sink.out.p);
  assay_summary_free(sink.summary);
  if (engine != NULL && assay_engine_free(engine) != 0)
    fprintf(stderr, "%s: warning: a plugin left handles open\n", prog);
  assay_loader_free(loader);
  assay_dataset_free(ds);
  free(output);
  free(summary_path);
  free(name);
  config_free(&c);
  argvec_free(&all);
  return status;
}

/* ---- assay plugins ------------------------------------------------------------- */

static const char *opt_type_name(int t) {
  static const char *const names[] = {"?",       "string",  "number",
                                      "integer", "boolean", "json"};
  return t >= 1 && t <= 5 ? names[t] : "?";
}

static cJSON *component_json(const struct assay_component *comp) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", comp->name);
  cJSON_AddStringToObject(j, "kind", assay_kind_name(comp->kind));
  cJSON_AddStringToObject(j, "description",
                          comp->description ? comp->description : "");
  cJSON *modes = cJSON_AddArrayToObject(j, "modes");
  if (comp->run_sync)
    cJSON_AddItemToArray(modes, cJSON_CreateString("sync"));
  if (comp->run_async)
    cJSON_AddItemToArray(modes, cJSON_CreateString("async"));
  cJSON_AddBoolToObject(j, "thread_safe", (comp->flags & ASSAY_THREAD_SAFE) != 0);
  cJSON_AddBoolToObject(j, "quick", (comp->flags & ASSAY_QUICK) != 0);
  if (comp->kind == ASSAY_KIND_METRIC) {
    cJSON *in = cJSON_AddArrayToObject(j, "inputs");
    for (const struct assay_input *i = comp->inputs; i && i->name; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", i->name);
      cJSON_AddBoolToObject(o, "optional", (i->flags & ASSAY_INPUT_OPTIONAL) != 0);
      if (i->help)
        cJSON_AddStringToObject(o, "help", i->help);
      cJSON_AddItemToArray(in, o);
    }
  }
  cJSON *opts = cJSON_AddArrayToObject(j, "options");
  for (const struct assay_option *o = comp->options; o && o->name; o++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", o->name);
    cJSON_AddStringToObject(x, "type", opt_type_name(o->type));
    if (o->default_json)
      cJSON_AddStringToObject(x, "default", o->default_json);
    cJSON_AddBoolToObject(x, "required", (o->flags & ASSAY_OPT_REQUIRED) != 0);
    cJSON_AddStringToObject(x, "help", o->help ? o->help : "");
    cJSON_AddItemToArray(opts, x);
  }
  return j;
}

static cJSON *module_json(const struct assay_module *m,
                          const struct assay_component *only) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "plugin", m->desc->name);
  cJSON_AddStringToObject(j, "version", m->desc->version);
  cJSON_AddStringToObject(j, "file", m->path);
  char abi[32];
  snprintf(abi, sizeof abi, "%u.%u", m->desc->abi_major, m->desc->abi_minor);
  cJSON_AddStringToObject(j, "abi", abi);
  if (m->desc->description)
    cJSON_AddStringToObject(j, "description", m->desc->description);
  cJSON *comps = cJSON_AddArrayToObject(j, "components");
  for (size_t i = 0; m->desc->components[i] != NULL; i++)
    if (only == NULL || only == m->desc->components[i])
      cJSON_AddItemToArray(comps, component_json(m->desc->components[i]));
  return j;
}

static void print_module(const cJSON *m, int detail) {
  const cJSON *comps = cJSON_GetObjectItem(m, "components");
  printf("%s %s  (%s)\n", cJSON_GetObjectItem(m, "plugin")->valuestring,
         cJSON_GetObjectItem(m, "version")->valuestring,
         cJSON_GetObjectItem(m, "file")->valuestring);
  const cJSON *c;
  cJSON_ArrayForEach(c, comps) {
    char modes[32] = "";
    const cJSON *md;
    cJSON_ArrayForEach(md, cJSON_GetObjectItem(c, "modes")) {
      if (*modes)
        strcat(modes, "+");
      strcat(modes, md->valuestring);
    }
    printf("  %-6s %-20s %-10s %s\n", cJSON_GetObjectItem(c, "kind")->valuestring,
           cJSON_GetObjectItem(c, "name")->valuestring, modes,
           cJSON_GetObjectItem(c, "description")->valuestring);
    if (!detail)
      continue;
    const cJSON *in = cJSON_GetObjectItem(c, "inputs");
    if (cJSON_GetArraySize(in) > 0) {
      printf("         inputs:");
      const cJSON *x;
      cJSON_ArrayForEach(x, in) {
        printf(" %s%s", x->child->valuestring,
               cJSON_IsTrue(cJSON_GetObjectItem(x, "optional")) ? " (optional)"
                                                                : "");
      }
      printf("\n");
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItem(c, "options")) {
      const cJSON *def = cJSON_GetObjectItem(o, "default");
      printf("         --opt %s=<%s>%s%s%s  %s\n",
             cJSON_GetObjectItem(o, "name")->valuestring,
             cJSON_GetObjectItem(o, "type")->valuestring,
             def ? "  (default " : "", def ? def->valuestring : "",
             def ? ")"
             : cJSON_IsTrue(cJSON_GetObjectItem(o, "required")) ? "  (required)"
                                                                 : "",
             cJSON_GetObjectItem(o, "help")->valuestring);
    }
  }
}

struct scan_state {
  cJSON *list;
  int failures;
};

static void on_scan(void *arg, struct assay_module *m, const char *path,
                    const char *err) {
  struct scan_state *st = arg;
  if (m == NULL) {
    fprintf(stderr, "%s: warning: %s\n", prog, err ? err : path);
    st->failures++;
    return;
  }
  cJSON_AddItemToArray(st->list, module_json(m, NULL));
}

static int cmd_plugins(int argc, char **argv) {
  const char **dirs = NULL;
  int ndirs = 0, json = 0, nspecs = 0;
  const char **specs = assay__xcalloc((size_t)argc + 1, sizeof *specs);
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    int r;
    if ((r = take(argc, argv, &i, "--help", "-h", 0, &v)) != 0) {
      fputs(plugins_help, stdout);
      free(specs);
      free(dirs);
      return EXIT_OK;
    } else if ((r = take(argc, argv, &i, "--plugin-dir", NULL, 1, &v)) != 0) {
      if (r < 0) {
        free(specs);
        free(dirs);
        return assay_cli_usage_error("plugins",
                                     "option '--plugin-dir' needs a value");
      }
      dirs_add(&dirs, &ndirs, v);
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      free(specs);
      free(dirs);
      return assay_cli_unknown_option("plugins", plugins_help, argv[i]);
    } else {
      specs[nspecs++] = argv[i];
    }
  }
  struct assay_loader *l;
  char *err = NULL;
  int status = EXIT_OK;
  if (assay_loader_new(&l, dirs, &err) != 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    free(err);
    free(specs);
    free(dirs);
    return EXIT_USAGE;
  }
  cJSON *list = cJSON_CreateArray();
  if (nspecs == 0) {
    struct scan_state st = {list, 0};
    int n = assay_loader_scan(l, on_scan, &st);
    if (n == 0 && !json) {
      fprintf(stderr, "%s: no plugins found in:", prog);
      for (const char *const *d = assay_loader_dirs(l); *d; d++)
        fprintf(stderr, " '%s'", *d);
      fprintf(stderr, "\n");
    }
  } else {
    for (int i = 0; i < nspecs; i++) {
      struct assay_module *m;
      const struct assay_component *comp = NULL;
      const char *colon = strrchr(specs[i], ':');
      int rc = colon && !strchr(colon, '/')
                   ? assay_loader_find(l, specs[i], 0, &m, &comp, &err)
                   : assay_loader_load(l, specs[i], &m, &err);
      if (rc != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        free(err);
        err = NULL;
        status = EXIT_USAGE;
        continue;
      }
      cJSON_AddItemToArray(list, module_json(m, comp));
    }
  }
  if (json) {
    char *text = cJSON_Print(list);
    printf("%s\n", text);
    free(text);
  } else {
    const cJSON *m;
    int first = 1;
    cJSON_ArrayForEach(m, list) {
      if (!first && nspecs > 0)
        printf("\n");
      first = 0;
      print_module(m, nspecs > 0);
    }
    if (nspecs == 0 && cJSON_GetArraySize(list) > 0)
      printf("\n'assay plugins NAME' shows a plugin's inputs and options.\n");
  }
  cJSON_Delete(list);
  assay_loader_free(l);
  free(specs);
  free(dirs);
  return status;
}

int assay_cli_main(int argc, char **argv) {
  if (argc < 2) {
    fputs(main_help, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 && argc > 2) {
    /* assay help run: what assay run --help says. */
    char help[] = "--help";
    char *hargv[] = {argv[0], argv[2], help, NULL};
    return assay_cli_main(3, hargv);
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "help") == 0) {
    fputs(main_help, stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("assay %s (plugin ABI %d.%d, libuv %s, cJSON %s, %s)\n",
           PACKAGE_VERSION, ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR,
           uv_version_string(), cJSON_Version(), assay_cli_allocator());
    return EXIT_OK;
  }
  if (strcmp(cmd, "run") == 0)
    return cmd_run(argc - 2, argv + 2, 0);
  if (strcmp(cmd, "rescore") == 0)
    return cmd_run(argc - 2, argv + 2, 1);
  if (strcmp(cmd, "plugins") == 0)
    return cmd_plugins(argc - 2, argv + 2);
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"report", assay_cmd_report},
              {"compare", assay_cmd_compare},
              {"merge", assay_cmd_merge}};
  for (size_t i = 0; i < assay__array_size(cmds); i++)
    if (strcmp(cmd, cmds[i].name) == 0)
      return cmds[i].fn(argc - 2, argv + 2);
  static const char *const names[] = {"run",    "rescore", "plugins",
                                      "report", "compare", "merge",
                                      "help",   "version"};
  if (cmd[0] == '-') /* an option where the command goes: -v, --verison */
    return assay_cli_unknown_option(NULL, main_help, cmd);
  const char *near = assay__nearest(cmd, names, assay__array_size(names));
  if (near != NULL)
    return assay_cli_usage_error(
        NULL, "unknown command '%s' (did you mean '%s'?)", cmd, near);
  return assay_cli_usage_error(NULL, "unknown command '%s'", cmd);
}
