#!/bin/sh
# The installed SDK works for a plugin author who has only the installed
# files: this configures a separate build of the source tree with
# --prefix=<temporary dir> (the binary's plugin directory is compiled in
# from the prefix), runs `make install`, copies the installed template out,
# builds it with nothing but pkg-config and cc, and runs it with the
# installed assay, next to built-in metrics found by name in the installed
# plugin directory. It also checks the pkg-config variables and, when
# autoconf is available, the ASSAY_PLUGIN_INIT macro.
# Takes about a minute (a full build); ASSAY_SKIP_SLOW=1 skips it (77).
# Needs ASSAY_TEST_SRCDIR (set by make check), cc, make, pkg-config, python3.
set -u
if [ "${ASSAY_SKIP_SLOW:-0}" = 1 ]; then
  echo "SKIP: ASSAY_SKIP_SLOW=1"
  exit 77
fi
top=$(cd "${ASSAY_TEST_SRCDIR:?}/.." && pwd)
# The build below is independent of the make running this test: none of its
# flags, variables or job server may leak in.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS DESTDIR
for tool in cc make pkg-config python3; do
  command -v $tool >/dev/null 2>&1 || { echo "FAIL: $tool is needed"; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-sdk.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
prefix=$work/prefix
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [ $# -gt 1 ] && tail -n 15 "$2" | sed 's/^/     | /'; }

# ---- configure and install into the temporary prefix --------------------------
jobs=$( (nproc || echo 2) 2>/dev/null)
[ "$jobs" -gt 8 ] && jobs=8
# A source tree configured in place (the README's ./setup does that) cannot
# also be configured out of tree: build a clean copy of it then.
src=$top
if [ -f "$top/config.status" ]; then
  src=$work/src
  if ! cp -a "$top" "$src" || ! make -C "$src" -s distclean >"$work/copy.log" 2>&1; then
    bad "copy the configured source tree" "$work/copy.log"
    exit 1
  fi
fi
mkdir "$work/build"
cd "$work/build" || exit 1
# No -Werror here: configure's own probes must not trip on warnings.
if "$src/configure" -q --prefix="$prefix" --disable-dependency-tracking \
  CFLAGS="-O0" >"$work/configure.log" 2>&1; then
  ok "configure --prefix=$prefix"
else
  bad "configure" "$work/configure.log"
  exit 1
fi
if make -j"$jobs" install >"$work/install.log" 2>&1; then
  ok "make install"
else
  bad "make install" "$work/install.log"
  exit 1
fi
cd "$work" || exit 1
rm -rf "$work/build" # nothing below may use the build tree

for f in bin/assay include/assay/plugin.h lib/pkgconfig/assay-plugin.pc \
  share/aclocal/assay-plugin.m4 share/assay/template/myplugin.c \
  share/assay/template/Makefile lib/assay/echo.so lib/assay/equals.so; do
  [ -f "$prefix/$f" ] && ok "installed $f" || bad "installed $f"
done

# ---- pkg-config ----------------------------------------------------------------
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pc() { pkg-config "$@" assay-plugin 2>&1; }
[ "$(pc --variable=plugindir)" = "$prefix/lib/assay" ] && ok "pkg-config plugindir" \
  || bad "pkg-config plugindir: '$(pc --variable=plugindir)'"
abi_major=$(sed -n 's/^#define ASSAY_ABI_MAJOR \([0-9]*\)$/\1/p' "$top/sdk/include/assay/plugin.h")
abi_minor=$(sed -n 's/^#define ASSAY_ABI_MINOR \([0-9]*\)$/\1/p' "$top/sdk/include/assay/plugin.h")
[ "$(pc --variable=abi_major).$(pc --variable=abi_minor)" = "$abi_major.$abi_minor" ] \
  && ok "pkg-config ABI version $abi_major.$abi_minor" || bad "pkg-config ABI version"
case " $(pc --cflags) " in
*" -I$prefix/include "*) ok "pkg-config cflags name the installed headers" ;;
*) bad "pkg-config cflags: '$(pc --cflags)'" ;;
esac
[ "$(pc --variable=templatedir)" = "$prefix/share/assay/template" ] && ok "pkg-config templatedir" \
  || bad "pkg-config templatedir"

# ---- the template, out of the tree ------------------------------------------------
cp -R "$prefix/share/assay/template" "$work/myplugin"
chmod -R u+w "$work/myplugin"
cd "$work/myplugin" || exit 1
if make CFLAGS="-O2 -Wall -Wextra -Werror" >"$work/tmpl.log" 2>&1 && [ -f myplugin.so ]; then
  ok "template builds with pkg-config and cc"
else
  bad "template builds" "$work/tmpl.log"
