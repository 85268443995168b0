/*
 * Deadlines on a libuv loop, for many timeouts that are nearly all of one
 * length (every call of a component, every request of a run): they come
 * due in the order they were set, so they sit in one list sorted by due
 * time (an insert walks back from the end, which is nearly always where it
 * belongs) and one timer fires for the earliest. A libuv timer each would
 * cost a heap insert and a heap removal per call on the loop thread, which
 * at 1,000 in flight was 3% of that thread's time.
 *
 * Loop thread only. The list does not own its entries: embed a struct
 * assay_deadline where the deadline belongs and find the owner back with
 * assay__container_of.
 */
#ifndef ASSAY_DEADLINE_H
#define ASSAY_DEADLINE_H

#include <stdint.h>

#include <uv.h>

struct assay_deadline {
  struct assay_deadline *prev, *next;
  uint64_t due; /* loop time (uv_now), ms */
  int queued;   /* on the list */
};

struct assay_deadlines;
/* The timer fired: take what is due with assay_deadline_due. */
typedef void (*assay_deadlines_cb)(struct assay_deadlines *q, uint64_t now);

struct assay_deadlines {
  struct assay_deadline *head, *tail;
  uv_timer_t timer; /* close it with uv_close when done with the list */
  uint64_t armed;   /* when the timer fires; 0 when it is not armed */
  assay_deadlines_cb cb;
};

/* An empty list whose timer runs on loop. Returns 0 or a libuv error. */
int assay_deadlines_init(struct assay_deadlines *q, uv_loop_t *loop,
                         assay_deadlines_cb cb);

/* Puts d on the list, due at due (loop time, ms). d must not be on it. */
void assay_deadline_add(struct assay_deadlines *q, struct assay_deadline *d,
                        uint64_t due);

/* Takes d off the list; nothing when it is not on it. The timer stops
 * with the last deadline, so an empty list keeps no loop alive. */
void assay_deadline_remove(struct assay_deadlines *q,
                           struct assay_deadline *d);

/* The earliest deadline due at now (due <= now), taken off the list, or
 * NULL. For the callback, which may add and remove deadlines meanwhile. */
struct assay_deadline *assay_deadline_due(struct assay_deadlines *q,
                                          uint64_t now);

#endif
