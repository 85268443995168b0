/*
 * exec: a task that evaluates any program. In "once" mode every call spawns
 * the command (an argv array, never a shell unless shell=true), writes the
 * item to its stdin, and turns its stdout into the output; in "persistent"
 * mode a pool of long-lived workers answers one JSON line per request, so a
 * Python or Node model pays its start-up once. Everything runs on the host's
 * libuv loop and never blocks it: processes, pipes and timers are libuv
 * handles. Each process is the leader of its own process group, so a
 * timeout, an output over the cap or the end of the run kills everything it
 * started, not just the leader.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <assay/plugin.h>

#include <uv.h>

#include "jsonwords.h"

extern char **environ;

/* How much of a process's stderr a failure message quotes. */
#define ERR_TAIL 1024
/* How much of a malformed reply line a failure message quotes. */
#define QUOTE_MAX 120
/* Hard bounds on options, so a typo cannot fork thousands of processes. */
#define MAX_WORKERS 1024

struct exec;
struct worker;
struct request;

/* Bytes read from a pipe, bounded by the caller. */
struct buf {
  char *data;
  size_t len, size;
};

/*
 * One spawned process with its three pipes. It lives until every handle is
 * closed, which may be after the call it served has ended or the instance
 * itself is gone (ex == NULL then): it only ever frees itself.
 */
struct proc {
  uv_process_t process;
  uv_pipe_t in, out, err;
  uv_timer_t timer;         /* once mode: the call's timeout */
  uv_timer_t reap;          /* pipes ended, exit not seen: asks waitpid */
  uint64_t reap_ms;         /* the reap timer's next wait */
  struct exec *ex;          /* NULL after fini */
  struct proc *prev, *next; /* ex->procs */
  int open;                 /* handles initialised and not closed yet */
  int once;                 /* serves one call (once mode) */
  int exited, out_done, err_done, finished;
  int lost; /* reaped by something else: the exit status is unknown */
  int seen_exited; /* the reap timer found it exited, not yet reported */
  int64_t status;
  int term_signal;
  int pid;
  struct buf out_buf;
  char tail[ERR_TAIL]; /* the last bytes of stderr */
  size_t tail_len;
  uint64_t err_total;
  /* once mode */
  assay_call call;
  long timeout_ms;
  int ended; /* the call was completed or failed */
  /* persistent mode: the worker this process runs for, NULL once detached */
  struct worker *w;
};

/* A slot of the persistent pool; its process is replaced when it dies. */
struct worker {
  struct exec *ex;
  int index;
  struct proc *p;      /* NULL when no process runs for this slot */
  struct request *cur; /* the request being answered */
  int replied;         /* the current process answered at least once */
};

/* A persistent-mode call, queued or being answered. */
struct request {
  uv_timer_t timer; /* the call's timeout */
  struct exec *ex;
  assay_call call;
  char *line; /* the request line, until handed to a worker */
  size_t len;
  long timeout_ms;
  struct worker *w;     /* when dispatched */
  struct request *next; /* ex->queue */
};

/* A write to a child's stdin; owns its bytes until libuv is done. */
struct wjob {
  uv_write_t req;
  struct proc *p;
  int close_after; /* close stdin once written (once mode) */
  size_t len;
  char data[];
};

struct exec {
  const struct assay_host *host;
  uv_loop_t *loop;
  char *file;  /* the program to run, resolved */
  char **argv; /* NULL-terminated, owned */
  char **envp; /* NULL: inherit the host's environment */
  char *cwd;
  char *label; /* names the command in messages */
  char *field; /* NULL: the item as JSON; else that field */
  int persistent;
  size_t max_output;
  struct proc *procs;
  struct worker *workers;
  int nworkers;
  struct request *queue_head, *queue_tail;
  int warned_reap; /* logged that a child's exit came without SIGCHLD */
};

static void proc_step(struct proc *p);
static void worker_next(struct worker *w);

/* ---- small helpers ------------------------------------------------------- */

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

