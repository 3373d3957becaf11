# The base package set (before overlays): Debian's packages as `debian.<name>`, the nixpkgs-style names of
# names.nix, `callPackage`, `pkgsi686Linux`, and the parts other files add (stdenv, build helpers, FHS envs: each
# merged in by one line at the end).
{ lib, config, overlays, system, final }:
let
  b = builtins;
  cfg = if lib.isFunction config then config { pkgs = final; } else config;
  allowUnfree = cfg.allowUnfree or false || b.getEnv "NIXPKGS_ALLOW_UNFREE" == "1";
  arches = {
    x86_64-linux = "amd64";
    i686-linux = "i386";
    aarch64-linux = "arm64";
    armv7l-linux = "armhf";
  };
  arch = arches.${system} or (b.throw "fhskit's package set has no Debian architecture for the system '${system}'");
  deb = import ./debian.nix {
    inherit lib arch allowUnfree;
    allowUnfreePredicate = cfg.allowUnfreePredicate or (_: false);
  };

  # One nixpkgs attribute: `out` the runtime packages, `dev` the -dev packages (when there are any); `lib` and `bin`
  # are `out`, as for nixpkgs' packages without such outputs. Each output is a derivation of its own (whose only
  # output is `out`, so `outputName` stays "out"); `outputs` and `outputSpecified` are as nixpkgs has them, so
  # `lib.getDev zlib` is `zlib.dev`.
  joinOutputs = outs:
    let
      names = map (o: o.name) outs;
      common = outputs // { outputs = names; all = map (n: outputs.${n}) names; };
      outputs = b.listToAttrs (map (o: {
        inherit (o) name;
        value = o.drv // common // { outputSpecified = true; drvPath = o.drv.drvPath; outPath = o.drv.outPath; };
      }) outs) // { lib = outputs.out; bin = outputs.out; };
      first = (b.head outs).drv;
    in first // common // { drvPath = first.drvPath; outPath = first.outPath; };
  p = runtime: dev: let
      out = deb.combine (b.head runtime) runtime;
      d = deb.combine (b.head dev) dev;
    in joinOutputs ([ { name = "out"; drv = out; } ] ++ lib.optional (dev != [ ]) { name = "dev"; drv = d; });
  t = name: p [ name ] [ ];
  named = import ./names.nix { inherit p t; };

  platform = {
    inherit system;
    config = { amd64 = "x86_64-unknown-linux-gnu"; i386 = "i686-unknown-linux-gnu"; arm64 = "aarch64-unknown-linux-gnu"; armhf = "armv7l-unknown-linux-gnueabihf"; }.${arch};
    parsed = { kernel.name = "linux"; cpu.name = lib.head (lib.splitString "-" system); };
    isLinux = true;
    isDarwin = false;
    isx86_64 = arch == "amd64";
    isi686 = arch == "i386";
    isx86_32 = arch == "i386";
    isx86 = arch == "amd64" || arch == "i386";
    isAarch64 = arch == "arm64";
    is64bit = arch == "amd64" || arch == "arm64";
    is32bit = arch == "i386" || arch == "armhf";
    libc = "glibc";
    debianArch = arch;
  };
in
named // {
  inherit lib system;
  config = cfg;
  pkgs = final;
  # Every Debian package of this architecture, by its Debian name.
  debian = deb.packages;
  xlibs = final.xorg;
  buildPlatform = platform;
  hostPlatform = platform;
  targetPlatform = platform;

  # nixpkgs' callPackage: a file's arguments taken from the set (and the xorg members), `override`-able.
  callPackage = lib.callPackageWith (final.xorg // final);
  callPackages = lib.callPackagesWith (final.xorg // final);
  newScope = extra: lib.callPackageWith (final.xorg // final // extra);

  # The same set for 32-bit x86 (Debian's i386 packages).
  pkgsi686Linux =
    if arch == "amd64" || arch == "i386"
    then import ./top-level.nix { inherit lib config overlays; system = "i686-linux"; }
    else b.throw "pkgsi686Linux exists only on x86 systems";
  callPackage_i686 = final.pkgsi686Linux.callPackage;
}
# Parts kept in directories of their own, each a function of `{ lib, pkgs }` returning attributes (one line each):
// import ./stdenv { inherit lib; pkgs = final; }
// import ./build-support { inherit lib; pkgs = final; }
// import ./build-fhsenv { inherit lib; pkgs = final; }
