#!/usr/bin/env bash
# Build the reference stack's base root file system with debootstrap and import it as an image.
#
# Usage: build-rootfs.sh IMAGE_TAG CACHE_DIR
# The Debian mirror is read from this machine's apt configuration at run time, never written
# into the project. The tarball is cached under CACHE_DIR by the hash of this script, so a
# wiped Docker storage re-imports in seconds instead of re-running debootstrap.
set -euo pipefail

image_tag=${1:?image tag}
cache_dir=${2:?cache dir}
here=$(cd "$(dirname "$0")" && pwd)

suite=bookworm
packages=python3,python3-psycopg2,alembic,postgresql-15,postgresql-client-15,nginx-light,openssl,procps

debian_mirror() {
    # deb822 sources first (Debian 12 default), then the one-line format.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (u != "" && s ~ "(^| )" suite "( |$)") { print u; exit } u=""; s=""; next }
            /^URIs:/ { u=$2 }
            /^Suites:/ { $1=""; s=$0; sub(/^ /, "", s) }
            END { if (u != "" && s ~ "(^| )" suite "( |$)") print u }' "$f" | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    return 1
}

mkdir -p "$cache_dir"
tarball="$cache_dir/rootfs-$(basename "$image_tag" | tr ':/' '--').tar"

if [ ! -s "$tarball" ]; then
    mirror=$(debian_mirror) || {
        echo "build-rootfs: no Debian '$suite' entry found in the apt sources; cannot pick a mirror" >&2
        exit 1
    }
    rootfs=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "build-rootfs: debootstrap $suite ($packages)" >&2
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
        > "$cache_dir/debootstrap.log" 2>&1 || {
        echo "build-rootfs: debootstrap failed; last lines of $cache_dir/debootstrap.log:" >&2
        tail -n 20 "$cache_dir/debootstrap.log" >&2
        exit 1
    }
    # Trim what no container needs: apt lists and caches, docs, man pages, translations, and
    # LLVM (only PostgreSQL's JIT uses it; the stack runs with jit=off).
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/i18n \
        "$rootfs"/usr/lib/*/libLLVM* "$rootfs"/usr/lib/postgresql/15/lib/llvmjit* \
        "$rootfs"/usr/lib/postgresql/15/lib/bitcode
    # The package scripts start no servers in a chroot; make sure none is configured to start.
    rm -f "$rootfs"/etc/nginx/sites-enabled/default
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
fi

docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$image_tag" >/dev/null
echo "build-rootfs: imported $image_tag" >&2
