# fhskit's builders for package files (nixpkgs' names and arguments, our own implementations): runCommand and
# friends, the write* family, symlinkJoin, buildEnv, makeSetupHook, makeWrapper, autoPatchelfHook, fetchurl,
# fetchzip. A function of { lib, pkgs } returning the attributes merged into the package set; it uses the stdenv
# of ../stdenv (pkgs.stdenv, pkgs.stdenvNoCC).
{ lib, pkgs }:
let
  inherit (builtins) isList concatStringsSep filter attrNames removeAttrs baseNameOf head length;
  inherit (pkgs) stdenv stdenvNoCC;

  runtimeShell = stdenv.shell;

  runCommandWith = { stdenv, name, runLocal ? false, derivationArgs ? { } }: buildCommand:
    stdenv.mkDerivation ({
      enableParallelBuilding = true;
      inherit buildCommand name;
      passAsFile = [ "buildCommand" ] ++ (derivationArgs.passAsFile or [ ]);
    } // (if runLocal then { preferLocalBuild = true; allowSubstitutes = false; } else { })
      // removeAttrs derivationArgs [ "passAsFile" ]);

  runCommand = name: env: runCommandWith { stdenv = stdenvNoCC; inherit name; derivationArgs = env; };
  runCommandLocal = name: env: runCommandWith { stdenv = stdenvNoCC; inherit name; runLocal = true; derivationArgs = env; };
  runCommandCC = name: env: runCommandWith { inherit stdenv name; derivationArgs = env; };

  writeTextFile =
    { name, text, executable ? false, destination ? "", checkPhase ? "", meta ? { }, allowSubstitutes ? false
    , preferLocalBuild ? true, derivationArgs ? { } }:
    runCommand name ({
      inherit text executable checkPhase allowSubstitutes preferLocalBuild meta destination;
      passAsFile = [ "text" ];
    } // derivationArgs) ''
      target=$out$destination
      mkdir -p "$(dirname "$target")"
      if [ -e "''${textPath:-}" ]; then
        mv "$textPath" "$target"
      else
        printf '%s' "$text" > "$target"
      fi
      if [ -n "$executable" ]; then
        chmod +x "$target"
      fi
      eval "$checkPhase"
    '';

  writeText = name: text: writeTextFile { inherit name text; };
  writeTextDir = path: text: writeTextFile { inherit text; name = baseNameOf path; destination = "/${path}"; };
  writeScript = name: text: writeTextFile { inherit name text; executable = true; };
  writeScriptBin = name: text: writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
  writeShellScript = name: text: writeTextFile {
    inherit name;
    executable = true;
    text = ''
      #!${runtimeShell}
      ${text}
    '';
    checkPhase = ''
      ${runtimeShell} -n "$target"
    '';
  };
  writeShellScriptBin = name: text: writeTextFile {
    inherit name;
    executable = true;
    destination = "/bin/${name}";
    text = ''
      #!${runtimeShell}
      ${text}
    '';
    checkPhase = ''
      ${runtimeShell} -n "$target"
    '';
    meta.mainProgram = name;
  };

  # symlinkJoin: one tree of links to the files of every path (later paths do not replace earlier ones).
  symlinkJoin = args@{ name, paths, preferLocalBuild ? true, allowSubstitutes ? false, postBuild ? "", ... }:
    runCommand name (removeAttrs args [ "name" "postBuild" ] // {
      inherit preferLocalBuild allowSubstitutes;
      passAsFile = [ "paths" ];
    }) ''
      mkdir -p $out
      for i in $(cat $pathsPath); do
        if [ -d "$i" ]; then
          fhskitLinkTree "$i" "$out" ignore
        fi
      done
      ${postBuild}
    '';

  # buildEnv: a profile-like tree of links to the given packages' outputs (pathsToLink only), directories merged;
  # two packages providing the same file is an error unless ignoreCollisions.
  buildEnv =
    { name, paths, pathsToLink ? [ "/" ], extraOutputsToInstall ? [ ], ignoreCollisions ? false
    , checkCollisionContents ? true, extraPrefix ? "", postBuild ? "", meta ? { }, passthru ? { }
    , nativeBuildInputs ? [ ], buildInputs ? [ ], manifest ? "", ... }:
    let
      outputsOf = p:
        if !(builtins.isAttrs p) then [ p ]
        else if p.outputSpecified or false then [ p ]
        else
          let wanted = (p.meta.outputsToInstall or [ "out" ]) ++ extraOutputsToInstall;
          in map (o: p.${o}) (filter (o: p ? ${o}) (uniqueList wanted));
      uniqueList = xs: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] xs;
      allPaths = builtins.concatMap outputsOf (filter (p: p != null) paths);
    in
    runCommand name {
      inherit extraPrefix meta passthru nativeBuildInputs buildInputs;
      pkgPaths = map toString allPaths;
      links = pathsToLink;
      collisions = if ignoreCollisions then "ignore" else if checkCollisionContents then "check" else "error";
      preferLocalBuild = true;
      allowSubstitutes = false;
      passAsFile = [ "pkgPaths" ];
    } ''
      mkdir -p "$out$extraPrefix"
      for p in $(cat $pkgPathsPath); do
        for l in $links; do
          l=''${l%/}
          if [ -d "$p$l" ]; then
            mkdir -p "$out$extraPrefix$l"
            fhskitLinkTree "$p$l" "$out$extraPrefix$l" "$collisions"
          elif [ -e "$p$l" ] && [ -n "$l" ]; then
            mkdir -p "$(dirname "$out$extraPrefix$l")"
            ln -s "$p$l" "$out$extraPrefix$l"
          fi
        done
      done
      ${postBuild}
    '';

  # makeSetupHook: a package whose nix-support/setup-hook is the script (with @name@ substitutions), sourced by
  # every build that has it among its inputs.
  makeSetupHook =
    { name ? "hook", deps ? [ ], propagatedBuildInputs ? [ ], depsTargetTargetPropagated ? [ ], substitutions ? { }
    , meta ? { }, passthru ? { } }:
    script:
    runCommand name (substitutions // {
      inherit meta passthru;
      hookScript = script;
      propagated = map toString ((if isList deps then deps else [ deps ]) ++ propagatedBuildInputs);
      substitutionNames = attrNames substitutions;
    }) ''
      mkdir -p $out/nix-support
      args=()
      for n in $substitutionNames; do
        args+=(--subst-var "$n")
      done
      substitute "$hookScript" $out/nix-support/setup-hook "''${args[@]}"
      if [ -n "$propagated" ]; then
        printf '%s\n' "$propagated" > $out/nix-support/propagated-native-build-inputs
      fi
    '';

  makeWrapper = makeSetupHook {
    name = "make-shell-wrapper-hook";
    substitutions = { shell = runtimeShell; };
  } ./setup-hooks/make-wrapper.sh;

  autoPatchelfHook = makeSetupHook {
    name = "auto-patchelf-hook";
  } ./setup-hooks/auto-patchelf.sh;

  # fetchurl: Nix's builtin:fetchurl as a fixed-output derivation (no download tool needed in the build).
  fetchurl =
    { url ? "", urls ? [ ], name ? null, hash ? "", sha256 ? "", sha512 ? "", sha1 ? "", md5 ? ""
    , outputHash ? "", outputHashAlgo ? "", executable ? false, recursiveHash ? false, meta ? { }
    , passthru ? { }, preferLocalBuild ? true, curlOpts ? "", curlOptsList ? [ ], postFetch ? ""
    , downloadToTemp ? false, ... }:
    let
      allUrls = if url != "" then [ url ] ++ urls else urls;
      given = filter (x: x.value != "") [
        { name = "hash"; value = hash; } { name = "sha256"; value = sha256; } { name = "sha512"; value = sha512; }
        { name = "sha1"; value = sha1; } { name = "outputHash"; value = outputHash; }
      ];
      h =
        if allUrls == [ ] then throw "fetchurl requires either `url` or `urls` to be set"
        else if md5 != "" then throw "fetchurl does not support md5 anymore, please use 'hash' attribute with an SRI hash"
        else if length given > 1 then throw "multiple hashes passed to fetchurl: ${concatStringsSep ", " (map (x: x.name) given)}"
        else if given == [ ] then throw "fetchurl requires a hash for fixed-output derivation: ${concatStringsSep ", " allUrls}"
        else head given;
      algo =
        if h.name == "hash" then ""
        else if h.name == "outputHash" then outputHashAlgo
        else h.name;
      fileName = baseNameOf (head allUrls);
      drv = derivation {
        name = if name != null then name else fileName;
        builder = "builtin:fetchurl";
        system = "builtin";
        url = head allUrls;
        urls = allUrls;
        outputHash = h.value;
        outputHashAlgo = algo;
        outputHashMode = if executable || recursiveHash then "recursive" else "flat";
        executable = executable;
        unpack = false;
        preferLocalBuild = true;
        impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
      };
    in
    if postFetch != "" || downloadToTemp then
      throw "fetchurl: postFetch and downloadToTemp are not supported by fhskit's fetchurl (builtin:fetchurl); use fetchzip or a runCommand on the fetched file"
    else drv // { inherit meta passthru; url = head allUrls; };

  # fetchzip: downloads an archive (zip or tarball) with Debian's curl in a fixed-output build and unpacks it; the
  # hash is that of the unpacked tree (with stripRoot, of its single top-level directory).
  fetchzip =
    { url ? "", urls ? [ ], name ? "source", hash ? "", sha256 ? "", outputHash ? "", outputHashAlgo ? ""
    , stripRoot ? true, extension ? null, postFetch ? "", extraPostFetch ? "", meta ? { }, passthru ? { }, ... }:
    let
      allUrls = if url != "" then [ url ] ++ urls else urls;
      h = if hash != "" then { value = hash; algo = ""; }
        else if sha256 != "" then { value = sha256; algo = "sha256"; }
        else if outputHash != "" then { value = outputHash; algo = outputHashAlgo; }
        else throw "fetchzip requires a hash for fixed-output derivation: ${concatStringsSep ", " allUrls}";
      archiveName = if extension != null then "download.${extension}" else baseNameOf (head allUrls);
    in
    stdenvNoCC.mkDerivation {
      inherit name meta passthru;
      fhskitExtraDebs = map (n: pkgs.debian.${n}) [ "curl" "ca-certificates" ];
      urls = allUrls;
      inherit archiveName stripRoot;
      postFetch = postFetch + extraPostFetch;
      outputHash = h.value;
      outputHashAlgo = h.algo;
      outputHashMode = "recursive";
      impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
      preferLocalBuild = true;
      buildCommand = ''
        export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
        mkdir download unpack
        ok=
        for u in $urls; do
          echo "trying $u"
          if curl --fail --location --silent --show-error --retry 2 -o "download/$archiveName" "$u"; then
            ok=1
            break
          fi
        done
        [ -n "$ok" ] || { echo "error: cannot download $urls"; exit 1; }
        (cd unpack && unpackFile "../download/$archiveName")
        if [ -n "$stripRoot" ]; then
          entries=(unpack/* unpack/.[!.]*)
          if [ ''${#entries[@]} != 1 ] || [ ! -d "''${entries[0]}" ]; then
            echo "error: zip file must contain a single directory."
            exit 1
          fi
          mv "''${entries[0]}" "$out"
        else
          mv unpack "$out"
        fi
        eval "$postFetch"
      '';
    };
in
{
  inherit runCommandWith runCommand runCommandLocal runCommandCC runtimeShell;
  inherit writeTextFile writeText writeTextDir writeScript writeScriptBin writeShellScript writeShellScriptBin;
  inherit symlinkJoin buildEnv makeSetupHook makeWrapper autoPatchelfHook fetchurl fetchzip;
  makeShellWrapper = makeWrapper;
}
