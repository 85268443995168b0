/*
 * libcurl, loaded when the HTTP service first needs it.
 *
 * The binary does not link libcurl: libcurl brings some 40 shared libraries
 * (TLS, Kerberos, LDAP, ...), and mapping them took half of a small run's
 * start-up (3.4 of 6.9 ms), paid by every command, also those that make no
 * HTTP request (a sync evaluation, report, merge, compare, plugins).
 * assay__curl_load() opens it by the name its runtime package installs
 * (ASSAY_LIBCURL_SONAME, found by configure; the environment variable
 * ASSAY_LIBCURL names another, such as a libcurl built with HTTP/3 or the
 * GnuTLS flavour) and fills assay__curl with the
 * functions the HTTP service calls; core/http.c calls them through the
 * macros below, by their usual names.
 *
 * Include this instead of <curl/curl.h>, and only where the calls are
 * wanted to go through the table (core/http.c). curl's compile-time option
 * type checks (typecheck-gcc.h) are macros of the same names, so they are
 * off here: every curl_easy_setopt in http.c passes a long, a pointer or a
 * function of the option's type explicitly.
 */
#ifndef ASSAY_CURLLOAD_H
#define ASSAY_CURLLOAD_H

#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1
#endif
#include <curl/curl.h>

/* X(name): each libcurl function the HTTP service calls, as curl_##name. */
#define ASSAY_CURL_FUNCTIONS(X)                                                \
  X(global_init)                                                               \
  X(version_info)                                                              \
  X(easy_init)                                                                 \
  X(easy_setopt)                                                               \
  X(easy_getinfo)                                                              \
  X(easy_cleanup)                                                              \
  X(easy_strerror)                                                             \
  X(multi_init)                                                                \
  X(multi_setopt)                                                              \
  X(multi_add_handle)                                                          \
  X(multi_remove_handle)                                                       \
  X(multi_socket_action)                                                       \
  X(multi_info_read)                                                           \
  X(multi_cleanup)                                                             \
  X(multi_strerror)                                                            \
  X(slist_append)                                                              \
  X(slist_free_all)                                                            \
  X(url)                                                                       \
  X(url_set)                                                                   \
  X(url_get)                                                                   \
  X(url_cleanup)                                                               \
  X(url_strerror)                                                              \
  X(free)                                                                      \
  X(getdate)

/* Pointers typed from curl.h's own prototypes (the function, not the
 * argument-count macro curl.h puts over some). */
struct assay_curl {
#define ASSAY_CURL_MEMBER(name) __typeof__(&(curl_##name)) name;
  ASSAY_CURL_FUNCTIONS(ASSAY_CURL_MEMBER)
#undef ASSAY_CURL_MEMBER
};

extern struct assay_curl assay__curl;

/*
 * Loads libcurl and runs curl_global_init, once per process; any thread may
 * call it, and a caller that comes while another loads waits for it.
 * Returns 0, or ASSAY_EERROR with *errmsg saying what is missing and which
 * package to install (the outcome of the first call is kept).
 */
int assay__curl_load(char **errmsg);

/* Whether the libcurl loaded speaks HTTP/2; 0 before assay__curl_load. */
int assay__curl_has_http2(void);

#ifndef ASSAY_CURLLOAD_IMPL
#define curl_global_init (*assay__curl.global_init)
#define curl_version_info (*assay__curl.version_info)
#define curl_easy_init (*assay__curl.easy_init)
/* curl.h makes these three macros that check the argument count. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_setopt(e, opt, v) (*assay__curl.easy_setopt)(e, opt, v)
#define curl_easy_getinfo(e, info, p) (*assay__curl.easy_getinfo)(e, info, p)
#define curl_easy_cleanup (*assay__curl.easy_cleanup)
#define curl_easy_strerror (*assay__curl.easy_strerror)
#define curl_multi_init (*assay__curl.multi_init)
#define curl_multi_setopt(m, opt, v) (*assay__curl.multi_setopt)(m, opt, v)
#define curl_multi_add_handle (*assay__curl.multi_add_handle)
#define curl_multi_remove_handle (*assay__curl.multi_remove_handle)
#define curl_multi_socket_action (*assay__curl.multi_socket_action)
#define curl_multi_info_read (*assay__curl.multi_info_read)
#define curl_multi_cleanup (*assay__curl.multi_cleanup)
#define curl_multi_strerror (*assay__curl.multi_strerror)
#define curl_slist_append (*assay__curl.slist_append)
#define curl_slist_free_all (*assay__curl.slist_free_all)
#define curl_url (*assay__curl.url)
#define curl_url_set (*assay__curl.url_set)
#define curl_url_get (*assay__curl.url_get)
#define curl_url_cleanup (*assay__curl.url_cleanup)
#define curl_url_strerror (*assay__curl.url_strerror)
#define curl_free (*assay__curl.free)
#define curl_getdate (*assay__curl.getdate)
#endif

#endif
