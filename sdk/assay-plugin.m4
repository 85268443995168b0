# assay-plugin.m4: autoconf support for assay plugins built out of tree.
# Installed into $(datadir)/aclocal by assay's `make install`.
#
# ASSAY_PLUGIN_INIT([MINIMUM-VERSION], [ACTION-IF-FOUND],
#                   [ACTION-IF-NOT-FOUND])
#
# Finds the assay plugin SDK with pkg-config (module assay-plugin, at least
# MINIMUM-VERSION when given) and sets, with AC_SUBST:
#   ASSAY_PLUGIN_CFLAGS  flags to compile a plugin (<assay/plugin.h>, cJSON)
#   ASSAY_PLUGIN_LIBS    libraries a plugin links (cJSON)
#   assay_plugindir      where plugins are installed: the SDK's plugindir,
#                        unless --with-assay-plugindir=DIR says otherwise
#   ASSAY_ABI_MAJOR, ASSAY_ABI_MINOR  the SDK's plugin ABI version
# Without ACTION-IF-NOT-FOUND, a missing SDK stops configure with a message
# saying what to install.
#
# In Makefile.am, a plugin is then a libtool module:
#   plugin_LTLIBRARIES = myplugin.la
#   plugindir = $(assay_plugindir)
#   myplugin_la_CFLAGS = $(ASSAY_PLUGIN_CFLAGS)
#   myplugin_la_LIBADD = $(ASSAY_PLUGIN_LIBS)
#   myplugin_la_LDFLAGS = -module -avoid-version -shared
#
# serial 1

AC_DEFUN([ASSAY_PLUGIN_INIT],
[AC_REQUIRE([PKG_PROG_PKG_CONFIG])dnl
PKG_CHECK_MODULES([ASSAY_PLUGIN],
  [assay-plugin m4_ifval([$1], [>= $1])],
  [assay_plugin_found=yes],
  [assay_plugin_found=no])
AS_IF([test "$assay_plugin_found" = yes],
  [PKG_CHECK_VAR([assay_sdk_plugindir], [assay-plugin], [plugindir])
   PKG_CHECK_VAR([ASSAY_ABI_MAJOR], [assay-plugin], [abi_major])
   PKG_CHECK_VAR([ASSAY_ABI_MINOR], [assay-plugin], [abi_minor])
   AC_ARG_WITH([assay-plugindir],
     [AS_HELP_STRING([--with-assay-plugindir=DIR],
       [install the plugin into DIR (default: the directory assay loads
        its built-in plugins from, as pkg-config reports it)])],
     [assay_plugindir=$withval],
     [assay_plugindir=$assay_sdk_plugindir])
   AC_MSG_CHECKING([where to install assay plugins])
   AC_MSG_RESULT([$assay_plugindir])
   AC_SUBST([assay_plugindir])
   AC_SUBST([ASSAY_ABI_MAJOR])
   AC_SUBST([ASSAY_ABI_MINOR])
   $2],
  [m4_default([$3],
    [AC_MSG_ERROR([the assay plugin SDK was not found by pkg-config (module assay-plugin m4_ifval([$1], [>= $1])): install assay, or set PKG_CONFIG_PATH to <assay prefix>/lib/pkgconfig])])])
])
