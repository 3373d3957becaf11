# fhskit's stdenv setup script: sourced by every stdenv.mkDerivation builder (and by `fhskit shell` for a
# derivation's environment). Written for fhskit, not taken from nixpkgs: it keeps nixpkgs' interface (phases,
# hooks and runHook, the variables package files set, setup hooks of inputs) and relies on the build running
# inside `fhskitRoot`, an FHS tree of the Debian packages of the build's inputs, so Debian's compilers and tools
# find their headers, libraries and data at /usr as on an installed system.
#
# The preamble of $stdenv/setup (written by stdenv/default.nix) sets: SHELL, initialPath, fhskitDefaultInputs,
# fhskitLoader, fhskitMultiarch.

set -eu -o pipefail
shopt -s inherit_errexit 2>/dev/null || true
if [ "${NIX_DEBUG:-0}" -ge 6 ] 2>/dev/null; then set -x; fi

: "${outputs:=out}"

######################################################################
# Hooks.

# runHook NAME ARGS: the hook NAME (a shell function, else a variable holding shell text), then each element of the
# array `${NAME%Hook}Hooks` (functions are called with ARGS, other elements are evaluated).
runHook() {
    local hookName="$1"
    shift
    local hooksSlice="${hookName%Hook}Hooks[@]"
    local hook
    for hook in "_callImplicitHook 0 $hookName" ${!hooksSlice+"${!hooksSlice}"}; do
        _eval "$hook" "$@"
    done
    return 0
}

# runOneHook NAME ARGS: like runHook, but stops at the first hook that succeeds; fails when none does.
runOneHook() {
    local hookName="$1"
    shift
    local hooksSlice="${hookName%Hook}Hooks[@]"
    local hook ret=1
    for hook in "_callImplicitHook 1 $hookName" ${!hooksSlice+"${!hooksSlice}"}; do
        if _eval "$hook" "$@"; then
            ret=0
            break
        fi
    done
    return "$ret"
}

# The implicit hook NAME: a function, else an executable file on PATH (sourced), else a non-empty variable.
_callImplicitHook() {
    local def="$1"
    local hookName="$2"
    if declare -F "$hookName" >/dev/null; then
        "$hookName"
    elif type -p "$hookName" >/dev/null; then
        # shellcheck disable=SC1090
        source "$hookName"
    elif [ -n "${!hookName:-}" ]; then
        eval "${!hookName}"
    else
        return "$def"
    fi
}

_eval() {
    if declare -F "$1" >/dev/null 2>&1; then
        "$@"
    else
        eval "$1"
    fi
}

# addEnvHooks OFFSET FUNCTION...: FUNCTION is called with every input package's path.
envHooks=()
addEnvHooks() {
    shift
    envHooks+=("$@")
}

exitHandler() {
    exitCode="$?"
    set +e
    if [ "$exitCode" != 0 ]; then
        runHook failureHook
        if [ -n "${succeedOnFailure:-}" ]; then
            echo "build failed with exit code $exitCode (ignored)"
            mkdir -p "$out/nix-support"
            printf '%s' "$exitCode" >"$out/nix-support/failed"
            exit 0
        fi
    else
        runHook exitHook
    fi
    return "$exitCode"
}

######################################################################
# Helpers.

addToSearchPathWithCustomDelimiter() {
    local delimiter="$1" varName="$2" dir="$3"
    if [[ -d "$dir" && "${!varName:+$delimiter${!varName}$delimiter}" != *"$delimiter$dir$delimiter"* ]]; then
        export "${varName}=${!varName:+${!varName}${delimiter}}${dir}"
    fi
}

addToSearchPath() {
    addToSearchPathWithCustomDelimiter ":" "$@"
}

# prependToVar/appendToVar NAME VALUES...: variables are word lists (strings), or arrays when already arrays.
prependToVar() {
    local -n nameref="$1"
    shift
    if [[ "$(declare -p "${!nameref}" 2>/dev/null)" =~ ^declare\ -a ]]; then
        nameref=("$@" ${nameref+"${nameref[@]}"})
    else
        nameref="$* ${nameref-}"
    fi
}

appendToVar() {
    local -n nameref="$1"
    shift
    if [[ "$(declare -p "${!nameref}" 2>/dev/null)" =~ ^declare\ -a ]]; then
        nameref=(${nameref+"${nameref[@]}"} "$@")
    else
        nameref="${nameref-} $*"
    fi
}

# The words of the variables NAMES (arrays or word-split strings) appended to the array `flagsArray`.
concatTo() {
    local -n targetref="$1"
    shift
    local name
    for name in "$@"; do
        if [[ "$(declare -p "$name" 2>/dev/null)" =~ ^declare\ -a ]]; then
            local -n arr="$name"
            targetref+=(${arr+"${arr[@]}"})
            unset -n arr
        elif [ -n "${!name:-}" ]; then
            # shellcheck disable=SC2206
            targetref+=(${!name})
        fi
    done
}

isELF() {
    local fn="$1" magic
    [ -f "$fn" ] || return 1
    LC_ALL=C read -r -n 4 magic <"$fn" 2>/dev/null || true
    [ "$magic" = $'\177ELF' ]
}

