// SPDX-License-Identifier: GPL-2.0

//! kdf's example out-of-tree Rust module: it keeps a few numbers in a `KVec`
//! from load to unload and prints them when it is unloaded, the way the
//! kernel's samples/rust/rust_minimal.rs does.
//!
//!     make && insmod rust_hello.ko && rmmod rust_hello && dmesg | tail -3

use kernel::prelude::*;

module! {
    type: RustHello,
    name: "rust_hello",
    authors: ["kdf"],
    description: "kdf's example out-of-tree Rust module",
    license: "GPL",
}

struct RustHello {
    numbers: KVec<i32>,
}

impl kernel::Module for RustHello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("hello from kdf (init)\n");

        let mut numbers = KVec::new();
        numbers.push(72, GFP_KERNEL)?;
        numbers.push(108, GFP_KERNEL)?;
        numbers.push(200, GFP_KERNEL)?;

        Ok(RustHello { numbers })
    }
}

impl Drop for RustHello {
    fn drop(&mut self) {
        pr_info!("my numbers are {:?}\n", self.numbers);
        pr_info!("goodbye from kdf (exit)\n");
    }
}
