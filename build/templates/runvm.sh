# runvm: `kdf run` booting a Nix-built kernel with kdf's initramfs, in a
# directory whose modules/ holds the Nix-built modules (unstripped, symlinks
# the guest reaches through the shared /): `insmod modules/helloworld.ko`.
# The host's working directory is shared read-write at its own path.
#
#   runvm                      an interactive shell in the VM
#   runvm -d                   the same, with a GDB stub on :1234 (see rungdb)
#   runvm -- uname -r          one command; runvm exits with its status
#
# A template: build/qemu-cmd.nix fills the @...@ placeholders with store
# paths, kdf/tests/nix_scripts.rs with local ones and runs it.
workdir=@workdir@
args=()
if @preload@; then
    # buildQemuCmd { preload = true; }: kdf loads each module before the
    # command (and unloads it after), instead of leaving it to insmod.
    shopt -s nullglob
    for ko in "$workdir"/modules/*.ko; do
        args+=(--module "$ko")
    done
fi
# nokaslr: the kernel stays where vmlinux's symbols say it is, for rungdb.
exec @kdf@ run \
    --kernel @kernel@ \
    --initramfs @initramfs@ \
    --chdir "$workdir" \
    --cmdline nokaslr \
    "${args[@]}" \
    "$@"