isScript() {
    local fn="$1" magic
    [ -f "$fn" ] || return 1
    read -r -n 2 magic <"$fn" 2>/dev/null || true
    [ "$magic" = '#!' ]
}

stripHash() {
    local base
    base="$(basename -- "$1")"
    if [[ "$base" =~ ^[a-z0-9]{32}- ]]; then
        echo "${base:33}"
    else
        echo "$base"
    fi
}

# substitute IN OUT ARGS and substituteInPlace FILES... ARGS, as nixpkgs' (--replace-fail, --replace-warn,
# --replace-quiet, --replace, --subst-var, --subst-var-by).
substituteStream() {
    local var="$1" description="$2"
    shift 2
    while (($#)); do
        local replaceMode="$1"
        case "$1" in
            --replace)
                if [ -z "${_substituteWarned:-}" ]; then
                    echo "substituteStream() in derivation $name: WARNING: '--replace' is deprecated, use --replace-{fail,warn,quiet}. ($description)" >&2
                    _substituteWarned=1
                fi
                replaceMode=--replace-warn
                ;&
            --replace-quiet | --replace-warn | --replace-fail)
                local pattern="$2" replacement="$3"
                shift 3
                local savedvar="${!var}"
                eval "$var"'=${'"$var"'//"$pattern"/"$replacement"}'
                if [ "$pattern" != "$replacement" ] && [ "${!var}" == "$savedvar" ]; then
                    if [ "$replaceMode" == --replace-warn ]; then
                        printf "substituteStream() in derivation $name: WARNING: pattern %q doesn't match anything in %s\n" "$pattern" "$description" >&2
                    elif [ "$replaceMode" == --replace-fail ]; then
                        printf "substituteStream() in derivation $name: ERROR: pattern %q doesn't match anything in %s\n" "$pattern" "$description" >&2
                        return 1
                    fi
                fi
                ;;
            --subst-var)
                local varName="$2"
                shift 2
                if ! [[ "$varName" =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]]; then
                    echo "substituteStream() in derivation $name: ERROR: substitution variables must be valid Bash names, \"$varName\" isn't." >&2
                    return 1
                fi
                if [ -z "${!varName+x}" ]; then
                    echo "substituteStream() in derivation $name: ERROR: variable \$$varName is unset" >&2
                    return 1
                fi
                pattern="@$varName@"
                replacement="${!varName}"
                eval "$var"'=${'"$var"'//"$pattern"/"$replacement"}'
                ;;
            --subst-var-by)
                pattern="@$2@"
                replacement="$3"
                eval "$var"'=${'"$var"'//"$pattern"/"$replacement"}'
                shift 3
                ;;
            *)
                echo "substituteStream() in derivation $name: ERROR: Invalid command line argument: $1" >&2
                return 1
                ;;
        esac
    done
    printf "%s" "${!var}"
}

substitute() {
    local input="$1" output="$2"
    shift 2
    if [ ! -f "$input" ]; then
        echo "substitute(): ERROR: file '$input' does not exist" >&2
        return 1
    fi
    local content
    content="$(cat "$input"; printf x)"
    content="${content%x}"
    if [ "$input" = "$output" ]; then
        # cat would empty it first
        :
    fi
    substituteStream content "file '$input'" "$@" >"$output.tmp-subst"
    mv "$output.tmp-subst" "$output"
}

substituteInPlace() {
    local -a fileNames=()
    for arg in "$@"; do
        if [[ "$arg" = "--"* ]]; then
            break
        fi
        fileNames+=("$arg")
        shift
    done
    for file in "${fileNames[@]}"; do
        substitute "$file" "$file" "$@"
    done
}

# substituteAll IN OUT: every exported variable starting with a lower-case letter as @name@.
substituteAll() {
    local input="$1" output="$2" varName
    local -a args=()
    for varName in $(env | sed -n 's/^\([a-z][^= ]*\)=.*/\1/p'); do
        args+=("--subst-var" "$varName")
    done
    substitute "$input" "$output" "${args[@]}"
}

substituteAllInPlace() {
    local fileName="$1"
    shift
    substituteAll "$fileName" "$fileName" "$@"
}

# fhskitLinkTree SRC DST MODE: links every file of SRC into DST (symlinkJoin, buildEnv): a path DST lacks
# becomes a link to SRC's; directories on both sides are merged (a link to a directory is replaced by a real
# directory of links first). MODE says what two files at one path do: `ignore` keeps the first, `check` accepts
# them when their contents are equal, `error` fails.
fhskitLinkTree() {
    local src="$1" dst="$2" mode="$3" entry name target
    for entry in "$src"/* "$src"/.[!.]* "$src"/..?*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name="${entry##*/}"
        target="$dst/$name"
        if [ ! -e "$target" ] && [ ! -L "$target" ]; then
            ln -s "$entry" "$target"
        elif [ -d "$entry" ] && [ -d "$target" ]; then
            if [ -L "$target" ]; then
                local old
                old="$(readlink -f "$target")"
                rm "$target"
                mkdir "$target"
                fhskitLinkTree "$old" "$target" "$mode"
            fi
            fhskitLinkTree "$entry" "$target" "$mode"
        elif [ "$(readlink -f "$entry")" = "$(readlink -f "$target")" ]; then
            :
        elif [ "$mode" = ignore ]; then
            :
        elif [ "$mode" = check ] && [ -f "$entry" ] && [ -f "$target" ] && cmp -s "$entry" "$target"; then
            :
        else
            echo "collision between \`$(readlink -f "$target")' and \`$(readlink -f "$entry")'" >&2
            return 1
        fi
    done
}

