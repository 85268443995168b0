/*
 * bench/floor: the lower bound the CPU-path benchmark compares assay with.
 * It does the least any JSONL evaluator must do per item: read a line, parse
 * it with cJSON, print it back unformatted and write it out, one write per
 * line. No task, no metrics, no threads: whatever assay spends above this is
 * the price of its pipeline.
 *
 *   bench/floor [INPUT [OUTPUT]]    (default stdin, stdout)
 *
 * Exit 0, or 2 when a file cannot be opened, a line is over the cap or is
 * not JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* The same per-item cap as assay's default --max-item-bytes (16 MiB). */
#define FLOOR_MAX_LINE (16u << 20)

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  FILE *in = stdin;
  int out = STDOUT_FILENO;
  if (argc > 3) {
    fprintf(stderr, "usage: floor [INPUT [OUTPUT]]\n");
    return 2;
  }
  if (argc > 1 && strcmp(argv[1], "-") != 0 &&
      (in = fopen(argv[1], "r")) == NULL) {
    fprintf(stderr, "floor: cannot open '%s': %s\n", argv[1], strerror(errno));
    return 2;
  }
  FILE *outf = NULL;
  if (argc > 2) {
    if ((outf = fopen(argv[2], "w")) == NULL) {
      fprintf(stderr, "floor: cannot create '%s': %s\n", argv[2],
              strerror(errno));
      return 2;
    }
    out = fileno(outf);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  unsigned long lineno = 0;
  int status = 0;
  while ((len = getline(&line, &cap, in)) >= 0) {
    lineno++;
    if ((size_t)len > FLOOR_MAX_LINE) {
      fprintf(stderr, "floor: line %lu is over %u bytes\n", lineno,
              FLOOR_MAX_LINE);
      status = 2;
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0)
      continue;
    cJSON *item = cJSON_ParseWithLength(line, (size_t)len);
    if (item == NULL) {
      fprintf(stderr, "floor: line %lu is not JSON\n", lineno);
      status = 2;
      break;
    }
    char *text = cJSON_PrintUnformatted(item);
    cJSON_Delete(item);
    if (text == NULL) {
      fprintf(stderr, "floor: out of memory on line %lu\n", lineno);
      status = 2;
      break;
    }
    /* One write per line, as assay flushes each finished record. */
    size_t tlen = strlen(text);
    text[tlen] = '\n';
    int err = write_all(out, text, tlen + 1);
    text[tlen] = '\0';
    cJSON_free(text);
    if (err != 0) {
      fprintf(stderr, "floor: cannot write: %s\n", strerror(errno));
      status = 2;
      break;
    }
  }
  free(line);
  if (in != stdin)
    fclose(in);
  if (outf != NULL)
    fclose(outf);
  return status;
}
