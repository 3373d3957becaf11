#! @shell@
# fhskit's compiler wrapper: Debian's compiler with the flags nixpkgs' wrappers add from the environment:
# NIX_CFLAGS_COMPILE before the arguments; when linking, NIX_CFLAGS_LINK and each word of NIX_LDFLAGS (as
# -Wl,WORD, linker flags) after them.
# gcc would look for cc1 and its files beside its real (store) path; on an installed system they are under /usr.
export GCC_EXEC_PREFIX="${GCC_EXEC_PREFIX:-/usr/lib/gcc/}"
link=0
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) link=1 ;;
    esac
done
for arg in "$@"; do
    case "$arg" in
        -c | -S | -E | -M | -MM | -fsyntax-only) link=0 ;;
    esac
done
before=()
after=()
# shellcheck disable=SC2206
before+=(${NIX_CFLAGS_COMPILE:-})
if [ "$link" = 1 ]; then
    # shellcheck disable=SC2206
    after+=(${NIX_CFLAGS_LINK:-})
    for word in ${NIX_LDFLAGS:-}; do
        after+=("-Wl,$word")
    done
fi
exec @real@ ${before[@]+"${before[@]}"} "$@" ${after[@]+"${after[@]}"}
