#!/bin/sh
# The in-pod half of `scripts/restore-tenant NAME --to-time/--latest` in Kubernetes: replace the
# tenant's PostgreSQL data directory with a pgBackRest restore, all or nothing. restore-tenant runs
# it in a Job that mounts the database's volume while PostgreSQL is stopped (restore, rollback), and
# in the postgres container once the restored server has been promoted (commit).
#
#   restore_pgdata.sh restore [pgbackrest restore option...]
#       restore into $PGDATA.restoring, a sibling on the same volume, then swap: $PGDATA becomes
#       $PGDATA.replaced and $PGDATA.restoring becomes $PGDATA (two renames, no copy). A failed
#       restore removes $PGDATA.restoring and leaves $PGDATA as it was.
#   restore_pgdata.sh rollback
#       put $PGDATA.replaced back in place of the restored directory (nothing to do without it).
#   restore_pgdata.sh commit
#       remove $PGDATA.replaced: the restored server has been promoted and checkpointed.
#
# PGDATA is the data directory; pgBackRest's settings are the pod's PGBACKREST_* variables (the
# postgres container's). PostgreSQL must not run on PGDATA for restore and rollback.
set -eu

pgdata=${PGDATA:?PGDATA is required}
staging=$pgdata.restoring
aside=$pgdata.replaced
# In $aside when there was no data directory to keep (a lost volume restored): a rollback then
# leaves none either.
absent=.restore-pgdata-absent
mode=${1:?usage: restore_pgdata.sh restore [pgbackrest restore option...] | rollback | commit}
shift

rollback() {
  rm -rf "$staging"
  if [ ! -d "$aside" ]; then
    echo "restore-pgdata: nothing to put back; $pgdata is as it was"
    return 0
  fi
  rm -rf "$pgdata"
  if [ -e "$aside/$absent" ]; then
    rm -rf "$aside"
    echo "restore-pgdata: removed the restored $pgdata; there was none before"
  else
    mv "$aside" "$pgdata"
    echo "restore-pgdata: put the replaced data directory back at $pgdata"
  fi
}

case $mode in
  restore)
    if [ -e "$aside" ]; then
      echo "restore-pgdata: $aside exists: an earlier restore did not finish; roll it back or commit it first" >&2
      exit 1
    fi
    rm -rf "$staging"
    mkdir -m 0700 "$staging"
    echo "restore-pgdata: pgbackrest restore $* into $staging"
    # The path by the environment, not --pg1-path: pgBackRest writes the command line's options into
    # the restore_command it leaves in postgresql.auto.conf, which must name $PGDATA after the swap.
    if ! PGBACKREST_PG1_PATH=$staging pgbackrest restore "$@"; then
      rm -rf "$staging"
      echo "restore-pgdata: FAILED: pgbackrest restore; $pgdata is unchanged" >&2
      exit 1
    fi
    if [ -e "$pgdata" ]; then
      mv "$pgdata" "$aside"
    else
      mkdir -m 0700 "$aside"
      touch "$aside/$absent"
    fi
    if ! mv "$staging" "$pgdata"; then
      rollback
      echo "restore-pgdata: FAILED: could not move the restored data into place" >&2
      exit 1
    fi
    echo "restore-pgdata: restored into $pgdata; the data it replaced is kept at $aside"
    ;;
  rollback)
    rollback
    ;;
  commit)
    rm -rf "$aside" "$staging"
    echo "restore-pgdata: removed the replaced data directory"
    ;;
  *)
    echo "restore-pgdata: unknown mode $mode (restore, rollback or commit)" >&2
    exit 2
    ;;
esac
