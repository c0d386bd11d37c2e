#!/bin/sh
# The container's healthcheck (Dockerfile HEALTHCHECK and docker-compose.yml):
# GET /healthz where tutti's HTTP server listens, TUTTI_HTTP_LISTEN (default
# 127.0.0.1:8080, tutti's own default). An unspecified address, 0.0.0.0 or [::],
# is asked on loopback. An address given only by a flag or a --config file is
# not seen here: set TUTTI_HTTP_LISTEN.
addr=${TUTTI_HTTP_LISTEN:-127.0.0.1:8080}
host=${addr%:*}
port=${addr##*:}
case $host in
  0.0.0.0) host=127.0.0.1 ;;
  "[::]") host="[::1]" ;;
esac
# With HTTPS on (TUTTI_HTTP_TLS_CERT), ask over HTTPS; the certificate is not
# checked: this asks whether tutti answers, not who it is.
if [ -n "${TUTTI_HTTP_TLS_CERT:-}" ]; then
  exec curl -fsSk --max-time 2 "https://$host:$port/healthz"
fi
exec curl -fsS --max-time 2 "http://$host:$port/healthz"
