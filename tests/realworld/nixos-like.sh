#!/bin/sh
# A NixOS-like view of this machine for the real-world runs: no FHS libraries, no dpkg database, no /usr/share.
# Run it inside a private mount namespace (`unshare --mount sh nixos-like.sh …` as root, `unshare -rm …` otherwise).
#
# usage: nixos-like.sh MOUNT ENV COMMAND [ARGS...]
#   MOUNT   a `mount` that still works once the host's libraries are gone (one patched into the store by fhskit);
#   ENV     the file left as the only entry of /usr/bin (NixOS keeps just /usr/bin/env there);
#   COMMAND runs with /lib*, /usr/lib*, /usr/libexec, /usr/sbin, /usr/games, /usr/share, /usr/include, /sbin and
#           /var/lib/dpkg empty (tmpfs), /usr/bin holding only `env` and /etc/ld.so.cache empty: a program that
#           needs anything of the host's FHS tree fails, and one that runs uses nothing of it.
set -eu
mount_bin=$1
env_bin=$2
shift 2
stage=$(mktemp -d)
# Everything is prepared before the first mount: after it, no host program can start any more.
cp "$env_bin" "$stage/env"
: > "$stage/ld.so.cache"
"$mount_bin" --make-rprivate /
for dir in /usr/lib /usr/lib64 /usr/lib32 /usr/libx32 /usr/libexec /usr/sbin /usr/games /usr/share /usr/include \
    /lib /lib64 /lib32 /libx32 /sbin /var/lib/dpkg; do
    # On a merged-/usr system /lib*, /sbin are symlinks into /usr, already covered.
    if [ -d "$dir" ] && [ ! -L "$dir" ]; then
        "$mount_bin" -t tmpfs -o mode=0755 fhskit-hidden "$dir"
    fi
done
"$mount_bin" --bind "$stage" /usr/bin
if [ -f /etc/ld.so.cache ]; then
    "$mount_bin" --bind "$stage/ld.so.cache" /etc/ld.so.cache
fi
exec "$@"
