#!/usr/bin/env bash
# The tenants deploy.yml rolls out, one name a line, in name order.
#
#   .github/deploy/choose-tenants.sh all|NAME      (from the repository's root)
#
# A tenant is a folder of tenants/ named as a DNS label with a kustomization.yaml and a tenant.env,
# as scripts/tenancy.py (and so scripts/fleet) has it. `all` is every tenant except the local-only ones: a
# tenant whose local.env says LOCAL_ONLY=true (the demo tenants tenant1 and tenant2, which
# `make run` and `make test` serve) is never deployed, so naming one is refused, as is a name
# without a folder. Refusals are one line on stderr (a GitHub error annotation) and exit code 2.
set -euo pipefail

tenants_dir=${TENANTS_DIR:-tenants}
# A tenant's name is a DNS label (scripts/tenancy.py): nothing that could leave tenants/.
dns_label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'

refuse() {
  echo "::error::choose-tenants: $1" >&2
  exit 2
}

# Whether tenants/NAME's local.env marks it local-only, read as scripts/tenancy.py reads it.
local_only() {
  [ -f "$tenants_dir/$1/local.env" ] \
    && grep -Eq '^[[:space:]]*LOCAL_ONLY[[:space:]]*=[[:space:]]*true[[:space:]]*$' "$tenants_dir/$1/local.env"
}

# Whether tenants/NAME is a tenant: a DNS label, with its overlay and its settings.
is_tenant() {
  [[ $1 =~ $dns_label ]] && [ -f "$tenants_dir/$1/kustomization.yaml" ] && [ -f "$tenants_dir/$1/tenant.env" ]
}

[ "$#" = 1 ] || refuse "usage: choose-tenants.sh all|NAME"
choice=$1

if [ "$choice" = all ]; then
  found=
  # Hidden folders are a script's work in progress (scripts/tenancy.py skips them too).
  for overlay in "$tenants_dir"/*/kustomization.yaml; do
    [ -f "$overlay" ] || continue
    name=$(basename "$(dirname "$overlay")")
    is_tenant "$name" || continue
    if local_only "$name"; then
      echo "skipping $name: local.env says LOCAL_ONLY=true" >&2
      continue
    fi
    echo "$name"
    found=yes
  done
  [ -n "$found" ] || refuse "no tenant to deploy: every folder of $tenants_dir/ is LOCAL_ONLY or has no kustomization.yaml"
elif ! is_tenant "$choice"; then
  refuse "no tenant $choice: there is no $tenants_dir/$choice/ with a kustomization.yaml and a tenant.env"
elif local_only "$choice"; then
  refuse "$choice is a local-only tenant (LOCAL_ONLY=true in $tenants_dir/$choice/local.env), for make run and make test: it is never deployed"
else
  echo "$choice"
fi
