/* libcurl, loaded when the HTTP service first needs it (see curlload.h). */
#include "config.h"

#define ASSAY_CURLLOAD_IMPL 1
#include "curlload.h"

#include <stdlib.h>

#include <uv.h>

#include "error.h"
#include "util.h"

#ifndef ASSAY_LIBCURL_SONAME
#define ASSAY_LIBCURL_SONAME "libcurl.so.4"
#endif

struct assay_curl assay__curl;

static uv_once_t load_once = UV_ONCE_INIT;
static uv_lib_t lib; /* never closed: curl keeps global state until exit */
static char *load_error; /* why loading failed, or NULL */
static int has_http2;

static void load(void) {
  const char *name = getenv("ASSAY_LIBCURL");
  int chosen = name != NULL && name[0] != '\0';
  if (!chosen)
    name = ASSAY_LIBCURL_SONAME;
  if (uv_dlopen(name, &lib) != 0) {
    load_error =
        chosen ? assay__format("cannot load libcurl '%s' (ASSAY_LIBCURL): %s",
                               name, uv_dlerror(&lib))
               : assay__format("cannot load libcurl (%s), which HTTP requests "
                               "need: %s; install the Debian package libcurl4",
                               name, uv_dlerror(&lib));
    uv_dlclose(&lib);
    return;
  }
  const char *missing = NULL;
#define ASSAY_CURL_SYM(fn)                                                     \
  if (missing == NULL &&                                                       \
      uv_dlsym(&lib, "curl_" #fn, (void **)&assay__curl.fn) != 0)              \
    missing = "curl_" #fn;
  ASSAY_CURL_FUNCTIONS(ASSAY_CURL_SYM)
#undef ASSAY_CURL_SYM
  if (missing != NULL) {
    load_error = assay__format("'%s' has no %s: libcurl 7.80 or later is "
                               "needed",
                               name, missing);
    return;
  }
  CURLcode rc = assay__curl.global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    load_error = assay__format("cannot initialise libcurl: %s",
                               assay__curl.easy_strerror(rc));
    return;
  }
  has_http2 = (assay__curl.version_info(CURLVERSION_NOW)->features &
               CURL_VERSION_HTTP2) != 0;
}

int assay__curl_load(char **errmsg) {
  uv_once(&load_once, load);
  if (load_error != NULL)
    return assay__fail(errmsg, ASSAY_EERROR, "%s", load_error);
  return 0;
}

int assay__curl_has_http2(void) {
  return has_http2;
}
