/* Names and descriptions of the host's error codes (see error.h). */
#include "error.h"

const char *assay_err_name(int err) {
  switch (-err) {
#define ASSAY__X(name, s, d)                                                   \
  case ASSAY__E_##name:                                                        \
    return s;
    ASSAY_ERRNO_MAP(ASSAY__X)
#undef ASSAY__X
  }
  return "unknown";
}

const char *assay_strerror(int err) {
  switch (-err) {
#define ASSAY__X(name, s, d)                                                   \
  case ASSAY__E_##name:                                                        \
    return d;
    ASSAY_ERRNO_MAP(ASSAY__X)
#undef ASSAY__X
  }
  return "unknown error";
}
