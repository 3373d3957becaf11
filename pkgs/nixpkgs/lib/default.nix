# fhskit's `lib`: the helpers package files use, written for fhskit (docs/nixpkgs.md lists them). Each follows the
# documented behaviour of nixpkgs' function of the same name.
let
  b = builtins;

  trivial = rec {
    id = x: x;
    const = x: _: x;
    flip = f: a: c: f c a;
    pipe = b.foldl' (x: f: f x);
    fix = f: let x = f x; in x;
    fix' = f: let x = f x // { __unfix__ = f; }; in x;
    extends = overlay: f: final: let prev = f final; in prev // overlay final prev;
    composeExtensions = f: g: final: prev:
      let fApplied = f final prev; prev' = prev // fApplied; in fApplied // g final prev';
    composeManyExtensions = b.foldl' (acc: o: composeExtensions acc o) (_: _: { });
    isFunction = f: b.isFunction f || (f ? __functor && isFunction (f.__functor f));
    functionArgs = f:
      if f ? __functor then f.__functionArgs or (functionArgs (f.__functor f)) else b.functionArgs f;
    setFunctionArgs = f: args: { __functor = self: f; __functionArgs = args; };
    mirrorFunctionArgs = f: g: setFunctionArgs g (functionArgs f);
    boolToString = x: if x then "true" else "false";
    min = x: y: if x < y then x else y;
    max = x: y: if x > y then x else y;
    mod = base: int: base - (int * (b.div base int));
    importJSON = path: b.fromJSON (b.readFile path);
    importTOML = path: b.fromTOML (b.readFile path);
    inNixShell = b.getEnv "IN_NIX_SHELL" != "";
    warn = msg: v:
      if b.elem (b.getEnv "NIX_ABORT_ON_WARN") [ "1" "true" "yes" ]
      then b.throw "warning: ${msg} (NIX_ABORT_ON_WARN is set)"
      else b.trace "warning: ${msg}" v;
    warnIf = c: msg: if c then warn msg else id;
    warnIfNot = c: msg: if c then id else warn msg;
    throwIf = c: msg: if c then b.throw msg else id;
    throwIfNot = c: msg: if c then id else b.throw msg;
    version = "24.05";
    release = "24.05";
    oldestSupportedRelease = 2311;
    isInOldestRelease = _: true;
    toHexString = i:
      let
        digits = "0123456789ABCDEF";
        go = n: if n < 16 then b.substring n 1 digits else go (b.div n 16) + b.substring (mod n 16) 1 digits;
      in go i;
  };

  lists = rec {
    inherit (b) head tail length elemAt filter elem genList concatLists concatMap all any sort partition;
    foldl' = b.foldl';
    foldr = op: nul: list:
      let len = b.length list; go = n: if n == len then nul else op (b.elemAt list n) (go (n + 1));
      in go 0;
    foldl = op: nul: list: b.foldl' op nul list;
    fold = foldr;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    toList = x: if b.isList x then x else [ x ];
    singleton = x: [ x ];
    forEach = xs: f: map f xs;
    flatten = x: if b.isList x then b.concatMap flatten x else [ x ];
    remove = e: b.filter (x: x != e);
    unique = b.foldl' (acc: e: if b.elem e acc then acc else acc ++ [ e ]) [ ];
    imap0 = f: list: b.genList (n: f n (b.elemAt list n)) (b.length list);
    imap1 = f: list: b.genList (n: f (n + 1) (b.elemAt list n)) (b.length list);
    ifilter0 = f: list: map (p: p.v) (b.filter (p: f p.i p.v) (imap0 (i: v: { inherit i v; }) list));
    findFirst = pred: default: list:
      let found = b.filter pred list; in if found == [ ] then default else b.head found;
    findSingle = pred: default: multiple: list:
      let found = b.filter pred list; n = b.length found;
      in if n == 0 then default else if n == 1 then b.head found else multiple;
    count = pred: b.foldl' (c: x: if pred x then c + 1 else c) 0;
    last = list: b.elemAt list (b.length list - 1);
    init = list: b.genList (n: b.elemAt list n) (b.length list - 1);
    range = first: last: if first > last then [ ] else b.genList (n: first + n) (last - first + 1);
    replicate = n: x: b.genList (_: x) n;
    reverseList = xs: let l = b.length xs; in b.genList (n: b.elemAt xs (l - n - 1)) l;
    take = n: sublist 0 n;
    drop = n: list: sublist n (b.length list) list;
    sublist = start: count: list:
      let
        len = b.length list;
        n = if start >= len then 0 else if start + count > len then len - start else count;
      in b.genList (i: b.elemAt list (i + start)) n;
    zipListsWith = f: fst: snd:
      b.genList (n: f (b.elemAt fst n) (b.elemAt snd n)) (trivial.min (b.length fst) (b.length snd));
    zipLists = zipListsWith (fst: snd: { inherit fst snd; });
    subtractLists = e: b.filter (x: !(b.elem x e));
    intersectLists = e: b.filter (x: b.elem x e);
    mutuallyExclusive = a: c: b.length a == 0 || !(b.any (x: b.elem x c) a);
    groupBy' = op: nul: pred: lst:
      b.foldl' (r: e: let key = pred e; in r // { ${key} = op (r.${key} or nul) e; }) { } lst;
    groupBy = pred: groupBy' (l: e: l ++ [ e ]) [ ] pred;
    sortOn = f: b.sort (x: y: f x < f y);
    crossLists = f: foldl' (fs: args: concatMap (f: map f args) fs) [ f ];
    naturalSort = b.sort (x: y: x < y);
    compareLists = cmp: a: c:
      if a == [ ] then (if c == [ ] then 0 else -1)
      else if c == [ ] then 1
      else let r = cmp (b.head a) (b.head c); in if r == 0 then compareLists cmp (b.tail a) (b.tail c) else r;
  };

  strings = rec {
    inherit (b) stringLength substring replaceStrings toString match split concatStringsSep;
    concatStrings = b.concatStringsSep "";
    concatMapStrings = f: list: concatStrings (map f list);
    concatMapStringsSep = sep: f: list: b.concatStringsSep sep (map f list);
    concatImapStringsSep = sep: f: list: b.concatStringsSep sep (lists.imap1 f list);
    concatLines = list: concatMapStrings (s: s + "\n") list;
    intersperse = sep: list:
      if list == [ ] then [ ] else b.tail (b.concatMap (x: [ sep x ]) list);
    optionalString = c: s: if c then s else "";
    hasPrefix = pref: str: b.substring 0 (b.stringLength pref) str == pref;
    hasSuffix = suff: str:
      let l = b.stringLength str; s = b.stringLength suff;
      in l >= s && b.substring (l - s) s str == suff;
    hasInfix = infix: content: b.match ".*${escapeRegex infix}.*" "${content}" != null;
    removePrefix = pref: str:
      if hasPrefix pref str then b.substring (b.stringLength pref) (b.stringLength str) str else str;
    removeSuffix = suff: str:
      if hasSuffix suff str then b.substring 0 (b.stringLength str - b.stringLength suff) str else str;
    stringToCharacters = s: b.genList (p: b.substring p 1 s) (b.stringLength s);
    escape = list: b.replaceStrings list (map (c: "\\${c}") list);
    escapeRegex = escape (stringToCharacters "\\[{()^$?*+|.");
    splitString = sep: s:
      let parts = b.split (escapeRegex (b.toString sep)) (b.toString s);
      in map (v: if b.isList v then "" else v) (b.filter b.isString parts);
    toLower = b.replaceStrings upperChars lowerChars;
    toUpper = b.replaceStrings lowerChars upperChars;
    lowerChars = stringToCharacters "abcdefghijklmnopqrstuvwxyz";
    upperChars = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    trim = s: let m = b.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s; in if m == null then "" else b.head m;
    escapeShellArg = arg:
      let s = b.toString arg;
      in if b.match "[[:alnum:],._+:@%/-]+" s == null then "'${b.replaceStrings [ "'" ] [ "'\\''" ] s}'" else s;
    escapeShellArgs = concatMapStringsSep " " escapeShellArg;
    toShellVar = name: value: "${name}=${escapeShellArg value}";
    makeSearchPath = subDir: paths:
      b.concatStringsSep ":" (map (path: path + "/" + subDir) (b.filter (x: x != null) paths));
    makeSearchPathOutput = output: subDir: pkgs: makeSearchPath subDir (map (attrsets.getOutput output) pkgs);
    makeLibraryPath = makeSearchPathOutput "lib" "lib";
    makeIncludePath = makeSearchPathOutput "dev" "include";
    makeBinPath = makeSearchPathOutput "bin" "bin";
    versionOlder = v1: v2: b.compareVersions v2 v1 == 1;
    versionAtLeast = v1: v2: !versionOlder v1 v2;
    getName = x: if b.isString x then (b.parseDrvName x).name else x.pname or (b.parseDrvName x.name).name;
    getVersion = x: if b.isString x then (b.parseDrvName x).version else x.version or (b.parseDrvName x.name).version;
    nameFromURL = url: sep:
      let components = splitString "/" url; filename = lists.last components;
      in b.head (splitString sep filename);
    enableFeature = flag: feature: "--${if flag then "enable" else "disable"}-${feature}";
    enableFeatureAs = flag: feature: value: enableFeature flag feature + optionalString flag "=${value}";
    withFeature = flag: feature: "--${if flag then "with" else "without"}-${feature}";
    withFeatureAs = flag: feature: value: withFeature flag feature + optionalString flag "=${value}";
    cmakeBool = name: v: "-D${name}:BOOL=${if v then "TRUE" else "FALSE"}";
    cmakeFeature = name: v: "-D${name}:STRING=${v}";
    mesonBool = name: v: "-D${name}=${trivial.boolToString v}";
    mesonOption = name: v: "-D${name}=${v}";
    mesonEnable = name: v: "-D${name}=${if v then "enabled" else "disabled"}";
    isStorePath = x:
      let s = b.toString x; dir = b.storeDir + "/";
      in hasPrefix dir s && b.match "[^/]+" (b.substring (b.stringLength dir) (b.stringLength s) s) != null;
    isStringLike = x: b.isString x || b.isPath x || x ? outPath || x ? __toString;
    toInt = s:
      let m = b.match "[[:space:]]*(-?[0-9]+)[[:space:]]*" s;
      in if m == null then b.throw "toInt: could not convert '${s}' to an integer" else b.fromJSON (b.head m);
    fileContents = file: removeSuffix "\n" (b.readFile file);
    sanitizeDerivationName = s:
      let
        cleaned = b.replaceStrings [ "/" ":" "~" " " ] [ "-" "-" "-" "-" ] s;
        kept = b.concatStringsSep "" (b.filter b.isString (b.split "[^[:alnum:]+._?=-]" cleaned));
        noDot = if hasPrefix "." kept then b.substring 1 (b.stringLength kept) kept else kept;
      in if noDot == "" then "unknown" else b.substring 0 207 noDot;
  };

  attrsets = rec {
    inherit (b) attrNames attrValues hasAttr getAttr listToAttrs removeAttrs intersectAttrs catAttrs mapAttrs;
    attrByPath = attrPath: default: e:
      if attrPath == [ ] then e
      else let n = b.head attrPath; in if e ? ${n} then attrByPath (b.tail attrPath) default e.${n} else default;
    hasAttrByPath = attrPath: e:
      if attrPath == [ ] then true
      else let n = b.head attrPath; in e ? ${n} && hasAttrByPath (b.tail attrPath) e.${n};
    setAttrByPath = attrPath: value:
      if attrPath == [ ] then value else { ${b.head attrPath} = setAttrByPath (b.tail attrPath) value; };
    getAttrFromPath = attrPath: set:
      attrByPath attrPath (b.throw "cannot find attribute '${b.concatStringsSep "." attrPath}'") set;
    attrVals = nameList: set: map (x: set.${x}) nameList;
    nameValuePair = name: value: { inherit name value; };
    filterAttrs = pred: set:
      b.listToAttrs (b.concatMap (name: let v = set.${name}; in if pred name v then [ (nameValuePair name v) ] else [ ]) (b.attrNames set));
    mapAttrs' = f: set: b.listToAttrs (map (attr: f attr set.${attr}) (b.attrNames set));
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (b.attrNames attrs);
    attrsToList = mapAttrsToList nameValuePair;
    concatMapAttrs = f: v: b.foldl' (acc: x: acc // x) { } (mapAttrsToList f v);
    genAttrs = names: f: b.listToAttrs (map (n: nameValuePair n (f n)) names);
    isDerivation = value: value.type or null == "derivation";
    optionalAttrs = c: as: if c then as else { };
    zipAttrsWithNames = names: f: sets:
      b.listToAttrs (map (name: { inherit name; value = f name (b.catAttrs name sets); }) names);
    zipAttrsWith = f: sets: b.zipAttrsWith f sets;
    zipAttrs = zipAttrsWith (name: values: values);
    foldAttrs = op: nul: list_of_attrs:
      b.foldl' (a: n: b.foldl' (a': name: a' // { ${name} = op n.${name} (a.${name} or nul); }) a (b.attrNames n)) { }
        (lists.reverseList list_of_attrs);
    recursiveUpdateUntil = pred: lhs: rhs:
      let
        f = attrPath: b.zipAttrsWith (n: values:
          let here = attrPath ++ [ n ]; in
          if b.length values == 1 || pred here (b.elemAt values 1) (b.head values)
          then b.head values else f here values);
      in f [ ] [ rhs lhs ];
    recursiveUpdate = recursiveUpdateUntil (path: lhs: rhs: !(b.isAttrs lhs && b.isAttrs rhs));
    collect = pred: attrs:
      if pred attrs then [ attrs ]
      else if b.isAttrs attrs then b.concatMap (collect pred) (b.attrValues attrs) else [ ];
    getOutput = output: pkg:
      if !pkg ? outputSpecified || !pkg.outputSpecified then pkg.${output} or pkg.out or pkg else pkg;
    getBin = getOutput "bin";
    getLib = getOutput "lib";
    getDev = getOutput "dev";
    getMan = getOutput "man";
    chooseDevOutputs = map getDev;
    updateManyAttrsByPath = updates: value:
      b.foldl' (acc: u: recursiveUpdate acc (setAttrByPath u.path (u.update (attrByPath u.path null acc)))) value updates;
    unionOfDisjoint = x: y:
      let both = b.attrNames (b.intersectAttrs x y);
      in if both == [ ] then x // y else b.throw "unionOfDisjoint: collision on ${b.concatStringsSep ", " both}";
    dontRecurseIntoAttrs = attrs: attrs // { recurseForDerivations = false; };
    recurseIntoAttrs = attrs: attrs // { recurseForDerivations = true; };
  };

  customisation = rec {
    makeOverridable = f:
      let
        wrapped = origArgs:
          let
            result = f origArgs;
            overrideWith = newArgs: origArgs // (if trivial.isFunction newArgs then newArgs origArgs else newArgs);
          in
          if b.isAttrs result then
            result // {
              override = newArgs: wrapped (overrideWith newArgs);
              overrideDerivation = fdrv: overrideDerivation result fdrv;
            } // attrsets.optionalAttrs (result ? overrideAttrs) {
              overrideAttrs = fdrv: makeOverridable (args: (f args).overrideAttrs fdrv) origArgs;
            }
          else if trivial.isFunction result then {
            override = newArgs: wrapped (overrideWith newArgs);
            __functor = self: result;
          }
          else result;
      in trivial.setFunctionArgs wrapped (trivial.functionArgs f);

    overrideDerivation = drv: f:
      let newDrv = derivation (drv.drvAttrs // (f drv));
      in b.removeAttrs drv [ "drvAttrs" ] // newDrv // { drvAttrs = drv.drvAttrs // (f drv); };

    callPackageWith = autoArgs: fn: args:
      let
        f = if trivial.isFunction fn then fn else import fn;
        fargs = trivial.functionArgs f;
        allArgs = b.intersectAttrs fargs autoArgs // args;
        missing = b.filter (n: !fargs.${n} && !allArgs ? ${n}) (b.attrNames fargs);
        where = if b.isPath fn || b.isString fn then " at ${b.toString fn}" else "";
      in
      if missing != [ ] then
        b.abort "lib.customisation.callPackageWith: Function called without required argument \"${b.head missing}\"${where}"
      else makeOverridable f allArgs;

    callPackagesWith = autoArgs: fn: args:
      let
        f = if trivial.isFunction fn then fn else import fn;
        auto = b.intersectAttrs (trivial.functionArgs f) autoArgs;
      in f (auto // args);

    makeScope = newScope: f:
      let
        self = f self // {
          newScope = scope: newScope (self // scope);
          callPackage = self.newScope { };
          overrideScope = g: makeScope newScope (trivial.extends g f);
          packages = f;
        };
      in self;
  };

  licenses =
    let
      mk = shortName: a: { inherit shortName; free = true; deprecated = false; } // a
        // { redistributable = a.redistributable or (a.free or true); };
      spdx = id: fullName: mk id { spdxId = id; inherit fullName; url = "https://spdx.org/licenses/${id}.html"; };
    in
    b.mapAttrs (n: v: v // { shortName = n; }) {
      free = mk "free" { fullName = "Unspecified free software license"; };
      unfree = mk "unfree" { fullName = "Unfree"; free = false; redistributable = false; };
      unfreeRedistributable = mk "unfreeRedistributable" { fullName = "Unfree redistributable"; free = false; redistributable = true; };
      unfreeRedistributableFirmware = mk "unfreeRedistributableFirmware" { fullName = "Unfree redistributable firmware"; redistributable = true; };
      gpl2Only = spdx "GPL-2.0-only" "GNU General Public License v2.0 only";
      gpl2Plus = spdx "GPL-2.0-or-later" "GNU General Public License v2.0 or later";
      gpl3Only = spdx "GPL-3.0-only" "GNU General Public License v3.0 only";
      gpl3Plus = spdx "GPL-3.0-or-later" "GNU General Public License v3.0 or later";
      lgpl21Only = spdx "LGPL-2.1-only" "GNU Lesser General Public License v2.1 only";
      lgpl21Plus = spdx "LGPL-2.1-or-later" "GNU Lesser General Public License v2.1 or later";
      lgpl3Plus = spdx "LGPL-3.0-or-later" "GNU Lesser General Public License v3.0 or later";
      agpl3Plus = spdx "AGPL-3.0-or-later" "GNU Affero General Public License v3.0 or later";
      mit = spdx "MIT" "MIT License";
      bsd2 = spdx "BSD-2-Clause" "BSD 2-clause \"Simplified\" License";
      bsd3 = spdx "BSD-3-Clause" "BSD 3-clause \"New\" or \"Revised\" License";
      asl20 = spdx "Apache-2.0" "Apache License 2.0";
      mpl20 = spdx "MPL-2.0" "Mozilla Public License 2.0";
      zlib = spdx "Zlib" "zlib License";
      isc = spdx "ISC" "ISC License";
      publicDomain = mk "publicDomain" { fullName = "Public Domain"; };
    };

  sourceTypes = {
    fromSource = { shortName = "fromSource"; isSource = true; };
    binaryNativeCode = { shortName = "binaryNativeCode"; isSource = false; };
    binaryBytecode = { shortName = "binaryBytecode"; isSource = false; };
    binaryFirmware = { shortName = "binaryFirmware"; isSource = false; };
  };

  platforms = rec {
    x86_64 = [ "x86_64-linux" ];
    i686 = [ "i686-linux" ];
    x86 = x86_64 ++ i686;
    aarch64 = [ "aarch64-linux" ];
    arm = [ "armv7l-linux" ];
    linux = x86 ++ aarch64 ++ arm ++ [ "riscv64-linux" "powerpc64le-linux" "s390x-linux" ];
    unix = linux;
    all = linux;
    darwin = [ ];
    windows = [ ];
  };

  versions = rec {
    splitVersion = b.splitVersion;
    major = v: b.elemAt (splitVersion v) 0;
    minor = v: b.elemAt (splitVersion v) 1;
    patch = v: b.elemAt (splitVersion v) 2;
    majorMinor = v: b.concatStringsSep "." (lists.take 2 (splitVersion v));
  };

  sources = rec {
    cleanSourceFilter = name: type:
      let base = b.baseNameOf (b.toString name); in
      !((type == "directory" && b.elem base [ ".git" ".svn" ".hg" "CVS" ])
        || strings.hasSuffix "~" base || b.match "^\\.sw[a-z]$" base != null || b.match "^\\..*\\.sw[a-z]$" base != null
        || strings.hasSuffix ".o" base || strings.hasSuffix ".so" base
        || (type == "symlink" && strings.hasPrefix "result" base));
    cleanSourceWith = { src, filter ? _: _: true, name ? null }:
      let orig = src._fhskitSource or { inherit src; filter = _: _: true; };
          both = n: t: orig.filter n t && filter n t;
      in {
        outPath = b.path { path = orig.src; filter = both; name = if name != null then name else "source"; };
        _fhskitSource = { src = orig.src; filter = both; };
      };
    cleanSource = src: cleanSourceWith { filter = cleanSourceFilter; inherit src; };
    sourceByRegex = src: regexes:
      cleanSourceWith {
        inherit src;
        filter = path: type:
          let rel = strings.removePrefix (b.toString src + "/") (b.toString path);
          in b.any (re: b.match re rel != null) regexes;
      };
    sourceFilesBySuffices = src: exts:
      cleanSourceWith {
        inherit src;
        filter = name: type: type == "directory" || b.any (e: strings.hasSuffix e (b.baseNameOf name)) exts;
      };
  };

  meta = {
    addMetaAttrs = newAttrs: drv: drv // { meta = (drv.meta or { }) // newAttrs; };
    dontDistribute = drv: drv // { meta = (drv.meta or { }) // { hydraPlatforms = [ ]; }; };
    lowPrio = drv: drv // { meta = (drv.meta or { }) // { priority = 10; }; };
    hiPrio = drv: drv // { meta = (drv.meta or { }) // { priority = -10; }; };
    getExe = x:
      let name = x.meta.mainProgram or (strings.getName x);
      in "${attrsets.getBin x}/bin/${name}";
    getExe' = x: y: "${attrsets.getBin x}/bin/${y}";
  };

  asserts = {
    assertMsg = pred: msg: pred || b.throw msg;
    assertOneOf = name: val: xs:
      b.elem val xs || b.throw "${name} must be one of ${b.toJSON xs}, but is: ${b.toJSON val}";
  };

  hashes = {
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    fakeSha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    fakeSha512 = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
  };

  lib = trivial // lists // strings // attrsets // customisation // meta // asserts // hashes // {
    inherit trivial lists strings attrsets customisation licenses sourceTypes platforms versions sources meta asserts;
    inherit (sources) cleanSource cleanSourceWith cleanSourceFilter sourceByRegex sourceFilesBySuffices;
    maintainers = { };
    teams = { };
    systems = { flakeExposed = platforms.linux; };
    inherit (b) isAttrs isList isString isInt isBool isPath isFloat typeOf seq deepSeq tryEval elem map
      toJSON fromJSON readFile pathExists baseNameOf dirOf;
    # `lib.extend`: the same set with an overlay applied.
    extend = f: lib // f lib lib;
  };
in
lib