/* Appends n bytes unless that would make b longer than max: -1 then. */
static int buf_append(struct buf *b, const char *s, size_t n, size_t max) {
  if (n > max - b->len)
    return -1;
  if (b->len + n + 1 > b->size) {
    size_t size = b->size ? b->size : 4096;
    while (size < b->len + n + 1)
      size *= 2;
    char *d = realloc(b->data, size);
    if (d == NULL)
      return -1;
    b->data = d;
    b->size = size;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void buf_release(struct buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->size = 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (n < len)
    return 0;
  unsigned cp = c & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/*
 * A NUL-terminated copy of s with every invalid UTF-8 byte replaced by
 * U+FFFD and every NUL by a space: programs print anything, records must
 * be valid JSON text.
 */
static char *utf8_clean(const char *s, size_t n, size_t *outlen) {
  /* Sized first: each invalid byte grows to three. */
  size_t need = n + 1;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq((const unsigned char *)s + i, n - i);
    if (k == 0)
      need += 2, k = 1;
    i += k;
  }
  char *d = malloc(need);
  if (d == NULL)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq((const unsigned char *)s + i, n - i);
    if (k == 0) {
      memcpy(d + j, "\xef\xbf\xbd", 3);
      j += 3;
      i++;
    } else {
      memcpy(d + j, s + i, k);
      if (k == 1 && d[j] == '\0')
        d[j] = ' ';
      j += k;
      i += k;
    }
  }
  d[j] = '\0';
  if (outlen != NULL)
    *outlen = j;
  return d;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/*
 * Turns what a program printed into a result (owned): a JSON value when the
 * whole text is one, else the trimmed text as a string. The host keeps an
 * object as the output and wraps any other value as {"output": value}.
 */
static cJSON *parse_output(const char *s, size_t n) {
  size_t len;
  char *clean = utf8_clean(s, n, &len);
  if (clean == NULL)
    return NULL;
  char *a = clean, *b = clean + len;
  while (a < b && is_space(*a))
    a++;
  while (b > a && is_space(b[-1]))
    b--;
  *b = '\0';
  const char *end = NULL;
  cJSON *v = NULL;
  if (a < b) {
    v = cJSON_ParseWithLengthOpts(a, (size_t)(b - a), &end, 0);
    if (v != NULL && end != b) {
      cJSON_Delete(v);
      v = NULL;
    }
  }
  if (v == NULL)
    v = cJSON_CreateString(a);
  free(clean);
  return v;
}

static const char *signal_name(int sig) {
  switch (sig) {
  case SIGHUP:
    return "SIGHUP";
  case SIGINT:
    return "SIGINT";
  case SIGQUIT:
    return "SIGQUIT";
  case SIGILL:
    return "SIGILL";
  case SIGABRT:
    return "SIGABRT";
  case SIGBUS:
    return "SIGBUS";
  case SIGFPE:
    return "SIGFPE";
  case SIGKILL:
    return "SIGKILL";
  case SIGSEGV:
    return "SIGSEGV";
  case SIGPIPE:
    return "SIGPIPE";
  case SIGALRM:
    return "SIGALRM";
  case SIGTERM:
    return "SIGTERM";
  case SIGXCPU:
    return "SIGXCPU";
  case SIGXFSZ:
    return "SIGXFSZ";
  default:
    return "signal";
  }
}

/* "exit status N" or "killed by signal S (NAME)", into out. */
static void describe_exit(const struct proc *p, char *out, size_t n) {
  if (p->lost)
    snprintf(out, n,
             "its exit status was lost: something else in this process "
             "reaped it (a plugin that ignores SIGCHLD or calls waitpid(-1)?)");
  else if (p->term_signal != 0)
    snprintf(out, n, "killed by signal %d (%s)", p->term_signal,
             signal_name(p->term_signal));
  else
    snprintf(out, n, "exit status %lld", (long long)p->status);
}

/* The stderr tail for a message: "; stderr: ..." or "" (owned). */
static char *stderr_tail(const struct proc *p) {
  const char *a = p->tail, *b = p->tail + p->tail_len;
  /* A tail cut from a longer stderr starts at its first whole line. */
  const char *nl = memchr(a, '\n', p->tail_len);
  if (p->err_total > p->tail_len && nl != NULL && nl + 1 < b)
    a = nl + 1;
  while (a < b && is_space(*a))
    a++;
  while (b > a && is_space(b[-1]))
    b--;
  if (a == b)
    return xstrdup("; no stderr output");
  char *clean = utf8_clean(a, (size_t)(b - a), NULL);
  if (clean == NULL)
    return xstrdup("");
  int cut = p->err_total > p->tail_len || a > p->tail;
  size_t need = strlen(clean) + 32;
  char *s = malloc(need);
  if (s != NULL)
    snprintf(s, need, "; stderr%s: %s%s", cut ? " (last lines)" : "",
             cut ? "..." : "", clean);
  free(clean);
  return s;
}

/* Kills p's whole process group; a no-op once it is gone. */
static void proc_kill(struct proc *p) {
  if (p->pid > 0)
    kill(-p->pid, SIGKILL);
}

/* ---- processes ----------------------------------------------------------- */

static void proc_unlink(struct proc *p) {
  if (p->ex == NULL)
    return;
  if (p->prev)
    p->prev->next = p->next;
  else
    p->ex->procs = p->next;
  if (p->next)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
}

static void on_handle_closed(uv_handle_t *h) {
  struct proc *p = h->data;
  if (--p->open > 0)
    return;
  proc_unlink(p);
  buf_release(&p->out_buf);
  free(p);
}

static void close_handle(struct proc *p, uv_handle_t *h) {
  if (h->data == p && !uv_is_closing(h))
    uv_close(h, on_handle_closed);
}

static void reap_start(struct proc *p);

/* Closes everything but the process handle, which on_proc_exit closes once the
 * child is reaped (closing it earlier would leave a zombie behind), and the
 * reap timer while the child's exit is still to come. */
static void proc_close_io(struct proc *p) {
  close_handle(p, (uv_handle_t *)&p->in);
  close_handle(p, (uv_handle_t *)&p->out);
  close_handle(p, (uv_handle_t *)&p->err);
  close_handle(p, (uv_handle_t *)&p->timer);
  p->out_done = p->err_done = 1;
  if (p->exited)
    close_handle(p, (uv_handle_t *)&p->reap);
  else
    reap_start(p);
}

static void on_write(uv_write_t *req, int status) {
  struct wjob *j = (struct wjob *)req;
  /* A child that exits without reading its stdin makes this fail (EPIPE);
   * its exit status tells the story, so the error is not reported. */
  if (j->close_after || status != 0)
    close_handle(j->p, (uv_handle_t *)&j->p->in);
  free(j);
}

/* Writes data to p's stdin; close_after closes stdin once written. */
static int proc_write(struct proc *p, const char *data, size_t len,
                      int close_after) {
  struct wjob *j = malloc(sizeof *j + len + 1);
  if (j == NULL)
    return UV_ENOMEM;
  j->p = p;
  j->close_after = close_after;
  j->len = len;
  memcpy(j->data, data, len);
  uv_buf_t b = uv_buf_init(j->data, (unsigned)len);
  int rc = uv_write(&j->req, (uv_stream_t *)&p->in, &b, 1, on_write);
  if (rc != 0) {
    free(j);
    close_handle(p, (uv_handle_t *)&p->in);
  }
  return rc;
}

static void tail_add(struct proc *p, const char *s, size_t n) {
  p->err_total += n;
  if (n >= ERR_TAIL) {
    memcpy(p->tail, s + n - ERR_TAIL, ERR_TAIL);
    p->tail_len = ERR_TAIL;
    return;
  }
  if (p->tail_len + n > ERR_TAIL) {
    size_t drop = p->tail_len + n - ERR_TAIL;
    memmove(p->tail, p->tail + drop, p->tail_len - drop);
    p->tail_len -= drop;
  }
  memcpy(p->tail + p->tail_len, s, n);
  p->tail_len += n;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  size_t n = suggested < 65536 ? suggested : 65536;
  b->base = malloc(n);
  b->len = b->base ? n : 0;
}

static void once_out(struct proc *p, const char *s, size_t n);
static void worker_out(struct proc *p, const char *s, size_t n);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct proc *p = s->data;
  if (nread > 0) {
    if (s == (uv_stream_t *)&p->err)
      tail_add(p, b->base, (size_t)nread);
    else if (p->once)
      once_out(p, b->base, (size_t)nread);
    else
      worker_out(p, b->base, (size_t)nread);
  } else if (nread < 0) {
    /* EOF, or the pipe broke: either way nothing more comes. */
    if (s == (uv_stream_t *)&p->err)
      p->err_done = 1;
    else
      p->out_done = 1;
    close_handle(p, (uv_handle_t *)s);
  }
  free(b->base);
  proc_step(p);
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig) {
  struct proc *p = h->data;
  p->exited = 1;
  p->status = status;
  p->term_signal = sig;
  /* Whatever it left running in its group would hold the pipes open and
   * outlive the call: it goes too. */
  proc_kill(p);
  p->pid = 0;
  close_handle(p, (uv_handle_t *)h);
  close_handle(p, (uv_handle_t *)&p->reap);
  proc_step(p);
}

/*
 * Starts the command as the leader of a new process group. Returns 0 with
 * *out, or a libuv error code (nothing is left running; p frees itself).
 */
static int proc_spawn(struct exec *ex, int once, struct proc **out) {
  struct proc *p = calloc(1, sizeof *p);
  if (p == NULL)
    return UV_ENOMEM;
  p->ex = ex;
  p->once = once;
  uv_pipe_init(ex->loop, &p->in, 0);
  uv_pipe_init(ex->loop, &p->out, 0);
  uv_pipe_init(ex->loop, &p->err, 0);
  uv_timer_init(ex->loop, &p->timer);
  uv_timer_init(ex->loop, &p->reap);
  p->in.data = p->out.data = p->err.data = p->timer.data = p->reap.data = p;
  p->process.data = p;
  p->open = 6;

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
  stdio[0].data.stream = (uv_stream_t *)&p->in;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&p->out;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&p->err;
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.exit_cb = on_proc_exit;
  o.file = ex->file;
  o.args = ex->argv;
  o.env = ex->envp;
  o.cwd = ex->cwd;
  /* Detached: setsid() in the child, so kill(-pid) reaches its children. */
  o.flags = UV_PROCESS_DETACHED;
  o.stdio_count = 3;
  o.stdio = stdio;

  p->next = ex->procs;
  if (ex->procs)
    ex->procs->prev = p;
  ex->procs = p;

  int rc = uv_spawn(ex->loop, &p->process, &o);
  if (rc != 0) {
    /* libuv initialised the handle anyway: it must be closed. */
    p->exited = p->finished = 1;
    proc_close_io(p);
    close_handle(p, (uv_handle_t *)&p->process);
    return rc;
  }
  p->pid = p->process.pid;
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
  *out = p;
  return 0;
}

static void once_finished(struct proc *p);
static void worker_finished(struct proc *p);

/*
 * Both output pipes ended long ago and libuv has not reported the exit:
 * its SIGCHLD may never come (a plugin set SIGCHLD to SIG_IGN or installed
 * its own handler; a sanitizer's signal handling lost it), and without it
 * the call, or the run's end, would wait for ever. Asks the kernel for
 * this child alone, as libuv would. Only the loop thread reaps this pid,
 * and libuv reports a reap at once, so the pid is still this child's.
 * A child found exited is first only looked at (WNOWAIT) and left to
 * libuv for one more wait, so that a SIGCHLD merely late under load is
 * not taken for a lost one.
 */
#define REAP_FIRST_MS 50
#define REAP_MAX_MS 1000

static void on_reap(uv_timer_t *t) {
  struct proc *p = t->data;
  if (p->exited || p->pid <= 0)
    return;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int rc;
  do
    rc = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT);
  while (rc == -1 && errno == EINTR);
  if (rc == 0 && si.si_pid != 0 && !p->seen_exited) {
    p->seen_exited = 1; /* libuv's turn once more */
    uv_timer_start(&p->reap, on_reap, REAP_FIRST_MS, 0);
    return;
  }
  int st = 0;
  pid_t r = rc == 0 && si.si_pid == 0 ? 0 : -1;
  if (rc == 0 && si.si_pid != 0)
    do
      r = waitpid((pid_t)p->pid, &st, WNOHANG);
    while (r == -1 && errno == EINTR);
  if (r == 0) { /* still running with its output closed */
    p->reap_ms = p->reap_ms * 2 < REAP_MAX_MS ? p->reap_ms * 2 : REAP_MAX_MS;
    uv_timer_start(&p->reap, on_reap, p->reap_ms, 0);
    return;
  }
  p->exited = 1;
  if (r == p->pid) {
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    p->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    proc_kill(p); /* what it left in its group, as on_proc_exit does */
  } else {
    /* Reaped by someone else: its group may be gone and its pid reused,
     * so nothing is killed. */
    p->lost = 1;
    p->status = -1;
  }
  if (p->ex != NULL && !p->ex->warned_reap) {
    p->ex->warned_reap = 1;
    p->ex->host->log(p->ex->host, ASSAY_LOG_WARN,
                     "the exit of '%s' (pid %d) was never reported to the "
                     "loop: something in this process takes SIGCHLD; exec "
                     "polls for its children's exits instead",
                     p->ex->label, p->pid);
  }
  p->pid = 0;
  close_handle(p, (uv_handle_t *)&p->process);
  close_handle(p, (uv_handle_t *)&p->reap);
  proc_step(p);
}