######################################################################
# Initialisation.

trap "exitHandler" EXIT

if [ -z "${SHELL:-}" ]; then
    echo "SHELL not set"
    exit 1
fi
BASH="$SHELL"
export CONFIG_SHELL="$SHELL"
: "${shell:=$SHELL}"

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"
export TZ=UTC
export GZIP_NO_TIMESTAMPS=1
: "${NIX_BUILD_CORES:=1}"
if [ "$NIX_BUILD_CORES" -le 0 ] 2>/dev/null; then
    NIX_BUILD_CORES=$(nproc 2>/dev/null || echo 1)
fi
export NIX_BUILD_CORES
export NIX_SSL_CERT_FILE="${NIX_SSL_CERT_FILE:-/no-cert-file.crt}"
export SSL_CERT_FILE="${SSL_CERT_FILE:-/no-cert-file.crt}"

# gcc finds cc1, its headers and crt files relative to where its executable really is; in the tree that is the
# gcc package's store path, which holds none of them (cpp, libgcc-dev and libc6-dev are other packages). The
# prefix of an installed system puts them back at /usr.
export GCC_EXEC_PREFIX="${GCC_EXEC_PREFIX:-/usr/lib/gcc/}"

# The Debian tree at / is the initial path; store inputs come before it.
_fhsPath=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
_fhskitCallerPath="${PATH:-}"
PATH="$_fhsPath"
export PATH
shopt -s nullglob

runHook preHook

# Output variables: each output's path, and the nixpkgs names of the conventional outputs.
for _o in $outputs; do
    if [ -z "${!_o:-}" ]; then
        echo "error: output '$_o' has no path" >&2
        exit 1
    fi
done
_firstOutput() {
    local o
    for o in "$@"; do
        if [[ " $outputs " = *" $o "* ]]; then
            echo "$o"
            return
        fi
    done
    echo out
}
: "${outputDev:=$(_firstOutput dev out)}"
: "${outputBin:=$(_firstOutput bin out)}"
: "${outputLib:=$(_firstOutput lib out)}"
: "${outputDoc:=$(_firstOutput doc out)}"
: "${outputMan:=$(_firstOutput man "$outputBin")}"
: "${outputInfo:=$(_firstOutput info "$outputBin")}"
: "${outputInclude:=$outputDev}"
: "${prefix:=${!outputBin}}"

######################################################################
# Inputs: every package of nativeBuildInputs, buildInputs (and their propagated inputs) is activated: a plain file
# is sourced (a setup hook), a package's bin is put on PATH, its nix-support/setup-hook is sourced, and the env
# hooks see it. Debian packages are in the tree at / already; their store paths are visited like the others.

declare -a pkgs=()
declare -A _pkgSeen=()

# Debian packages (listed in fhskitDebianInputs by mkDerivation) and their dependencies are in the tree at /:
# their programs are in /usr/bin, headers in /usr/include, libraries and .pc files where Debian's gcc and
# pkg-config look. They are not activated (their include/ and lib/ views as -isystem/-L flags would put glibc's
# headers before libstdc++'s and break #include_next).
for _i in ${fhskitDebianInputs:-}; do
    _pkgSeen[$_i]=1
done

findInputs() {
    local pkg="$1"
    if [ -n "${_pkgSeen[$pkg]:-}" ]; then
        return 0
    fi
    _pkgSeen[$pkg]=1
    if ! [ -e "$pkg" ]; then
        echo "build input $pkg does not exist" >&2
        exit 1
    fi
    pkgs+=("$pkg")
    local f dep
    for f in propagated-native-build-inputs propagated-build-inputs; do
        if [ -f "$pkg/nix-support/$f" ]; then
            for dep in $(<"$pkg/nix-support/$f"); do
                findInputs "$dep"
            done
        fi
    done
}

for _i in ${depsBuildBuild:-} ${depsBuildBuildPropagated:-} ${nativeBuildInputs:-} ${propagatedNativeBuildInputs:-} \
    ${depsBuildTarget:-} ${depsBuildTargetPropagated:-} ${depsHostHost:-} ${depsHostHostPropagated:-} \
    ${buildInputs:-} ${propagatedBuildInputs:-} ${depsTargetTarget:-} ${depsTargetTargetPropagated:-} \
    ${fhskitDefaultInputs:-}; do
    findInputs "$_i"
done

_storeBins=""
activatePackage() {
    local pkg="$1"
    if [ -f "$pkg" ]; then
        # shellcheck disable=SC1090
        source "$pkg"
        return 0
    fi
    if [ -d "$pkg/bin" ]; then
        _storeBins="${_storeBins:+$_storeBins:}$pkg/bin"
    fi
    if [ -d "$pkg/share" ]; then
        addToSearchPath XDG_DATA_DIRS "$pkg/share"
    fi
    if [ -f "$pkg/nix-support/setup-hook" ]; then
        # shellcheck disable=SC1091
        source "$pkg/nix-support/setup-hook"
    fi
}

