# Tests for build/lib/config.nix, no nixpkgs needed:
#
#   nix-instantiate --eval --strict build/tests/config.nix
#
# prints "ok: N tests", or fails naming each test with what it got and expected.
# The flake's checks.<system>.config-lib evaluates this file too.
let
  c = import ../lib/config.nix;

  # lib.kernel's values, spelled out (nixpkgs lib/kernel.nix: yes/no/module/
  # unset/freeform/option), and lib.mkIf/mkForce (lib/modules.nix).
  yes = {
    tristate = "y";
    optional = false;
  };
  no = {
    tristate = "n";
    optional = false;
  };
  module = {
    tristate = "m";
    optional = false;
  };
  unset = {
    tristate = null;
    optional = false;
  };
  freeform = x: {
    freeform = x;
    optional = false;
  };
  option = x: x // { optional = true; };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkForce = content: {
    _type = "override";
    priority = 50;
    inherit content;
  };

  s = value: {
    inherit value;
    optional = false;
  };

  # Whether evaluating `x` (deeply) throws.
  throws = x: !(builtins.tryEval (builtins.deepSeq x x)).success;

  tests = {
    parseSetLine = {
      expr = c.parseLine "CONFIG_VIRTIO_FS=y";
      expected = {
        name = "VIRTIO_FS";
        value = "y";
      };
    };
    parseUnsetLine = {
      expr = c.parseLine "# CONFIG_RANDOMIZE_BASE is not set";
      expected = {
        name = "RANDOMIZE_BASE";
        value = "n";
      };
    };
    parseStringKeepsQuotesAndSpaces = {
      expr = c.parseLine "CONFIG_CMDLINE=\"console=ttyS0 quiet\"  ";
      expected = {
        name = "CMDLINE";
        value = "\"console=ttyS0 quiet\"";
      };
    };
    parseIgnoresCommentsAndBlankLines = {
      expr = map c.parseLine [
        "# a comment"
        ""
        "   "
        "not a config line"
      ];
      expected = [
        null
        null
        null
        null
      ];
    };
    fragmentLaterLineWins = {
      expr = c.parseFragment ''
        # VM basics
        CONFIG_MODULES=y
        CONFIG_NR_CPUS=8
        CONFIG_MODULES=m

        # CONFIG_SWAP is not set
      '';
      expected = {
        MODULES = s "m";
        NR_CPUS = s "8";
        SWAP = s "n";
      };
    };
    structuredTristates = {
      expr = c.fromStructuredConfig {
        A = yes;
        B = no;
        C = module;
        D = unset;
      };
      expected = {
        A = s "y";
        B = s "n";
        C = s "m";
      };
    };
    structuredBooleans = {
      expr = c.fromStructuredConfig {
        A = true;
        B = false;
      };
      expected = {
        A = s "y";
        B = s "n";
      };
    };
    structuredFreeform = {
      expr = c.fromStructuredConfig {
        NR_CPUS = freeform 64;
        PHYSICAL_START = freeform "0x1000000";
        LOG_BUF_SHIFT = freeform "17";
        CMDLINE = freeform "console=ttyS0 \"quoted\" back\\slash";
        LOCALVERSION = freeform "\"-kdf\"";
      };
      expected = {
        NR_CPUS = s "64";
        PHYSICAL_START = s "0x1000000";
        LOG_BUF_SHIFT = s "17";
        CMDLINE = s "\"console=ttyS0 \\\"quoted\\\" back\\\\slash\"";
        LOCALVERSION = s "\"-kdf\"";
      };
    };
    structuredMkIfAndMkForce = {
      expr = c.fromStructuredConfig {
        A = mkIf true yes;
        B = mkIf false yes;
        C = mkForce no;
      };
      expected = {
        A = s "y";
        C = s "n";
      };
    };
    structuredOptionIsNotRequired = {
      expr = c.required (
        c.fromStructuredConfig {
          KASAN = option yes;
          KCOV = yes;
        }
      );
      expected = {
        KCOV = s "y";
      };
    };
    structuredRejectsConfigPrefix = {
      expr = throws (c.fromStructuredConfig { CONFIG_KASAN = yes; });
      expected = true;
    };
    structuredRejectsBadNames = {
      expr = throws (c.fromStructuredConfig { "KASAN Y" = yes; });
      expected = true;
    };
    structuredRejectsStrings = {
      expr = throws (c.fromStructuredConfig { KASAN = "y"; });
      expected = true;
    };
    structuredRejectsBadTristate = {
      expr = throws (c.fromStructuredConfig {
        KASAN = {
          tristate = "yes";
        };
      });
      expected = true;
    };
    mergeLaterWins = {
      expr = c.merge [
        {
          A = s "y";
          B = s "y";
        }
        { B = s "n"; }
        { C = s "m"; }
      ];
      expected = {
        A = s "y";
        B = s "n";
        C = s "m";
      };
    };
    renderSortedWithUnsetComments = {
      expr = c.toText {
        VIRTIO = s "y";
        CMDLINE = s "\"quiet\"";
        SWAP = s "n";
        NR_CPUS = s "8";
      };
      expected = ''
        CONFIG_CMDLINE="quiet"
        CONFIG_NR_CPUS=8
        # CONFIG_SWAP is not set
        CONFIG_VIRTIO=y
      '';
    };
    renderParseRoundTrip = {
      expr =
        let
          settings = {
            A = s "y";
            B = s "n";
            C = s "\"x y\"";
            D = s "0x10";
          };
        in
        c.parseFragment (c.toText settings) == settings;
      expected = true;
    };
    fragmentsThenStructured = {
      expr = c.toText (
        c.merge [
          (c.parseFragment "CONFIG_RUST=y\nCONFIG_KASAN=y\n")
          (c.fromStructuredConfig {
            RUST = no;
            KCOV = option yes;
          })
        ]
      );
      expected = ''
        CONFIG_KASAN=y
        CONFIG_KCOV=y
        # CONFIG_RUST is not set
      '';
    };
  };

  failures = builtins.filter (name: tests.${name}.expr != tests.${name}.expected) (
    builtins.attrNames tests
  );
  describe =
    name:
    "${name}: got ${builtins.toJSON tests.${name}.expr}, expected ${builtins.toJSON tests.${name}.expected}";
in
if failures == [ ] then
  "ok: ${toString (builtins.length (builtins.attrNames tests))} tests"
else
  throw "build/lib/config.nix: ${toString (builtins.length failures)} test(s) failed:\n${builtins.concatStringsSep "\n" (map describe failures)}"
