/* Deadlines on a libuv loop (see deadline.h). */
#include "deadline.h"

#include <stddef.h>

#include "util.h"

/* Starts the timer for the earliest deadline unless it already fires no
 * later. An armed timer whose deadline went away (others remain) just
 * fires and finds nothing due. */
static void arm(struct assay_deadlines *q);

static void on_timer(uv_timer_t *t) {
  struct assay_deadlines *q =
      assay__container_of(t, struct assay_deadlines, timer);
  q->armed = 0;
  q->cb(q, uv_now(t->loop));
  /* The callback may have closed the timer (its owner is going away). */
  if (!uv_is_closing((uv_handle_t *)t))
    arm(q);
}

static void arm(struct assay_deadlines *q) {
  if (q->head == NULL)
    return;
  uint64_t due = q->head->due;
  if (q->armed != 0 && q->armed <= due)
    return;
  uint64_t now = uv_now(q->timer.loop);
  uv_timer_start(&q->timer, on_timer, due > now ? due - now : 0, 0);
  q->armed = due;
}

int assay_deadlines_init(struct assay_deadlines *q, uv_loop_t *loop,
                         assay_deadlines_cb cb) {
  q->head = q->tail = NULL;
  q->armed = 0;
  q->cb = cb;
  return uv_timer_init(loop, &q->timer);
}

void assay_deadline_add(struct assay_deadlines *q, struct assay_deadline *d,
                        uint64_t due) {
  d->due = due;
  struct assay_deadline *at = q->tail;
  while (at != NULL && at->due > due)
    at = at->prev;
  d->prev = at;
  d->next = at ? at->next : q->head;
  if (d->next)
    d->next->prev = d;
  else
    q->tail = d;
  if (at)
    at->next = d;
  else
    q->head = d;
  d->queued = 1;
  arm(q);
}

void assay_deadline_remove(struct assay_deadlines *q,
                           struct assay_deadline *d) {
  if (!d->queued)
    return;
  if (d->prev)
    d->prev->next = d->next;
  else
    q->head = d->next;
  if (d->next)
    d->next->prev = d->prev;
  else
    q->tail = d->prev;
  d->prev = d->next = NULL;
  d->queued = 0;
  /* An armed timer keeps the loop alive: with nothing left to time, it
   * must not (the loop may be the caller's, with nothing else to do). */
  if (q->head == NULL && q->armed != 0) {
    uv_timer_stop(&q->timer);
    q->armed = 0;
  }
}

struct assay_deadline *assay_deadline_due(struct assay_deadlines *q,
                                          uint64_t now) {
  struct assay_deadline *d = q->head;
  if (d == NULL || d->due > now)
    return NULL;
  assay_deadline_remove(q, d);
  return d;
}
