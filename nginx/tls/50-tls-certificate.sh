#!/bin/sh
# Run by the nginx image's entrypoint (docker-compose.tls.yml) before nginx starts. HTTPS
# is served once certbot has put a certificate in /etc/nginx/tls: at start if it is there,
# else as soon as it arrives. Whenever it changes (a renewal) nginx reloads gracefully:
# new connections get the new certificate, and open WebSockets stay on the old workers
# until they close (nginx.conf sets no worker_shutdown_timeout).
set -o errexit
set -o nounset

certificate=/etc/nginx/tls/fullchain.pem
key=/etc/nginx/tls/privkey.pem
enabled=/etc/nginx/conf.d/https.conf

ready() { [ -s "$certificate" ] && [ -s "$key" ]; }
checksum() { cat "$certificate" "$key" | cksum; }
enable() { echo "include /etc/nginx/conf.d/https/*;" >"$enabled"; }

seen=none
if ready; then
  enable
  seen=$(checksum)
  echo "$0: serving HTTPS"
fi

watch() {
  while sleep 5; do
    if ! ready || [ "$(checksum)" = "$seen" ]; then
      continue
    fi
    enable
    seen=$(checksum)
    # A key written before its certificate fails the test; the next change brings both.
    if errors=$(nginx -t -q 2>&1); then
      nginx -s reload
      echo "$0: new certificate, nginx reloaded"
    else
      echo "$0: not reloading: $errors" >&2
    fi
  done
}
watch &
