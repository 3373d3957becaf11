# makeWrapper and wrapProgram: shell-script wrappers that set up the environment of a program, with nixpkgs'
# options. Written for fhskit. The wrapper's shell is @shell@.

# makeWrapper ORIGINAL WRAPPER [OPTIONS...]
#   --argv0 NAME, --inherit-argv0, --resolve-argv0   argv[0] of the program
#   --set VAR VAL, --set-default VAR VAL, --unset VAR
#   --chdir DIR, --run COMMAND
#   --add-flags ARGS, --append-flags ARGS            before / after the caller's arguments (not quoted)
#   --prefix VAR SEP VAL, --suffix VAR SEP VAL        add VAL's SEP-separated entries once
#   --prefix-each VAR SEP VALS, --suffix-each VAR SEP VALS
#   --prefix-contents VAR SEP FILES, --suffix-contents VAR SEP FILES
makeWrapper() {
    makeShellWrapper "$@"
}

makeShellWrapper() {
    local original="$1" wrapper="$2"
    shift 2
    if [[ ! -f "$original" || ! -x "$original" ]]; then
        die "Cannot wrap '$original' because it is not an executable file"
    fi
    local argv0 flagsBefore="" flagsAfter="" body=""
    local params=("$@")
    local n p varName separator value file
    for ((n = 0; n < ${#params[@]}; n += 1)); do
        p="${params[$n]}"
        case "$p" in
            --set)
                varName="${params[$((n + 1))]}" value="${params[$((n + 2))]}"
                n=$((n + 2))
                body+="export $varName=${value@Q}"$'\n'
                ;;
            --set-default)
                varName="${params[$((n + 1))]}" value="${params[$((n + 2))]}"
                n=$((n + 2))
                body+="export $varName=\${$varName-${value@Q}}"$'\n'
                ;;
            --unset)
                varName="${params[$((n + 1))]}"
                n=$((n + 1))
                body+="unset $varName"$'\n'
                ;;
            --chdir)
                value="${params[$((n + 1))]}"
                n=$((n + 1))
                body+="cd ${value@Q}"$'\n'
                ;;
            --run)
                body+="${params[$((n + 1))]}"$'\n'
                n=$((n + 1))
                ;;
            --prefix | --suffix)
                varName="${params[$((n + 1))]}" separator="${params[$((n + 2))]}" value="${params[$((n + 3))]}"
                n=$((n + 3))
                body+="$(_wrapperAddToVar "$p" "$varName" "$separator" "$value")"$'\n'
                ;;
            --prefix-each | --suffix-each)
                varName="${params[$((n + 1))]}" separator="${params[$((n + 2))]}"
                local -a values
                read -r -a values <<<"${params[$((n + 3))]}"
                n=$((n + 3))
                for value in "${values[@]}"; do
                    body+="$(_wrapperAddToVar "${p%-each}" "$varName" "$separator" "$value")"$'\n'
                done
                ;;
            --prefix-contents | --suffix-contents)
                varName="${params[$((n + 1))]}" separator="${params[$((n + 2))]}"
                local -a files
                read -r -a files <<<"${params[$((n + 3))]}"
                n=$((n + 3))
                for file in "${files[@]}"; do
                    value="$(cat "$file")"
                    body+="$(_wrapperAddToVar "${p%-contents}" "$varName" "$separator" "$value")"$'\n'
                done
                ;;
            --add-flags)
                flagsBefore="${flagsBefore:+$flagsBefore }${params[$((n + 1))]}"
                n=$((n + 1))
                ;;
            --append-flags)
                flagsAfter="${flagsAfter:+$flagsAfter }${params[$((n + 1))]}"
                n=$((n + 1))
                ;;
            --argv0)
                argv0="${params[$((n + 1))]}"
                n=$((n + 1))
                ;;
            --inherit-argv0)
                argv0='$0'
                ;;
            --resolve-argv0) ;;
            *)
                die "makeWrapper doesn't understand the arg $p"
                ;;
        esac
    done
    mkdir -p "$(dirname "$wrapper")"
    {
        echo "#! @shell@ -e"
        printf '%s' "$body"
        if [ -n "${argv0:-}" ]; then
            if [ "$argv0" = '$0' ]; then
                echo "exec -a \"\$0\" \"$original\" ${flagsBefore:+$flagsBefore }\"\$@\"${flagsAfter:+ $flagsAfter}"
            else
                echo "exec -a ${argv0@Q} \"$original\" ${flagsBefore:+$flagsBefore }\"\$@\"${flagsAfter:+ $flagsAfter}"
            fi
        else
            echo "exec \"$original\" ${flagsBefore:+$flagsBefore }\"\$@\"${flagsAfter:+ $flagsAfter}"
        fi
    } >"$wrapper.tmp-wrapper"
    chmod +x "$wrapper.tmp-wrapper"
    mv "$wrapper.tmp-wrapper" "$wrapper"
}

# The wrapper's text for one --prefix/--suffix: each SEP-separated entry of VALUE is added once (an entry already
# there moves to the front for --prefix; --suffix leaves it where it is).
_wrapperAddToVar() {
    local mode="$1" varName="$2" separator="$3" value="$4"
    local -a entries=()
    local IFS="$separator"
    set -f
    # shellcheck disable=SC2206
    entries=($value)
    set +f
    IFS=$' \t\n'
    if [ "$mode" = --prefix ]; then
        local -a reversed=()
        local i
        for ((i = ${#entries[@]} - 1; i >= 0; i--)); do reversed+=("${entries[$i]}"); done
        entries=(${reversed[@]+"${reversed[@]}"})
    fi
    local entry sep="${separator@Q}"
    for entry in ${entries[@]+"${entries[@]}"}; do
        local q="${entry@Q}"
        if [ "$mode" = --prefix ]; then
            echo "$varName=\${$varName:+$sep\$$varName$sep}; $varName=\${$varName/$sep$q$sep/$sep}; $varName=$q\$$varName; $varName=\${$varName%$sep}"
        else
            echo "$varName=\${$varName:+$sep\$$varName$sep}; [[ \$$varName == *$sep$q$sep* ]] || $varName=\$$varName$q$sep; $varName=\${$varName#$sep}; $varName=\${$varName%$sep}"
        fi
        echo "export $varName"
    done
}

# wrapProgram PROG OPTIONS...: PROG moves to .PROG-wrapped beside it and PROG becomes the wrapper.
wrapProgram() {
    local prog="$1"
    shift
    local hidden
    hidden="$(dirname "$prog")/.$(basename "$prog")-wrapped"
    while [ -e "$hidden" ]; do
        hidden="${hidden}_"
    done
    mv "$prog" "$hidden"
    makeShellWrapper "$hidden" "$prog" --inherit-argv0 "$@"
}

if ! declare -F die >/dev/null; then
    die() {
        set +x
        echo
        echo "Builder called die: $*" >&2
        echo "Backtrace:" >&2
        local frame=0
        while caller $frame >&2; do
            ((frame++))
        done
        exit 1
    }
fi
