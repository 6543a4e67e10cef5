#!/bin/sh
# Starts Django in the django container, and natively for the native runner:
# wait for MySQL, migrate (one replica at a time), collect static files for nginx, then
# become Gunicorn.
set -o errexit
set -o nounset

# Development image only (its /etc/passwd is writable by app): when the bind-mounted
# Django/ folder belongs to another uid than app's (a host user who is not uid 1000, or
# root), app takes that uid, so `docker compose exec django poetry add ...` writes files
# that stay yours. It applies to commands exec'd from now on and to the next restart.
owner=$(stat -c %u .)
if [ "$(id -un)" = app ] && [ "$owner" != "$(id -u)" ] && [ -w /etc/passwd ]; then
  passwd=$(sed "s/^app:x:[0-9]*:/app:x:${owner}:/" /etc/passwd)
  printf '%s\n' "$passwd" >/etc/passwd
  echo "entrypoint: 'docker compose exec' now runs as uid ${owner}, the owner of /app"
fi

# Each Gunicorn worker writes its metrics here and /metrics adds them up
# (prometheus-client's multiprocess mode). In memory (/dev/shm): on a disk, a worker
# writing to a page the kernel is writing out waits for the disk, which cost a tenth of
# the broadcast throughput (make bench-metrics). Made first: the commands below count too.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/dev/shm/prometheus-multiproc}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

python manage.py wait_for_db --timeout "${DB_WAIT_TIMEOUT}"
python manage.py migrate_locked
python manage.py collectstatic --noinput --verbosity 0
# Emptied, or a previous run's figures (and these commands') would count.
rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"/*
# exec: Gunicorn replaces this shell, so SIGTERM from Docker reaches it directly.
exec gunicorn --config gunicorn.conf.py