/* Both pipes ended (or were closed at fini) before the exit was seen. */
static void reap_start(struct proc *p) {
  if (p->reap_ms != 0 || p->exited || p->pid <= 0 ||
      uv_is_closing((uv_handle_t *)&p->reap))
    return;
  p->reap_ms = REAP_FIRST_MS;
  uv_timer_start(&p->reap, on_reap, p->reap_ms, 0);
}

/* Runs after each event: once the process exited and both output pipes
 * ended, the process is finished and its handles go. */
static void proc_step(struct proc *p) {
  if (!p->exited && p->out_done && p->err_done)
    reap_start(p);
  if (p->finished || !p->exited || !p->out_done || !p->err_done)
    return;
  p->finished = 1;
  if (p->ex != NULL) {
    if (p->once)
      once_finished(p);
    else
      worker_finished(p);
  }
  proc_close_io(p);
}

/* ---- once mode ----------------------------------------------------------- */

static void once_out(struct proc *p, const char *s, size_t n) {
  if (p->ended || p->ex == NULL)
    return;
  if (buf_append(&p->out_buf, s, n, p->ex->max_output) == 0)
    return;
  proc_kill(p);
  p->ended = 1;
  p->ex->host->fail(p->call, ASSAY_FAIL_ERROR, -1,
                    "'%s' wrote more than %zu bytes to stdout; it was killed "
                    "(raise --opt max_output_bytes=N if that is expected)",
                    p->ex->label, p->ex->max_output);
  buf_release(&p->out_buf);
  p->out_done = 1;
  close_handle(p, (uv_handle_t *)&p->out);
}