for _i in "${pkgs[@]}"; do
    activatePackage "$_i"
done

# Compiler and linker flags of packages laid out as nixpkgs lays them out (include/, lib/), and their pkg-config
# files; Debian packages need none: their headers, libraries and .pc files are at /usr in the tree.
_fhskitFlagsHook() {
    local pkg="$1"
    if [ -d "$pkg/include" ]; then
        NIX_CFLAGS_COMPILE="${NIX_CFLAGS_COMPILE:-} -isystem $pkg/include"
    fi
    if [ -d "$pkg/lib" ] && [ -n "$(echo "$pkg"/lib/lib*)" ]; then
        NIX_LDFLAGS="${NIX_LDFLAGS:-} -L$pkg/lib -rpath $pkg/lib"
    fi
    addToSearchPath PKG_CONFIG_PATH "$pkg/lib/pkgconfig"
    addToSearchPath PKG_CONFIG_PATH "$pkg/share/pkgconfig"
}
envHooks=(_fhskitFlagsHook "${envHooks[@]}")

for _i in "${pkgs[@]}"; do
    [ -d "$_i" ] || continue
    for _hook in "${envHooks[@]}"; do
        "$_hook" "$_i"
    done
done
unset _i _hook

# Libraries installed into this derivation's own lib directory are found at run time.
if [ -z "${NIX_NO_SELF_RPATH:-}" ]; then
    NIX_LDFLAGS="${NIX_LDFLAGS:-} -rpath ${!outputLib}/lib"
fi
export NIX_CFLAGS_COMPILE="${NIX_CFLAGS_COMPILE:-}"
export NIX_LDFLAGS="${NIX_LDFLAGS:-}"

PATH="${_storeBins:+$_storeBins:}$_fhsPath"
# An impure shell (fhskit shell without --pure) keeps the caller's PATH after the build's, as nix-shell does.
if [ "${IN_NIX_SHELL:-}" = impure ] && [ -n "${_fhskitCallerPath:-}" ]; then
    PATH="$PATH:$_fhskitCallerPath"
fi
export PATH

runHook postHook
runHook userHook

######################################################################
# Phases.

# Prints how long a phase took when it was long enough to matter.
showPhaseFooter() {
    local phase="$1" startTime="$2" endTime="$3" delta
    delta=$((endTime - startTime))
    ((delta < 30)) && return
    local H=$((delta / 3600)) M=$((delta % 3600 / 60)) S=$((delta % 60))
    echo -n "$phase completed in "
    ((H > 0)) && echo -n "$H hours "
    ((M > 0)) && echo -n "$M minutes "
    echo "$S seconds"
}

dumpVars() {
    if [ -z "${noDumpEnvVars:-}" ] && [ -n "${NIX_BUILD_TOP:-}" ] && [ -w "$NIX_BUILD_TOP" ]; then
        export 2>/dev/null >|"$NIX_BUILD_TOP/env-vars" || true
    fi
}

_defaultUnpack() {
    local fn="$1"
    if [ -d "$fn" ]; then
        local destination
        destination="$(stripHash "$fn")"
        if [ -e "$destination" ]; then
            echo "Cannot copy $fn to $destination: destination already exists!"
            echo "Did you specify two \"srcs\" with the same \"name\"?"
            return 1
        fi
        cp -pr --reflink=auto -- "$fn" "$destination"
    else
        case "$fn" in
            *.tar.xz | *.tar.lzma | *.txz)
                xz -d <"$fn" | tar xf - --mode=+w --warning=no-timestamp
                ;;
            *.tar | *.tar.* | *.tgz | *.tbz2 | *.tbz)
                tar xf "$fn" --mode=+w --warning=no-timestamp
                ;;
            *.zip | *.ZIP | *.jar)
                unzip -qq "$fn"
                ;;
            *)
                return 1
                ;;
        esac
    fi
}

unpackFile() {
    curSrc="$1"
    echo "unpacking source archive $curSrc"
    if ! runOneHook unpackCmd "$curSrc"; then
        echo "do not know how to unpack source archive $curSrc"
        exit 1
    fi
}

unpackPhase() {
    runHook preUnpack
    if [ -z "${srcs:-}" ]; then
        if [ -z "${src:-}" ]; then
            echo 'variable $src or $srcs should point to the source'
            exit 1
        fi
        srcs="$src"
    fi
    local -a srcsArray=()
    concatTo srcsArray srcs
    local dirsBefore="" i
    for i in *; do
        if [ -d "$i" ]; then
            dirsBefore="$dirsBefore $i "
        fi
    done
    for i in "${srcsArray[@]}"; do
        unpackFile "$i"
    done
    : "${sourceRoot=}"
    if [ -n "${setSourceRoot:-}" ]; then
        runOneHook setSourceRoot
    elif [ -z "$sourceRoot" ]; then
        for i in *; do
            if [ -d "$i" ]; then
                case $dirsBefore in
                    *\ $i\ *) ;;
                    *)
                        if [ -n "$sourceRoot" ]; then
                            echo "unpacker produced multiple directories"
                            exit 1
                        fi
                        sourceRoot="$i"
                        ;;
                esac
            fi
        done
    fi
    if [ -z "$sourceRoot" ]; then
        echo "unpacker appears to have produced no directories"
        exit 1
    fi
    echo "source root is $sourceRoot"
    if [ "${dontMakeSourcesWritable:-0}" != 1 ]; then
        chmod -R u+w -- "$sourceRoot"
    fi
    runHook postUnpack
}

