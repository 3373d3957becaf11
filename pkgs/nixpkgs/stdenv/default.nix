# fhskit's stdenv: `stdenv.mkDerivation` over Debian packages. Each build runs Debian's bash with our own setup
# script (./setup.sh) inside `fhskitRoot`, an FHS tree of the Debian packages of the stdenv and of the build's
# inputs (made by fhskit's `builtin:fhskit-root`), so Debian's gcc, make and coreutils run unmodified and find
# headers, libraries and pkg-config files at /usr as on an installed Debian system.
#
# A function of { lib, pkgs } returning the attributes merged into the package set: stdenv, stdenvNoCC, mkShell,
# mkShellNoCC and the helpers the other builders use (fhskitRootOf, fhskitDebsOf).
{ lib, pkgs }:
let
  inherit (builtins) filter concatMap isFunction isList isAttrs isString isPath toString attrNames;

  system = pkgs.system or pkgs.stdenv.hostPlatform.system or builtins.currentSystem;
  is32 = system == "i686-linux";
  multiarch = if is32 then "i386-linux-gnu" else "x86_64-linux-gnu";
  loaderName = if is32 then "ld-linux.so.2" else "ld-linux-x86-64.so.2";
  deb = name: pkgs.debian.${name};

  # ---------------------------------------------------------------------------------------------------------
  # Debian packages and the FHS tree of a build.

  # The Debian packages a build input brings into a build's tree: a Debian package itself, or the ones a
  # derivation of this stdenv carries (what its programs and libraries need at run time, its headers' deps).
  isDebian = x: isAttrs x && (x ? debianDepends || (x.isDebian or false) || (x.passthru.isDebian or false));
  debsOf = x:
    if isList x then concatMap debsOf x
    else if !(isAttrs x) then [ ]
    else if x ? fhskitDebs then x.fhskitDebs
    else if isDebian x then [ x ]
    else [ ];

  # The Debian dependency closure, when the package set gives the dependencies as derivations.
  debClosure = roots: map (e: e.val) (builtins.genericClosure {
    startSet = map (d: { key = d.outPath; val = d; }) roots;
    operator = e: map (d: { key = d.outPath; val = d; }) (filter isAttrs (e.val.debianDepends or [ ]));
  });

  flatten = x: if isList x then concatMap flatten x else [ x ];
  filterAttrs = pred: set: removeAttrs set (filter (n: !(pred n set.${n})) (attrNames set));
  reverseList = xs: let n = builtins.length xs; in builtins.genList (i: builtins.elemAt xs (n - i - 1)) n;

  # The FHS tree of a list of Debian packages (and the closure of their store references).
  fhskitRootOf = debs: derivation {
    name = "fhs-root";
    inherit system;
    builder = "builtin:fhskit-root";
    # Sorted, so the same packages make the same tree whatever order the inputs list them in (genericClosure
    # has made them unique; attribute names would lose the strings' context).
    paths = builtins.sort builtins.lessThan (map toString (debClosure debs));
    preferLocalBuild = true;
    allowSubstitutes = false;
  };

  # ---------------------------------------------------------------------------------------------------------
  # The base packages (nixpkgs' initialPath and the C compiler), by their Debian names.

  noCCDebs = map deb [
    "bash" "dash" "coreutils" "findutils" "diffutils" "sed" "grep" "mawk" "tar" "gzip" "bzip2" "xz-utils"
    "make" "patch" "patchelf" "unzip"
  ];
  ccDebs = map deb [ "gcc" "g++" "binutils" "libc6-dev" ];

  bash = deb "bash";
  shell = "${bash}/bin/bash";
  libc = deb "libc6";
  # The loader of programs built here: glibc's ld.so in the store.
  dynamicLinker = "${libc}/lib/${multiarch}/${loaderName}";

  baseRoot = fhskitRootOf (noCCDebs ++ ccDebs);

  # A small derivation built with bash in the base tree (the stdenv's own pieces).
  runBash = name: env: script: derivation ({
    inherit name system;
    builder = shell;
    args = [ "-c" ''
      set -eu
      export PATH=/usr/bin:/bin
      ${script}
    '' ];
    fhskitRoot = baseRoot;
    preferLocalBuild = true;
    allowSubstitutes = false;
  } // env);

  # The C compiler: wrappers for Debian's gcc adding NIX_CFLAGS_COMPILE, NIX_CFLAGS_LINK and NIX_LDFLAGS (each
  # word of it as -Wl,WORD) as nixpkgs' wrappers do, and the nix-support files package files read.
  cc = runBash "gcc-wrapper-12" {
    wrapper = ./cc-wrapper.sh;
    inherit dynamicLinker shell;
    libc = libc;
    libcDev = deb "libc6-dev";
    gcc = deb "gcc";
    setupHook = ./cc-setup-hook.sh;
  } ''
    mkdir -p $out/bin $out/nix-support
    for pair in cc:gcc gcc:gcc c++:g++ g++:g++ cpp:cpp; do
      name=''${pair%%:*} real=''${pair#*:}
      sed -e "s|@shell@|$shell|g" -e "s|@real@|/usr/bin/$real|g" $wrapper > $out/bin/$name
      chmod +x $out/bin/$name
    done
    # Debian makes these links in maintainer scripts (alternatives), which unpacking does not run.
    ln -s /usr/bin/mawk $out/bin/awk
    printf '%s\n' "$dynamicLinker" > $out/nix-support/dynamic-linker
    printf '%s\n' "$libc" > $out/nix-support/orig-libc
    printf '%s\n' "$libcDev" > $out/nix-support/orig-libc-dev
    printf '%s\n' "$gcc" > $out/nix-support/orig-cc
    sed -e "s|@out@|$out|g" $setupHook > $out/nix-support/setup-hook
  '';

  noCCTools = runBash "stdenv-tools" { } ''
    mkdir -p $out/bin
    ln -s /usr/bin/mawk $out/bin/awk
  '';

  makeStdenv = { name, debs, defaultInputs, hasCC }:
    let
      setup = runBash name {
        setupSh = ./setup.sh;
        preamble = ''
          export SHELL=${shell}
          fhskitMultiarch=${multiarch}
          fhskitLoader=${dynamicLinker}
          fhskitDefaultInputs="${toString defaultInputs}"
          fhskitExtraLibDirs=""
        '' + lib.optionalString is32 ''
          # pkgconf is Multi-Arch: foreign, so the i386 tree has the amd64 program, whose built-in search path is
          # x86_64's; Debian selects i386's by the triplet-named link, which `pkg-config` in Makefiles is not.
          export PKG_CONFIG_LIBDIR=/usr/local/lib/${multiarch}/pkgconfig:/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig:/usr/lib/${multiarch}/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
          export PKG_CONFIG_SYSTEM_LIBRARY_PATH=/usr/lib/${multiarch}:/usr/lib
        '';
        passAsFile = [ "preamble" ];
      } ''
        mkdir -p $out
        cat $preamblePath $setupSh > $out/setup
      '';
      root = debs;
      self = {
        name = name;
        inherit system shell;
        outPath = setup.outPath;
        drvPath = setup.drvPath;
        type = "derivation";
        setup = setup;
        cc = if hasCC then cc else null;
        bintools = if hasCC then cc else null;
        isGNU = hasCC;
        isClang = false;
        isDarwin = false;
        isLinux = true;
        inherit (platform) hostPlatform buildPlatform targetPlatform;
        fhskitBaseDebs = debs;
        mkDerivation = mkDerivationWith self;
        fhskitRootOf = fhskitRootOf;
        # The environment of a derivation for a shell (nix-shell's view): see mkShell.
        initialPath = [ ];
      };
    in
    self;

  platform =
    let p = {
      inherit system;
      config = if is32 then "i686-unknown-linux-gnu" else "x86_64-unknown-linux-gnu";
      isLinux = true; isDarwin = false; isx86_64 = !is32; isi686 = is32; isx86_32 = is32; isx86 = true;
      isAarch64 = false; is64bit = !is32; is32bit = is32;
      libc = "glibc";
      parsed = { kernel.name = "linux"; cpu.name = if is32 then "i686" else "x86_64"; };
      linker = "bfd";
      extensions = { sharedLibrary = ".so"; executable = ""; };
    }; in { hostPlatform = p; buildPlatform = p; targetPlatform = p; };

  # ---------------------------------------------------------------------------------------------------------
  # mkDerivation.

  # Inputs as nixpkgs passes them: a derivation becomes its `dev` output (lib.getDev), nulls are dropped.
  getDev = x: if isAttrs x && (x.outputSpecified or false) then x else if isAttrs x && x ? dev then x.dev else x;
  inputList = name: attrs: map getDev (filter (x: x != null) (flatten (attrs.${name} or [ ])));

  extendDerivation = drv: extra:
    let
      outputs = drv.outputs or [ "out" ];
      common = drv // outputAttrs // { all = map (o: outputAttrs.${o}) outputs; } // extra;
      outputAttrs = builtins.listToAttrs (map (o: {
        name = o;
        value = common // {
          inherit (drv.${o}) type outputName drvPath outPath;
          outputSpecified = true;
        };
      }) outputs);
    in
    common // { inherit (drv) drvPath outPath; };

  # `finalAttrs: {…}` or an attribute set; the result carries overrideAttrs.
  mkDerivationWith = stdenv: fnOrAttrs:
    let
      fn = if isFunction fnOrAttrs then fnOrAttrs else (_: fnOrAttrs);
      finalAttrs = fn finalAttrs // { finalPackage = pkg; };
      pkg = build stdenv finalAttrs fn;
    in
    pkg;

  build = stdenv: attrs: fn:
    let
      name =
        if attrs ? name then attrs.name
        else if (attrs.version or null) == null && attrs ? pname then
          throw "The ‘version’ attribute cannot be null."
        else "${attrs.pname}-${attrs.version}";
      outputs = attrs.outputs or [ "out" ];
      doCheck = attrs.doCheck or false;
      inputs = {
        nativeBuildInputs = inputList "nativeBuildInputs" attrs
          ++ (if doCheck then inputList "nativeCheckInputs" attrs else [ ]);
        buildInputs = inputList "buildInputs" attrs ++ (if doCheck then inputList "checkInputs" attrs else [ ]);
        propagatedBuildInputs = inputList "propagatedBuildInputs" attrs;
        propagatedNativeBuildInputs = inputList "propagatedNativeBuildInputs" attrs;
        depsBuildBuild = inputList "depsBuildBuild" attrs;
      };
      allInputs = concatMap (n: inputs.${n}) (attrNames inputs);
      runtimeDebs = debsOf (inputs.buildInputs ++ inputs.propagatedBuildInputs ++ inputs.propagatedNativeBuildInputs);
      root = fhskitRootOf (stdenv.fhskitBaseDebs ++ debsOf allInputs ++ debsOf (attrs.fhskitExtraDebs or [ ]));
      envAttrs = attrs.env or { };
      overlapping = filter (n: attrs ? ${n}) (attrNames envAttrs);
      drvAttrs =
        filterAttrs (n: v: v != null)
          (removeAttrs attrs [ "meta" "passthru" "pos" "finalPackage" "env" "checkInputs" "nativeCheckInputs" "fhskitExtraDebs" ])
        // envAttrs
        // inputs
        // {
          inherit name outputs system;
          builder = stdenv.shell;
          args = [ "-e" ./default-builder.sh ];
          stdenv = stdenv.setup;
          fhskitRoot = root;
          fhskitDebianInputs = map toString (filter isDebian allInputs);
          doCheck = if doCheck then "1" else "";
        };
      # nixpkgs' check-meta: an unfree meta.license is refused unless allowed (config or NIXPKGS_ALLOW_UNFREE=1).
      license = (attrs.meta or { }).license or null;
      licenses = if isList license then license else if license == null then [ ] else [ license ];
      unfree = builtins.any (l: isAttrs l && (l.free or true) == false) licenses;
      cfg = pkgs.config or { };
      unfreeAllowed = (cfg.allowUnfree or false) || builtins.getEnv "NIXPKGS_ALLOW_UNFREE" == "1"
        || (cfg.allowUnfreePredicate or (_: false)) { inherit name; pname = attrs.pname or name; meta = attrs.meta or { }; };
      shortNames = builtins.concatStringsSep " " (map (l: if isAttrs l then l.shortName or "unknown" else toString l) licenses);
      unfreeMessage = ''
        Package ‘${name}’ in ${(attrs.meta or { }).position or "«unknown-file»"} has an unfree license (‘${shortNames}’), refusing to evaluate.

        a) To temporarily allow unfree packages, you can use an environment variable
           for a single invocation of the nix tools.

             $ export NIXPKGS_ALLOW_UNFREE=1

        b) For `nixos-rebuild` you can set
          { nixpkgs.config.allowUnfree = true; }
        in configuration.nix to override this.

        c) For `nix-env`, `nix-build`, `nix-shell` or any other Nix command you can add
          { allowUnfree = true; }
        to ~/.config/nixpkgs/config.nix.
      '';
      drv =
        if unfree && !unfreeAllowed then throw unfreeMessage
        else if overlapping != [ ] then
          throw "The ‘env’ attribute set cannot contain any attributes passed to derivation. The following attributes are overlapping: ${builtins.concatStringsSep ", " overlapping}"
        else derivation drvAttrs;
      passthru = attrs.passthru or { };
    in
    extendDerivation drv (passthru // {
      meta = (attrs.meta or { }) // { name = name; outputsToInstall = attrs.meta.outputsToInstall or [ (builtins.head outputs) ]; };
      inherit stdenv;
      fhskitDebs = runtimeDebs;
      fhskitRoot = root;
      overrideAttrs = f: mkDerivationWith stdenv (final:
        let prev = fn final; ext = f prev; in prev // (if isFunction ext then f final prev else ext));
      inputDerivation = derivation (drvAttrs // {
        name = "${name}-input-derivation";
        outputs = [ "out" ];
        args = [ "-c" "export > $out" ];
      });
    } // (if attrs ? pname then { inherit (attrs) pname; } else { })
      // (if attrs ? version then { inherit (attrs) version; } else { }));

  stdenvNoCC = makeStdenv { name = "stdenv-linux"; debs = noCCDebs; defaultInputs = [ noCCTools ]; hasCC = false; };
  stdenv = makeStdenv { name = "stdenv-linux"; debs = noCCDebs ++ ccDebs; defaultInputs = [ cc ]; hasCC = true; };

  # nix-shell's mkShell: a derivation whose environment a shell enters; building it only records that.
  mkShellWith = stdenv: { name ? "nix-shell", packages ? [ ], inputsFrom ? [ ], buildInputs ? [ ], nativeBuildInputs ? [ ], propagatedBuildInputs ? [ ], propagatedNativeBuildInputs ? [ ], ... }@attrs:
    let
      mergeInputs = n: (attrs.${n} or [ ]) ++ concatMap (d: d.${n} or [ ]) inputsFrom;
      rest = removeAttrs attrs [ "name" "packages" "inputsFrom" "buildInputs" "nativeBuildInputs" "propagatedBuildInputs" "propagatedNativeBuildInputs" ];
    in
    stdenv.mkDerivation ({
      inherit name;
      buildInputs = mergeInputs "buildInputs";
      nativeBuildInputs = packages ++ mergeInputs "nativeBuildInputs";
      propagatedBuildInputs = mergeInputs "propagatedBuildInputs";
      propagatedNativeBuildInputs = mergeInputs "propagatedNativeBuildInputs";
      shellHook = builtins.concatStringsSep "\n" (reverseList (map (d: d.shellHook or "") inputsFrom) ++ [ (attrs.shellHook or "") ]);
      phases = [ "nobuildPhase" ];
      nobuildPhase = ''
        echo
        echo "This derivation is not meant to be built, aborting";
        echo
        exit 1
      '';
    } // rest);
in
{
  inherit stdenv stdenvNoCC;
  mkShell = mkShellWith stdenv;
  mkShellNoCC = mkShellWith stdenvNoCC;
  fhskitRootOf = fhskitRootOf;
  fhskitDebsOf = debsOf;
}