static void once_finished(struct proc *p) {
  struct exec *ex = p->ex;
  if (p->ended)
    return;
  p->ended = 1;
  if (p->term_signal != 0 || p->status != 0) {
    char how[160];
    describe_exit(p, how, sizeof how);
    char *tail = stderr_tail(p);
    ex->host->fail(p->call, ASSAY_FAIL_ERROR, -1, "'%s' failed: %s%s",
                   ex->label, how, tail ? tail : "");
    free(tail);
    return;
  }
  cJSON *v =
      parse_output(p->out_buf.data ? p->out_buf.data : "", p->out_buf.len);
  buf_release(&p->out_buf);
  if (v == NULL)
    ex->host->fail(p->call, ASSAY_FAIL_ERROR, -1,
                   "exec: out of memory reading the output of '%s'", ex->label);
  else
    ex->host->complete(p->call, v);
}

static void on_once_timeout(uv_timer_t *t) {
  struct proc *p = t->data;
  if (p->ended || p->ex == NULL)
    return;
  proc_kill(p);
  p->ended = 1;
  p->ex->host->fail(p->call, ASSAY_FAIL_TIMEOUT, -1,
                    "'%s' was still running at the call's timeout of %ld ms; "
                    "its process group was killed",
                    p->ex->label, p->timeout_ms);
}

static int once_run(struct exec *ex, char *data, size_t len, assay_call call,
                    long timeout_ms) {
  struct proc *p;
  int rc = proc_spawn(ex, 1, &p);
  if (rc != 0) {
    ex->host->fail(call, ASSAY_FAIL_ERROR, -1, "cannot run '%s': %s", ex->label,
                   uv_strerror(rc));
    return 0;
  }
  p->call = call;
  p->timeout_ms = timeout_ms;
  if (timeout_ms > 0)
    uv_timer_start(&p->timer, on_once_timeout, (uint64_t)timeout_ms, 0);
  if (proc_write(p, data, len, 1) != 0)
    close_handle(p, (uv_handle_t *)&p->in);
  return 0;
}

/* ---- persistent mode ----------------------------------------------------- */

static void on_request_closed(uv_handle_t *h) {
  struct request *r = h->data;
  free(r->line);
  free(r);
}

/* The call ended (completed or failed): the request goes. */
static void request_end(struct request *r) {
  if (r->w != NULL && r->w->cur == r)
    r->w->cur = NULL;
  r->w = NULL;
  uv_close((uv_handle_t *)&r->timer, on_request_closed);
}

/* Starts a process for w. Returns 0 or a libuv error. */
static int worker_spawn(struct worker *w) {
  struct proc *p;
  int rc = proc_spawn(w->ex, 0, &p);
  if (rc != 0)
    return rc;
  p->w = w;
  w->p = p;
  w->replied = 0;
  return 0;
}

/* Separates w from its process, killing it when kill is set. */
static void worker_detach(struct worker *w, int kill_it) {
  struct proc *p = w->p;
  if (p == NULL)
    return;
  if (kill_it)
    proc_kill(p);
  p->w = NULL;
  w->p = NULL;
  close_handle(p, (uv_handle_t *)&p->in);
}

/* Hands r to the idle worker w, starting its process when needed. */
static void worker_assign(struct worker *w, struct request *r) {
  struct exec *ex = w->ex;
  if (w->p == NULL) {
    int rc = worker_spawn(w);
    if (rc != 0) {
      ex->host->fail(r->call, ASSAY_FAIL_ERROR, -1,
                     "cannot start worker %d ('%s'): %s", w->index, ex->label,
                     uv_strerror(rc));
      request_end(r);
      return;
    }
  }
  w->cur = r;
  r->w = w;
  int rc = proc_write(w->p, r->line, r->len, 0);
  free(r->line);
  r->line = NULL;
  /* A write that cannot start means the worker is going away: its exit
   * fails the request with the reason. */
  (void)rc;
}