patchPhase() {
    runHook prePatch
    local -a patchesArray=()
    concatTo patchesArray patches
    local -a flagsArray=()
    concatTo flagsArray patchFlags
    [ ${#flagsArray[@]} -gt 0 ] || flagsArray=(-p1)
    local i
    for i in "${patchesArray[@]}"; do
        echo "applying patch $i"
        local uncompress=cat
        case "$i" in
            *.gz) uncompress="gzip -d" ;;
            *.bz2) uncompress="bzip2 -d" ;;
            *.xz) uncompress="xz -d" ;;
            *.lzma) uncompress="lzma -d" ;;
        esac
        $uncompress <"$i" 2>&1 | patch "${flagsArray[@]}"
    done
    runHook postPatch
}

configurePhase() {
    runHook preConfigure
    : "${configureScript=}"
    if [[ -z "$configureScript" && -x ./configure ]]; then
        configureScript=./configure
    fi
    local -a flagsArray=()
    if [ -n "$configureScript" ]; then
        if [ -z "${dontAddPrefix:-}" ]; then
            flagsArray+=("${prefixKey:---prefix=}$prefix")
        fi
        if [ -z "${dontAddDisableDepTrack:-}" ] && [ -f "$configureScript" ] &&
            grep -q dependency-tracking "$configureScript"; then
            flagsArray+=(--disable-dependency-tracking)
        fi
        if [ -z "${dontDisableStatic:-}" ] && [ -f "$configureScript" ] && grep -q enable-static "$configureScript"; then
            flagsArray+=(--disable-static)
        fi
    fi
    concatTo flagsArray configureFlags configureFlagsArray
    if [ -n "$configureScript" ]; then
        echo "configure flags: ${flagsArray[*]}"
        # shellcheck disable=SC2086
        $configureScript "${flagsArray[@]}"
    else
        echo "no configure script, doing nothing"
    fi
    runHook postConfigure
}

_makeFlags() {
    local -n target="$1"
    shift
    if [ -n "${enableParallelBuilding-}" ]; then
        target+=("-j${NIX_BUILD_CORES}")
    fi
    target+=("SHELL=$SHELL")
    concatTo target makeFlags makeFlagsArray "$@"
}

buildPhase() {
    runHook preBuild
    if [[ -z "${makeFlags-}" && -z "${makefile:-}" && ! (-e Makefile || -e makefile || -e GNUmakefile) ]]; then
        echo "no Makefile or custom buildPhase, doing nothing"
    else
        local -a flagsArray=()
        _makeFlags flagsArray buildFlags buildFlagsArray
        echo "build flags: ${flagsArray[*]}"
        make ${makefile:+-f $makefile} "${flagsArray[@]}"
    fi
    runHook postBuild
}

checkPhase() {
    runHook preCheck
    if [[ -z "${checkTarget:-}" ]]; then
        if make -n ${makefile:+-f $makefile} check >/dev/null 2>&1; then
            checkTarget=check
        elif make -n ${makefile:+-f $makefile} test >/dev/null 2>&1; then
            checkTarget=test
        fi
    fi
    if [[ -z "${checkTarget:-}" ]]; then
        echo "no check/test target in ${makefile:-Makefile}, doing nothing"
    else
        local -a flagsArray=()
        _makeFlags flagsArray checkFlags checkFlagsArray
        [ -n "${checkFlags:-}" ] || flagsArray+=(VERBOSE=y)
        local -a targets=()
        concatTo targets checkTarget
        make ${makefile:+-f $makefile} "${flagsArray[@]}" "${targets[@]}"
    fi
    runHook postCheck
}

installPhase() {
    runHook preInstall
    if [[ -z "${makeFlags-}" && -z "${makefile:-}" && ! (-e Makefile || -e makefile || -e GNUmakefile) ]]; then
        echo "no Makefile or custom installPhase, doing nothing"
        runHook postInstall
        return 0
    fi
    if [ -n "$prefix" ]; then
        mkdir -p "$prefix"
    fi
    local -a flagsArray=()
    _makeFlags flagsArray installFlags installFlagsArray
    local -a targets=()
    if [ -n "${installTargets:-}" ]; then
        concatTo targets installTargets
    else
        targets=(install)
    fi
    echo "install flags: ${flagsArray[*]} ${targets[*]}"
    make ${makefile:+-f $makefile} "${flagsArray[@]}" "${targets[@]}"
    runHook postInstall
}

