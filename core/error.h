/*
 * Error codes of the host, from one table. Functions return 0 or a negative
 * ASSAY_E* code with detail in a char **errmsg; records carry the code's
 * name ("timeout", "bad_item", ...) and a message.
 */
#ifndef ASSAY_ERROR_H
#define ASSAY_ERROR_H

/* X(NAME, "record name", "description") */
#define ASSAY_ERRNO_MAP(X)                                                     \
  X(ERROR, "error", "the call failed")                                         \
  X(TIMEOUT, "timeout", "the call timed out")                                  \
  X(RETRIES, "retries_exhausted", "every attempt failed with a retryable error") \
  X(BAD_INPUT, "bad_input", "the plugin rejected the item")                    \
  X(BAD_ITEM, "bad_item", "the dataset item is malformed")                     \
  X(NO_OUTPUT, "no_output", "the plugin returned nothing")                     \
  X(BAD_OUTPUT, "bad_output", "the plugin returned a value of the wrong shape") \
  X(MISSING_INPUT, "missing_input", "a key the metric reads is missing")       \
  X(INTERRUPTED, "interrupted", "the run was interrupted")                     \
  X(INVAL, "invalid_argument", "invalid argument")                             \
  X(NOMEM, "out_of_memory", "out of memory")                                   \
  X(IO, "io_error", "input/output error")                                      \
  X(NOENT, "not_found", "not found")                                           \
  X(LOAD, "load_error", "cannot load plugin")                                  \
  X(CONFIG, "config_error", "invalid configuration")

enum {
  ASSAY__E_BASE = 4000,
#define ASSAY__X(name, s, d) ASSAY__E_##name,
  ASSAY_ERRNO_MAP(ASSAY__X)
#undef ASSAY__X
  ASSAY__E_END
};

#define ASSAY_E(name) (-ASSAY__E_##name)
#define ASSAY_EERROR ASSAY_E(ERROR)
#define ASSAY_ETIMEOUT ASSAY_E(TIMEOUT)
#define ASSAY_ERETRIES ASSAY_E(RETRIES)
#define ASSAY_EBAD_INPUT ASSAY_E(BAD_INPUT)
#define ASSAY_EBAD_ITEM ASSAY_E(BAD_ITEM)
#define ASSAY_ENO_OUTPUT ASSAY_E(NO_OUTPUT)
#define ASSAY_EBAD_OUTPUT ASSAY_E(BAD_OUTPUT)
#define ASSAY_EMISSING_INPUT ASSAY_E(MISSING_INPUT)
#define ASSAY_EINTERRUPTED ASSAY_E(INTERRUPTED)
#define ASSAY_EINVAL ASSAY_E(INVAL)
#define ASSAY_ENOMEM ASSAY_E(NOMEM)
#define ASSAY_EIO ASSAY_E(IO)
#define ASSAY_ENOENT ASSAY_E(NOENT)
#define ASSAY_ELOAD ASSAY_E(LOAD)
#define ASSAY_ECONFIG ASSAY_E(CONFIG)

/* The record name of a code ("timeout"); "unknown" for anything else. */
const char *assay_err_name(int err);
/* A one-line description of a code. */
const char *assay_strerror(int err);

#endif
