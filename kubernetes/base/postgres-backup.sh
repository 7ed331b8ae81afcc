#!/bin/sh
# Dump the tenant's database in pg_dump's custom format into $BACKUP_DIR and keep the newest
# $BACKUP_KEEP dumps. Run by the postgres-backup CronJob; connection settings come from the
# standard PG* variables.
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backups}
BACKUP_KEEP=${BACKUP_KEEP:-7}
case $BACKUP_KEEP in
  '' | *[!0-9]* | 0*) echo "BACKUP_KEEP must be a positive whole number, got '$BACKUP_KEEP'" >&2; exit 2 ;;
esac

stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$BACKUP_DIR/finance-$stamp.dump"
partial="$BACKUP_DIR/.finance-$stamp.dump.partial"

# A dump only gets its final name once it is complete and readable, so a failed run never
# counts as one of the kept backups.
rm -f "$BACKUP_DIR"/.finance-*.dump.partial
pg_dump --format=custom --file="$partial"
pg_restore --list "$partial" > /dev/null
mv "$partial" "$final"
echo "backup written: $(basename "$final") ($(wc -c < "$final") bytes)"

# Names sort by time; delete all but the newest $BACKUP_KEEP.
ls -1 "$BACKUP_DIR" | grep -E '^finance-[0-9]{8}T[0-9]{6}Z\.dump$' | sort -r | tail -n +"$((BACKUP_KEEP + 1))" |
  while read -r old; do
    rm -f "$BACKUP_DIR/$old"
    echo "backup removed: $old"
  done
