# Kernel config fragments as data, with no nixpkgs: parse `CONFIG_X=...`
# lines, turn nixpkgs-style structured options (lib.kernel's yes/no/module/
# freeform) into the same data, merge (later wins), and render back to
# fragment lines. buildKernelConfig only wires these up; build/tests/config.nix
# checks them with `nix-instantiate --eval --strict`.
#
# A setting is `{ value; optional; }`: `value` is what follows `CONFIG_X=` in a
# .config ("y", "m", "n" for `# CONFIG_X is not set`, "\"text\"", "0x10",
# "64"), and `optional = true` (lib.kernel.option) means "set it if the kernel
# has it": such settings are not verified.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    elemAt
    filter
    foldl'
    genList
    isAttrs
    isBool
    isInt
    isString
    length
    listToAttrs
    map
    match
    replaceStrings
    split
    substring
    throw
    ;

  lines = text: filter isString (split "\n" text);

  reverse = list: genList (i: elemAt list (length list - 1 - i)) (length list);

  # listToAttrs keeps the first of duplicate names: reversed, the last wins.
  lastWins = pairs: listToAttrs (reverse pairs);

  setting = value: {
    inherit value;
    optional = false;
  };

  # Keys are written without the CONFIG_ prefix, as in nixpkgs.
  checkName =
    name:
    if match "CONFIG_.*" name != null then
      throw "buildKernelConfig: structuredExtraConfig.${name}: write ${substring 7 (-1) name} (without CONFIG_), as in nixpkgs' structuredExtraConfig"
    else if match "[A-Za-z0-9_]+" name == null then
      throw "buildKernelConfig: structuredExtraConfig.\"${name}\" is not a kernel option name (letters, digits and _ only)"
    else
      name;

  # Freeform values: numbers and hex as they are, text quoted as in a .config.
  freeformValue =
    name: v:
    if isInt v then
      toString v
    else if !isString v then
      throw "buildKernelConfig: structuredExtraConfig.${name}: freeform takes a string or an integer"
    else if match "-?[0-9]+|0[xX][0-9a-fA-F]+|\".*\"" v != null then
      v
    else
      "\"${replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] v}\"";
in
rec {
  # One fragment line: { name; value; } (name without CONFIG_), or null for
  # comments, blank lines and anything that is not an assignment.
  parseLine =
    line:
    let
      set = match "[[:space:]]*CONFIG_([A-Za-z0-9_]+)=(.*[^[:space:]]|)[[:space:]]*" line;
      unset = match "[[:space:]]*#[[:space:]]*CONFIG_([A-Za-z0-9_]+) is not set[[:space:]]*" line;
    in
    if set != null then
      {
        name = elemAt set 0;
        value = elemAt set 1;
      }
    else if unset != null then
      {
        name = elemAt unset 0;
        value = "n";
      }
    else
      null;

  # A fragment's text as settings; a later line for the same option wins.
  parseFragment =
    text:
    lastWins (
      map (l: {
        inherit (l) name;
        value = setting l.value;
      }) (filter (l: l != null) (map parseLine (lines text)))
    );

  # One structured option as a setting, or null when it asks for nothing
  # (lib.kernel.unset, a false mkIf). Accepts lib.kernel's values and plain
  # booleans.
  fromStructured =
    name: v:
    let
      optional = v.optional or false;
    in
    if isBool v then
      setting (if v then "y" else "n")
    else if !isAttrs v then
      throw "buildKernelConfig: structuredExtraConfig.${name}: use lib.kernel.yes/no/module/freeform (got ${builtins.typeOf v})"
    # lib.mkIf / lib.mkForce / lib.mkDefault, as nixpkgs' configs use them.
    else if (v._type or null) == "if" then
      if v.condition then fromStructured name v.content else null
    else if (v._type or null) == "override" then
      fromStructured name v.content
    else if v ? freeform then
      {
        value = freeformValue name v.freeform;
        inherit optional;
      }
    else if v ? tristate then
      if v.tristate == null then
        null
      else if builtins.elem v.tristate [ "y" "m" "n" ] then
        {
          value = v.tristate;
          inherit optional;
        }
      else
        throw "buildKernelConfig: structuredExtraConfig.${name}: tristate must be \"y\", \"m\" or \"n\" (got ${toString v.tristate})"
    else
      throw "buildKernelConfig: structuredExtraConfig.${name}: use lib.kernel.yes/no/module/freeform (the attribute set has neither tristate nor freeform)";

  # A structuredExtraConfig attribute set as settings.
  fromStructuredConfig =
    config:
    listToAttrs (
      filter (s: s.value != null) (
        map (name: {
          name = checkName name;
          value = fromStructured name config.${name};
        }) (attrNames config)
      )
    );

  # Settings merged left to right: a later setting of an option replaces an
  # earlier one, as a later fragment does in scripts/kconfig/merge_config.sh.
  merge = foldl' (acc: s: acc // s) { };

  renderLine =
    name: value: if value == "n" then "# CONFIG_${name} is not set" else "CONFIG_${name}=${value}";

  # Settings as fragment lines, sorted by option name.
  render = settings: map (name: renderLine name settings.${name}.value) (attrNames settings);

  # The settings buildKernelConfig verifies: all but the optional ones.
  required =
    settings:
    listToAttrs (
      map (name: {
        inherit name;
        value = settings.${name};
      }) (filter (name: !settings.${name}.optional) (attrNames settings))
    );

  # Fragment text (one line per setting, trailing newline).
  toText = settings: concatStringsSep "" (map (l: l + "\n") (render settings));
}
