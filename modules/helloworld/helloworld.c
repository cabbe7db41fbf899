// SPDX-License-Identifier: GPL-2.0
/*
 * kdf's example out-of-tree C module: one line in the kernel log when it is
 * loaded, one when it is unloaded.
 *
 *   make && insmod helloworld.ko who=you && rmmod helloworld && dmesg | tail -2
 *   kdf run --module 'helloworld.ko who=you' -- dmesg    (loads and unloads it)
 *   kdf run --module 'helloworld.ko warn=1' -- true      (a WARNING: status 122)
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>

static char *who = "kdf";
module_param(who, charp, 0444);
MODULE_PARM_DESC(who, "whom the module greets (default: kdf)");

static bool warn;
module_param(warn, bool, 0444);
MODULE_PARM_DESC(warn, "WARN in init, to see a kernel splat fail a kdf run (default: no)");

static int __init helloworld_init(void)
{
	pr_info("hello from %s\n", who);
	WARN(warn, "helloworld: warn=1 was given\n");
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
