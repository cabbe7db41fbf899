// SPDX-License-Identifier: GPL-2.0
/*
 * kdf's example out-of-tree C module: one line in the kernel log when it is
 * loaded, one when it is unloaded.
 *
 *   make && insmod helloworld.ko && rmmod helloworld && dmesg | tail -2
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init helloworld_init(void)
{
	pr_info("hello from kdf\n");
	return 0;
}

static void __exit helloworld_exit(void)
{
	pr_info("goodbye from kdf\n");
}

module_init(helloworld_init);
module_exit(helloworld_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kdf");
MODULE_DESCRIPTION("kdf's example out-of-tree C module");
