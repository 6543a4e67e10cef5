#!/bin/sh
# Writes the production env files (never committed) from their committed *.prod.example
# files, with a fresh random value wherever the example says `generate-me`. A file that
# exists already is kept as it is. Plain sh, so a Docker user needs nothing else:
#
#   sh prod-env.sh
set -o errexit
set -o nounset
cd "$(dirname "$0")"
# Secrets: readable by you only.
umask 077

for example in Django/.env.django.prod.example MySQL/.env.mysql.prod.example \
  Redis/.redis.env.prod.example MySQL/.env.mysqld-exporter.prod.example \
  Grafana/.env.grafana.prod.example certbot/.env.certbot.prod.example; do
  target=${example%.example}
  if [ -e "$target" ]; then
    echo "kept $target (exists)"
    continue
  fi
  : >"$target.tmp"
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      *=generate-me)
        # 48 random bytes as hex: safe in env files and inside the Redis URL.
        secret=$(od -An -N48 -tx1 /dev/urandom | tr -d ' \n')
        line="${line%generate-me}$secret"
        ;;
    esac
    printf '%s\n' "$line" >>"$target.tmp"
  done <"$example"
  mv "$target.tmp" "$target"
  echo "wrote $target"
done