/* Gives w the next queued request, if it is idle. */
static void worker_next(struct worker *w) {
  struct exec *ex = w->ex;
  while (w->cur == NULL && ex->queue_head != NULL) {
    struct request *r = ex->queue_head;
    ex->queue_head = r->next;
    if (ex->queue_head == NULL)
      ex->queue_tail = NULL;
    r->next = NULL;
    worker_assign(w, r);
  }
}

/* Replaces w's process now (a worker that was useful is restarted at once;
 * one that never answered waits for the next request, so a command that
 * dies on start-up cannot spin). */
static void worker_restart(struct worker *w, int eager) {
  if (eager && w->p == NULL && worker_spawn(w) != 0)
    w->ex->host->log(w->ex->host, ASSAY_LOG_WARN,
                     "cannot restart worker %d ('%s'); retrying on the next "
                     "request",
                     w->index, w->ex->label);
  worker_next(w);
}

/* One reply line from w's process. */
static void worker_reply(struct worker *w, const char *line, size_t n) {
  struct exec *ex = w->ex;
  struct request *r = w->cur;
  while (n > 0 && is_space(line[n - 1]))
    n--;
  size_t i = 0;
  while (i < n && is_space(line[i]))
    i++;
  if (i == n)
    return; /* blank lines are not replies */
  if (r == NULL) {
    ex->host->log(ex->host, ASSAY_LOG_WARN,
                  "worker %d ('%s') wrote a line with no request pending; "
                  "ignored (write logs to stderr)",
                  w->index, ex->label);
    return;
  }
  size_t len;
  char *clean = utf8_clean(line + i, n - i, &len);
  const char *end = NULL;
  cJSON *v = clean ? cJSON_ParseWithLengthOpts(clean, len, &end, 0) : NULL;
  if (v != NULL && end != clean + len) {
    cJSON_Delete(v);
    v = NULL;
  }
  if (v == NULL) {
    /* The worker is out of step with the protocol: later replies could
     * not be trusted, so it is replaced. */
    ex->host->fail(r->call, ASSAY_FAIL_ERROR, -1,
                   "worker %d ('%s') replied with a line that is not JSON: "
                   "'%.*s%s'; the worker was restarted (write logs to stderr, "
                   "one JSON reply per line to stdout)",
                   w->index, ex->label,
                   (int)(len < QUOTE_MAX ? len : QUOTE_MAX), clean ? clean : "",
                   len > QUOTE_MAX ? "..." : "");
    free(clean);
    request_end(r);
    worker_detach(w, 1);
    worker_restart(w, 1);
    return;
  }
  free(clean);
  w->replied = 1;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(v, "error");
  if (cJSON_IsObject(v) && err != NULL && !cJSON_IsNull(err)) {
    int retry = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "retryable"));
    char *text = cJSON_IsString(err) ? NULL : cJSON_PrintUnformatted(err);
    ex->host->fail(r->call, retry ? ASSAY_FAIL_RETRYABLE : ASSAY_FAIL_ERROR, -1,
                   "'%s': %s", ex->label,
                   cJSON_IsString(err) ? err->valuestring
                                       : (text ? text : "error"));
    free(text);
    cJSON_Delete(v);
  } else {
    ex->host->complete(r->call, v);
  }
  request_end(r);
  worker_next(w);
}

/* A reply line grew past the cap: the worker cannot be trusted to be in
 * step any more, so it is replaced. */
static void worker_overflow(struct worker *w) {
  struct exec *ex = w->ex;
  if (w->cur != NULL) {
    ex->host->fail(w->cur->call, ASSAY_FAIL_ERROR, -1,
                   "worker %d ('%s') wrote a reply line longer than %zu "
                   "bytes; it was killed and restarted (raise --opt "
                   "max_output_bytes=N if that is expected)",
                   w->index, ex->label, ex->max_output);
    request_end(w->cur);
  }
  worker_detach(w, 1);
  worker_restart(w, 1);
}

/* Splits stdout into lines, each a reply; the partial last line waits in
 * out_buf, capped at max_output_bytes. A reply may end the worker (a bad
 * line), after which the rest of the output is dropped. */
static void worker_out(struct proc *p, const char *s, size_t n) {
  struct worker *w = p->w;
  while (n > 0 && w != NULL && p->w == w) {
    const char *nl = memchr(s, '\n', n);
    size_t seg = nl ? (size_t)(nl - s) : n;
    if (buf_append(&p->out_buf, s, seg, w->ex->max_output) != 0) {
      buf_release(&p->out_buf);
      worker_overflow(w);
      return;
    }
    if (nl == NULL)
      return;
    s += seg + 1;
    n -= seg + 1;
    struct buf line = p->out_buf;
    memset(&p->out_buf, 0, sizeof p->out_buf);
    worker_reply(w, line.data ? line.data : "", line.len);
    buf_release(&line);
  }
}

/* The worker's process is gone (exited and its pipes ended). */
static void worker_finished(struct proc *p) {
  struct worker *w = p->w;
  if (w == NULL)
    return;
  struct exec *ex = w->ex;
  char how[160];
  describe_exit(p, how, sizeof how);
  int eager = w->replied;
  struct request *r = w->cur;
  p->w = NULL;
  w->p = NULL;
  if (r != NULL) {
    char *tail = stderr_tail(p);
    ex->host->fail(r->call, ASSAY_FAIL_RETRYABLE, -1,
                   "worker %d ('%s', pid %d) died while answering this item "
                   "(%s); it is restarted%s",
                   w->index, ex->label, (int)p->process.pid, how,
                   tail ? tail : "");
    free(tail);
    request_end(r);
    eager = 1;
  } else {
    ex->host->log(ex->host, ASSAY_LOG_WARN, "worker %d ('%s') exited (%s)",
                  w->index, ex->label, how);
  }
  worker_restart(w, eager);
}

