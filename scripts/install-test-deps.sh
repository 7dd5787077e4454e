#!/bin/sh
# Installs the system packages the test suite needs, if any are missing (Debian/apt).
#   python3-msgpack  a MessagePack implementation that is not msgpackr (interop test)
#   iproute2         network namespaces for the multi-host lab
#   nftables         packet loss and partitions in the lab
#   tmux             driving the CLI as a person would
#   systemd          systemd-analyze, to verify deploy/systemd/wmesh.service
# Runs as `pretest`, so `npm test` works on a fresh machine; does nothing when all are present.
set -eu
missing=""
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || missing="$missing python3-msgpack"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "wmesh tests need these Debian packages:$missing (install them, e.g. sudo apt-get install -y$missing)" >&2
  exit 1
fi
echo "installing test dependencies:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
