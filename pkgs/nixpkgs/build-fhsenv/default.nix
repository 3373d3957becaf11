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
  # The packages of `names` the set has (a name the repositories lack throws when used: it is left out).
  existing = names: set: builtins.filter (x: x != null) (map (n:
    let r = builtins.tryEval (getPath n set); in if r.success then r.value else null) names);

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

  # What every env has (buildFHSEnv's base: libc, the C++ runtime, a shell and the core tools).
  baseTarget = [
    "glibcLocales" "glibc" "gcc.cc.lib" "debian.libstdc++6" "debian.libgcc-s1" "bashInteractive" "coreutils"
    "less" "shadow" "su" "gawk" "diffutils" "findutils" "gnused" "gnugrep" "gnutar" "gzip" "bzip2" "xz"
  ];
  baseMulti = [ "glibc" "gcc.cc.lib" "debian.libstdc++6" "debian.libgcc-s1" ];

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
      targetPaths = existing baseTarget pkgs ++ flatten (targetPkgs pkgs) ++ flatten (multiPkgs pkgs);
      multiPaths = if multi then existing baseMulti pkgs32 ++ flatten (multiPkgs pkgs32) else [ ];
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

  # steam-run: any program in an env holding Steam's library set, 64- and 32-bit (names the set does not have are
  # left out).
  steamLibraries = [
    "xorg.libXcomposite" "xorg.libXtst" "xorg.libXrandr" "xorg.libXext" "xorg.libX11" "xorg.libXfixes" "libGL"
    "libva" "harfbuzz" "libthai" "pango" "vulkan-loader" "expat" "wayland" "xorg.libxcb" "xorg.libXdamage"
    "xorg.libxshmfence" "xorg.libXxf86vm" "elfutils" "xorg.libXinerama" "xorg.libXcursor" "xorg.libXrender"
    "xorg.libXScrnSaver" "xorg.libXi" "xorg.libSM" "xorg.libICE" "curl" "nspr" "nss" "cups" "libcap" "SDL2"
    "libusb1" "dbus-glib" "fontconfig" "freetype" "xorg.libXt" "xorg.libXmu" "libogg" "libvorbis" "SDL"
    "SDL2_image" "libdrm" "zlib" "udev" "dbus" "glib" "gtk2" "bzip2" "flac" "libjpeg" "libpng" "libsamplerate"
    "libtheora" "libtiff" "pixman" "speex" "SDL2_ttf" "SDL2_mixer" "libgcrypt" "libvpx" "librsvg" "xorg.libXft"
    "libvdpau" "attr" "libkrb5" "keyutils" "at-spi2-atk" "at-spi2-core" "libxkbcommon" "libxcrypt" "ncurses"
    "openssl" "gtk3" "atk" "cairo" "gdk-pixbuf" "libGLU" "libuuid" "libbsd" "alsa-lib" "libidn2" "libpsl"
    "libpulseaudio" "openal"
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
    targetPkgs = p: existing [ "which" "perl" "xdg-utils" "iana-etc" "python3" "procps" "usbutils" "pciutils" ] p;
    multiPkgs = p: existing steamLibraries p;
    multiArch = true;
    runScript = "sh ${steamRunScript}";
    meta.description = "Run commands in the same FHS environment that is used for Steam";
  };
}