static void on_request_timeout(uv_timer_t *t) {
  struct request *r = t->data;
  struct exec *ex = r->ex;
  struct worker *w = r->w;
  if (w != NULL) {
    int pid = w->p ? w->p->pid : 0;
    ex->host->fail(r->call, ASSAY_FAIL_TIMEOUT, -1,
                   "worker %d ('%s', pid %d) did not answer within the call's "
                   "timeout of %ld ms; it was killed and is restarted",
                   w->index, ex->label, pid, r->timeout_ms);
    request_end(r);
    worker_detach(w, 1);
    worker_restart(w, 1);
    return;
  }
  /* Still queued: take it out. */
  struct request **pp = &ex->queue_head, *prev = NULL;
  while (*pp != NULL && *pp != r) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp == r) {
    *pp = r->next;
    if (ex->queue_tail == r)
      ex->queue_tail = prev;
  }
  ex->host->fail(r->call, ASSAY_FAIL_TIMEOUT, -1,
                 "no worker of '%s' became free within the call's timeout of "
                 "%ld ms (all %d busy)",
                 ex->label, r->timeout_ms, ex->nworkers);
  request_end(r);
}

static int persistent_run(struct exec *ex, char *line, size_t len,
                          assay_call call, long timeout_ms) {
  struct request *r = calloc(1, sizeof *r);
  if (r == NULL) {
    free(line);
    ex->host->fail(call, ASSAY_FAIL_ERROR, -1, "exec: out of memory");
    return 0;
  }
  r->ex = ex;
  r->call = call;
  r->line = line;
  r->len = len;
  r->timeout_ms = timeout_ms;
  uv_timer_init(ex->loop, &r->timer);
  r->timer.data = r;
  if (timeout_ms > 0)
    uv_timer_start(&r->timer, on_request_timeout, (uint64_t)timeout_ms, 0);
  /* A worker with a live process first, then one to (re)start. */
  struct worker *idle = NULL;
  for (int i = 0; i < ex->nworkers; i++) {
    struct worker *w = &ex->workers[i];
    if (w->cur == NULL && (idle == NULL || (idle->p == NULL && w->p != NULL)))
      idle = w;
  }
  if (idle != NULL) {
    worker_assign(idle, r);
    return 0;
  }
  if (ex->queue_tail)
    ex->queue_tail->next = r;
  else
    ex->queue_head = r;
  ex->queue_tail = r;
  return 0;
}

/* ---- the component ------------------------------------------------------- */

/* The bytes for stdin: the item as a JSON line, or a field's text (as a
 * JSON line in persistent mode). Owned; NULL after failing the call. */
static char *make_request(struct exec *ex, const cJSON *input, assay_call call,
                          size_t *len) {
  const cJSON *v = input;
  if (ex->field != NULL) {
    v = cJSON_GetObjectItemCaseSensitive(input, ex->field);
    if (v == NULL) {
      char *have = assay_json_keys(input, "no fields");
      ex->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                     "item has no field '%s' (from --opt input=field:%s; it "
                     "has: %s)",
                     ex->field, ex->field, have ? have : "?");
      free(have);
      return NULL;
    }
    if (cJSON_IsString(v) && !ex->persistent) {
      char *s = xstrdup(v->valuestring);
      if (s != NULL)
        *len = strlen(s);
      else
        ex->host->fail(call, ASSAY_FAIL_ERROR, -1, "exec: out of memory");
      return s;
    }
  }
  char *json = cJSON_PrintUnformatted(v);
  if (json == NULL) {
    ex->host->fail(call, ASSAY_FAIL_ERROR, -1, "exec: out of memory");
    return NULL;
  }
  size_t n = strlen(json);
  char *s = malloc(n + 2);
  if (s != NULL) {
    memcpy(s, json, n);
    s[n] = '\n';
    s[n + 1] = '\0';
    *len = n + 1;
  } else {
    ex->host->fail(call, ASSAY_FAIL_ERROR, -1, "exec: out of memory");
  }
  free(json);
  return s;
}

static int exec_run(void *state, const cJSON *input, assay_call call) {
  struct exec *ex = state;
  struct assay_call_info info = {.size = sizeof info};
  /* The host abandons the call at its timeout but cannot stop a process:
   * the plugin arms the same timeout and kills the process group. Both
   * timers fire together; whichever failure the host sees first is the one
   * recorded, the other is dropped as late. */
  long timeout_ms = ex->host->call_info(call, &info) == 0 ? info.timeout_ms : 0;
  size_t len = 0;
  char *data = make_request(ex, input, call, &len);
  if (data == NULL)
    return 0;
  if (ex->persistent)
    return persistent_run(ex, data, len, call, timeout_ms);
  int rc = once_run(ex, data, len, call, timeout_ms);
  free(data);
  return rc;
}

static void strv_free(char **v) {
  for (size_t i = 0; v != NULL && v[i] != NULL; i++)
    free(v[i]);
  free(v);
}

static void exec_free(struct exec *ex) {
  free(ex->file);
  strv_free(ex->argv);
  strv_free(ex->envp);
  free(ex->cwd);
  free(ex->label);
  free(ex->field);
  free(ex->workers);
  free(ex);
}

static void exec_fini(void *state) {
  struct exec *ex = state;
  /* Every call has ended or been abandoned by now: drop the requests. */
  while (ex->queue_head != NULL) {
    struct request *r = ex->queue_head;
    ex->queue_head = r->next;
    request_end(r);
  }
  for (int i = 0; ex->workers != NULL && i < ex->nworkers; i++) {
    struct worker *w = &ex->workers[i];
    if (w->cur != NULL)
      request_end(w->cur);
    worker_detach(w, 1);
  }
  /* Processes outlive the instance only until their handles close; a
   * running one is killed and reaped by its exit callback on the loop the
   * host runs after fini. */
  while (ex->procs != NULL) {
    struct proc *p = ex->procs;
    ex->procs = p->next;
    p->prev = p->next = NULL;
    p->ex = NULL;
    p->w = NULL;
    if (!p->exited)
      proc_kill(p);
    proc_close_io(p);
  }
  exec_free(ex);
}

