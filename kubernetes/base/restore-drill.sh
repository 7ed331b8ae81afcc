#!/bin/sh
# The weekly restore drill (CronJob restore-drill): restore the tenant's latest backup and every WAL
# segment archived after it from the pgBackRest repository into a scratch data directory, start
# PostgreSQL there until it has replayed the archive and been promoted, and check the database with
# restore-drill-check.sql. Exits non-zero when a step or a check fails. pgBackRest's settings are
# the pod's PGBACKREST_* variables, as for the backups.
#
#   DRILL_PGDATA                     the scratch data directory (emptied first)
#   DRILL_DATABASE (finance)         the tenant database the checks run in
#   DRILL_CHECK                      restore-drill-check.sql
#   DRILL_NEWEST_MIGRATION_FILE      a file holding the newest migration the app image knows (optional)
#   DRILL_TIMEOUT_SECONDS (7200)     for the server to replay the archive and accept writes
#   DRILL_SOCKET_DIR                 where the restored server listens (a socket only, no TCP)
set -eu

pgdata=${DRILL_PGDATA:?DRILL_PGDATA is required}
database=${DRILL_DATABASE:-finance}
check=${DRILL_CHECK:-/scripts/restore-drill-check.sql}
timeout=${DRILL_TIMEOUT_SECONDS:-7200}
socket_dir=${DRILL_SOCKET_DIR:-/tmp/restore-drill}
server_log=/tmp/restore-drill-postgres.log
newest=
if [ -n "${DRILL_NEWEST_MIGRATION_FILE:-}" ]; then
  newest=$(cat "$DRILL_NEWEST_MIGRATION_FILE")
fi

rm -rf "$pgdata" "$socket_dir"
mkdir -p "$(dirname "$pgdata")"
mkdir -m 0700 "$pgdata" "$socket_dir"

echo "restore drill: the repository's backups"
pgbackrest info
# archive_mode=off in the restored cluster: promoted, the scratch server starts a new timeline, which
# must never reach the tenant's archive (a later restore would follow it).
started=$(date +%s)
pgbackrest --pg1-path="$pgdata" --archive-mode=off restore

stop_server() {
  pg_ctl --pgdata="$pgdata" --mode=immediate --wait stop >/dev/null 2>&1 || true
}
trap stop_server EXIT
# hot_standby=off: no connection until the archive is replayed, so the server need not match the
# tenant's max_connections and the like, which a hot standby must (and which a tenant may tune).
# pg_ctl then waits for the whole replay.
if ! pg_ctl --pgdata="$pgdata" --log="$server_log" --wait --timeout="$timeout" \
  --options="-c listen_addresses='' -c unix_socket_directories=$socket_dir -c port=5432 -c archive_mode=off -c hot_standby=off" \
  start; then
  cat "$server_log" >&2
  echo "restore drill: FAILED: the restored server did not start" >&2
  exit 1
fi

as_superuser() {
  psql --no-psqlrc --quiet --host="$socket_dir" --port=5432 --username=postgres "$@"
}
# Promoted at the end of the archive: writable, the restore is done.
while [ "$(as_superuser --dbname=postgres --tuples-only --no-align --command='SELECT pg_is_in_recovery()' 2>/dev/null)" != f ]; do
  if [ $(($(date +%s) - started)) -gt "$timeout" ]; then
    cat "$server_log" >&2
    echo "restore drill: FAILED: the archive was not replayed within $timeout s" >&2
    exit 1
  fi
  sleep 2
done
echo "restore drill: restored, replayed and promoted in $(($(date +%s) - started)) s"

if [ -n "$newest" ]; then
  export PGOPTIONS="-c drill.newest_migration=$newest"
fi
if ! as_superuser --dbname="$database" --set=ON_ERROR_STOP=1 --file="$check"; then
  echo "restore drill: FAILED: the restored database did not pass $check" >&2
  exit 1
fi
echo "restore drill: passed"