fi
cd "$work" || exit 1
cat >qa.jsonl <<'EOF'
{"id": "a", "input": "paris", "reference": "PARIS!"}
{"id": "b", "input": "rome", "reference": "ROMA"}
{"id": "c", "input": "lyon", "reference": "a much longer reference"}
EOF
check() {
  if python3 - "$3" >pyout 2>&1 <<EOF
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert $2, r
EOF
  then ok "$1"; else bad "$1" pyout; fi
}
env -u ASSAY_PLUGIN_PATH "$prefix/bin/assay" run --dataset qa.jsonl \
  --task ./myplugin/myplugin.so:shout --opt suffix=! \
  --metric equals --metric ./myplugin/myplugin.so:length_ratio \
  -o out.jsonl -q >run.log 2>&1
[ $? -eq 0 ] && ok "installed assay runs the template" || bad "installed assay runs the template" run.log
check "template task and metric, built-in metric by name" \
  "[x['output']['output'] for x in r] == ['PARIS!', 'ROME!', 'LYON!'] and [x['scores']['equals']['value'] for x in r] == [1, 0, 0] and r[0]['scores']['length_ratio']['value'] == 1 and 0 < r[2]['scores']['length_ratio']['value'] < 1" out.jsonl

# make install puts it where the installed assay finds plugins by name.
if (cd myplugin && make install >"$work/tmplinst.log" 2>&1) && [ -f "$prefix/lib/assay/myplugin.so" ]; then
  ok "template installs into plugindir"
else
  bad "template installs into plugindir" "$work/tmplinst.log"
fi
env -u ASSAY_PLUGIN_PATH "$prefix/bin/assay" run --dataset qa.jsonl --task myplugin:shout \
  --metric myplugin:length_ratio -o byname.jsonl -q >run.log 2>&1
[ $? -eq 0 ] && ok "installed plugin found by name" || bad "installed plugin found by name" run.log
check "by name, same outputs" "[x['output']['output'] for x in r] == ['PARIS', 'ROME', 'LYON']" byname.jsonl
env -u ASSAY_PLUGIN_PATH "$prefix/bin/assay" plugins >plugins.log 2>&1
grep -q "$prefix/lib/assay" plugins.log && grep -q "length_ratio" plugins.log && grep -q "levenshtein_ratio" plugins.log \
  && ok "assay plugins lists the installed directory" || bad "assay plugins lists the installed directory" plugins.log

# ---- the autoconf macro ------------------------------------------------------------
if command -v autoconf >/dev/null 2>&1 && command -v aclocal >/dev/null 2>&1; then
  mkdir "$work/ac" && cd "$work/ac" || exit 1
  cat >configure.ac <<'EOF'
AC_INIT([acplugin], [1.0])
ASSAY_PLUGIN_INIT([0.1])
AC_CONFIG_FILES([result.txt])
AC_OUTPUT
EOF
  printf 'cflags=@ASSAY_PLUGIN_CFLAGS@\nlibs=@ASSAY_PLUGIN_LIBS@\nplugindir=@assay_plugindir@\nabi=@ASSAY_ABI_MAJOR@.@ASSAY_ABI_MINOR@\n' >result.txt.in
  if aclocal -I "$prefix/share/aclocal" >ac.log 2>&1 && autoconf >>ac.log 2>&1 &&
    ./configure >>ac.log 2>&1; then
    ok "ASSAY_PLUGIN_INIT configures"
    grep -qx "plugindir=$prefix/lib/assay" result.txt && grep -q "^cflags=.*-I$prefix/include" result.txt &&
      grep -qx "abi=$abi_major.$abi_minor" result.txt && grep -q "^libs=.*-lcjson" result.txt \
      && ok "ASSAY_PLUGIN_INIT sets flags, plugindir and ABI" || bad "ASSAY_PLUGIN_INIT values" result.txt
    ./configure --with-assay-plugindir="$work/mine" >>ac.log 2>&1
    grep -qx "plugindir=$work/mine" result.txt && ok "--with-assay-plugindir" || bad "--with-assay-plugindir" result.txt
    if PKG_CONFIG_PATH="$work/nowhere" PKG_CONFIG_LIBDIR="$work/nowhere" ./configure >nosdk.log 2>&1; then
      bad "configure fails without the SDK" nosdk.log
    else
      grep -q "set PKG_CONFIG_PATH" nosdk.log && ok "a missing SDK is explained" || bad "a missing SDK is explained" nosdk.log
    fi
  else
    bad "ASSAY_PLUGIN_INIT configures" ac.log
  fi
  cd "$work" || exit 1
else
  echo "skip autoconf macro checks: autoconf/aclocal not installed"
fi

printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
