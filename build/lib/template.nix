# fill: a template under build/templates/ with each @name@ replaced by
# vars.name, as given (callers shell-escape what goes into scripts). A
# placeholder left unfilled, or a value for one the template lacks, is an
# evaluation error naming it. Pure builtins, no nixpkgs: tested by
# build/tests/builders.nix; kdf/tests/nix_scripts.rs fills the same
# templates the same way.
let
  inherit (builtins)
    attrNames
    baseNameOf
    concatStringsSep
    filter
    isList
    map
    readFile
    replaceStrings
    split
    ;

  placeholders = text: map (m: builtins.head m) (filter isList (split "@([A-Za-z][A-Za-z0-9]*)@" text));
in
file: vars:
let
  template = readFile file;
  names = attrNames vars;
  unused = filter (n: !(builtins.elem n (placeholders template))) names;
  text = replaceStrings (map (n: "@${n}@") names) (map (n: vars.${n}) names) template;
  left = placeholders text;
in
if unused != [ ] then
  throw "build/templates/${baseNameOf file} has no placeholder @${concatStringsSep "@, @" unused}@"
else if left != [ ] then
  throw "build/templates/${baseNameOf file}: @${concatStringsSep "@, @" left}@ not filled"
else
  text
