#!/usr/bin/env bash
# deploy.yml's rollout of the tenants choose-tenants.sh chose, with the kubeconfig in KUBECONFIG.
#
#   .github/deploy/deploy-tenants.sh TENANT...     (from the repository's root)
#
# First each tenant in turn is checked (its namespace, its Secrets and their keys), pinned to the
# images' digests and applied; then each applied tenant's rollouts are waited for; then each rolled
# out tenant is smoke-tested through its public URL. Applying every tenant before waiting lets the
# rollouts run side by side. A tenant that fails a step is reported (an ::error:: annotation and a
# line of the job summary) and goes no further; the others still go. The exit code is 1 when any
# tenant failed, after the last one, naming them all.
#
# A tag can be pushed again; a digest names bytes. Each tag the tenants name, of the app image and
# of the PostgreSQL image with pgBackRest (both from publish.yml), is resolved once per run, and
# each tenant is applied through an overlay (in RUNNER_TEMP) that adds the digests: every tenant of
# this run gets the same images and every pod names what it runs.
#
# GITHUB_TOKEN and GITHUB_ACTOR log in to ghcr.io to read private images' digests. SMOKE_ATTEMPTS
# (30), SMOKE_INTERVAL (10 s) and ROLLOUT_TIMEOUT (300s) bound the waiting.
set -euo pipefail

summary=${GITHUB_STEP_SUMMARY:-/dev/null}
pinned_root="${RUNNER_TEMP:?RUNNER_TEMP must name a scratch folder}/pinned"
smoke_attempts=${SMOKE_ATTEMPTS:-30}
smoke_interval=${SMOKE_INTERVAL:-10}
rollout_timeout=${ROLLOUT_TIMEOUT:-300s}
# PostgreSQL mounts or reads every one of these keys: a Secret from before the database roles or
# before pgBackRest would keep the new postgres-0 from starting (README, "Database roles" and
# "Backups and restore", say how to upgrade it).
secret_keys=(JWT_SECRET POSTGRES_PASSWORD POSTGRES_SUPERUSER_PASSWORD BACKUP_PASSWORD
  PGBACKREST_REPO1_CIPHER_PASS PGBACKREST_REPO1_S3_KEY PGBACKREST_REPO1_S3_KEY_SECRET)
# Only the keys of a Secret, never its values (a Go template, not shell: hence single quotes).
# shellcheck disable=SC2016
keys_template='go-template={{range $key, $value := .data}}{{$key}}{{"\n"}}{{end}}'

declare -A digests=()  # image (by tag) -> its digest, resolved once per run
declare -A failed=()   # tenant -> what failed
logged_in=

# Report TENANT's failure: an annotation, a line of the job summary, and no further steps for it.
fail() {
  failed[$1]=$2
  echo "::error::$1: $2"
  echo "- ❌ \`$1\`: $2" >> "$summary"
  return 1
}

# The namespace exists with both Secrets, and finance-secrets has every key.
check_secrets() {
  local tenant=$1 namespace="finance-$1" keys key missing=()
  kubectl get namespace "$namespace" >/dev/null 2>&1 \
    || fail "$tenant" "there is no namespace $namespace: deploy it once with scripts/onboard-tenant $tenant --apply --force" \
    || return 1
  keys=$(kubectl -n "$namespace" get secret finance-secrets -o "$keys_template" 2>/dev/null) \
    || fail "$tenant" "$namespace has no finance-secrets Secret: deploy it once with scripts/onboard-tenant $tenant --apply --force" \
    || return 1
  for key in "${secret_keys[@]}"; do
    grep -qx "$key" <<< "$keys" || missing+=("$key")
  done
  [ "${#missing[@]}" = 0 ] \
    || fail "$tenant" "$namespace's finance-secrets lacks ${missing[*]}: upgrade it first (README, Database roles; Backups and restore)" \
    || return 1
  kubectl -n "$namespace" get secret pgbackrest-tls >/dev/null 2>&1 \
    || fail "$tenant" "$namespace has no pgbackrest-tls Secret: make it with FINANCE_BACKUP_CIPHER_PASS=... FINANCE_BACKUP_S3_KEY=... FINANCE_BACKUP_S3_KEY_SECRET=... scripts/onboard-tenant $tenant --apply --force" \
    || return 1
}

# Resolve IMAGE (by tag) to its digest into digests[IMAGE], once per run.
resolve() {
  local image=$1 digest
  [ -z "${digests[$image]:-}" ] || return 0
  if [ "${image%%/*}" = ghcr.io ] && [ -z "$logged_in" ]; then
    docker login ghcr.io --username "${GITHUB_ACTOR:-}" --password-stdin <<< "${GITHUB_TOKEN:-}" >/dev/null || return 1
    logged_in=yes
  fi
  digest=$(docker buildx imagetools inspect "$image" --format '{{json .Manifest}}' | jq -r .digest) || return 1
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || return 1
  digests[$image]=$digest
  echo "Image: \`$image\` = \`${image%:*}@$digest\`" >> "$summary"
}

