# sdk/: what a plugin author needs, installed by make install: the header,
# the pkg-config file (with plugindir and the ABI version as variables), an
# autoconf macro for out-of-tree plugins, and a template plugin directory.
assayincludedir = $(includedir)/assay
assayinclude_HEADERS = sdk/include/assay/plugin.h
pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = sdk/assay-plugin.pc
aclocaldir = $(datadir)/aclocal
dist_aclocal_DATA = sdk/assay-plugin.m4
templatedir = $(pkgdatadir)/template
dist_template_DATA = sdk/template/myplugin.c sdk/template/Makefile
EXTRA_DIST += sdk/assay-plugin.pc.in