/* Is path a regular file this process may execute? */
static int executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Resolves the program like execvp would, but now, so a typo fails at
 * start-up with a clear message rather than on every item. A relative path
 * is taken from assay's working directory, not from cwd. */
static char *resolve_program(const char *prog, const char *path_env,
                             char **why) {
  if (strchr(prog, '/') != NULL) {
    char *full;
    if (prog[0] == '/') {
      full = xstrdup(prog);
    } else {
      char here[4096];
      if (getcwd(here, sizeof here) == NULL) {
        *why = xstrdup("cannot read the current directory");
        return NULL;
      }
      size_t n = strlen(here) + strlen(prog) + 2;
      full = malloc(n);
      if (full != NULL)
        snprintf(full, n, "%s/%s", here, prog);
    }
    if (full != NULL && !executable(full)) {
      *why = xstrdup(access(full, F_OK) == 0 ? "it is not an executable file"
                                             : "no such file");
      free(full);
      return NULL;
    }
    return full;
  }
  const char *dirs = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (*dirs) {
    const char *colon = strchr(dirs, ':');
    size_t dn = colon ? (size_t)(colon - dirs) : strlen(dirs);
    size_t n = dn + strlen(prog) + 3;
    char *full = malloc(n);
    if (full == NULL)
      break;
    if (dn == 0)
      snprintf(full, n, "./%s", prog);
    else
      snprintf(full, n, "%.*s/%s", (int)dn, dirs, prog);
    if (executable(full))
      return full;
    free(full);
    if (colon == NULL)
      break;
    dirs = colon + 1;
  }
  *why = xstrdup("not found on PATH (give a path, or set PATH with --opt "
                 "env=...)");
  return NULL;
}

/* The environment: the host's, with the env option's entries set (a null
 * value removes a variable). */
static int build_env(struct exec *ex, const cJSON *env, char **err,
                     const char **path) {
  const cJSON *e;
  cJSON_ArrayForEach(e, env) {
    if (e->string[0] == '\0' || strchr(e->string, '=') != NULL) {
      *err = xstrdup("env: variable names must be non-empty and contain no "
                     "'='");
      return -1;
    }
    if (!cJSON_IsString(e) && !cJSON_IsNull(e)) {
      size_t n = strlen(e->string) + 80;
      *err = malloc(n);
      if (*err)
        snprintf(*err, n,
                 "env: the value of '%s' must be a string (or null "
                 "to remove it)",
                 e->string);
      return -1;
    }
  }
  size_t n = 0;
  while (environ != NULL && environ[n] != NULL)
    n++;
  ex->envp = calloc(n + (size_t)cJSON_GetArraySize(env) + 1, sizeof *ex->envp);
  if (ex->envp == NULL)
    return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int overridden = 0;
    cJSON_ArrayForEach(e, env) {
      if (strlen(e->string) == nl && strncmp(e->string, environ[i], nl) == 0)
        overridden = 1;
    }
    if (!overridden && (ex->envp[k] = xstrdup(environ[i])) != NULL)
      k++;
  }
  cJSON_ArrayForEach(e, env) {
    if (!cJSON_IsString(e))
      continue;
    size_t len = strlen(e->string) + strlen(e->valuestring) + 2;
    char *s = malloc(len);
    if (s == NULL)
      continue;
    snprintf(s, len, "%s=%s", e->string, e->valuestring);
    ex->envp[k++] = s;
    if (strcmp(e->string, "PATH") == 0)
      *path = e->valuestring;
  }
  return 0;
}

/* Reads the cmd option into argv (and the label). */
static int build_argv(struct exec *ex, const cJSON *cmd, int shell,
                      char **err) {
  int n = cJSON_IsArray(cmd) ? cJSON_GetArraySize(cmd) : 0;
  if (cJSON_IsString(cmd) && !shell) {
    *err = xstrdup("cmd is a string but shell is false; give cmd as a JSON "
                   "array of strings (argv), e.g. cmd='[\"prog\",\"arg\"]', "
                   "or set shell=true to run it with /bin/sh -c");
    return -1;
  }
  if (!cJSON_IsString(cmd) && n == 0) {
    *err = xstrdup("cmd must be a non-empty JSON array of strings (argv), "
                   "e.g. cmd='[\"python3\",\"model.py\"]'");
    return -1;
  }
  const cJSON *a;
  cJSON_ArrayForEach(a, cmd) {
    if (!cJSON_IsString(a)) {
      *err = xstrdup("cmd must be a JSON array of strings (argv); an element "
                     "is not a string");
      return -1;
    }
  }
  int extra = shell ? 2 : 0;
  int count = cJSON_IsString(cmd) ? 1 : n;
  ex->argv = calloc((size_t)(count + extra + 1), sizeof *ex->argv);
  if (ex->argv == NULL)
    return -1;
  int k = 0;
  if (shell) {
    ex->argv[k++] = xstrdup("/bin/sh");
    ex->argv[k++] = xstrdup("-c");
  }
  if (cJSON_IsString(cmd)) {
    ex->argv[k++] = xstrdup(cmd->valuestring);
  } else {
    /* With shell=true an array is the command line and then its $0, $1...,
     * as with sh -c itself. */
    cJSON_ArrayForEach(a, cmd) ex->argv[k++] = xstrdup(a->valuestring);
  }
  for (int i = 0; i < k; i++)
    if (ex->argv[i] == NULL)
      return -1;
  /* Messages name the command by its first words, at most 60 bytes. */
  ex->label = malloc(64);
  if (ex->label == NULL)
    return -1;
  size_t len = 0;
  for (int i = shell ? 2 : 0; i < k && len < 60; i++) {
    int w = snprintf(ex->label + len, 61 - len, "%s%s", len ? " " : "",
                     ex->argv[i]);
    len = w < 0 ? len : len + (size_t)w;
  }
  if (len >= 60)
    memcpy(ex->label + 57, "...", 4);
  return 0;
}

