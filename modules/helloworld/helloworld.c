// SPDX-License-Identifier: GPL-2.0
/*
 * kdf's example out-of-tree C module: one line in the kernel log when it is
 * loaded, one when it is unloaded.
 *
 *   make && insmod helloworld.ko who=you && rmmod helloworld && dmesg | tail -2
 *   kdf run --module 'helloworld.ko who=you' -- dmesg    (loads and unloads it)
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

static char *who = "kdf";
module_param(who, charp, 0444);
MODULE_PARM_DESC(who, "whom the module greets (default: kdf)");

static int __init helloworld_init(void)
{
	pr_info("hello from %s\n", who);
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
