/*
 * CI gates over results: --pass SCORE>=X thresholds (a record passes when
 * every threshold on a score it has holds), --fail-under SCORE=X (a run
 * fails when a score's mean is below X), and the JUnit XML writer (one test
 * case per record). Written by the gates work; see gate.c.
 */
#ifndef ASSAY_GATE_H
#define ASSAY_GATE_H
#endif