static int exec_init(const cJSON *config, const struct assay_host *host,
                     void **state, char **errmsg) {
  struct exec *ex = calloc(1, sizeof *ex);
  char *err = NULL;
  if (ex == NULL) {
    *errmsg = host->format("exec: out of memory");
    return -1;
  }
  ex->host = host;
  ex->loop = host->loop;
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(config, "cmd");
  int shell = host->opt_bool(config, "shell", 0);
  const char *mode = host->opt_string(config, "mode", "once");
  const char *input = host->opt_string(config, "input", "json");
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(config, "env");
  const char *cwd = host->opt_string(config, "cwd", NULL);
  double workers = host->opt_number(config, "workers", 4);
  double max_output = host->opt_number(config, "max_output_bytes", 16777216);
  const char *path = getenv("PATH");
  struct stat st;

  if (build_argv(ex, cmd, shell, &err) != 0)
    goto fail;
  if (strcmp(mode, "once") == 0) {
    ex->persistent = 0;
  } else if (strcmp(mode, "persistent") == 0) {
    ex->persistent = 1;
  } else {
    err = xstrdup("mode must be \"once\" (a process per item) or "
                  "\"persistent\" (long-lived workers)");
    goto fail;
  }
  if (workers < 1 || workers > MAX_WORKERS) {
    err = xstrdup("workers must be between 1 and 1024");
    goto fail;
  }
  ex->nworkers = (int)workers;
  if (max_output < 1 || max_output > (double)SIZE_MAX / 4) {
    err = xstrdup("max_output_bytes must be at least 1");
    goto fail;
  }
  ex->max_output = (size_t)max_output;
  if (strncmp(input, "field:", 6) == 0 && input[6] != '\0') {
    ex->field = xstrdup(input + 6);
  } else if (strcmp(input, "json") != 0) {
    err = xstrdup("input must be \"json\" (the item on stdin) or "
                  "\"field:NAME\" (that field's text)");
    goto fail;
  }
  if (env != NULL && !cJSON_IsNull(env)) {
    if (!cJSON_IsObject(env)) {
      err = xstrdup("env must be a JSON object of variables, e.g. "
                    "env='{\"LANG\":\"C\"}'");
      goto fail;
    }
    if (build_env(ex, env, &err, &path) != 0)
      goto fail;
  }
  if (cwd != NULL) {
    if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      size_t n = strlen(cwd) + 64;
      err = malloc(n);
      if (err)
        snprintf(err, n, "cwd '%s' is not a directory", cwd);
      goto fail;
    }
    ex->cwd = xstrdup(cwd);
  }
  char *why = NULL;
  ex->file = resolve_program(ex->argv[0], path, &why);
  if (ex->file == NULL) {
    *errmsg = host->format("exec: cannot run '%s': %s", ex->argv[0],
                           why ? why : "out of memory");
    free(why);
    exec_free(ex);
    return -1;
  }

  /* A child that exits without reading its stdin must not kill the host
   * with SIGPIPE; libuv resets signals in the children it spawns. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }

  if (ex->persistent) {
    ex->workers = calloc((size_t)ex->nworkers, sizeof *ex->workers);
    if (ex->workers == NULL)
      goto fail;
    for (int i = 0; i < ex->nworkers; i++) {
      ex->workers[i].ex = ex;
      ex->workers[i].index = i;
    }
    /* Workers start now, so their start-up overlaps the loading of the
     * dataset and a command that cannot start fails before any work. */
    for (int i = 0; i < ex->nworkers; i++) {
      int rc = worker_spawn(&ex->workers[i]);
      if (rc != 0) {
        *errmsg = host->format("exec: cannot start worker %d ('%s'): %s", i,
                               ex->label, uv_strerror(rc));
        ex->nworkers = i;
        exec_fini(ex);
        return -1;
      }
    }
  }
  *state = ex;
  return 0;

fail:
  *errmsg = host->format("exec: %s", err ? err : "out of memory");
  free(err);
  exec_free(ex);
  return -1;
}

static const struct assay_option exec_options[] = {
    {"cmd", ASSAY_OPT_JSON, NULL,
     "the command as a JSON array of strings (argv); a string with shell=true",
     ASSAY_OPT_REQUIRED},
    {"shell", ASSAY_OPT_BOOLEAN, "false",
     "run cmd with /bin/sh -c (never done unless asked)", 0},
    {"mode", ASSAY_OPT_STRING, "\"once\"",
     "once: a process per item; persistent: long-lived JSON-lines workers", 0},
    {"workers", ASSAY_OPT_INTEGER, "4", "persistent mode: worker processes", 0},
    {"input", ASSAY_OPT_STRING, "\"json\"",
     "stdin: json (the item) or field:NAME (that field's text)", 0},
    {"env", ASSAY_OPT_JSON, NULL,
     "object of extra environment variables (null removes one)", 0},
    {"cwd", ASSAY_OPT_STRING, NULL, "working directory of the command", 0},
    {"max_output_bytes", ASSAY_OPT_INTEGER, "16777216",
     "cap on a call's stdout (a reply line when persistent)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component exec_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "exec",
    .description = "runs a program per item, or JSON-lines workers (async)",
    .options = exec_options,
    .init = exec_init,
    .fini = exec_fini,
    .run_async = exec_run,
};

static const struct assay_component *const exec_components[] = {&exec_task,
                                                                NULL};

static const struct assay_plugin exec_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "exec",
    .version = "1.0.0",
    .description = "evaluate any program: a process per item or a worker pool",
    .components = exec_components,
};

ASSAY_PLUGIN(exec, exec_plugin)
