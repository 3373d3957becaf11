# Every Debian package as a derivation: `debian.<name>` for the set's architecture. A package is two derivations:
# its `.deb`, fetched with `builtin:fetchurl` and the SHA-256 the signed index gives (pinned by fhskit.lock), and
# its store path, made by fhskit's `builtin:fhskit-deb` (the .deb unpacked, its ELF objects given the loader and the
# run path of their dependencies, nixpkgs' bin/lib/include/share as links). The records come from the primops
# `__fhskitDebianPackage` and `__fhskitDebianSet`, which only fhskit has.
{ lib, arch, allowUnfree, allowUnfreePredicate ? (_: false) }:
let
  b = builtins;

  machine = {
    amd64 = { triplet = "x86_64-linux-gnu"; loader = "lib/ld-linux-x86-64.so.2"; };
    i386 = { triplet = "i386-linux-gnu"; loader = "lib/ld-linux.so.2"; };
    arm64 = { triplet = "aarch64-linux-gnu"; loader = "lib/ld-linux-aarch64.so.1"; };
    armhf = { triplet = "arm-linux-gnueabihf"; loader = "lib/ld-linux-armhf.so.3"; };
  };

  # Store path names allow letters, digits and `+-._?=`; Debian versions also use `:` (after an epoch, which
  # names leave out as .deb file names do) and `~`.
  storeName = s: lib.sanitizeDerivationName s;
  noEpoch = v: let m = b.match "[0-9]+:(.*)" v; in if m == null then v else b.head m;

  licenseOf = component:
    if component == "non-free" then lib.licenses.unfree
    else if component == "non-free-firmware" then lib.licenses.unfreeRedistributableFirmware
    else lib.licenses.free;

  # nixpkgs' wording (check-meta.nix) for a refused unfree package.
  unfreeMessage = name: license: ''
    Package ‘${name}’ in «unknown-file» has an unfree license (‘${license}’), refusing to evaluate.

    a) To temporarily allow unfree packages, you can use an environment variable
       for a single invocation of the nix tools.

         $ export NIXPKGS_ALLOW_UNFREE=1

       Note: When using `nix shell`, `nix build`, `nix develop`, etc with a flake,
             then pass `--impure` in order to allow use of environment variables.

    b) For `nixos-rebuild` you can set
      { nixpkgs.config.allowUnfree = true; }
    in configuration.nix to override this.

    Alternatively you can configure a predicate to allow specific packages:
      { nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [
          "${lib.getName name}"
        ];
      }

    c) For `nix-env`, `nix-build`, `nix-shell` or any other Nix command you can add
      { allowUnfree = true; }
    to ~/.config/nixpkgs/config.nix.
  '';

  # The set of one architecture: every package name of the index and the lock.
  setFor = a: sets.${a} or (mkSet a);
  sets = lib.genAttrs (b.attrNames machine) mkSet;

  mkSet = a:
    let
      m = machine.${a} or (b.throw "fhskit's package set does not know the Debian architecture '${a}'");
      self = __fhskitDebianSet a (name: mkPackage name);

      # A dependency `name:arch`: from this set (its own architecture or `all`), else the other architecture's.
      dep = key:
        let
          parts = lib.splitString ":" key;
          name = b.head parts;
          depArch = b.elemAt parts 1;
        in
        if depArch == a || depArch == "all" then get name else (setFor depArch).packages.${name};

      get = name: self.${name} or (mkPackage name);

      libcRecord = __fhskitDebianPackage "libc6" a;
      # The C library's own dependencies are not given its loader (they are what it needs).
      libcDeps = if libcRecord == null then [ ] else map (k: b.head (lib.splitString ":" k)) libcRecord.depends;

      mkPackage = name:
        let
          r = __fhskitDebianPackage name a;
          license = licenseOf r.component;
          version = r.version;
          fetched = derivation {
            name = storeName "${r.name}_${noEpoch version}_${r.architecture}.deb";
            builder = "builtin:fetchurl";
            system = "builtin";
            url = r.url;
            urls = [ r.url ];
            outputHashMode = "flat";
            outputHashAlgo = "sha256";
            outputHash = r.sha256;
            executable = false;
            unpack = false;
            preferLocalBuild = true;
            impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
          };
          withLibc = name != "libc6" && !(b.elem name libcDeps) && libcRecord != null;
          drv = derivation {
            name = storeName "${r.name}-${noEpoch version}";
            builder = "builtin:fhskit-deb";
            system = "builtin";
            debs = [ fetched ];
            deps = map dep r.depends;
            libc = if withLibc then self.libc6 else "";
            inherit (m) triplet loader;
            preferLocalBuild = true;
          };
          meta = {
            description = r.description;
            license = license;
            sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
            platforms = lib.platforms.linux;
            position = "«unknown-file»";
            debian = { inherit (r) name version architecture component sha256 url; };
          };
          allowed = license.free || allowUnfree || allowUnfreePredicate { pname = r.name; inherit version; name = "${r.name}-${noEpoch version}"; inherit meta; };
        in
        if r == null then b.throw "there is no Debian package '${name}' for ${a} in the configured repositories (see 'fhskit pkgs search')"
        else if !allowed then b.throw (unfreeMessage "${r.name}-${noEpoch version}" license.shortName)
        else drv // rec {
          pname = r.name;
          inherit version meta;
          deb = fetched;
          # The Debian dependencies (derivations, cycles broken) and their `name:arch` keys.
          debianDepends = map dep r.depends;
          debianKeys = r.depends;
          isDebian = true;
          passthru = { inherit debianDepends isDebian; };
        };

      # Several packages as one store path (a nixpkgs attribute that Debian splits, such as libGL's libgl1,
      # libglx0 and libegl1): their .debs unpacked together, their dependencies outside the group joined.
      combine = name: members:
        if b.length members == 1 then get (b.head members)
        else
          let
            pkgs = map get members;
            keys = b.concatMap (p: [ "${p.pname}:${a}" "${p.pname}:all" ]) pkgs;
            depKeys = lib.unique (lib.subtractLists keys (b.concatMap (p: p.debianKeys) pkgs));
            first = b.head pkgs;
            withLibc = !(b.elem "libc6" members);
          in
          derivation {
            name = storeName "${name}-${noEpoch first.version}";
            builder = "builtin:fhskit-deb";
            system = "builtin";
            debs = map (p: p.deb) pkgs;
            deps = map dep depKeys;
            libc = if withLibc && libcRecord != null then self.libc6 else "";
            inherit (m) triplet loader;
            preferLocalBuild = true;
          } // rec {
            pname = name;
            inherit (first) version;
            meta = first.meta // { debianPackages = members; };
            debianDepends = map dep depKeys;
            debianKeys = depKeys;
            isDebian = true;
            passthru = { inherit debianDepends isDebian; };
          };
    in
    { packages = self; inherit combine; };
in
{
  inherit setFor storeName;
  inherit (setFor arch) packages combine;
}
