# autoPatchelfHook: after fixup, every ELF program and library of the outputs gets the stdenv's loader as its
# interpreter and a RUNPATH naming the directories that provide the libraries it needs, found among the
# libraries of the outputs themselves, the build's inputs (`<input>/lib`, and a Debian package's
# `lib/<multiarch>` and `usr/lib/<multiarch>`), `runtimeDependencies` and the build's FHS tree (resolved to the
# store path of the Debian package that holds the library). Written for fhskit (no python); uses patchelf.
#
# Variables: runtimeDependencies, appendRunpaths, autoPatchelfIgnoreMissingDeps (glob patterns, or 1/true for
# all), patchelfFlags, dontAutoPatchelf, autoPatchelfLibs (extra directories).

declare -a autoPatchelfLibs=()

gatherLibraries() {
    local d
    for d in "$1/lib" "$1/lib/${fhskitMultiarch:-x86_64-linux-gnu}" "$1/usr/lib/${fhskitMultiarch:-x86_64-linux-gnu}" "$1/usr/lib"; do
        if [ -d "$d" ]; then
            autoPatchelfLibs+=("$d")
        fi
    done
}
addEnvHooks "${targetOffset:-0}" gatherLibraries

# addAutoPatchelfSearchPath [--no-recurse] DIRS: directories holding shared libraries become search directories.
addAutoPatchelfSearchPath() {
    local -a findOpts=()
    if [ "${1:-}" = --no-recurse ]; then
        shift
        findOpts=(-maxdepth 1)
    fi
    local dir
    while IFS= read -r -d '' dir; do
        autoPatchelfLibs+=("$dir")
    done < <(find "$@" "${findOpts[@]}" \! -type d \( -name '*.so' -o -name '*.so.*' \) -printf '%h\0' | sort -zu)
}

autoPatchelf() {
    local -a paths=("$@")
    if [ ${#paths[@]} = 0 ]; then
        echo "No paths to patch, stopping."
        return 0
    fi
    echo "automatically fixing dependencies for ELF files"
    local interpreter="${fhskitLoader:-}"
    if [ -n "${NIX_BINTOOLS:-}" ] && [ -f "$NIX_BINTOOLS/nix-support/dynamic-linker" ]; then
        interpreter="$(<"$NIX_BINTOOLS/nix-support/dynamic-linker")"
    fi
    local ignore="${autoPatchelfIgnoreMissingDeps[*]:-}"
    if [ "$ignore" = 1 ] || [ "$ignore" = true ]; then
        echo "autoPatchelf: WARNING: setting 'autoPatchelfIgnoreMissingDeps = true;' is deprecated and will be removed in a future release. Use 'autoPatchelfIgnoreMissingDeps = [ \"*\" ];' instead." >&2
        ignore='*'
    fi
    local -a search=()
    addAutoPatchelfSearchPath "${paths[@]}" 2>/dev/null || true
    search+=("${autoPatchelfLibs[@]}")
    local dep
    local -a runtimeDirs=()
    for dep in ${runtimeDependencies[*]:-}; do
        runtimeDirs+=("$dep/lib")
    done
    local missing=0 f lib dir found needed
    local -a flags=()
    # shellcheck disable=SC2206
    flags=(${patchelfFlags[*]:-})
    while IFS= read -r -d '' f; do
        isELF "$f" || continue
        needed="$(patchelf --print-needed "$f" 2>/dev/null)" || continue
        local interp=""
        interp="$(patchelf --print-interpreter "$f" 2>/dev/null)" || interp=""
        local -a rpath=()
        if [ -n "$interp" ]; then
            echo "setting interpreter of $f"
            patchelf ${flags[@]+"${flags[@]}"} --set-interpreter "$interpreter" "$f"
            rpath+=("${runtimeDirs[@]}")
        fi
        echo "searching for dependencies of $f"
        for lib in $needed; do
            if [[ "$lib" == /* ]] && [ -e "$lib" ]; then
                continue
            fi
            found=""
            for dir in "${search[@]}"; do
                if [ -e "$dir/$lib" ]; then
                    found="$(dirname "$(readlink -f "$dir/$lib")")"
                    break
                fi
            done
            if [ -z "$found" ]; then
                for dir in /lib/${fhskitMultiarch:-x86_64-linux-gnu} /usr/lib/${fhskitMultiarch:-x86_64-linux-gnu} /lib /usr/lib; do
                    if [ -e "$dir/$lib" ]; then
                        found="$(dirname "$(readlink -f "$dir/$lib")")"
                        break
                    fi
                done
            fi
            if [ -n "$found" ]; then
                echo "    $lib -> found: $found"
                rpath+=("$found")
            else
                echo "    $lib -> not found!"
                local pattern matched=""
                for pattern in $ignore; do
                    # shellcheck disable=SC2053
                    if [[ "$lib" == $pattern ]]; then
                        matched=1
                        break
                    fi
                done
                if [ -n "$matched" ]; then
                    echo "warn: auto-patchelf ignoring missing $lib wanted by $f"
                else
                    echo "error: auto-patchelf could not satisfy dependency $lib wanted by $f"
                    missing=$((missing + 1))
                fi
            fi
        done
        rpath+=(${appendRunpaths[*]:-})
        local -a unique=()
        for dir in "${rpath[@]}"; do
            [[ " ${unique[*]:-} " == *" $dir "* ]] || unique+=("$dir")
        done
        if [ ${#unique[@]} -gt 0 ]; then
            local joined
            joined="$(IFS=:; echo "${unique[*]}")"
            echo "setting RPATH to: $joined"
            patchelf ${flags[@]+"${flags[@]}"} --set-rpath "$joined" "$f"
        fi
    done < <(find "${paths[@]}" -type f -print0)
    if [ "$missing" -gt 0 ]; then
        echo "auto-patchelf: $missing dependencies could not be satisfied"
        echo "auto-patchelf failed to find all the required dependencies."
        echo 'Add the missing dependencies to --libs or use `--ignore-missing="foo.so.1 bar.so etc.so"`.'
        return 1
    fi
}

autoPatchelfPostFixup() {
    if [ -z "${dontAutoPatchelf:-}" ]; then
        local -a outs=()
        local output
        for output in $outputs; do
            [ -e "${!output}" ] && outs+=("${!output}")
        done
        autoPatchelf "${outs[@]}"
    fi
}
postFixupHooks+=(autoPatchelfPostFixup)
