#!/bin/bash
# nginx TLS front. /etc/nginx/certs is the project's certs/ directory; on the first start it is
# filled with the self-signed certificate generated when the image was built.
set -euo pipefail
if [ ! -s /etc/nginx/certs/taylordash.crt ] || [ ! -s /etc/nginx/certs/taylordash.key ]; then
    cp /opt/taylordash-certs/taylordash.crt /opt/taylordash-certs/taylordash.key /etc/nginx/certs/
    chmod 600 /etc/nginx/certs/taylordash.key
fi
sed -e "s/@NGINX_PORT@/${TD_NGINX_PORT:-8443}/" \
    -e "s/@BACKEND_PORT@/${TD_BACKEND_PORT:-3000}/" \
    -e "s/@FRONTEND_PORT@/${TD_FRONTEND_PORT:-5174}/" \
    /etc/nginx/nginx.conf.template >/etc/nginx/nginx.conf
nginx -t -q
exec nginx -g 'daemon off;'
