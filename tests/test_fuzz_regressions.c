/*
 * Runs every fuzz target (tests/fuzz/) over its stored inputs, without
 * libFuzzer: the inputs that once broke a target
 * (tests/data/fuzz-regressions/<target>/) and its seed corpus
 * (tests/fuzz/corpus/<target>/). A target checks its own invariants and
 * aborts when one breaks, so each input runs in a child process: a broken
 * one fails its test with the file named, and the others still run. Each
 * input is passed as an exact-size buffer, as libFuzzer does, so that a
 * read past the end shows under ASan (the CI's sanitizer build runs this
 * runner too).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "runner.h"
#include "util.h"

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory being run: the names left to run are freed by whichever
 * process exits, so that the leak checkers see only the target's leaks. */
struct dir_run {
  char *dir;
  char **names;
  size_t n;
};

static void dir_run_free(struct dir_run *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->names[i]);
  free(r->names);
  free(r->dir);
}

/* In the child: runs fn over the file as an exact-size buffer. */
static int run_file(const char *path, int (*fn)(const uint8_t *, size_t)) {
  size_t len = 0;
  char *text = test_read_file(path, &len);
  if (text == NULL) {
    fprintf(stderr, "cannot read fuzz input %s\n", path);
    return 1;
  }
  uint8_t *exact = assay__xmalloc(len ? len : 1);
  memcpy(exact, text, len);
  free(text);
  int rc = fn(exact, len);
  free(exact);
  return rc == 0 ? 0 : 1;
}

/* Runs fn over every file of tests/REL/ in name order; returns how many. */
static size_t run_dir(const char *rel, int (*fn)(const uint8_t *, size_t)) {
  struct dir_run r = {test_src_path(rel), NULL, 0};
  DIR *d = opendir(r.dir);
  if (d == NULL) {
    free(r.dir);
    return 0;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    r.names = assay__xrealloc(r.names, (r.n + 1) * sizeof *r.names);
    r.names[r.n++] = assay__xstrdup(de->d_name);
  }
  closedir(d);
  if (r.n > 0)
    qsort(r.names, r.n, sizeof *r.names, name_cmp);
  for (size_t i = 0; i < r.n; i++) {
    char *path = assay__format("%s/%s", r.dir, r.names[i]);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
      int rc = run_file(path, fn);
      free(path);
      dir_run_free(&r);
      exit(rc); /* not _exit: the leak checkers run at exit */
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
      fprintf(stderr, "FAIL fuzz input %s: %s %d (the target's message is "
                      "above)\n",
              path, WIFSIGNALED(status) ? "signal" : "exit status",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CU_ASSERT(ok);
    free(path);
  }
  size_t n = r.n;
  dir_run_free(&r);
  return n;
}

/* The regressions, then the seeds; a target always has seeds. */
static void run_target(const char *target, int (*fn)(const uint8_t *, size_t)) {
  char *reg = assay__format("data/fuzz-regressions/%s", target);
  char *seeds = assay__format("fuzz/corpus/%s", target);
  run_dir(reg, fn);
  size_t nseeds = run_dir(seeds, fn);
  CU_ASSERT(nseeds > 0);
  free(reg);
  free(seeds);
}

static void test_dataset_jsonl(void) {
  run_target("dataset_jsonl", assay__fuzz_dataset_jsonl);
}

static void test_dataset_json(void) {
  run_target("dataset_json", assay__fuzz_dataset_json);
}

static void test_dataset_csv(void) {
  run_target("dataset_csv", assay__fuzz_dataset_csv);
}

static void test_judge_reply(void) {
  run_target("judge_reply", assay__fuzz_judge_reply);
}

static void test_chat_reply(void) {
  run_target("chat_reply", assay__fuzz_chat_reply);
}

static void test_template(void) { run_target("template", assay__fuzz_template); }

static void test_options(void) { run_target("options", assay__fuzz_options); }

static void test_cli_args(void) { run_target("cli_args", assay__fuzz_cli_args); }

static const struct test_case cases[] = {
    {"dataset_jsonl", test_dataset_jsonl},
    {"dataset_json", test_dataset_json},
    {"dataset_csv", test_dataset_csv},
    {"judge_reply", test_judge_reply},
    {"chat_reply", test_chat_reply},
    {"template", test_template},
    {"options", test_options},
    {"cli_args", test_cli_args},
    {NULL, NULL}};

static const struct test_suite suites[] = {
    {"fuzz_regressions", NULL, NULL, cases}, {NULL, NULL, NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, suites); }
