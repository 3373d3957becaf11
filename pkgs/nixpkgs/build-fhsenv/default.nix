# buildFHSEnv, buildFHSUserEnv and steam-run for fhskit's package set (h17c; our own code, not nixpkgs').
#
# The root tree `<name>-fhs` is built by fhskit's builder `builtin:fhsenv` (the fhsenv crate: a symlink farm with
# merged /usr, 64-bit libraries in /usr/lib, 32-bit ones in /usr/lib32, our own ld.so.cache, /etc/profile), from the
# Debian dependency closure of the packages. `<name>` holds `bin/<name>`, a launcher that enters the tree with
# `fhskit env run` (user and mount namespaces, no bwrap). `.env` is what `fhskit shell` enters; building it fails
# with nixpkgs' message. Nix itself cannot build `builtin:fhsenv`; the .drv files stay valid for it.
{ lib ? null, pkgs, ... }:
let
  isDrv = x: builtins.isAttrs x && (x.type or null) == "derivation";

  # `a.b.c` of `set`, or null.
  getPath = path: set:
    builtins.foldl'
      (s: n: if s != null && builtins.isAttrs s && s ? ${n} then s.${n} else null)
      set
      (builtins.filter builtins.isString (builtins.split "\\." path));
  # The packages of `names` the set has.
  existing = names: set: builtins.filter (x: x != null) (map (n: getPath n set) names);

  # Packages by Debian name where the set has Debian packages (those the repositories lack are left out: a
  # nixpkgs name of a missing package fails when used, which no `tryEval` catches), else by nixpkgs name.
  pick = debianNames: nixNames: set:
    if set ? debian then
      builtins.filter (x: x != null) (map (n: if set.debian ? ${n} then set.debian.${n} else null) debianNames)
    else existing nixNames set;

  flatten = xs: if builtins.isList xs then builtins.concatMap flatten xs else [ xs ];

  # The Debian dependencies of a package derivation: the package set's Debian packages keep them as the derivation
  # attribute `deps`; `debianDepends` and `propagatedBuildInputs` count where they hold derivations.
  depsOf = p:
    builtins.filter isDrv (flatten [
      (p.drvAttrs.deps or [ ])
      (p.passthru.debianDepends or p.debianDepends or [ ])
      (p.propagatedBuildInputs or [ ])
    ]);

  # The outputs of `p` an env links: out, lib and bin (as buildFHSEnv), plus the ones asked for.
  outputsOf = extra: p:
    let
      names = p.outputs or [ "out" ];
      wanted = builtins.filter (o: builtins.elem o names) ([ "out" "lib" "bin" ] ++ extra);
    in
    if p ? outputSpecified && p.outputSpecified then [ p ]
    else builtins.filter isDrv (map (o: if o == "out" then p.out or p else p.${o} or null) wanted);

  # Every package of `roots` with its Debian dependencies, each once, in first-seen order (earlier wins in the env).
  closure = extra: roots:
    map (e: e.pkg) (builtins.genericClosure {
      startSet = map (p: { key = p.outPath; pkg = p; })
        (builtins.concatMap (outputsOf extra) (builtins.filter isDrv (flatten roots)));
      operator = e: map (p: { key = p.outPath; pkg = p; })
        (builtins.concatMap (outputsOf extra) (builtins.filter isDrv (flatten (depsOf e.pkg))));
    });

  system = pkgs.stdenv.hostPlatform.system or pkgs.system or builtins.currentSystem;

  # What every env has (buildFHSEnv's base: libc, the C++ runtime, a shell and the core tools), by Debian name and
  # by nixpkgs name.
  baseTarget = pick
    [ "locales" "libc6" "libgcc-s1" "libstdc++6" "bash" "coreutils" "less" "passwd" "login" "gawk" "mawk"
      "diffutils" "findutils" "sed" "grep" "tar" "gzip" "bzip2" "xz-utils" ]
    [ "glibcLocales" "glibc" "gcc.cc.lib" "bashInteractive" "coreutils" "less" "shadow" "su" "gawk" "diffutils"
      "findutils" "gnused" "gnugrep" "gnutar" "gzip" "bzip2" "xz" ];
  baseMulti = pick [ "libc6" "libgcc-s1" "libstdc++6" ] [ "glibc" "gcc.cc.lib" ];

  runCommandLocal = pkgs.runCommandLocal or pkgs.runCommand;

  buildFHSEnv =
    args@{ name ? null
    , pname ? null
    , version ? null
    , targetPkgs ? (p: [ ])
    , multiPkgs ? (p: [ ])
    , multiArch ? args ? multiPkgs
    , runScript ? "bash"
    , profile ? ""
    , extraInstallCommands ? ""
    , extraOutputsToInstall ? [ ]
    , meta ? { }
    , passthru ? { }
    , privateTmp ? false
    , dieWithParent ? true
    , unshareUser ? false
    , unshareIpc ? false
    , unsharePid ? false
    , unshareNet ? false
    , unshareUts ? false
    , unshareCgroup ? false
    , ...
    }:
    assert (name != null) || (pname != null && version != null)
      || throw "buildFHSEnv: either 'name' or both 'pname' and 'version' must be given";
    let
      fullName = if name != null then name else "${pname}-${version}";
      exe = if pname != null then pname else fullName;
      pkgs32 = pkgs.pkgsi686Linux or (throw "buildFHSEnv ${fullName}: multiPkgs needs pkgsi686Linux (the i386 packages), which this package set lacks");
      multi = multiArch && system == "x86_64-linux";
      targetPaths = baseTarget pkgs ++ flatten (targetPkgs pkgs) ++ flatten (multiPkgs pkgs);
      multiPaths = if multi then baseMulti pkgs32 ++ flatten (multiPkgs pkgs32) else [ ];
      script = if builtins.isList runScript then builtins.concatStringsSep " " (map toString runScript) else toString runScript;

      fhs = derivation {
        name = "${fullName}-fhs";
        inherit system;
        builder = "builtin:fhsenv";
        envName = fullName;
        packages = closure extraOutputsToInstall targetPaths;
        multiPackages = closure extraOutputsToInstall multiPaths;
        runScript = script;
        inherit profile privateTmp dieWithParent unshareUser unshareIpc unsharePid unshareNet unshareUts unshareCgroup;
        preferLocalBuild = true;
        allowSubstitutes = false;
      };

      # The command that enters the env; `fhskit` from PATH unless FHSKIT names it.
      enter = "exec \"\${FHSKIT:-fhskit}\" env run ${fhs} -- ${script}";

      env = derivation {
        name = "${fullName}-shell-env";
        inherit system;
        builder = "/bin/sh";
        args = [ "-c" "echo >&2 ''; echo >&2 \"*** User chroot 'env' attributes are intended for interactive nix-shell sessions, not for building! ***\"; echo >&2 ''; exit 1" ];
        fhskitEnv = fhs;
        shellHook = enter;
      };
    in
    (runCommandLocal fullName
      {
        inherit meta;
        passthru = passthru // { inherit env fhs; fhsenv = fhs; args = args; };
      }
      ''
        mkdir -p $out/bin
        cat > $out/bin/${exe} <<'FHSKIT_LAUNCHER'
        #!/bin/sh
        # Enters the FHS env ${fullName} (built by fhskit; needs fhskit on PATH, or FHSKIT naming it).
        ${enter} "$@"
        FHSKIT_LAUNCHER
        chmod +x $out/bin/${exe}
        ${extraInstallCommands}
      '') // { inherit env fhs; fhsenv = fhs; };

  # steam-run: any program in an env holding Steam's library set (multiPkgs of nixpkgs' steam env), 64- and 32-bit;
  # the Debian packages the repositories lack are left out.
  steamDebian = [
    "libxcomposite1" "libxtst6" "libxrandr2" "libxext6" "libx11-6" "libxfixes3" "libgl1" "libglx0" "libegl1"
    "libva2" "libharfbuzz0b" "libthai0" "libpango-1.0-0" "libvulkan1" "libexpat1" "libwayland-client0" "libxcb1"
    "libxdamage1" "libxshmfence1" "libxxf86vm1" "libelf1" "libxinerama1" "libxcursor1" "libxrender1" "libxss1"
    "libxi6" "libsm6" "libice6" "libcurl4" "libnspr4" "libnss3" "libcups2" "libcap2" "libsdl2-2.0-0"
    "libusb-1.0-0" "libdbus-glib-1-2" "libfontconfig1" "libfreetype6" "libxt6" "libxmu6" "libogg0" "libvorbis0a"
    "libvorbisfile3" "libsdl1.2debian" "libsdl2-image-2.0-0" "libdrm2" "zlib1g" "libudev1" "libdbus-1-3"
    "libglib2.0-0" "libgtk2.0-0" "libbz2-1.0" "libflac12" "libjpeg62-turbo" "libpng16-16" "libsamplerate0"
    "libtheora0" "libtiff6" "libpixman-1-0" "libspeex1" "libsdl2-ttf-2.0-0" "libsdl2-mixer-2.0-0" "libgcrypt20"
    "libvpx7" "librsvg2-2" "libxft2" "libvdpau1" "libattr1" "libkrb5-3" "libkeyutils1" "libatk-bridge2.0-0"
    "libatspi2.0-0" "libxkbcommon0" "libcrypt1" "libncursesw6" "libtinfo6" "libssl3" "libgtk-3-0" "libatk1.0-0"
    "libcairo2" "libgdk-pixbuf-2.0-0" "libglu1-mesa" "libuuid1" "libbsd0" "libasound2" "libidn2-0" "libpsl5"
    "libpulse0" "libopenal1"
  ];
  steamNix = [
    "xorg.libXcomposite" "xorg.libXtst" "xorg.libXrandr" "xorg.libXext" "xorg.libX11" "xorg.libXfixes" "libGL"
    "vulkan-loader" "expat" "xorg.libxcb" "xorg.libXinerama" "xorg.libXcursor" "xorg.libXrender" "xorg.libXi"
    "curl" "nspr" "nss" "SDL2" "fontconfig" "freetype" "zlib" "udev" "dbus" "glib" "gtk3" "alsa-lib" "openal"
  ];
  steamRunScript = builtins.toFile "steam-run.sh" ''
    if [ $# -eq 0 ]; then
      echo "Usage: steam-run command-to-run args..." >&2
      exit 1
    fi
    export LD_LIBRARY_PATH="/lib64:/lib32''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec -- "$@"
  '';
in
{
  inherit buildFHSEnv;
  # `fhskit env`'s package names: the packages an env of `roots` holds (outputs out, lib, bin and `extra`, with
  # their Debian dependencies), first-seen order.
  buildFHSEnvClosure = closure;
  buildFHSUserEnv = buildFHSEnv;
  buildFHSEnvBubblewrap = buildFHSEnv;
  steam-run = buildFHSEnv {
    name = "steam-run";
    targetPkgs = pick [ "debianutils" "perl" "xdg-utils" "netbase" "python3" "procps" "usbutils" "pciutils" ]
      [ "which" "perl" "xdg-utils" "iana-etc" "python3" "procps" "usbutils" "pciutils" ];
    multiPkgs = pick steamDebian steamNix;
    multiArch = true;
    runScript = "sh ${steamRunScript}";
    meta.description = "Run commands in the same FHS environment that is used for Steam";
  };
}
