# fhskit's package set: `import <nixpkgs> {}` when NIX_PATH and -I name no other nixpkgs (docs/nixpkgs.md).
# Arguments as nixpkgs takes them; `config` and `overlays` default to the user's ~/.config/nixpkgs files.
{ config ? null
, overlays ? null
, system ? builtins.currentSystem or "x86_64-linux"
, localSystem ? null
, crossSystem ? null
, crossOverlays ? [ ]
, ...
}:
let
  b = builtins;
  lib = import ./lib;
  home = b.getEnv "HOME";
  xdg = let x = b.getEnv "XDG_CONFIG_HOME"; in if x != "" then x else "${home}/.config";
  firstExisting = paths: let found = b.filter b.pathExists paths; in if found == [ ] then null else b.head found;

  # nixpkgs' order: NIXPKGS_CONFIG, then ~/.config/nixpkgs/config.nix, then ~/.nixpkgs/config.nix.
  configFile =
    let env = b.getEnv "NIXPKGS_CONFIG"; in
    if env != "" then env else firstExisting [ "${xdg}/nixpkgs/config.nix" "${home}/.nixpkgs/config.nix" ];
  userConfig = if config != null then config else if configFile != null then import configFile else { };

  # nixpkgs' order: <nixpkgs-overlays> in the search path, then ~/.config/nixpkgs/overlays(.nix), then
  # ~/.nixpkgs/overlays(.nix). A directory holds overlay files (`*.nix`) and directories with a default.nix.
  fromPath = path:
    if b.readFileType path == "directory" then
      let
        entries = b.readDir path;
        use = n: (entries.${n} == "regular" && lib.hasSuffix ".nix" n)
          || (entries.${n} == "directory" && b.pathExists "${path}/${n}/default.nix");
      in map (n: import "${path}/${n}") (b.filter use (b.attrNames entries))
    else import path;
  searchOverlays = b.tryEval <nixpkgs-overlays>;
  overlayPath =
    if searchOverlays.success then searchOverlays.value
    else firstExisting [ "${xdg}/nixpkgs/overlays.nix" "${xdg}/nixpkgs/overlays" "${home}/.nixpkgs/overlays.nix" "${home}/.nixpkgs/overlays" ];
  userOverlays = if overlays != null then overlays else if overlayPath != null then fromPath overlayPath else [ ];

  system' = if localSystem != null then localSystem.system or localSystem else system;
in
import ./top-level.nix { inherit lib; config = userConfig; overlays = userOverlays; system = system'; }