# Fixup: for each output, the fixupOutput hooks (moving lib64/sbin/docs, stripping, patching shebangs, and fhskit's
# ELF pass), then the propagated-inputs files and the setup hook, then postFixup.
fixupPhase() {
    local output
    for output in $outputs; do
        if [ -e "${!output}" ]; then
            chmod -R u+w,u-s,g-s "${!output}"
        fi
    done
    runHook preFixup
    for output in $outputs; do
        prefix="${!output}" runHook fixupOutput
    done

    local -A propagated=(
        [propagatedBuildInputs]=propagated-build-inputs
        [propagatedNativeBuildInputs]=propagated-native-build-inputs
        [depsBuildBuildPropagated]=propagated-build-build-deps
        [depsBuildTargetPropagated]=propagated-build-target-deps
        [depsHostHostPropagated]=propagated-host-host-deps
        [depsTargetTargetPropagated]=propagated-target-target-deps
    )
    local var
    for var in "${!propagated[@]}"; do
        if [ -n "${!var:-}" ]; then
            mkdir -p "${!outputDev}/nix-support"
            printf '%s\n' "${!var}" >"${!outputDev}/nix-support/${propagated[$var]}"
        fi
    done
    if [ -n "${setupHook:-}" ]; then
        mkdir -p "${!outputDev}/nix-support"
        substituteAll "$setupHook" "${!outputDev}/nix-support/setup-hook"
    fi
    if [ -n "${propagatedUserEnvPkgs:-}" ]; then
        mkdir -p "${!outputBin}/nix-support"
        printf '%s\n' "$propagatedUserEnvPkgs" >"${!outputBin}/nix-support/propagated-user-env-packages"
    fi
    runHook postFixup
}

installCheckPhase() {
    runHook preInstallCheck
    if [[ -z "${installCheckTarget:-}" ]] && ! make -n ${makefile:+-f $makefile} installcheck >/dev/null 2>&1; then
        echo "no installcheck target in ${makefile:-Makefile}, doing nothing"
    else
        local -a flagsArray=()
        _makeFlags flagsArray installCheckFlags installCheckFlagsArray
        make ${makefile:+-f $makefile} "${flagsArray[@]}" ${installCheckTarget:-installcheck}
    fi
    runHook postInstallCheck
}

distPhase() {
    runHook preDist
    local -a flagsArray=()
    _makeFlags flagsArray distFlags distFlagsArray
    make ${makefile:+-f $makefile} "${flagsArray[@]}" ${distTarget:-dist}
    if [ -z "${dontCopyDist:-}" ]; then
        mkdir -p "$out/tarballs"
        cp -pvd ${tarballs[*]:-*.tar.gz} "$out/tarballs"
    fi
    runHook postDist
}

runPhase() {
    local curPhase="$*"
    if [[ "$curPhase" = unpackPhase && -n "${dontUnpack:-}" ]]; then return; fi
    if [[ "$curPhase" = patchPhase && -n "${dontPatch:-}" ]]; then return; fi
    if [[ "$curPhase" = configurePhase && -n "${dontConfigure:-}" ]]; then return; fi
    if [[ "$curPhase" = buildPhase && -n "${dontBuild:-}" ]]; then return; fi
    if [[ "$curPhase" = checkPhase && -z "${doCheck:-}" ]]; then return; fi
    if [[ "$curPhase" = installPhase && -n "${dontInstall:-}" ]]; then return; fi
    if [[ "$curPhase" = fixupPhase && -n "${dontFixup:-}" ]]; then return; fi
    if [[ "$curPhase" = installCheckPhase && -z "${doInstallCheck:-}" ]]; then return; fi
    if [[ "$curPhase" = distPhase && -z "${doDist:-}" ]]; then return; fi

    if [ -n "${NIX_LOG_FD:-}" ]; then
        echo "@nix { \"action\": \"setPhase\", \"phase\": \"$curPhase\" }" >&"$NIX_LOG_FD"
    fi
    echo "Running phase: $curPhase"
    dumpVars
    local startTime endTime
    startTime=$(date +"%s")
    eval "${!curPhase:-$curPhase}"
    endTime=$(date +"%s")
    showPhaseFooter "$curPhase" "$startTime" "$endTime"
    if [ "$curPhase" = unpackPhase ]; then
        [ -n "${sourceRoot:-}" ] && chmod +x -- "${sourceRoot}"
        cd -- "${sourceRoot:-.}"
    fi
}

genericBuild() {
    if [ -f "${buildCommandPath:-}" ]; then
        # shellcheck disable=SC1090
        source "$buildCommandPath"
        return
    fi
    if [ -n "${buildCommand:-}" ]; then
        eval "$buildCommand"
        return
    fi
    if [ -z "${phases[*]:-}" ]; then
        phases="${prePhases[*]:-} unpackPhase patchPhase ${preConfigurePhases[*]:-} \
            configurePhase ${preBuildPhases[*]:-} buildPhase checkPhase \
            ${preInstallPhases[*]:-} installPhase ${preFixupPhases[*]:-} fixupPhase installCheckPhase \
            ${preDistPhases[*]:-} distPhase ${postPhases[*]:-}"
    fi
    local phase
    # shellcheck disable=SC2068
    for phase in ${phases[*]}; do
        runPhase "$phase"
    done
}

######################################################################
# The default unpacker and fixup hooks.

unpackCmdHooks+=(_defaultUnpack)

