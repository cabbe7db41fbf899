//! The host's end of a guest command's streams, shared by `kdf run` and
//! `kdf attach`: the channel reader that writes the command's output as it
//! arrives ([`channel`]), stdin under the guest's credit ([`stdin`]), the raw
//! terminal, its size and the escape sequence ([`terminal`]), and what their
//! threads tell the main loop ([`event`]).

pub mod channel;
pub mod event;
pub mod stdin;
pub mod terminal;
