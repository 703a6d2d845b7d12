#!/usr/bin/env bash
# Build the C++ OpenIGTLink reference example programs (Debian `openigtlink-examples`) used as
# independent protocol peers by Testing/igtl. Nothing is installed system-wide: the Debian
# packages are downloaded with `apt-get download`, unpacked with `dpkg -x` into the build folder
# and the examples compiled there with g++ (see docs: openigtlink reference §5.2).
#
# Usage: Testing/peers/build-peers.sh [OUT]   (default OUT: <repo>/.peers, ignored by git)
# Idempotent: a completed build (marker file) is reused and the script returns at once.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$REPO/.peers}
MARKER="$OUT/.built"
# The programs the interop tests start; the build must produce all of them.
NEEDED="ImagerServer TrackerServer TrackerClient3 ReceiveServer StringEchoServer StatusServer TrackingDataServer"

if [[ -f "$MARKER" ]]; then
  missing=0
  for n in $NEEDED; do [[ -x "$OUT/bin/$n" ]] || missing=1; done
  if [[ $missing -eq 0 ]]; then
    exit 0
  fi
fi

die() { echo "build-peers: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg; do
  command -v "$tool" >/dev/null || die "'$tool' not found: the OpenIGTLink test peers are built from Debian packages"
done

as_root() {  # CI runs as root; elsewhere try sudo without a password prompt
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

mkdir -p "$OUT"
APT_LOG="$OUT/apt.log"
: >"$APT_LOG"
UPDATED=0
apt_update_once() {
  if [[ $UPDATED -eq 0 ]]; then
    UPDATED=1
    echo "build-peers: refreshing Debian's package lists (apt-get update)" >&2
    as_root apt-get update -qq >>"$APT_LOG" 2>&1 || true
  fi
}

# A compiler is needed; a clean CI machine running as root can install it.
if ! command -v g++ >/dev/null; then
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >>"$APT_LOG" 2>&1 \
    || { cat "$APT_LOG" >&2; die "g++ is missing and could not be installed"; }
fi

# The runtime library's package name carries its soname (libopenigtlink1.11 in bookworm): ask
# the -dev package which one it needs rather than hard-coding it.
runtime_package() {
  apt-cache depends libopenigtlink-dev 2>/dev/null | sed -n 's/^ *Depends: \(libopenigtlink[0-9][^ ]*\)$/\1/p' | head -n 1
}
LIBPKG=$(runtime_package)
if [[ -z "$LIBPKG" ]]; then
  apt_update_once
  LIBPKG=$(runtime_package)
fi
[[ -n "$LIBPKG" ]] || { cat "$APT_LOG" >&2; die "package libopenigtlink-dev not found in Debian's package lists"; }

rm -rf "$OUT/debs" "$OUT/root" "$OUT/bin" "$MARKER"
mkdir -p "$OUT/debs" "$OUT/root" "$OUT/bin"
PACKAGES="openigtlink-examples $LIBPKG libopenigtlink-dev"

cd "$OUT/debs"
# Package lists may be stale (the mirror moved on): refresh them once and retry.
if ! apt-get download $PACKAGES >>"$APT_LOG" 2>&1; then
  apt_update_once
  apt-get download $PACKAGES >>"$APT_LOG" 2>&1 || { cat "$APT_LOG" >&2; die "could not download $PACKAGES"; }
fi
for f in *.deb; do dpkg -x "$f" "$OUT/root"; done

E="$OUT/root/usr/share/doc/openigtlink-examples/examples"
INC="$OUT/root/usr/include/openigtlink"
LIB="$OUT/root/usr/lib"
[[ -d "$E" ]] || die "examples folder missing after unpacking: $E"
# Debian installs the shared library either in /usr/lib or in the multiarch folder.
if [[ ! -e "$LIB/libOpenIGTLink.so" ]]; then
  so=$(find "$OUT/root/usr/lib" -name 'libOpenIGTLink.so*' | head -n 1)
  [[ -n "$so" ]] || die "libOpenIGTLink.so not found in the unpacked packages"
  LIB=$(dirname "$so")
  [[ -e "$LIB/libOpenIGTLink.so" ]] || ln -sf "$(basename "$so")" "$LIB/libOpenIGTLink.so"
fi

# Compile only the programs the tests use, two at a time (the build machine has 2 cores). The
# library is found relative to the program ($ORIGIN), so the folder may move with the checkout.
RPATH="\$ORIGIN/$(realpath --relative-to="$OUT/bin" "$LIB")"
pids=()
for n in $NEEDED; do
  src=$(find "$E" -name "$n.cxx" | head -n 1)
  [[ -n "$src" ]] || die "source $n.cxx not found under $E"
  g++ -O1 -w -I "$INC" -o "$OUT/bin/$n" "$src" -L "$LIB" -lOpenIGTLink -lpthread \
      -Wl,-rpath,"$RPATH" 2>"$OUT/bin/$n.log" &
  pids+=($!)
  if [[ ${#pids[@]} -ge 2 ]]; then
    wait "${pids[0]}" || die "compiling $n's batch failed (see $OUT/bin/*.log)"
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || die "compilation failed (see $OUT/bin/*.log)"; done
for n in $NEEDED; do [[ -x "$OUT/bin/$n" ]] || die "$n was not built (see $OUT/bin/$n.log)"; done

ln -sfn "$E/Imager/img" "$OUT/img"
touch "$MARKER"
echo "build-peers: built $NEEDED in $OUT/bin"
