#!/usr/bin/env bash
# Run every test of the workspace: unit tests, storage conformance on SQLite and
# a real etcd, the in-process apiserver tests, and the e2e suites that drive a
# real `rkube server` with stock kubectl. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v kubectl >/dev/null; then
  echo "kubectl is needed on PATH for the e2e suites" >&2
  exit 1
fi

e2e/fetch-helm.sh  # Helm 3 and Helm 4 for the helm e2e suite (cached in target/tools)

# Two test threads: the machine has two cores and the e2e suites start servers.
exec cargo test --workspace --locked -- --test-threads=2 "$@"
