# The package set as a fixed point: the base packages (packages.nix), then each overlay (`final: prev: { … }`).
{ lib, config, overlays, system }:
let
  base = final: import ./packages.nix { inherit lib config overlays system final; };
  composed = lib.foldl' (f: overlay: lib.extends overlay f) base overlays;
in
lib.fix composed
