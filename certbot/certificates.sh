#!/bin/sh
# certbot's container (docker-compose.tls.yml): gets TLS_DOMAIN's certificate from the ACME
# CA by HTTP-01 (the challenge files go to a volume nginx serves on port 80), renews it
# twice a day, and hands each new one to nginx, which reloads without dropping sockets.
#
#   certificates.sh          get the certificate, then renew for ever (the service)
#   certificates.sh renew    renew now; certbot's options may follow (--force-renewal)
set -o errexit
set -o nounset

webroot=/var/www/acme
live=/etc/letsencrypt/live/$TLS_DOMAIN
# nginx runs unprivileged (uid 101, docker-compose.prod.yml) and cannot read certbot's
# root-only key, so it gets copies of its own.
served=/etc/nginx-tls

obtain() {
  certbot certonly --webroot --webroot-path "$webroot" --domain "$TLS_DOMAIN" \
    --email "$TLS_EMAIL" --agree-tos --no-eff-email --non-interactive \
    --server "$ACME_DIRECTORY" --keep-until-expiring
}

renew() {
  # Without it, certbot renew waits up to 8 minutes when no terminal is attached.
  certbot renew --no-random-sleep-on-renew "$@"
}

# Key first, then certificate, each replaced in one rename: nginx checks the pair
# before it reloads (nginx/tls/50-tls-certificate.sh).
publish() {
  for file in privkey.pem fullchain.pem; do
    if ! cmp -s "$live/$file" "$served/$file"; then
      install -m 0400 -o 101 -g 101 "$live/$file" "$served/.$file.new"
      mv "$served/.$file.new" "$served/$file"
      echo "certificates.sh: $file handed to nginx"
    fi
  done
}

if [ "${1:-}" = renew ]; then
  shift
  renew "$@"
  publish
  exit
fi

until obtain; do
  echo "certificates.sh: no certificate yet for $TLS_DOMAIN; trying again in 60 s" >&2
  sleep 60
done
publish
while sleep "${TLS_RENEW_INTERVAL:-43200}"; do
  renew || echo "certificates.sh: renewal failed; trying again later" >&2
  publish
done
