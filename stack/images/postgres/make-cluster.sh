#!/bin/bash
# make-cluster.sh DIR USER [PWFILE]: initdb of a reference-stack cluster in DIR with USER as its
# superuser (password from PWFILE, if given). The one place the cluster's settings are written: the
# image's ready-made cluster (Dockerfile) and a first start for another superuser (entrypoint.sh)
# both come from here, so the copy and initdb give the same cluster.
# --no-sync: a new cluster holds no data yet, and fsyncing its thousand files took up to 15 s on a
# busy disk. (A host crash in these seconds can leave a volume to remove; the server runs with fsync on.)
set -euo pipefail
dir=$1 user=$2 pwfile=${3:-}
setpriv --reuid=postgres --regid=postgres --init-groups \
    initdb -D "$dir" --username="$user" ${pwfile:+--pwfile="$pwfile"} \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >/dev/null
