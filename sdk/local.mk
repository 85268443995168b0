# sdk/: what a plugin author needs, installed by make install.
assayincludedir = $(includedir)/assay
assayinclude_HEADERS = sdk/include/assay/plugin.h
pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = sdk/assay-plugin.pc
EXTRA_DIST += sdk/assay-plugin.pc.in
