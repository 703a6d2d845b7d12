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
NEEDED="ImagerServer TrackerServer TrackerClient3 ReceiveServer StringEchoServer StatusServer"

if [[ -f "$MARKER" ]]; then
  missing=0
  for n in $NEEDED; do [[ -x "$OUT/bin/$n" ]] || missing=1; done
  if [[ $missing -eq 0 ]]; then
    exit 0
  fi
fi

die() { echo "build-peers: $*" >&2; exit 1; }
for tool in apt-get dpkg g++; do
  command -v "$tool" >/dev/null || die "'$tool' not found: the OpenIGTLink test peers need Debian's apt-get, dpkg and g++"
done

rm -rf "$OUT/debs" "$OUT/root" "$OUT/bin" "$MARKER"
mkdir -p "$OUT/debs" "$OUT/root" "$OUT/bin"
PACKAGES="openigtlink-examples libopenigtlink1.11 libopenigtlink-dev"

cd "$OUT/debs"
# A fresh machine may have no package lists yet; refresh them once and retry.
if ! apt-get download $PACKAGES >"$OUT/apt.log" 2>&1; then
  echo "build-peers: apt-get download failed; running apt-get update and retrying" >&2
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq >>"$OUT/apt.log" 2>&1 || true
  else
    sudo -n apt-get update -qq >>"$OUT/apt.log" 2>&1 || true
  fi
  apt-get download $PACKAGES >>"$OUT/apt.log" 2>&1 || { cat "$OUT/apt.log" >&2; die "could not download $PACKAGES"; }
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

# Compile only the programs the tests use, two at a time (the build machine has 2 cores).
pids=()
for n in $NEEDED; do
  src=$(find "$E" -name "$n.cxx" | head -n 1)
  [[ -n "$src" ]] || die "source $n.cxx not found under $E"
  g++ -O1 -w -I "$INC" -o "$OUT/bin/$n" "$src" -L "$LIB" -lOpenIGTLink -lpthread \
      -Wl,-rpath,"$LIB" 2>"$OUT/bin/$n.log" &
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