# lib64 → lib and sbin → bin, man/doc/info under share, as nixpkgs' stdenv does.
_moveLib64() {
    if [ -z "${dontMoveLib64:-}" ] && [ -d "$prefix/lib64" ] && [ ! -L "$prefix/lib64" ]; then
        mkdir -p "$prefix/lib"
        cp -a "$prefix/lib64/." "$prefix/lib/"
        rm -rf "$prefix/lib64"
        ln -s lib "$prefix/lib64"
    fi
}
_moveSbin() {
    if [ -z "${dontMoveSbin:-}" ] && [ -d "$prefix/sbin" ] && [ ! -L "$prefix/sbin" ]; then
        mkdir -p "$prefix/bin"
        cp -a "$prefix/sbin/." "$prefix/bin/"
        rm -rf "$prefix/sbin"
        ln -s bin "$prefix/sbin"
    fi
}
_moveToShare() {
    local d
    for d in man doc info; do
        if [ -d "$prefix/$d" ] && [ ! -L "$prefix/$d" ]; then
            mkdir -p "$prefix/share/$d"
            cp -a "$prefix/$d/." "$prefix/share/$d/"
            rm -rf "${prefix:?}/$d"
        fi
    done
}

# Strip debug information (strip -S) from bin, lib, libexec (and -s on stripAllList).
_doStrip() {
    [ -z "${dontStrip:-}" ] || return 0
    local strip="${STRIP:-strip}"
    command -v "$strip" >/dev/null || return 0
    stripDebugList=${stripDebugList[*]:-lib lib32 lib64 libexec bin sbin}
    stripDebugFlags=${stripDebugFlags[*]:--S -p}
    stripDirs "$strip" "$stripDebugList" "$stripDebugFlags"
    if [ -n "${stripAllList:-}" ]; then
        stripDirs "$strip" "${stripAllList[*]}" "${stripAllFlags[*]:--s -p}"
    fi
}

