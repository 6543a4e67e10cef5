#!/bin/sh
# Starts Django in the django container, and natively for the native runner:
# wait for MySQL, migrate, collect static files for nginx, then become Gunicorn.
set -o errexit
set -o nounset

python manage.py wait_for_db --timeout "${DB_WAIT_TIMEOUT}"
python manage.py migrate --noinput
python manage.py collectstatic --noinput --verbosity 0
# exec: Gunicorn replaces this shell, so SIGTERM from Docker reaches it directly.
exec gunicorn --config gunicorn.conf.py
