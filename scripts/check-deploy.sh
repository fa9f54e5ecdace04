#!/usr/bin/env bash
# Checks the deployment files offline: every Kubernetes manifest against the API schema
# (kubernetes-validate, strict), the kustomization against the files beside it, and the
# systemd unit (systemd-analyze verify, with this build's binary and man page).
#   scripts/check-deploy.sh [BINARY]      BINARY defaults to target/release/httpscope
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/release/httpscope}")

manifests=()
for file in deploy/kubernetes/*.yaml; do
    [[ "$file" == */kustomization.yaml ]] || manifests+=("$file")
done
kubernetes-validate --strict --quiet "${manifests[@]}"

# The kustomization lists exactly the manifests.
python3 - "${manifests[@]}" <<'PY'
import os, sys, yaml
listed = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]
present = sorted(os.path.basename(f) for f in sys.argv[1:])
if sorted(listed) != present:
    sys.exit(f"kustomization.yaml lists {sorted(listed)}, deploy/kubernetes has {present}")
PY

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$binary" generate man --out "$scratch/man/man1"
sed "s|/usr/local/bin/httpscope|$binary|" deploy/httpscope.service >"$scratch/httpscope.service"
# An unknown or misspelt key is only a warning to systemd: any complaint fails here.
complaints=$(MANPATH="$scratch/man" systemd-analyze verify "$scratch/httpscope.service" 2>&1) || {
    echo "$complaints" >&2
    exit 1
}
if [[ -n "$complaints" ]]; then
    echo "$complaints" >&2
    exit 1
fi
echo "check-deploy: manifests, kustomization and unit are valid"