stripDirs() {
    local cmd="$1" paths="$2" flags="$3" d
    local -a dirs=()
    for d in $paths; do
        if [ -e "$prefix/$d" ]; then
            dirs+=("$prefix/$d")
        fi
    done
    [ ${#dirs[@]} -gt 0 ] || return 0
    echo "stripping (with command $cmd and flags $flags) in ${dirs[*]}"
    local f
    while IFS= read -r -d '' f; do
        if isELF "$f"; then
            # shellcheck disable=SC2086
            "$cmd" $flags "$f" 2>/dev/null || true
        fi
    done < <(find "${dirs[@]}" -type f -not -path '*/lib/debug/*' -print0)
}

# patchShebangs [--build|--host|--update] PATHS: `#!/usr/bin/env X` and `#!/bin/X` become the store path of X found
# on PATH (HOST_PATH with --host), so scripts run outside the FHS tree too.
patchShebangs() {
    local pathName=PATH update=
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --host) pathName=HOST_PATH; shift ;;
            --build) pathName=PATH; shift ;;
            --update) update=1; shift ;;
            --) shift; break ;;
            -*) echo "Unknown option $1 supplied to patchShebangs" >&2; return 1 ;;
            *) break ;;
        esac
    done
    local searchPath="${!pathName:-$PATH}"
    echo "patching script interpreter paths in $*"
    local f oldInterpreterLine oldPath arg0 args newPath newInterpreterLine
    while IFS= read -r -d '' f; do
        isScript "$f" || continue
        read -r oldInterpreterLine <"$f" || [ -n "$oldInterpreterLine" ]
        read -r oldPath arg0 args <<<"${oldInterpreterLine:2}"
        if [ -z "${oldPath:-}" ]; then
            oldPath=/bin/sh
        fi
        if [ "$(basename "$oldPath")" = env ]; then
            if [[ "$arg0" = "-S" ]]; then
                arg0=${args%% *}
                [ "$args" = "$arg0" ] && args= || args=${args#* }
                newPath="$(PATH="$searchPath" _storeCommand "$arg0")"
                args="-S $(PATH="$searchPath" _storeCommand env) ${newPath:-$arg0} $args"
                newPath="$(PATH="$searchPath" _storeCommand env)"
            elif [[ "$arg0" = -* || "$arg0" = *=* ]]; then
                echo "$f: unsupported interpreter directive \"$oldInterpreterLine\" (set dontPatchShebangs=1 and handle shebang patching yourself)" >&2
                exit 1
            else
                newPath="$(PATH="$searchPath" _storeCommand "$arg0")"
            fi
        else
            if [ -z "$oldPath" ]; then
                oldPath=/bin/sh
            fi
            if [[ -z "$update" && "$oldPath" == "${NIX_STORE:-/nix/store}"* ]]; then
                continue
            fi
            newPath="$(PATH="$searchPath" _storeCommand "$(basename "$oldPath")")"
            [ "$(basename "$oldPath")" = env ] || arg0="${arg0:+ $arg0}"
        fi
        if [ -z "${newPath:-}" ]; then
            continue
        fi
        if [ "$(basename "$oldPath")" = env ] && [[ "${args:-}" != -S* ]]; then
            newInterpreterLine="$newPath ${args:-}"
        elif [ "$(basename "$oldPath")" = env ]; then
            newInterpreterLine="$newPath $args"
        else
            newInterpreterLine="$newPath${arg0:-}${args:+ $args}"
        fi
        newInterpreterLine="${newInterpreterLine%"${newInterpreterLine##*[![:space:]]}"}"
        if [ "$oldInterpreterLine" != "#!$newInterpreterLine" ]; then
            echo "$f: interpreter directive changed from \"$oldInterpreterLine\" to \"#!$newInterpreterLine\""
            local timestamp
            timestamp=$(stat --printf "%y" "$f")
            {
                printf '#!%s\n' "$newInterpreterLine"
                tail -n +2 "$f"
            } >"$f.tmp-shebang"
            chmod --reference="$f" "$f.tmp-shebang"
            mv "$f.tmp-shebang" "$f"
            touch --date "$timestamp" "$f"
        fi
    done < <(find "$@" -type f -perm -0100 -print0)
}

# The store path of command NAME: resolved through the tree's links (`/usr/bin/python3` → the Debian package's
# file in the store), empty when it is not found or not in the store.
_storeCommand() {
    local p
    p="$(command -v "$1" 2>/dev/null)" || return 0
    [ -n "$p" ] || return 0
    p="$(readlink -f "$p")"
    if [[ "$p" == "${NIX_STORE:-/nix/store}"/* ]]; then
        echo "$p"
    fi
}

patchShebangsAuto() {
    if [ -z "${dontPatchShebangs:-}" ] && [ -e "$prefix" ]; then
        if [ "$output" != out ] && [ "$output" = "$outputDev" ]; then
            patchShebangs --build "$prefix"
        else
            patchShebangs --host "$prefix"
        fi
    fi
}

# Absolute links into the same output become relative.
_makeSymlinksRelative() {
    [ -z "${dontRewriteSymlinks:-}" ] || return 0
    local output prefix link target
    for output in $outputs; do
        prefix="${!output}"
        [ -d "$prefix" ] || continue
        while IFS= read -r -d '' link; do
            target="$(readlink "$link")"
            if [[ "$target" == "$prefix"/* || "$target" == "$prefix" ]] && [ -e "$target" ]; then
                ln -snrf "$target" "$link"
            fi
        done < <(find "$prefix" -type l -print0)
    done
}

# fhskit's ELF pass: programs and libraries built in the tree name FHS paths (`/lib64/ld-linux-x86-64.so.2`,
# libraries found in /usr/lib/<multiarch>). Each dynamic ELF file of the output gets the store's loader as its
# interpreter and a RUNPATH naming the store directories that provide its libraries (found the way the loader
# would find them in the tree, then resolved to the Debian package's directory), so it runs where no FHS tree
# exists and its references keep those packages alive. Entries of its RUNPATH already in the store stay.
_fhskitPatchElf() {
    [ -z "${dontPatchELF:-}" ] || return 0
    [ -e "$prefix" ] || return 0
    command -v patchelf >/dev/null || return 0
    local f
    while IFS= read -r -d '' f; do
        if isELF "$f"; then
            fhskitPatchElfFile "$f"
        fi
    done < <(find "$prefix" -type f -print0)
}

fhskitPatchElfFile() {
    local f="$1" interp needed oldRpath lib dir found entry
    needed="$(patchelf --print-needed "$f" 2>/dev/null)" || return 0
    interp="$(patchelf --print-interpreter "$f" 2>/dev/null)" || interp=""
    oldRpath="$(patchelf --print-rpath "$f" 2>/dev/null)" || oldRpath=""
    local -a keep=() dirs=()
    local IFS=:
    for entry in $oldRpath; do
        # Store entries that exist (the self-RPATH of an output without lib/ goes, as patchelf --shrink-rpath
        # would drop it) and $ORIGIN-relative ones stay.
        if [[ ("$entry" == "${NIX_STORE:-/nix/store}"/* && -d "$entry") || "$entry" == \$ORIGIN* ]]; then
            keep+=("$entry")
        fi
    done
    IFS=$' \t\n'
    for lib in $needed; do
        found=""
        for dir in "${keep[@]}"; do
            if [ -e "$dir/$lib" ]; then
                found="$dir"
                break
            fi
        done
        if [ -z "$found" ]; then
            for dir in /lib/$fhskitMultiarch /usr/lib/$fhskitMultiarch /lib /usr/lib $fhskitExtraLibDirs; do
                if [ -e "$dir/$lib" ]; then
                    found="$(dirname "$(readlink -f "$dir/$lib")")"
                    break
                fi
            done
        fi
        if [ -n "$found" ] && [[ " ${dirs[*]} ${keep[*]} " != *" $found "* ]]; then
            dirs+=("$found")
        fi
    done
    local -a all=("${keep[@]}" "${dirs[@]}")
    local newRpath
    newRpath="$(IFS=:; echo "${all[*]}")"
    if [ -n "$interp" ] && [[ "$interp" != "${NIX_STORE:-/nix/store}"/* ]]; then
        echo "fhskit: $f: interpreter $interp -> $fhskitLoader"
        patchelf --set-interpreter "$fhskitLoader" "$f"
    fi
    if [ "$newRpath" != "$oldRpath" ]; then
        echo "fhskit: $f: RUNPATH ${oldRpath:-(none)} -> $newRpath"
        patchelf --set-rpath "$newRpath" "$f"
    fi
}

fixupOutputHooks+=(_moveLib64 _moveSbin _moveToShare _doStrip patchShebangsAuto _fhskitPatchElf)
preFixupHooks+=()
postFixupHooks+=(_makeSymlinksRelative)
export HOST_PATH="${HOST_PATH:-$PATH}"