# Write the tenant's pinned overlay: its own overlay plus the digest of each image built here.
pin() {
  local tenant=$1 overlay="$pinned_root/$1" rendered name images
  rendered=$(kubectl kustomize "tenants/$tenant") || fail "$tenant" "kubectl kustomize tenants/$tenant failed" || return 1
  mkdir -p "$overlay"
  printf '%s\n' "resources:" "  - $(realpath --relative-to="$overlay" "tenants/$tenant")" "images:" \
    > "$overlay/kustomization.yaml"
  for name in finance-service finance-postgres; do
    images=$(sed -n 's|^ *image: \(.*/'"$name"':[^@]*\)$|\1|p' <<< "$rendered" | sort -u)
    if [ -z "$images" ] || [ "$(wc -l <<< "$images")" != 1 ]; then
      fail "$tenant" "tenants/$tenant must name one $name image, by tag: got '${images//$'\n'/ }'"
      return 1
    fi
    resolve "$images" || fail "$tenant" "cannot resolve $images to a digest" || return 1
    printf '%s\n' "  - name: ${images%:*}" "    newTag: ${images##*:}" "    digest: ${digests[$images]}" \
      >> "$overlay/kustomization.yaml"
  done
}

# Apply the pinned overlay, once it is certain that every image built here is named by digest.
apply() {
  local tenant=$1 overlay="$pinned_root/$1" rendered
  rendered=$(kubectl kustomize "$overlay") || fail "$tenant" "kubectl kustomize $overlay failed" || return 1
  if grep -E '^ *image: .*/finance-(service|postgres)' <<< "$rendered" | grep -qv '@sha256:'; then
    fail "$tenant" "$overlay names an image built here without a digest"
    return 1
  fi
  kubectl apply -k "$overlay" || fail "$tenant" "kubectl apply -k failed" || return 1
}

# Wait for the database, then the API and the webhook dispatcher.
roll_out() {
  local tenant=$1 workload
  for workload in statefulset/postgres deployment/finance-api deployment/finance-webhooks; do
    kubectl -n "finance-$tenant" rollout status "$workload" --timeout="$rollout_timeout" \
      || fail "$tenant" "$workload did not roll out within $rollout_timeout" || return 1
  done
}

# Ask the tenant's public URL for readiness until the tenant itself answers ready.
smoke_test() {
  local tenant=$1 host answer attempt
  host=$(kubectl -n "finance-$tenant" get ingress finance-api -o jsonpath='{.spec.rules[0].host}') && [ -n "$host" ] \
    || fail "$tenant" "cannot read the host of ingress finance-api" || return 1
  for ((attempt = 1; attempt <= smoke_attempts; attempt++)); do
    # The answer must name this tenant: a host routed to another tenant's service is no success.
    if answer=$(curl -fsS --max-time 10 "https://$host/health/ready") \
      && jq -e --arg tenant "$tenant" '.status == "ready" and .tenant == $tenant' <<< "$answer" >/dev/null 2>&1; then
      echo "$tenant: $answer"
      echo "- ✅ \`$tenant\`: https://$host ready, version $(jq -r .version <<< "$answer")" >> "$summary"
      return 0
    fi
    if [ "$attempt" -lt "$smoke_attempts" ]; then sleep "$smoke_interval"; fi
  done
  fail "$tenant" "https://$host/health/ready did not answer ready as $tenant after $smoke_attempts attempts"
}

if [ "$#" = 0 ]; then
  echo "usage: deploy-tenants.sh TENANT..." >&2
  exit 2
fi
mkdir -p "$pinned_root"
echo "### Deploy" >> "$summary"

applied=()
for tenant in "$@"; do
  echo "::group::apply $tenant"
  if check_secrets "$tenant" && pin "$tenant" && apply "$tenant"; then applied+=("$tenant"); fi
  echo "::endgroup::"
done
rolled_out=()
for tenant in "${applied[@]}"; do
  if roll_out "$tenant"; then rolled_out+=("$tenant"); fi
done
for tenant in "${rolled_out[@]}"; do
  smoke_test "$tenant" || true
done

if [ "${#failed[@]}" != 0 ]; then
  names=$(printf '%s\n' "${!failed[@]}" | sort | tr '\n' ' ')
  echo "::error::${#failed[@]} of $# tenants not deployed: ${names% }"
  echo "**${#failed[@]} of $# tenants not deployed: ${names% }**" >> "$summary"
  exit 1
fi
echo "all $# tenants deployed"
